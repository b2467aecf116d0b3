"""This node's calls to the ChannelAdjudicator on L1 (contracts/ChannelAdjudicator.sol), through
the one L1 client (its "l1" call policy) and a sender holding the channel key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from services.l1 import Contract, L1Client, RpcError, TxSender
from services.runtime import FailedPrecondition

from ._records import StateRecord

#: ChannelAdjudicator.Status.
L1_NONE: Final = 0
L1_OPENING: Final = 1
L1_OPEN: Final = 2
L1_CLOSING: Final = 3
L1_CONCLUDED: Final = 4
L1_CANCELLED: Final = 5


@dataclass(frozen=True, slots=True)
class OnChain:
    """What the adjudicator holds of a channel (ChannelAdjudicator.channel's ChannelView)."""

    status: int
    #: The closing state's sequence, and the end of its challenge period (L1 unix seconds).
    closing_sequence: int
    ends_at: int


def state_tuple(state: StateRecord) -> tuple[Any, ...]:
    """The adjudicator's State struct."""
    return (state.channel_id, state.sequence, state.balance_a, state.balance_b, htlc_tuples(state))


def htlc_tuples(state: StateRecord) -> list[tuple[Any, ...]]:
    return [(f, amount, h, expiry) for f, amount, h, expiry in state.htlcs]


class Adjudicator:
    def __init__(self, l1: L1Client, contract: Contract, sender: TxSender, timeout_s: float) -> None:
        self.l1 = l1
        self.contract = contract
        self._sender = sender
        self._timeout = timeout_s

    @property
    def address(self) -> bytes:
        assert self.contract.address is not None
        return self.contract.address

    @property
    def sender(self) -> TxSender:
        """The channel key's one sender: whatever else sends from that key (the tower) shares it,
        so two senders never take one nonce."""
        return self._sender

    async def challenge_period(self) -> int:
        (period,) = await self.contract.read(self.l1, "CHALLENGE_PERIOD")
        return int(period)

    async def _send(self, what: str, function: str, *args: Any, value: int = 0) -> bytes:
        """Send and wait: the transaction's hash once mined and successful. A call that would
        revert is FAILED_PRECONDITION with reason L1_REVERTED (nothing sent)."""
        try:
            tx = await self._sender.send(self.address, self.contract.encode_call(function, *args), value)
        except RpcError as exc:
            error = self.contract.decode_error(getattr(exc, "revert_data", None))
            shown = error.name if error is not None else str(exc)
            raise FailedPrecondition(f"{what}: the adjudicator refuses: {shown}", reason="L1_REVERTED") from None
        receipt = await self._sender.wait_receipt(tx, self._timeout)
        if not receipt.success:
            raise FailedPrecondition(f"{what}: transaction 0x{tx.hex()} reverted", reason="L1_REVERTED")
        return tx

    async def open(self, a: bytes, b: bytes, nonce: int, amount_a: int, amount_b: int) -> bytes:
        return await self._send("open", "open", a, b, nonce, amount_a, amount_b, value=amount_a)

    async def fund(self, channel_id: bytes, amount: int) -> bytes:
        return await self._send("fund", "fund", channel_id, value=amount)

    async def close_cooperative(self, state: StateRecord) -> bytes:
        return await self._send("closeCooperative", "closeCooperative", state_tuple(state), state.sig_a,
                                state.sig_b)

    async def close_unilateral(self, state: StateRecord) -> bytes:
        return await self._send("closeUnilateral", "closeUnilateral", state_tuple(state), state.sig_a, state.sig_b)

    async def challenge(self, state: StateRecord) -> bytes:
        return await self._send("challenge", "challenge", state_tuple(state), state.sig_a, state.sig_b)

    async def conclude(self, state: StateRecord) -> bytes:
        return await self._send("conclude", "conclude", state.channel_id, htlc_tuples(state))

    async def claim_htlc(self, closing: StateRecord, index: int, preimage: bytes) -> bytes:
        return await self._send("claimHtlc", "claimHtlc", closing.channel_id, htlc_tuples(closing), index, preimage)

    async def refund_htlc(self, closing: StateRecord, index: int) -> bytes:
        return await self._send("refundHtlc", "refundHtlc", closing.channel_id, htlc_tuples(closing), index)

    async def revealed_at(self, channel_id: bytes, payment_hash: bytes) -> int:
        """When the preimage of ``payment_hash`` was first revealed in the channel (0: never)."""
        (at,) = await self.contract.read(self.l1, "revealedAt", channel_id, payment_hash)
        return int(at)

    async def htlc_settled(self, channel_id: bytes, index: int) -> bool:
        (settled,) = await self.contract.read(self.l1, "htlcSettled", channel_id, index)
        return bool(settled)

    async def revealed_preimage(self, channel_id: bytes, payment_hash: bytes) -> bytes:
        """The preimage an HtlcClaimed of the channel revealed for ``payment_hash`` (b"": none).
        Read from the logs since the chain's start: a devnet's or an archive node's range."""
        if not await self.revealed_at(channel_id, payment_hash):
            return b""
        logs = await self.l1.get_logs("earliest", "latest", address=self.address,
                                      topics=[self.contract.topic("HtlcClaimed"), channel_id, payment_hash])
        for log in logs:
            event = self.contract.decode_log(log)
            if event is not None:
                return bytes(event.args["preimage"])
        return b""

    async def on_chain(self, channel_id: bytes) -> OnChain:
        (view,) = await self.contract.read(self.l1, "channel", channel_id)
        return on_chain_of(view)

    async def now(self) -> int:
        block = await self.l1.get_block("latest")
        assert block is not None
        return block.timestamp


def on_chain_of(view: Any) -> OnChain:
    """ChannelView(a, b, amountA, amountB, status, sequence, openedAt, endsAt, balanceA, balanceB,
    htlcsHash)."""
    return OnChain(int(view[4]), int(view[5]), int(view[7]))
