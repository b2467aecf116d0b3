"""The async L1 client every service uses: typed eth_* calls over the policy-wrapped transport.

    async with L1Client("http://127.0.0.1:8545") as l1:
        head = await l1.get_block("latest")

Addresses are 20 raw bytes and hashes 32 raw bytes; amounts are ints in wei.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from opentelemetry import trace

from services.l1._codec import data_hex, quantity, to_bytes, to_int
from services.l1._config import DEFAULT_TARGET, POLICY, RECEIPT_FIRST_POLL_S, RECEIPT_POLL_S
from services.l1._errors import ReceiptTimeout
from services.l1._jsonrpc import Call, JsonRpc
from services.l1._pacing import Activity
from services.l1._records import BlockHeader, BlockId, Log, Receipt, Transaction
from services.runtime import BreakerOpen, CallPolicy, DeadlineExceeded, quiet

#: Topic filter of eth_getLogs: per position, one topic, any of several, or None (anything).
Topics = Sequence[bytes | Sequence[bytes] | None]


def block_id(block: BlockId) -> str:
    """A block number or tag as a JSON-RPC block parameter."""
    return quantity(block) if isinstance(block, int) else block


def log_filter(
    from_block: BlockId, to_block: BlockId, address: bytes | Sequence[bytes] | None, topics: Topics
) -> dict[str, Any]:
    """The eth_getLogs filter object."""
    doc: dict[str, Any] = {"fromBlock": block_id(from_block), "toBlock": block_id(to_block)}
    if isinstance(address, bytes):
        doc["address"] = data_hex(address)
    elif address is not None:
        doc["address"] = [data_hex(a) for a in address]
    if topics:
        doc["topics"] = [
            None if t is None else data_hex(t) if isinstance(t, bytes) else [data_hex(x) for x in t] for t in topics
        ]
    return doc


class L1Client:
    """One L1 JSON-RPC endpoint. Create it inside the event loop; close it (``async with``, or
    :meth:`aclose`) when done: it owns an aiohttp session.

    Spans go to ``tracer``, by default the global provider's (``init_tracing`` installs it).
    Every call goes through ``policy``: by default the process's CallPolicy for target "l1" with
    :data:`services.l1.POLICY` (the runtime's defaults plus the JSON-RPC classifier). A custom
    policy should keep that classifier (:func:`services.l1.policy_config`).
    """

    def __init__(self, url: str, *, policy: CallPolicy | None = None, tracer: trace.Tracer | None = None) -> None:
        self.policy: Final = policy or CallPolicy.for_target(DEFAULT_TARGET, POLICY)
        # No cookies (a JSON-RPC endpoint has no business setting any); the policy bounds time.
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self.rpc: Final = JsonRpc(url, self._session, self.policy, tracer)
        #: Notified on every transaction sent through this client: its pollers snap back to full speed.
        self.activity: Final = Activity()

    @property
    def url(self) -> str:
        return self.rpc.url

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- raw -------------------------------------------------------------------------------------

    async def request(self, method: str, *params: Any, deadline_s: float | None = None) -> Any:
        """Any JSON-RPC method (anvil_*, evm_*, debug_*...); the raw JSON result."""
        return await self.rpc.request(method, params, deadline_s=deadline_s)

    async def batch(self, calls: Sequence[Call], *, deadline_s: float | None = None) -> list[Any]:
        """Several raw read calls in one JSON-RPC batch request."""
        return await self.rpc.batch(calls, deadline_s=deadline_s)

    # --- chain -----------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        return to_int(await self.rpc.request("eth_chainId"))

    async def block_number(self) -> int:
        return to_int(await self.rpc.request("eth_blockNumber"))

    async def get_block(self, block: BlockId = "latest") -> BlockHeader | None:
        """A block's header (no transactions); None if there is no such block (yet)."""
        doc = await self.rpc.request("eth_getBlockByNumber", (block_id(block), False))
        return None if doc is None else BlockHeader.from_json(doc)

    async def get_blocks(self, blocks: Sequence[BlockId]) -> list[BlockHeader | None]:
        """Several headers in one batch request, in order."""
        docs = await self.rpc.batch([("eth_getBlockByNumber", (block_id(b), False)) for b in blocks])
        return [None if d is None else BlockHeader.from_json(d) for d in docs]

    async def get_logs(
        self,
        from_block: BlockId,
        to_block: BlockId,
        *,
        address: bytes | Sequence[bytes] | None = None,
        topics: Topics = (),
        deadline_s: float | None = None,
    ) -> list[Log]:
        docs = await self.rpc.request(
            "eth_getLogs", (log_filter(from_block, to_block, address, topics),), deadline_s=deadline_s
        )
        return [Log.from_json(d) for d in docs]

    # --- accounts and state ----------------------------------------------------------------------

    async def get_code(self, address: bytes, block: BlockId = "latest") -> bytes:
        return to_bytes(await self.rpc.request("eth_getCode", (data_hex(address), block_id(block))))

    async def get_balance(self, address: bytes, block: BlockId = "latest") -> int:
        return to_int(await self.rpc.request("eth_getBalance", (data_hex(address), block_id(block))))

    async def get_transaction_count(self, address: bytes, block: BlockId = "pending") -> int:
        """The account's next nonce: with "pending", counting transactions in the node's mempool."""
        return to_int(await self.rpc.request("eth_getTransactionCount", (data_hex(address), block_id(block))))

    async def call(
        self, to: bytes, data: bytes, *, sender: bytes | None = None, value: int = 0, block: BlockId = "latest"
    ) -> bytes:
        """eth_call: the return data. A revert raises RpcError; its ``revert_data`` is the payload."""
        return to_bytes(await self.rpc.request("eth_call", (_tx_object(to, data, sender, value), block_id(block))))

    async def estimate_gas(self, to: bytes | None, data: bytes, *, sender: bytes | None = None, value: int = 0,
                           blob_hashes: Sequence[bytes] = ()) -> int:
        """eth_estimateGas; a transaction that would revert raises RpcError (with revert data). With
        ``blob_hashes``, as a blob transaction carrying blobs of these versioned hashes."""
        doc: dict[str, Any] = dict(_tx_object(to, data, sender, value))
        if blob_hashes:
            doc["blobVersionedHashes"] = [data_hex(h) for h in blob_hashes]
        return to_int(await self.rpc.request("eth_estimateGas", (doc,)))

    async def blob_base_fee(self) -> int:
        """eth_blobBaseFee: the next block's price of a unit of blob gas (RpcError where the node
        or its chain has no blobs)."""
        return to_int(await self.rpc.request("eth_blobBaseFee"))

    async def get_blobs(self, tx_hash: bytes) -> list[bytes] | None:
        """The blobs of a blob transaction, in its order, from the node itself: anvil's
        ``anvil_getBlobsByTransactionHash`` (None if it has none for it). The seam for a real node:
        an execution node keeps no blobs past its pool; they come from the consensus node's
        blob-sidecar API (``/eth/v1/beacon/blob_sidecars/{block_id}``, matched to the transaction
        by versioned hash), not built here (no beacon node to test against)."""
        docs = await self.rpc.request("anvil_getBlobsByTransactionHash", (data_hex(tx_hash),))
        return None if docs is None else [to_bytes(doc) for doc in docs]

    async def max_priority_fee(self) -> int:
        """eth_maxPriorityFeePerGas: the node's suggested tip (RpcError -32601 if unsupported)."""
        return to_int(await self.rpc.request("eth_maxPriorityFeePerGas"))

    # --- transactions ----------------------------------------------------------------------------

    async def send_raw_transaction(self, raw: bytes, *, deadline_s: float | None = None) -> bytes:
        """Submit a signed transaction; its hash. Retried on connection errors: resending the
        same bytes is the same transaction (the node answers "already known" or "nonce too low")."""
        tx_hash = to_bytes(await self.rpc.request("eth_sendRawTransaction", (raw,), mutating=True,
                                                  deadline_s=deadline_s))
        self.activity.notify()
        return tx_hash

    async def get_transaction(self, tx_hash: bytes) -> Transaction | None:
        doc = await self.rpc.request("eth_getTransactionByHash", (data_hex(tx_hash),))
        return None if doc is None else Transaction.from_json(doc)

    async def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt once mined; None while pending or unknown."""
        doc = await self.rpc.request("eth_getTransactionReceipt", (data_hex(tx_hash),))
        return None if doc is None else Receipt.from_json(doc)

    async def wait_receipt(self, tx_hash: bytes, timeout_s: float, *, poll_s: float = RECEIPT_POLL_S) -> Receipt:
        """Poll for the receipt until ``timeout_s``; :class:`ReceiptTimeout` then. An L1 outage
        meanwhile is waited out (the timeout's ``__cause__`` says so)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_error: BaseException | None = None
        delay = RECEIPT_FIRST_POLL_S
        while True:
            try:
                with quiet():  # the polls that find nothing are no spans; the find is an event
                    receipt = await self.get_receipt(tx_hash)
            except (BreakerOpen, DeadlineExceeded) as exc:
                receipt, last_error = None, exc
            if receipt is not None:
                receipt_event(receipt)
                return receipt
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ReceiptTimeout(tx_hash, timeout_s) from last_error
            await asyncio.sleep(min(delay, poll_s, remaining))
            delay *= 2


def _tx_object(to: bytes | None, data: bytes, sender: bytes | None, value: int) -> dict[str, str | bytes]:
    doc: dict[str, str | bytes] = {"data": data}  # bytes: written as hex into the request (JsonRpc.request)
    if to is not None:
        doc["to"] = data_hex(to)
    if sender is not None:
        doc["from"] = data_hex(sender)
    if value:
        doc["value"] = quantity(value)
    return doc


def receipt_event(receipt: Receipt) -> None:
    """On the span that waited for it: the receipt polls are unrecorded (``quiet``)."""
    trace.get_current_span().add_event(
        "l1.receipt", {"l1.tx.hash": data_hex(receipt.tx_hash), "l1.block": receipt.block_number})
