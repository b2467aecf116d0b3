"""Replaying a withdrawal on another chain: the L2 half.

The L1 half (a proof replayed on another portal deployment, or the same contracts on another L1)
is tests/contracts/test_portal_withdrawals.py's replay test: a portal trusts only its own
registry's outputs. Here: a withdrawal's L2 transaction signed for one L2 chain id records no
message on another, so no output of that other chain can ever contain it. EIP-155-style chain ids
are in the signed fields (EIP-1559), and the stateless check refuses a foreign one by name, both
at the sequencer's intake and for a forced transaction queued on L1 (one decoder for both).
"""

from __future__ import annotations

import pytest

from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEV_PRIVATE_KEYS,
    MESSAGE_PASSER,
    Account,
    BlockEnv,
    Reason,
    State,
    TxRejected,
    apply_forced,
    decode_transaction,
    encode_withdrawal_call,
    intrinsic_gas,
)
from services.l1 import UnsignedTransaction, sign_transaction

TARGET = bytes.fromhex("00000000000000000000000000000000000000aa")


def withdrawal_tx(chain_id: int) -> bytes:
    data = encode_withdrawal_call(TARGET, 100_000)
    tx = UnsignedTransaction(chain_id=chain_id, nonce=0, max_priority_fee_per_gas=0, max_fee_per_gas=10**9,
                             gas_limit=intrinsic_gas(data, ()) + 50_000, to=MESSAGE_PASSER, value=10**15, data=data)
    return sign_transaction(tx, DEV_PRIVATE_KEYS[0])


def test_a_withdrawal_signed_for_this_chain_decodes_to_the_message_passer() -> None:
    tx = decode_transaction(withdrawal_tx(DEFAULT_CHAIN_ID), DEFAULT_CHAIN_ID)
    assert tx.to == MESSAGE_PASSER and tx.value == 10**15


@pytest.mark.parametrize("foreign", [1, DEFAULT_CHAIN_ID + 1, 31337])
def test_a_withdrawal_signed_for_another_chain_is_refused_by_name(foreign: int) -> None:
    with pytest.raises(TxRejected) as refused:
        decode_transaction(withdrawal_tx(foreign), DEFAULT_CHAIN_ID)
    assert refused.value.reason == Reason.WRONG_CHAIN_ID


@pytest.mark.parametrize("foreign", [1, DEFAULT_CHAIN_ID + 1])
def test_a_foreign_withdrawal_forced_through_l1_is_dropped_and_records_no_message(foreign: int) -> None:
    state = State([(DEV_ACCOUNTS[0], Account(nonce=0, balance=10**18))])
    env = BlockEnv(number=1, timestamp=1, base_fee=1)
    dropped = apply_forced(state, withdrawal_tx(foreign), DEFAULT_CHAIN_ID, env)
    assert dropped.reason == Reason.WRONG_CHAIN_ID and dropped.result is None
    assert state.message_count == 0
    applied = apply_forced(state, withdrawal_tx(DEFAULT_CHAIN_ID), DEFAULT_CHAIN_ID, env)
    assert applied.reason is None and state.message_count == 1  # the same call, signed for this chain
