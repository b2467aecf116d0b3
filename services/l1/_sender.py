"""The batcher's transaction sender: local signing, a local nonce, EIP-1559 fees, replacement.

One sender per key and process: it hands out nonces from its own counter (a node round trip per
send saved, and back-to-back sends do not collide in the mempool, so several of its transactions
can be in flight at once, each waited for on its own) and resyncs it from
``eth_getTransactionCount(pending)`` at start, after "nonce too low" (someone else used the key),
after "replacement transaction underpriced" on a new send (the node's pool holds another
transaction of this key at that nonce: sent before a restart, or elsewhere), and after a send
whose outcome is unknown (timeout, outage, cancellation).

After a restart, :meth:`TxSender.recover` takes back what the node's pool still holds from this
key (``txpool_content``, where the node has it): tracked as pending again, so a stuck one is
bumped like any other and the caller knows what it still has in flight.

Blob transactions (EIP-4844, :meth:`TxSender.send_blobs`) share the nonce counter and the
replacement path: a pending one keeps its blobs (``PendingTx.sidecar``), so a bump re-signs it with
the same blobs, its blob fee raised by ``blob_replacement_factor``. The pool's answer after a
restart carries no blobs (``txpool_content`` gives the versioned hashes only), so :meth:`recover`
takes a pooled blob transaction back only when its caller gives the blobs again (``BlobSource``,
the batcher rebuilds them from its blocks), checked against the pooled versioned hashes; one it
cannot is left to the caller, who posts its data again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from services.l1._client import L1Client, receipt_event
from services.l1._codec import address, to_bytes, to_int
from services.l1._config import RECEIPT_FIRST_POLL_S, SenderConfig
from services.l1._errors import FeeCapExceeded, ReceiptTimeout, RpcError, TransactionDropped
from services.l1._fees import Fees, bumped, market_fees
from services.l1._kzg import blob_proof, cell_proofs, commitment, in_kzg_process, versioned_hash
from services.l1._records import Receipt
from services.l1._signer import (
    BlobSidecar,
    LocalSigner,
    SignedTransaction,
    UnsignedBlobTransaction,
    UnsignedTransaction,
)
from services.runtime import BreakerOpen, DeadlineExceeded, quiet

_log = logging.getLogger("l2node.l1")

_MAX_TRACKED: Final = 256  # pending transactions remembered for replacement; the oldest go first
#: What nodes answer eth_sendRawTransaction with when they have the very transaction already...
ALREADY_KNOWN: Final = ("already known", "already imported", "known transaction")
#: ...and when its nonce is used (by it, by another version of it, or by another transaction).
NONCE_TOO_LOW: Final = ("nonce too low", "nonce has already been used")
#: ...and when its pool holds another transaction of the key at that nonce, not outbid by this one.
REPLACEMENT_UNDERPRICED: Final = ("replacement transaction underpriced", "replacement fee too low")


#: What a blob transaction's versioned hashes were made of: its blobs with their commitments and proofs
#: (None: not known). For :meth:`TxSender.recover`: the pool gives back no blobs.
BlobSource = Callable[[tuple[bytes, ...]], Awaitable[BlobSidecar | None]]


@dataclass(frozen=True, slots=True)
class PendingTx:
    """A sent transaction not yet seen mined, with every version sent for its nonce."""

    nonce: int
    to: bytes | None
    data: bytes
    value: int
    gas: int
    fees: Fees  # of the newest version
    hashes: tuple[bytes, ...]  # oldest first; any one of them may be the one mined
    sent_at: float  # event-loop time of the newest version (or of the last failed bump)
    #: A blob transaction's blobs (None: type 2), and its newest version's max fee per blob gas.
    sidecar: BlobSidecar | None = None
    blob_fee: int = 0
    #: The newest version as sent (``eth_sendRawTransaction``'s bytes), sent again if the node's
    #: pool lets go of it; b"": not known (taken back from the pool by ``recover``).
    raw: bytes = b""


class TxSender:
    """Signs and sends transactions from one key, and sees them mined."""

    def __init__(self, l1: L1Client, signer: LocalSigner, chain_id: int | None, config: SenderConfig | None = None
                 ) -> None:
        self._chain_id = chain_id  # None: asked at the first signature (a worker's start asks L1 nothing)
        self.config: Final = config or SenderConfig()
        self._l1 = l1
        self._signer = signer
        self._nonce: int | None = None  # next nonce to use; None = ask the node
        self._lock = asyncio.Lock()  # one send or replacement at a time: they share the nonce
        self._pending: dict[int, PendingTx] = {}
        self._nonce_of: dict[bytes, int] = {}

    @classmethod
    async def create(cls, l1: L1Client, signer: LocalSigner, config: SenderConfig | None = None) -> TxSender:
        """A sender for the endpoint's chain (asks it for its chain id)."""
        return cls(l1, signer, await l1.chain_id(), config)

    @property
    def chain_id(self) -> int | None:
        """The chain this sender signs for; None until its first signature if not given."""
        return self._chain_id

    @property
    def address(self) -> bytes:
        return self._signer.address

    def pending(self) -> tuple[PendingTx, ...]:
        """Sent and not yet seen mined by :meth:`wait_receipt`, by nonce."""
        return tuple(self._pending[n] for n in sorted(self._pending))

    async def send(self, to: bytes | None, data: bytes = b"", value: int = 0, *, gas: int | None = None) -> bytes:
        """Sign and submit a transaction (``to=None`` deploys ``data``); its hash once the node
        accepted it. A transaction that would revert raises :class:`RpcError` from gas
        estimation, unretried, and uses no nonce."""
        async with self._lock:
            if gas is None:
                estimate = await self._l1.estimate_gas(to, data, sender=self.address, value=value)
                gas = max(estimate, min(estimate * (100 + self.config.gas_margin_percent) // 100, self.config.max_gas))
            fees = await self._market_fees()
            for _ in range(self.config.nonce_retries + 1):
                nonce = self._nonce if self._nonce is not None else await self._pending_nonce()
                signed = await self._sign(nonce, to, data, value, gas, fees)
                if await self._submit(signed.raw, signed.hash, blob=False, fresh=True):
                    self._nonce = nonce + 1
                    self._track(PendingTx(nonce, to, data, value, gas, fees, (signed.hash,), _now(), raw=signed.raw))
                    return signed.hash
                _log.warning("nonce %d of %s was used elsewhere; resyncing", nonce, self._signer)
                self._nonce = None
            raise TransactionDropped(f"nonce too low {self.config.nonce_retries + 1} times: is another "
                                     f"process sending from {self._signer}?")

    async def sidecar(self, blobs: tuple[bytes, ...]) -> BlobSidecar:
        """The blobs (each 131072 bytes of canonical field elements) with their commitments and the
        proofs this sender's config asks for, computed in the KZG helper processes."""
        return await sidecar_off_loop(blobs, cells=self.config.blob_cell_proofs)

    async def send_blobs(self, to: bytes, data: bytes, sidecar: BlobSidecar, *, gas: int | None = None) -> bytes:
        """As :meth:`send`, as an EIP-4844 transaction carrying ``sidecar``'s blobs (:meth:`sidecar`);
        max fee per blob gas = eth_blobBaseFee x blob_fee_multiplier. The gas estimate runs with the
        blobs' versioned hashes (``blobhash`` sees them)."""
        hashes = tuple(versioned_hash(c) for c in sidecar.commitments)
        async with self._lock:
            if gas is None:
                estimate = await self._l1.estimate_gas(to, data, sender=self.address, blob_hashes=hashes)
                gas = max(estimate, min(estimate * (100 + self.config.gas_margin_percent) // 100, self.config.max_gas))
            fees = await self._market_fees()
            blob_fee = max(1, await self._l1.blob_base_fee() * self.config.blob_fee_multiplier)
            for _ in range(self.config.nonce_retries + 1):
                nonce = self._nonce if self._nonce is not None else await self._pending_nonce()
                signed = await self._sign(nonce, to, data, 0, gas, fees, sidecar, blob_fee)
                if await self._submit(signed.raw, signed.hash, blob=True, fresh=True):
                    self._nonce = nonce + 1
                    self._track(PendingTx(nonce, to, data, 0, gas, fees, (signed.hash,), _now(), sidecar, blob_fee,
                                          signed.raw))
                    return signed.hash
                _log.warning("nonce %d of %s was used elsewhere; resyncing", nonce, self._signer)
                self._nonce = None
            raise TransactionDropped(f"nonce too low {self.config.nonce_retries + 1} times: is another "
                                     f"process sending from {self._signer}?")

    async def sign_next(self, to: bytes, data: bytes, gas: int, fees: Fees) -> SignedTransaction:
        """Sign a transaction at this sender's next nonce and take that nonce, without sending it:
        for a caller that stores the signed bytes before it sends them, so that they go out
        exactly once across a crash (the channels worker's watchtower, sharing its node's key).
        The caller sends them itself, and must: a nonce taken and never sent holds up the later
        ones. Not tracked here (no replacement)."""
        async with self._lock:
            nonce = self._nonce if self._nonce is not None else await self._pending_nonce()
            self._nonce = nonce + 1
            return await self._sign(nonce, to, data, 0, gas, fees)

    async def replace(self, tx_hash: bytes) -> bytes:
        """Resend a pending transaction with both fees bumped by at least the configured percent
        (and to at least the market's); the new hash. If a version is mined already, its hash."""
        async with self._lock:
            pending = self._pending_for(tx_hash)
            fees = bumped(pending.fees, await self._market_fees(), self.config)
            blob_fee = 0
            if pending.sidecar is not None:
                market = await self._l1.blob_base_fee() * self.config.blob_fee_multiplier
                blob_fee = max(pending.blob_fee * self.config.blob_replacement_factor, market, 1)
            signed = await self._sign(pending.nonce, pending.to, pending.data, pending.value, pending.gas, fees,
                                pending.sidecar, blob_fee)
            # Watched before it is sent: if the send's outcome is unknown, it may still get mined.
            self._pending[pending.nonce] = dataclasses.replace(pending, hashes=(*pending.hashes, signed.hash))
            self._nonce_of[signed.hash] = pending.nonce
            if not await self._submit(signed.raw, signed.hash, blob=pending.sidecar is not None):
                receipt = await self._first_receipt(pending.hashes)
                if receipt is not None:
                    return receipt.tx_hash
                self._forget(pending.nonce)
                raise TransactionDropped(f"nonce {pending.nonce} was used by another transaction")
            self._pending[pending.nonce] = dataclasses.replace(self._pending[pending.nonce], fees=fees, sent_at=_now(),
                                                               blob_fee=blob_fee, raw=signed.raw)
            _log.info("replaced nonce %d: %s -> %s (max fee %d, tip %d)", pending.nonce, pending.hashes[-1].hex(),
                      signed.hash.hex(), fees.max_fee_per_gas, fees.max_priority_fee_per_gas)
            return signed.hash

    async def wait_receipt(self, tx_hash: bytes, timeout_s: float) -> Receipt:
        """The receipt of ``tx_hash`` or of a replacement of it, whichever got mined. A version
        not mined within ``replace_after_s`` is replaced with bumped fees. :class:`ReceiptTimeout`
        after ``timeout_s``; :class:`TransactionDropped` if another transaction took the nonce or
        an earlier one vanished (a nonce gap). A version the node no longer has, not mined (its
        pool let go of it), is sent again as it is, looked for every ``rebroadcast_check_s``. A
        receipt is not finality: an L1 reorg can still undo it, which the log follower reports."""
        nonce = self._nonce_of.get(tx_hash)
        if nonce is None:  # not sent by this sender (or already seen mined)
            return await self._l1.wait_receipt(tx_hash, timeout_s, poll_s=self.config.receipt_poll_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        hashes: tuple[bytes, ...] = (tx_hash,)
        last_error: BaseException | None = None
        delay = RECEIPT_FIRST_POLL_S
        looked = loop.time()  # when the node was last seen holding the newest version
        while True:
            pending = self._pending.get(nonce)
            if pending is not None:
                hashes = pending.hashes
            try:
                with quiet():  # the polls that find nothing are no spans; the find is an event
                    receipt = await self._first_receipt(hashes)
                if receipt is not None:
                    self._forget(nonce)
                    receipt_event(receipt)
                    return receipt
                if pending is not None and loop.time() - pending.sent_at >= self.config.replace_after_s:
                    await self._replace_stuck(pending)
                elif pending is not None and loop.time() - looked >= self.config.rebroadcast_check_s:
                    looked = loop.time()
                    await self._rebroadcast_if_dropped(pending)
            except (BreakerOpen, DeadlineExceeded) as exc:  # an L1 outage: wait it out
                last_error = exc
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ReceiptTimeout(tx_hash, timeout_s) from last_error
            await asyncio.sleep(min(delay, self.config.receipt_poll_s, remaining))
            delay *= 2

    async def recover(self, blobs: BlobSource | None = None) -> tuple[PendingTx, ...]:
        """After a restart: this key's transactions the node's pool holds (``txpool_content``: geth,
        anvil, reth), tracked as pending again (:meth:`wait_receipt` finds them and bumps a stuck
        one), and the local nonce after them; by nonce. A blob transaction only if ``blobs`` gives
        back the sidecar of its versioned hashes (the pool has no blobs to re-sign it with). Empty
        when the node has no txpool API (the nonce then comes from the pending count alone, as at
        any start)."""
        async with self._lock:
            try:
                content = await self._l1.request("txpool_content")
            except RpcError:
                return ()
            mined = await self._l1.get_transaction_count(self.address, "latest")
            found: dict[int, PendingTx] = {}
            now = _now()
            for section in ("pending", "queued"):
                for owner, by_nonce in ((content or {}).get(section) or {}).items():
                    if address(owner) != self.address:
                        continue
                    for doc in by_nonce.values():
                        nonce = to_int(doc["nonce"])
                        if nonce < mined or doc.get("maxFeePerGas") is None:
                            continue  # mined meanwhile, or not a transaction this sender signs (EIP-1559)
                        sidecar, blob_fee = None, 0
                        if doc.get("blobVersionedHashes"):
                            sidecar = await _sidecar_for(doc, blobs)
                            if sidecar is None:
                                continue  # blobs not given back: the caller posts its data again
                            blob_fee = to_int(doc["maxFeePerBlobGas"])
                        to = doc.get("to")
                        fees = Fees(to_int(doc["maxFeePerGas"]), to_int(doc["maxPriorityFeePerGas"]))
                        found[nonce] = PendingTx(nonce, address(to) if to else None, to_bytes(doc["input"]),
                                                 to_int(doc["value"]), to_int(doc["gas"]), fees,
                                                 (to_bytes(doc["hash"]),), now, sidecar, blob_fee)
            for nonce, pending in found.items():
                if nonce in self._pending:  # known already (a caller's task restarted): every version it sent
                    found[nonce] = self._pending[nonce]
                else:
                    self._track(pending)
            self._nonce = max([await self._pending_nonce(), *(n + 1 for n in found)])
            if found:
                _log.info("recovered %d pending transactions of %s from the node's pool (nonces %d-%d)",
                          len(found), self._signer, min(found), max(found))
            return tuple(found[n] for n in sorted(found))

    def give_up(self, tx_hash: bytes) -> tuple[bytes, ...]:
        """Stop tracking the transaction ``tx_hash`` is a version of: its caller gave it up (its data
        goes again). Never bumped again, though any version may still be mined: their hashes."""
        nonce = self._nonce_of.get(tx_hash)
        pending = None if nonce is None else self._pending.get(nonce)
        if pending is None or tx_hash not in pending.hashes:  # (not another transaction at that nonce since)
            self._nonce_of.pop(tx_hash, None)
            return (tx_hash,)
        self._forget(pending.nonce)
        return pending.hashes

    async def resync_nonce(self) -> int:
        """Forget the local nonce and take the node's pending count; the next nonce."""
        async with self._lock:
            self._nonce = await self._pending_nonce()
            return self._nonce

    # --- internals -------------------------------------------------------------------------------

    async def _rebroadcast_if_dropped(self, pending: PendingTx) -> None:
        """Send ``pending``'s newest version again if the node no longer has it and it is not mined.
        A pool may let go of a valid transaction: anvil drops those that did not fit a full block,
        and the nonces after it then wait behind a gap until ``replace_after_s`` (a 30 s stall of
        every batch in flight). The bridge's outbox and the channels tower send theirs again the same way."""
        if not pending.raw or await self._l1.get_transaction(pending.hashes[-1]) is not None:
            return
        async with self._lock:
            if self._pending.get(pending.nonce) is not pending:
                return  # replaced or seen mined meanwhile: that path has it
            _log.info("nonce %d: the node dropped 0x%s; sent again", pending.nonce, pending.hashes[-1].hex())
            try:
                sent = await self._submit(pending.raw, pending.hashes[-1], blob=pending.sidecar is not None)
            except RpcError as exc:  # refused as it is (the base fee rose above its max fee): bumped below
                _log.info("nonce %d: not taken again as it is (%s); replacing it", pending.nonce, exc)
                sent = None
            if sent is False:
                if await self._first_receipt(pending.hashes) is not None:
                    return  # ours after all: the caller's next poll takes the receipt
                self._forget(pending.nonce)
                raise TransactionDropped(f"nonce {pending.nonce} was used by another transaction")
        if sent is None:
            await self._replace_stuck(pending)

    async def _replace_stuck(self, pending: PendingTx) -> None:
        expected = await self._pending_nonce()
        if expected < pending.nonce and expected not in self._pending:
            # An earlier transaction is gone (an L1 reorg dropped it, or the node evicted it): this one
            # waits behind a gap no bump can fill. The caller re-sends what it still needs.
            self._forget(pending.nonce)
            self._nonce = None
            raise TransactionDropped(f"nonce gap: the node expects nonce {expected}, this transaction has "
                                     f"{pending.nonce}; an earlier one was dropped")
        try:
            await self.replace(pending.hashes[-1])
        except (FeeCapExceeded, RpcError) as exc:  # over the cap, out of funds, outbid: keep waiting
            _log.warning("nonce %d stuck and not replaced: %s", pending.nonce, exc)
            if pending.nonce in self._pending:  # try again after another replace_after_s
                self._pending[pending.nonce] = dataclasses.replace(self._pending[pending.nonce], sent_at=_now())

    async def _pending_nonce(self) -> int:
        return await self._l1.get_transaction_count(self.address, "pending")

    async def _market_fees(self) -> Fees:
        return await current_fees(self._l1, self.config)

    async def _sign(self, nonce: int, to: bytes | None, data: bytes, value: int, gas: int, fees: Fees,
                    sidecar: BlobSidecar | None = None, blob_fee: int = 0) -> SignedTransaction:
        if self._chain_id is None:
            self._chain_id = await self._l1.chain_id()
        tx = UnsignedTransaction(
            chain_id=self._chain_id, nonce=nonce, max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            max_fee_per_gas=fees.max_fee_per_gas, gas_limit=gas, to=to, value=value, data=data)
        if sidecar is None:
            return self._signer.sign(tx)
        hashes = tuple(versioned_hash(c) for c in sidecar.commitments)
        return self._signer.sign_blob(UnsignedBlobTransaction(tx, blob_fee, hashes), sidecar)

    async def _submit(self, raw: bytes, tx_hash: bytes, *, blob: bool, fresh: bool = False) -> bool:
        """True once the node has the transaction (``raw``, of hash ``tx_hash``); False if its nonce
        is taken by another one (for a ``fresh`` nonce, not a replacement, also by one the node's
        pool holds and this does not outbid)."""
        try:
            deadline = self.config.blob_send_deadline_s if blob else None
            await self._l1.send_raw_transaction(raw, deadline_s=deadline)
            return True
        except RpcError as exc:
            if exc.mentions(*ALREADY_KNOWN):
                return True  # an earlier attempt of this very call got through
            if exc.mentions(*NONCE_TOO_LOW):
                # Ours if an earlier attempt got through and was mined; else the nonce went elsewhere.
                return await self._l1.get_transaction(tx_hash) is not None
            if fresh and exc.mentions(*REPLACEMENT_UNDERPRICED):
                return False
            raise  # an answer that leaves the nonce unused (insufficient funds, underpriced...)
        except BaseException:
            self._nonce = None  # the node may or may not have it: ask it next time
            raise

    async def _first_receipt(self, hashes: tuple[bytes, ...]) -> Receipt | None:
        for tx_hash in reversed(hashes):  # the newest version is the likeliest
            receipt = await self._l1.get_receipt(tx_hash)
            if receipt is not None:
                return receipt
        return None

    def _pending_for(self, tx_hash: bytes) -> PendingTx:
        nonce = self._nonce_of.get(tx_hash)
        if nonce is None or nonce not in self._pending:
            raise KeyError(f"0x{tx_hash.hex()} is not a pending transaction of {self._signer}")
        return self._pending[nonce]

    def _track(self, pending: PendingTx) -> None:
        self._pending[pending.nonce] = pending
        self._nonce_of[pending.hashes[0]] = pending.nonce
        while len(self._pending) > _MAX_TRACKED:
            self._forget(min(self._pending))

    def _forget(self, nonce: int) -> None:
        pending = self._pending.pop(nonce, None)
        for tx_hash in pending.hashes if pending else ():
            self._nonce_of.pop(tx_hash, None)


async def _sidecar_for(doc: dict[str, Any], blobs: BlobSource | None) -> BlobSidecar | None:
    """The sidecar ``blobs`` gives for a pooled blob transaction, if its commitments are the
    transaction's versioned hashes (a replacement must carry the very same blobs)."""
    hashes = tuple(to_bytes(h) for h in doc["blobVersionedHashes"])
    sidecar = None if blobs is None else await blobs(hashes)
    if sidecar is None or tuple(versioned_hash(c) for c in sidecar.commitments) != hashes:
        return None
    return sidecar


async def current_fees(l1: L1Client, config: SenderConfig) -> Fees:
    """What to offer now (:func:`market_fees`): the latest block's base fee and the node's tip.
    Also for senders that store a signed transaction before sending it (the bridge's relayer)."""
    head = await l1.get_block("latest")
    base_fee = head.base_fee if head is not None and head.base_fee is not None else 0
    try:
        tip = await l1.max_priority_fee()
    except RpcError:  # a node without eth_maxPriorityFeePerGas
        tip = config.default_priority_fee_wei
    return market_fees(base_fee, tip, config)


def sidecar_of(blobs: tuple[bytes, ...], *, cells: bool = False) -> BlobSidecar:
    """The blobs with their KZG commitments and proofs (blob proofs, ~130 ms a blob; or, ``cells``,
    EIP-7594's cell proofs), in this process."""
    return _sidecar(blobs, [_blob_parts(blob, cells) for blob in blobs], cells)


async def sidecar_off_loop(blobs: tuple[bytes, ...], *, cells: bool = False) -> BlobSidecar:
    """``sidecar_of``, each blob in a KZG process (``in_kzg_process``: ckzg holds the GIL), in parallel."""
    return _sidecar(blobs, await asyncio.gather(*(in_kzg_process(_blob_parts, blob, cells) for blob in blobs)), cells)


def _sidecar(blobs: tuple[bytes, ...], parts: list[tuple[bytes, tuple[bytes, ...]]], cells: bool) -> BlobSidecar:
    if not blobs:
        raise ValueError("a blob transaction carries at least one blob")
    return BlobSidecar(blobs, tuple(c for c, _ in parts), tuple(p for _, ps in parts for p in ps), int(cells))


def _blob_parts(blob: bytes, cells: bool) -> tuple[bytes, tuple[bytes, ...]]:
    c = commitment(blob)
    return c, cell_proofs(blob) if cells else (blob_proof(blob, c),)


def _now() -> float:
    return asyncio.get_running_loop().time()
