"""The C loop of plain transfers (protocol.apply_plain) against apply_transaction, the rules' one
authority: for any state and any run of transactions, a block applied with apply_plain (handing
each one it stops at to apply_transaction, as the sequencer's seal does) ends in exactly the
state, dirty order, results and gas of a block applied by apply_transaction alone. Each stop
condition is tested on both sides of its line, and the accepting side asserts that C applied
it, so a loop that applied nothing could not pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    FEE_VAULT,
    MESSAGE_PASSER,
    Account,
    BlockEnv,
    Reason,
    State,
    Transaction,
    TxRejected,
    TxResult,
    apply_plain,
    apply_transaction,
    encode_withdrawal_call,
)
from protocol._rules import UINT256_MAX, ZERO_ADDRESS

GWEI = 10**9
ALICE = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
BOB = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
CAROL = bytes.fromhex("3c44cdddb6a900fa2b585dd299e03d12fa4293bc")
ENV = BlockEnv(number=1, timestamp=1_700_000_000, base_fee=GWEI, gas_limit=100_000)


def transfer(**overrides: Any) -> Transaction:
    """A transaction as the decoder builds one (the signature is not looked at by execution)."""
    fields: dict[str, Any] = {
        "chain_id": 901, "nonce": 0, "max_priority_fee_per_gas": 2 * GWEI, "max_fee_per_gas": 10 * GWEI,
        "gas_limit": 21_000, "to": BOB, "value": 10**18, "data": b"", "access_list": (), "y_parity": 0,
        "r": 1, "s": 1, "sender": ALICE, "hash": bytes(32), "raw": b"\x02",
    }
    fields.update(overrides)
    return Transaction(**fields)


def rich() -> State:
    return State([(ALICE, Account(0, 10**21)), (BOB, Account(3, 5))])


@dataclasses.dataclass
class Block:
    """What applying a run of transactions left: every observable of the state, and the answers."""

    accounts: list[tuple[bytes, Account]]
    dirty: list[bytes]
    messages: list[bytes]
    applied: list[tuple[Transaction, TxResult]]
    refused: list[tuple[int, Reason]]
    gas: int
    overflow: bool


def by_python(state: State, txs: list[Transaction], env: BlockEnv) -> Block:
    applied: list[tuple[Transaction, TxResult]] = []
    refused: list[tuple[int, Reason]] = []
    gas, overflow = 0, False
    try:
        for i, tx in enumerate(txs):
            try:
                result = apply_transaction(state, tx, env, gas)
            except TxRejected as e:
                refused.append((i, e.reason))
                continue
            gas += result.gas_used
            applied.append((tx, result))
    except OverflowError:
        overflow = True
    return Block(list(state.accounts.items()), state.changed_addresses(), list(state.message_hashes), applied,
                 refused, gas, overflow)


def by_c(state: State, txs: list[Transaction], env: BlockEnv) -> tuple[Block, int]:
    """As by_python, apply_plain first at every index; also how many C applied."""
    applied: list[tuple[Transaction, TxResult]] = []
    refused: list[tuple[int, Reason]] = []
    gas, overflow, in_c, index = 0, False, 0, 0
    try:
        while index < len(txs):
            before = len(applied)
            index, gas = apply_plain(state, txs, index, env, gas, applied)
            in_c += len(applied) - before
            if index == len(txs):
                break
            tx = txs[index]
            index += 1
            try:
                result = apply_transaction(state, tx, env, gas)
            except TxRejected as e:
                refused.append((index - 1, e.reason))
                continue
            gas += result.gas_used
            applied.append((tx, result))
    except OverflowError:
        overflow = True
    block = Block(list(state.accounts.items()), state.changed_addresses(), list(state.message_hashes), applied,
                  refused, gas, overflow)
    return block, in_c


def agree(state: State, txs: list[Transaction], env: BlockEnv = ENV) -> int:
    """Both ways from copies of ``state``: the same block, to the types of every value; how many C applied."""
    expected = by_python(state.copy(), txs, env)
    got, in_c = by_c(state.copy(), txs, env)
    assert got == expected
    for (_, a), (_, b) in zip(got.applied, expected.applied, strict=True):
        assert type(a) is type(b) is TxResult and [type(v) for v in a] == [type(v) for v in b]
    for (_, a), (_, b) in zip(got.accounts, expected.accounts, strict=True):
        assert type(a) is type(b) is Account and [type(v) for v in a] == [type(v) for v in b]
    return in_c


def test_a_plain_transfer_is_applied_in_c() -> None:
    assert agree(rich(), [transfer()]) == 1


@pytest.mark.parametrize(("stops", "applies"), [
    ({"max_fee_per_gas": GWEI - 1, "max_priority_fee_per_gas": 1},
     {"max_fee_per_gas": GWEI, "max_priority_fee_per_gas": 1}),
    ({"gas_limit": 100_001}, {"gas_limit": 100_000}),  # rules 2 and 3 (ENV's gas limit)
    ({"nonce": 1}, {"nonce": 0}),
    ({"value": 10**21 - 21_000 * 10 * GWEI + 1}, {"value": 10**21 - 21_000 * 10 * GWEI}),
    ({"to": MESSAGE_PASSER, "data": encode_withdrawal_call(CAROL, 100_000, b"")}, {"to": CAROL}),
    ({"data": b"\x00"}, {"data": b""}),
    ({"access_list": ((CAROL, ()),)}, {"access_list": ()}),
    ({"to": None}, {"to": ZERO_ADDRESS}),
])
def test_each_stop_on_both_sides_of_its_line(stops: dict[str, Any], applies: dict[str, Any]) -> None:
    assert agree(rich(), [transfer(**stops)]) == 0
    assert agree(rich(), [transfer(**applies)]) == 1


def test_it_stops_and_resumes_around_what_python_applies_or_refuses() -> None:
    txs = [transfer(nonce=0), transfer(nonce=5), transfer(nonce=1, data=b"\x01"), transfer(nonce=2, to=ALICE),
           transfer(nonce=3, to=FEE_VAULT, value=0), transfer(nonce=4, to=ZERO_ADDRESS, value=0)]
    assert agree(rich(), txs, dataclasses.replace(ENV, gas_limit=10**6)) == 4


def test_a_credit_above_uint256_raises_as_python_does() -> None:
    state = State([(ALICE, Account(0, 10**21)), (BOB, Account(0, UINT256_MAX - 10))])
    assert agree(state, [transfer(value=11)]) == 0  # (raises in C; the states compared after)
    assert agree(state, [transfer(value=10)]) == 1


ADDRESSES = [ALICE, BOB, CAROL, FEE_VAULT, ZERO_ADDRESS, MESSAGE_PASSER]
amounts = st.one_of(st.integers(0, 50), st.integers(0, 10**22), st.integers(UINT256_MAX - 10**22, UINT256_MAX))
transactions = st.builds(
    transfer,
    nonce=st.integers(0, 4),
    max_priority_fee_per_gas=st.integers(0, 3 * GWEI),
    max_fee_per_gas=st.integers(GWEI - 2, 3 * GWEI),
    gas_limit=st.sampled_from([21_000, 21_001, 50_000, 79_000, 100_000, 100_001]),
    to=st.sampled_from([*ADDRESSES, None]),
    value=amounts,
    data=st.sampled_from([b"", b"\x00", b"\x01\x02"]),
    access_list=st.sampled_from([(), ((CAROL, ()),)]),
    sender=st.sampled_from(ADDRESSES),
    hash=st.binary(min_size=32, max_size=32),
)
states = st.lists(st.tuples(st.sampled_from(ADDRESSES), st.integers(0, 3), amounts), max_size=6).map(
    lambda rows: State([(a, Account(n, b)) for a, n, b in rows]))


@settings(max_examples=400, deadline=None)
@given(states, st.lists(transactions, max_size=12), st.integers(0, 2 * GWEI),
       st.sampled_from([21_000, 100_000, 10**9]))
def test_any_block_is_the_same_applied_in_c(state: State, txs: list[Transaction], base_fee: int,
                                            gas_limit: int) -> None:
    agree(state, txs, BlockEnv(number=1, timestamp=1, base_fee=base_fee, gas_limit=gas_limit))
