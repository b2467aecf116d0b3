"""The L2 state transition: accounts, transfers, fees, withdrawals and deposits. No EVM.

Deterministic and integer-only: the sequencer, the challenger and the one-step proof on L1
apply exactly these rules, in this order.

A transaction (already decoded and statelessly valid, see _tx) is applied by
``apply_transaction``. It is refused, changing nothing, when (in this order)
  1. max_fee_per_gas < base fee                              FEE_CAP_BELOW_BASE_FEE
  2. gas_limit > the block's gas limit                       GAS_LIMIT_ABOVE_BLOCK (geth: "exceeds
                                                             block gas limit"; it fits no block)
  3. block gas used + gas_limit > block gas limit            BLOCK_GAS_LIMIT_REACHED
  4. nonce != the sender's nonce                             NONCE_TOO_LOW / NONCE_TOO_HIGH
  5. balance < gas_limit * max_fee_per_gas + value           INSUFFICIENT_FUNDS
Otherwise, with gas_used = intrinsic gas (no EVM: a transaction uses exactly that),
tip = min(max_priority_fee_per_gas, max_fee_per_gas - base_fee) and
effective_gas_price = base_fee + tip:
  - the sender pays gas_used * effective_gas_price + value, and its nonce goes up by one;
  - base_fee * gas_used is burned (credited to nobody);
  - tip * gas_used is credited to FEE_VAULT;
  - value is credited to ``to``;
  - if ``to`` is MESSAGE_PASSER, an L2->L1 message is recorded (see _withdrawal) with the
    next global message nonce; the value stays in MESSAGE_PASSER's balance (no key: never
    spendable on L2), which is therefore the L2 total of everything withdrawn.
Writes happen in that order: sender, then ``to``, then FEE_VAULT. Crediting 0 wei to an address
that has no account creates nothing (a zero-value transfer to a fresh address leaves no
trace, EIP-161 style); any other write creates the account, which takes the next slot of the
account tree (see _commitment), so the creation order is part of the state.

A deposit (from L1, no signature) mints ``mint`` wei to ``to``; it cannot fail. Each L1
deposit must be applied exactly once: deduplicating by source hash is the caller's job.

A forced transaction (one pushed into the L1 inbox's forced queue) is applied by ``apply_forced``,
the one function derivation, the sequencer and (in Solidity) StepState follow for it:
  - It is not refused for its fee cap: it executes with base fee min(block base fee,
    max_fee_per_gas), so it pays at most its cap, and its tip is min(max_priority_fee_per_gas,
    max_fee_per_gas - that base fee). Decision (issue 12 item 6), as Optimism's deposits do not pay
    the L2 base fee: a forced transaction paid for its place with L1 gas, and the L2 base fee is the
    sequencer's to push up (full blocks), so it must not be a way to refuse it. The block's base fee
    is unchanged (the header's, every other transaction's). Its effective gas price is then
    min(block base fee + tip cap, fee cap), exactly ``gas_and_price`` at the block's base fee, so a
    receipt computed that way is right for it too.
  - Refused for BLOCK_GAS_LIMIT_REACHED it waits: it leads the next block, where it is first
    (deposits use no block gas), so it fits there or is refused for something else. Refused for
    anything else (GAS_LIMIT_ABOVE_BLOCK included) it is dropped for good. The forced queue always
    advances (issue 12 item 5: one transaction that can never fit must not stall it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import NamedTuple

from ._account import EMPTY_ACCOUNT, Account
from ._commitment import AccountTree, MerkleTree
from ._keccak import keccak256
from ._native import apply_plain as _apply_plain
from ._native import configure_execution
from ._reasons import Reason
from ._rules import (
    ADDRESS_SIZE,
    BLOCK_GAS_LIMIT,
    DEPOSIT_TX_TYPE,
    FEE_VAULT,
    HASH_SIZE,
    MESSAGE_PASSER,
    TX_BASE_GAS,
    UINT256_MAX,
    ZERO_ADDRESS,
    intrinsic_gas,
)
from ._tx import Transaction, TxRejected, decode_transaction
from ._withdrawal import MalformedWithdrawal, WithdrawalMessage, decode_withdrawal_call


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """What a transaction sees of the block it executes in."""

    number: int
    timestamp: int
    base_fee: int
    gas_limit: int = BLOCK_GAS_LIMIT


class TxResult(NamedTuple):
    """The outcome of one applied transaction (the receipt's execution part). A NamedTuple:
    one is built per executed transaction, a frozen dataclass costs 3x as much."""

    tx_hash: bytes
    sender: bytes
    gas_used: int
    effective_gas_price: int
    #: base_fee * gas_used: removed from the supply.
    burned: int
    #: tip * gas_used: credited to FEE_VAULT.
    tip_paid: int
    #: The L2->L1 message a call to MESSAGE_PASSER recorded, else None.
    withdrawal: WithdrawalMessage | None

    @property
    def fee(self) -> int:
        """What the sender paid for gas (burned + tip_paid)."""
        return self.gas_used * self.effective_gas_price


@dataclass(frozen=True, slots=True)
class Deposit:
    """A deposit from L1: ``mint`` wei appear at ``to``. ``source_hash`` identifies the L1 event
    (e.g. keccak256(L1 block hash ‖ log index)) and makes every deposit hash unique."""

    source_hash: bytes
    to: bytes
    mint: int

    def __post_init__(self) -> None:
        if len(self.source_hash) != HASH_SIZE or len(self.to) != ADDRESS_SIZE or not 0 <= self.mint <= UINT256_MAX:
            raise ValueError("a deposit is (bytes32 source_hash, address to, uint256 mint)")

    def hash(self) -> bytes:
        """keccak256(0x7E ‖ abi.encode(bytes32 sourceHash, address to, uint256 mint)): its
        transaction hash (a leaf of the transactions root); 0x7E keeps it apart from signed ones."""
        return keccak256(
            bytes((DEPOSIT_TX_TYPE,)) + self.source_hash + bytes(12) + self.to + self.mint.to_bytes(32, "big")
        )


@dataclass(frozen=True, slots=True)
class StateRoots:
    """The commitments to a state: accounts (state root) and L2->L1 messages."""

    state_root: bytes
    message_root: bytes


class State:
    """Accounts and recorded L2->L1 messages, with their Merkle trees updated on ``commit``.

    ``accounts`` iterates in creation order (= account-tree slot order; the zero address is
    first); persist it in that order and ``State(accounts, message_hashes)`` rebuilds the same
    roots. Mutate only through apply_transaction / apply_deposit: they track what changed.
    """

    __slots__ = ("_account_tree", "_dirty", "_message_tree", "_new_messages", "accounts", "message_hashes")

    def __init__(self, accounts: Iterable[tuple[bytes, Account]] = (), message_hashes: Sequence[bytes] = (),
                 *, account_tree: AccountTree | None = None) -> None:
        """``account_tree``: a tree over a store (StoredAccountTree) instead of one built from
        ``accounts``; ``accounts`` is then only what is already read (a cache: see ``prefetch``)."""
        self.accounts: dict[bytes, Account] = {ZERO_ADDRESS: EMPTY_ACCOUNT} if account_tree is None else {}
        self.accounts.update(accounts)
        #: Hashes of every L2->L1 message recorded so far; message nonce i is at index i.
        self.message_hashes: list[bytes] = list(message_hashes)
        self._account_tree = AccountTree(self.accounts.items()) if account_tree is None else account_tree
        self._message_tree = MerkleTree(self.message_hashes)
        #: Addresses written since the last commit, first write first (creation order).
        self._dirty: dict[bytes, None] = {}
        self._new_messages = 0

    def get(self, address: bytes) -> Account:
        """The account at ``address`` (nonce 0, balance 0 if it has none)."""
        account = self.accounts.get(address)
        if account is None:
            self.prefetch((address,))
            account = self.accounts.get(address, EMPTY_ACCOUNT)
        return account

    def prefetch(self, addresses: Iterable[bytes]) -> None:
        """Read the accounts of ``addresses`` from a stored account tree into ``accounts``.

        Execution reads ``accounts`` only (the hot path), an address absent there being one never
        created: over a stored tree, prefetch every address a block may touch before executing it
        (its senders, recipients, FEE_VAULT, the zero address). Over an in-memory tree, a no-op.
        """
        accounts = self.accounts
        missing = [a for a in addresses if a not in accounts]
        if missing:
            accounts.update(self._account_tree.read(missing))

    def evict(self, keep: int) -> None:
        """Forget all but the ``keep`` last read accounts (a stored tree reads them again). Only
        between blocks, every change committed and durable: nothing here may be newer than the store."""
        assert not self._dirty, "evicting uncommitted accounts"
        accounts = self.accounts
        excess = len(accounts) - keep
        if excess > 0:
            for address in list(itertools.islice(accounts, excess)):
                del accounts[address]

    @property
    def message_count(self) -> int:
        """The number of L2->L1 messages recorded: the nonce the next one gets."""
        return len(self.message_hashes)

    def credit(self, address: bytes, amount: int) -> None:
        """Add ``amount`` wei (0 to an absent account is a no-op: it creates nothing)."""
        if not amount:
            return
        accounts = self.accounts
        nonce, balance = accounts.get(address, EMPTY_ACCOUNT)
        balance += amount
        if balance > UINT256_MAX:  # unreachable with a real supply; kept so Solidity agrees
            raise OverflowError("balance above 2**256 - 1")
        accounts[address] = _new(Account, (nonce, balance))  # _write, inlined (hot path)
        self._dirty[address] = None

    def _write(self, address: bytes, account: Account) -> None:
        self.accounts[address] = account
        self._dirty[address] = None

    def changed_addresses(self) -> list[bytes]:
        """Addresses written since the last commit, first write first (new accounts in creation
        order): what a block must persist. Read it before ``commit``, which clears it."""
        return list(self._dirty)

    def record_message(self, message_hash: bytes) -> None:
        self.message_hashes.append(message_hash)
        self._new_messages += 1

    def commit(self) -> StateRoots:
        """Fold the changes since the last commit into the trees; the roots of this state.

        Call it once per block (or per transaction only to recompute roots in a dispute).
        """
        if self._dirty:
            dirty = self._dirty
            self._account_tree.update(zip(dirty, map(self.accounts.__getitem__, dirty), strict=True))
            self._dirty = {}
        if self._new_messages:
            self._message_tree.append(self.message_hashes[-self._new_messages :])
            self._new_messages = 0
        return StateRoots(self._account_tree.root(), self._message_tree.root())

    @property
    def account_tree(self) -> AccountTree:
        """The account tree as of the last commit (proofs come from it)."""
        return self._account_tree

    @property
    def message_tree(self) -> MerkleTree:
        """The message-passer tree as of the last commit."""
        return self._message_tree

    def copy(self) -> State:
        """An independent copy (commit first: uncommitted changes are copied, not flushed)."""
        clone = State.__new__(State)
        clone.accounts = self.accounts.copy()
        clone.message_hashes = self.message_hashes.copy()
        clone._account_tree = self._account_tree.copy()
        clone._message_tree = self._message_tree.copy()
        clone._dirty = self._dirty.copy()
        clone._new_messages = self._new_messages
        return clone


def apply_transaction(state: State, tx: Transaction, env: BlockEnv, block_gas_used: int = 0) -> TxResult:
    """Apply a decoded transaction to ``state`` or raise TxRejected (and change nothing)."""
    base_fee = env.base_fee
    fee_cap = tx.max_fee_per_gas
    if fee_cap < base_fee:
        raise TxRejected(
            Reason.FEE_CAP_BELOW_BASE_FEE, f"max_fee_per_gas {fee_cap} < base fee {base_fee}", "max_fee_per_gas"
        )
    if block_gas_used + tx.gas_limit > env.gas_limit:  # one comparison on the hot path for rules 2 and 3
        if tx.gas_limit > env.gas_limit:
            raise TxRejected(
                Reason.GAS_LIMIT_ABOVE_BLOCK, f"gas limit {tx.gas_limit} exceeds the block gas limit {env.gas_limit}",
                "gas_limit",
            )
        raise TxRejected(
            Reason.BLOCK_GAS_LIMIT_REACHED,
            f"gas limit {tx.gas_limit} does not fit the {env.gas_limit - block_gas_used} gas left in the block",
            "gas_limit",
        )
    sender = tx.sender
    nonce, balance = state.accounts.get(sender, EMPTY_ACCOUNT)
    if tx.nonce != nonce:
        if tx.nonce < nonce:
            raise TxRejected(Reason.NONCE_TOO_LOW, f"nonce {tx.nonce}, the account is at {nonce}", "nonce")
        raise TxRejected(Reason.NONCE_TOO_HIGH, f"nonce {tx.nonce}, the account is at {nonce}", "nonce")
    value = tx.value
    if balance < tx.gas_limit * fee_cap + value:
        raise TxRejected(
            Reason.INSUFFICIENT_FUNDS,
            f"balance {balance} < gas_limit * max_fee_per_gas + value = {tx.gas_limit * fee_cap + value}",
            "value",
        )
    withdrawal = None
    if tx.to == MESSAGE_PASSER:
        try:
            call = decode_withdrawal_call(tx.data, sender)
        except MalformedWithdrawal as e:  # decode_transaction refuses these: only hand-built txs
            raise TxRejected(Reason.MALFORMED_WITHDRAWAL, str(e), "data") from None
        withdrawal = WithdrawalMessage(state.message_count, sender, call.target, value, call.gas_limit, call.data)

    gas_used, price = gas_and_price(tx, base_fee)
    tip = price - base_fee
    state.accounts[sender] = _new(Account, (nonce + 1, balance - gas_used * price - value))  # _write, inlined
    state._dirty[sender] = None
    state.credit(tx.to or ZERO_ADDRESS, value)
    state.credit(FEE_VAULT, tip * gas_used)
    if withdrawal is not None:
        state.record_message(withdrawal.hash())
    return _new(TxResult, (tx.hash, sender, gas_used, price, base_fee * gas_used, tip * gas_used, withdrawal))


def apply_plain(state: State, txs: list[Transaction] | list[Transaction | TxRejected], start: int, env: BlockEnv,
                block_gas_used: int, applied: list[tuple[Transaction, TxResult]]) -> tuple[int, int]:
    """Apply ``txs[start:]`` in order while each is a plain transfer the rules accept, appending
    ``(tx, result)`` to ``applied``; stop, changing nothing for it, at the first that is not: (its
    index, or len(txs); the block's gas used after those applied).

    The hot loop of a block in C (``_native.apply_plain``): exactly ``apply_transaction``'s
    answers for these, held to it by tests/protocol/test_apply_plain.py. Plain: ``to`` an address
    other than MESSAGE_PASSER, no data, no access list, and rules 1-5 pass. The caller hands the
    one it stopped at to ``apply_transaction``, which applies it (a withdrawal, data) or says why
    not, then goes on from the next. An item that is not a Transaction (a TxRejected, the decode's
    answer for a leaf derivation skips) stops it as well.
    """
    return _apply_plain(state.accounts, state._dirty, txs, start, env.base_fee, env.gas_limit, block_gas_used,
                        applied)


def gas_and_price(tx: Transaction, base_fee: int) -> tuple[int, int]:
    """(gas used, effective gas price) of ``tx`` in a block of ``base_fee``: what apply_transaction
    charges. The store derives a sealed transaction's receipt from its raw bytes with it, so these
    two numbers are computed by this one function, never stored."""
    data = tx.data
    access_list = tx.access_list
    gas_used = intrinsic_gas(data, access_list) if data or access_list else TX_BASE_GAS
    tip = tx.max_priority_fee_per_gas
    fee_cap = tx.max_fee_per_gas
    if fee_cap - base_fee < tip:
        tip = fee_cap - base_fee
    return gas_used, base_fee + tip


#: NamedTuple construction without the generated __new__'s argument binding (the hot path).
_new = tuple.__new__

configure_execution(Account, TxResult, EMPTY_ACCOUNT, FEE_VAULT, ZERO_ADDRESS, MESSAGE_PASSER, TX_BASE_GAS,
                    UINT256_MAX)


class ForcedResult(NamedTuple):
    """What a forced-queue entry came to in a block (``apply_forced``)."""

    #: The decoded transaction; None when it does not decode.
    tx: Transaction | None
    #: Its execution when applied, else None.
    result: TxResult | None
    #: Why it was refused (None when applied): dropped, or waiting when ``waits``.
    reason: Reason | None

    @property
    def waits(self) -> bool:
        """Refused for a full block: it stays at the head of the queue and leads the next block."""
        return self.reason is Reason.BLOCK_GAS_LIMIT_REACHED


def apply_forced(state: State, raw: bytes, chain_id: int, env: BlockEnv, block_gas_used: int = 0) -> ForcedResult:
    """Decode and apply one forced-queue entry by the forced rules (module notes): the base fee
    waiver, then drop or wait. Changes ``state`` only when it applies."""
    try:
        tx = decode_transaction(raw, chain_id)
    except TxRejected as e:
        return ForcedResult(None, None, e.reason)
    if tx.max_fee_per_gas < env.base_fee:  # the waiver: it pays at most its cap
        env = BlockEnv(env.number, env.timestamp, tx.max_fee_per_gas, env.gas_limit)
    try:
        return ForcedResult(tx, apply_transaction(state, tx, env, block_gas_used), None)
    except TxRejected as e:
        return ForcedResult(tx, None, e.reason)


def apply_deposit(state: State, deposit: Deposit) -> None:
    """Mint ``deposit.mint`` wei to ``deposit.to`` (0 wei to a fresh address creates nothing)."""
    state.credit(deposit.to, deposit.mint)


def roots_after_each(state: State, items: Iterable[Transaction | Deposit], env: BlockEnv) -> list[StateRoots]:
    """Apply ``items`` one by one to ``state`` and commit after each: the per-transaction roots
    a dispute bisects over. Mutates ``state`` (pass a copy); a transaction the rules refuse is
    skipped (its root repeats the previous one), as derivation skips it."""
    roots: list[StateRoots] = []
    gas_used = 0
    for item in items:
        if isinstance(item, Deposit):
            apply_deposit(state, item)
        else:
            with suppress(TxRejected):  # refused by the rules: skipped, as derivation does
                gas_used += apply_transaction(state, item, env, gas_used).gas_used
        roots.append(state.commit())
    return roots
