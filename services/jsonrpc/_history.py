"""Accounts at a recent block, for the "safe" and "finalized" tags and block numbers behind the head.

The sequencer keeps the latest state only. An account as of block N is that state less what the
blocks after N did to it, and what a block does to balances and nonces is the state transition's
rule (protocol's ``apply_transaction`` / ``apply_deposit``): each signed transaction takes gas x
price + value from its sender and bumps its nonce, credits value to its recipient and the tip to
the fee vault; each deposit mints to its recipient. So each block's changes are computed once,
from its raw transactions (GetBlock with them) and its deposits' receipts, and kept for the last
``window`` blocks; older state gets geth's error for state a node does not keep.

A forced transaction whose fee cap is under the base fee pays its cap (the forced rules' waiver):
``min(base fee, fee cap)`` is the base fee a transaction was charged at, since any other one in a
block has a cap at or above the base fee.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Final

from protocol import FEE_VAULT, ZERO_ADDRESS, TxRejected, decode_transactions, gas_and_price
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb

from ._errors import SERVER_ERROR, RpcError
from ._hex import parse_address
from ._upstream import Head, Sequencer

#: address -> (balance change, nonce change) of one block.
Changes = dict[bytes, tuple[int, int]]
#: Most blocks whose changes are kept: a full block's are ~3,000 entries (~0.4 MB).
_MOST_KEPT: Final = 256


class History:
    def __init__(self, sequencer: Sequencer, head: Head, window: int) -> None:
        self._sequencer = sequencer
        self._head = head
        self._window = window
        self._changes: OrderedDict[str, Changes] = OrderedDict()
        self._keep = max(16, min(window, _MOST_KEPT))

    async def account(self, address: bytes, number: int, latest: pb.GetAccountResponse) -> tuple[int, int]:
        """(nonce, balance) of ``address`` as of block ``number`` (< latest.block_number)."""
        top = latest.block_number
        if top - number > self._window:
            raise RpcError(SERVER_ERROR, f"historical state for block {number} is not available: this node keeps "
                                         f"the state of its last {self._window} blocks (head {top})")
        nonce, balance = latest.nonce, int(latest.balance or 0)
        for n in range(number + 1, top + 1):
            d_balance, d_nonce = (await self._block_changes(n)).get(address, (0, 0))
            balance -= d_balance
            nonce -= d_nonce
        return nonce, balance

    async def _block_changes(self, number: int) -> Changes:
        kept = self._head.get(number)
        if kept is not None and kept.hash in self._changes:
            return self._changes[kept.hash]
        block = await self._sequencer.block(pb.GetBlockRequest(number=number, include_transactions=True))
        if block is None:
            raise RpcError(SERVER_ERROR, "header not found")
        changes = await self._compute(block)
        self._changes[block.hash] = changes
        while len(self._changes) > self._keep:
            self._changes.popitem(last=False)
        return changes

    async def _compute(self, block: pb.Block) -> Changes:
        balances: defaultdict[bytes, int] = defaultdict(int)
        nonces: defaultdict[bytes, int] = defaultdict(int)
        raws = list(block.raw_transactions)
        for tx_hash in block.transaction_hashes[: len(block.transaction_hashes) - len(raws)]:
            deposit = await self._sequencer.receipt(tx_hash)
            if deposit is not None and deposit.to:
                balances[parse_address(deposit.to)] += int(deposit.mint or 0)
        base_fee = int(block.base_fee or 0)
        for tx in decode_transactions(raws, await self._sequencer.chain_id()):
            if isinstance(tx, TxRejected):  # sealed, so it decoded when it came in: a rule changed since
                raise RpcError(SERVER_ERROR, f"block {block.number}: a transaction no longer decodes: {tx}")
            charged_at = min(base_fee, tx.max_fee_per_gas)
            gas, price = gas_and_price(tx, charged_at)
            balances[tx.sender] -= gas * price + tx.value
            nonces[tx.sender] += 1
            balances[tx.to or ZERO_ADDRESS] += tx.value
            balances[FEE_VAULT] += (price - charged_at) * gas
        return {a: (balances[a], nonces[a]) for a in balances.keys() | nonces.keys()}
