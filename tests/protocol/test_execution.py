"""The state transition: fees, burn, fee vault, nonces, funds, withdrawals, deposits, roots."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from eth_abi.abi import encode as abi_encode

from protocol import (
    DEV_PRIVATE_KEYS,
    FEE_VAULT,
    MESSAGE_PASSER,
    WITHDRAWAL_DEFAULT_GAS_LIMIT,
    Account,
    BlockEnv,
    Deposit,
    Reason,
    State,
    Transaction,
    TxRejected,
    WithdrawalMessage,
    apply_deposit,
    apply_forced,
    apply_transaction,
    decode_transaction,
    encode_withdrawal_call,
    gas_and_price,
    keccak256,
    roots_after_each,
    verify_account,
    verify_merkle_proof,
)
from services.l1 import UnsignedTransaction
from services.l1 import sign_transaction as sign

CHAIN = 901
GWEI = 10**9
ETHER = 10**18
ALICE_KEY = DEV_PRIVATE_KEYS[0]
ALICE = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
BOB_KEY = DEV_PRIVATE_KEYS[1]
BOB = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
CAROL = bytes.fromhex("3c44cdddb6a900fa2b585dd299e03d12fa4293bc")
ENV = BlockEnv(number=1, timestamp=1_700_000_000, base_fee=GWEI)


def tx(key: bytes = ALICE_KEY, **overrides: Any) -> Transaction:
    base: dict[str, Any] = {
        "chain_id": CHAIN,
        "nonce": 0,
        "max_priority_fee_per_gas": 2 * GWEI,
        "max_fee_per_gas": 10 * GWEI,
        "gas_limit": 21_000,
        "to": BOB,
        "value": ETHER,
    }
    base.update(overrides)
    return decode_transaction(sign(UnsignedTransaction(**base), key), CHAIN)


def funded(balance: int = 100 * ETHER) -> State:
    state = State([(ALICE, Account(0, balance))])
    state.commit()
    return state


def rejection(state: State, transaction: Transaction, env: BlockEnv = ENV, block_gas_used: int = 0) -> TxRejected:
    before = state.copy().commit()
    accounts = dict(state.accounts)
    with pytest.raises(TxRejected) as info:
        apply_transaction(state, transaction, env, block_gas_used)
    assert state.accounts == accounts and state.commit() == before  # nothing changed
    assert info.value.reason.status is grpc.StatusCode.FAILED_PRECONDITION
    return info.value


def test_transfer_fees_burn_and_vault() -> None:
    state = funded()
    result = apply_transaction(state, tx(), ENV)
    price = GWEI + 2 * GWEI  # base fee + full tip (the cap leaves room)
    assert result.gas_used == 21_000
    assert result.effective_gas_price == price
    assert result.burned == 21_000 * GWEI
    assert result.tip_paid == 21_000 * 2 * GWEI
    assert result.fee == result.burned + result.tip_paid
    assert result.sender == ALICE and result.withdrawal is None
    assert state.get(ALICE) == Account(1, 100 * ETHER - ETHER - 21_000 * price)
    assert state.get(BOB) == Account(0, ETHER)
    assert state.get(FEE_VAULT) == Account(0, 21_000 * 2 * GWEI)
    # supply: everything the sender lost is at BOB, in the vault, or burned
    assert sum(a.balance for a in state.accounts.values()) == 100 * ETHER - result.burned


def test_tip_is_capped_by_the_fee_cap() -> None:
    state = funded()
    result = apply_transaction(state, tx(max_priority_fee_per_gas=GWEI, max_fee_per_gas=3 * GWEI // 2), ENV)
    assert result.effective_gas_price == 3 * GWEI // 2
    assert result.tip_paid == 21_000 * GWEI // 2
    # a fee cap equal to the base fee: no tip, and no vault account is created for 0 wei
    state = funded()
    result = apply_transaction(state, tx(max_priority_fee_per_gas=GWEI, max_fee_per_gas=GWEI), ENV)
    assert result.tip_paid == 0 and FEE_VAULT not in state.accounts


def test_gas_used_is_intrinsic_not_the_limit() -> None:
    state = funded()
    data = b"\x00\x00\x01"
    access = ((CAROL, (bytes(32), b"\x01" * 32)),)
    result = apply_transaction(state, tx(gas_limit=500_000, data=data, access_list=access), ENV)
    assert result.gas_used == 21_000 + 4 + 4 + 16 + 2400 + 2 * 1900
    assert state.get(ALICE).balance == 100 * ETHER - ETHER - result.gas_used * 3 * GWEI


def test_nonces() -> None:
    state = funded()
    assert rejection(state, tx(nonce=1)).reason == Reason.NONCE_TOO_HIGH
    apply_transaction(state, tx(nonce=0), ENV)
    apply_transaction(state, tx(nonce=1), ENV)
    err = rejection(state, tx(nonce=1))
    assert (err.reason, err.field) == (Reason.NONCE_TOO_LOW, "nonce")
    assert state.get(ALICE).nonce == 2


def test_insufficient_funds_counts_the_full_fee_cap() -> None:
    needed = 21_000 * 10 * GWEI + ETHER  # gas_limit * max_fee + value, not what is finally paid
    assert rejection(funded(needed - 1), tx()).reason == Reason.INSUFFICIENT_FUNDS
    state = funded(needed)
    result = apply_transaction(state, tx(), ENV)
    assert state.get(ALICE).balance == needed - ETHER - result.fee > 0
    # an account that does not exist has nothing
    assert rejection(funded(), tx(BOB_KEY)).reason == Reason.INSUFFICIENT_FUNDS


def test_fee_cap_below_base_fee() -> None:
    err = rejection(funded(), tx(max_priority_fee_per_gas=0, max_fee_per_gas=GWEI - 1))
    assert (err.reason, err.field) == (Reason.FEE_CAP_BELOW_BASE_FEE, "max_fee_per_gas")


def test_block_gas_limit() -> None:
    env = BlockEnv(number=1, timestamp=0, base_fee=GWEI, gas_limit=50_000)
    state = funded()
    assert apply_transaction(state, tx(gas_limit=30_000), env, block_gas_used=20_000).gas_used == 21_000
    err = rejection(state, tx(nonce=1, gas_limit=30_000), env, block_gas_used=20_001)
    assert err.reason == Reason.BLOCK_GAS_LIMIT_REACHED


def test_a_gas_limit_above_the_block_s_is_refused_before_room_nonce_and_funds() -> None:
    """Issue 12 item 5: "it does not fit this block" (it may wait) is told apart from "it fits no
    block" (final), and both come before the sender's nonce and funds."""
    env = BlockEnv(number=1, timestamp=0, base_fee=GWEI, gas_limit=15_000_000)
    state = funded()
    before = state.copy().commit()
    # An unfunded key, a wrong nonce, 20M gas against a 15M block: the gas limit is what is wrong.
    for used in (0, 14_000_000):
        with pytest.raises(TxRejected) as info:
            apply_transaction(state, tx(BOB_KEY, nonce=5, gas_limit=20_000_000), env, used)
        assert (info.value.reason, info.value.field) == (Reason.GAS_LIMIT_ABOVE_BLOCK, "gas_limit")
        assert info.value.reason.status is grpc.StatusCode.INVALID_ARGUMENT
    assert state.commit() == before
    # It fits an empty block but not this one: BLOCK_GAS_LIMIT_REACHED, still before nonce and funds.
    assert rejection(state, tx(BOB_KEY, nonce=5, gas_limit=10_000_000), env, 6_000_000).reason \
        == Reason.BLOCK_GAS_LIMIT_REACHED
    # The fee cap is checked first of all (a batch transaction's order).
    assert rejection(state, tx(gas_limit=20_000_000, max_priority_fee_per_gas=0, max_fee_per_gas=1), env).reason \
        == Reason.FEE_CAP_BELOW_BASE_FEE
    # At exactly the block's gas limit it applies.
    assert apply_transaction(state, tx(gas_limit=15_000_000), env).gas_used == 21_000


def test_a_forced_transaction_is_never_refused_for_the_base_fee() -> None:
    """Issue 12 item 6: it executes at base fee min(block base fee, its cap); it pays at most its cap."""
    high = BlockEnv(number=1, timestamp=0, base_fee=50 * GWEI)
    raw = sign(UnsignedTransaction(CHAIN, 0, 2 * GWEI, 10 * GWEI, 21_000, BOB, ETHER), ALICE_KEY)
    assert rejection(funded(), decode_transaction(raw, CHAIN), high).reason == Reason.FEE_CAP_BELOW_BASE_FEE
    state = funded()
    forced = apply_forced(state, raw, CHAIN, high)
    assert forced.reason is None and not forced.waits and forced.tx is not None and forced.result is not None
    r = forced.result
    # Base fee paid: its cap (10 gwei), all burned; no room left for a tip.
    assert (r.effective_gas_price, r.burned, r.tip_paid) == (10 * GWEI, 21_000 * 10 * GWEI, 0)
    assert state.get(ALICE).balance == 100 * ETHER - ETHER - 21_000 * 10 * GWEI and state.get(FEE_VAULT).balance == 0
    # What a receipt computes at the block's base fee is the price it paid (the store relies on it).
    assert gas_and_price(forced.tx, high.base_fee) == (r.gas_used, r.effective_gas_price)
    # Under its cap it is any transaction: the block's base fee and the tip, as apply_transaction.
    low = BlockEnv(number=1, timestamp=0, base_fee=9 * GWEI)
    plain, waived = funded(), funded()
    assert apply_forced(waived, raw, CHAIN, low).result == apply_transaction(plain, decode_transaction(raw, CHAIN), low)
    assert waived.commit() == plain.commit()
    assert waived.get(FEE_VAULT).balance == 21_000 * GWEI  # tip: min(2, 10 - 9) gwei


def test_a_forced_transaction_is_dropped_or_waits_by_its_reason() -> None:
    env = BlockEnv(number=1, timestamp=0, base_fee=GWEI, gas_limit=15_000_000)
    state = funded()
    before = state.copy().commit()
    unfunded_20m = sign(UnsignedTransaction(CHAIN, 0, 0, GWEI, 20_000_000, BOB, 0), BOB_KEY)
    cases = {  # raw, block gas used -> (reason, waits)
        "over the block gas limit (the issue's 20M from a key with no funds)": (unfunded_20m, 0,
                                                                               Reason.GAS_LIMIT_ABOVE_BLOCK, False),
        "no room left in this block": (sign(UnsignedTransaction(CHAIN, 0, 0, GWEI, 10_000_000, BOB, 0), ALICE_KEY),
                                       6_000_000, Reason.BLOCK_GAS_LIMIT_REACHED, True),
        "no funds (it fits)": (sign(UnsignedTransaction(CHAIN, 0, 0, GWEI, 10_000_000, BOB, 0), BOB_KEY), 0,
                               Reason.INSUFFICIENT_FUNDS, False),
        "a nonce gap": (sign(UnsignedTransaction(CHAIN, 3, 0, GWEI, 21_000, BOB, 0), ALICE_KEY), 0,
                        Reason.NONCE_TOO_HIGH, False),
        "not a transaction": (b"\x02garbage", 0, Reason.MALFORMED_RLP, False),
    }
    for name, (raw, used, reason, waits) in cases.items():
        forced = apply_forced(state, raw, CHAIN, env, used)
        assert (forced.result, forced.reason, forced.waits) == (None, reason, waits), name
        assert (forced.tx is None) == (reason is Reason.MALFORMED_RLP), name
    assert state.commit() == before


def test_self_transfer_and_zero_value_to_fresh_address() -> None:
    state = funded()
    result = apply_transaction(state, tx(to=ALICE), ENV)
    assert state.get(ALICE) == Account(1, 100 * ETHER - result.fee)
    before = len(state.accounts)
    apply_transaction(state, tx(nonce=1, to=CAROL, value=0), ENV)
    assert CAROL not in state.accounts and len(state.accounts) == before


def test_withdrawal_records_a_message() -> None:
    state = funded()
    data = encode_withdrawal_call(CAROL, 250_000, b"\xca\xfe")
    first = apply_transaction(state, tx(to=MESSAGE_PASSER, value=3 * ETHER, data=data, gas_limit=40_000), ENV)
    second = apply_transaction(state, tx(nonce=1, to=MESSAGE_PASSER, value=ETHER, data=b""), ENV)
    assert first.withdrawal == WithdrawalMessage(0, ALICE, CAROL, 3 * ETHER, 250_000, b"\xca\xfe")
    # empty calldata: to the sender itself, with the default L1 gas limit
    assert second.withdrawal == WithdrawalMessage(1, ALICE, ALICE, ETHER, WITHDRAWAL_DEFAULT_GAS_LIMIT, b"")
    assert state.get(MESSAGE_PASSER).balance == 4 * ETHER  # held by the passer
    assert state.message_count == 2
    # the canonical hash: keccak256(abi.encode(nonce, sender, target, value, gasLimit, data))
    encoded = abi_encode(
        ["uint256", "address", "address", "uint256", "uint256", "bytes"],
        [0, "0x" + ALICE.hex(), "0x" + CAROL.hex(), 3 * ETHER, 250_000, b"\xca\xfe"],
    )
    assert first.withdrawal.encode() == encoded
    assert first.withdrawal.hash() == keccak256(encoded) == state.message_hashes[0]
    roots = state.commit()
    for nonce, message in enumerate((first.withdrawal, second.withdrawal)):
        proof = state.message_tree.prove(nonce)
        assert verify_merkle_proof(roots.message_root, message.hash(), proof)


def test_withdrawal_call_encoding_matches_the_abi() -> None:
    data = encode_withdrawal_call(CAROL, 7, b"x" * 33)
    selector = keccak256(b"initiateWithdrawal(address,uint256,bytes)")[:4]
    assert data == selector + abi_encode(["address", "uint256", "bytes"], ["0x" + CAROL.hex(), 7, b"x" * 33])


def test_hand_built_malformed_withdrawal_is_refused() -> None:
    good = tx(to=MESSAGE_PASSER, data=b"")
    forged = good._replace(data=b"\x01\x02")
    state = funded()
    with pytest.raises(TxRejected) as info:
        apply_transaction(state, forged, ENV)
    assert info.value.reason == Reason.MALFORMED_WITHDRAWAL
    assert state.message_count == 0 and state.get(ALICE).nonce == 0


def test_deposits() -> None:
    state = State()
    deposit = Deposit(keccak256(b"l1 block hash" + b"log 0"), BOB, 5 * ETHER)
    apply_deposit(state, deposit)
    apply_deposit(state, Deposit(keccak256(b"another"), BOB, ETHER))
    assert state.get(BOB) == Account(0, 6 * ETHER)
    apply_deposit(state, Deposit(keccak256(b"zero"), CAROL, 0))
    assert CAROL not in state.accounts
    expected = keccak256(b"\x7e" + abi_encode(["bytes32", "address", "uint256"], [deposit.source_hash, BOB, 5 * ETHER]))
    assert deposit.hash() == expected
    with pytest.raises(ValueError):
        Deposit(b"short", BOB, 1)
    with pytest.raises(ValueError):
        Deposit(bytes(32), BOB, 2**256)
    # the deposited funds are spendable
    apply_transaction(state, tx(BOB_KEY, to=CAROL), ENV)
    assert state.get(CAROL).balance == ETHER


def test_commit_tracks_changes_and_proofs_follow() -> None:
    state = funded()
    genesis = state.commit()
    apply_transaction(state, tx(), ENV)
    roots = state.commit()
    assert roots.state_root != genesis.state_root
    assert roots.message_root == genesis.message_root
    for address in (ALICE, BOB, FEE_VAULT):
        assert verify_account(roots.state_root, address, state.get(address), state.account_tree.prove(address))
    assert verify_account(roots.state_root, CAROL, None, state.account_tree.prove(CAROL))
    # a state rebuilt from its accounts in creation order has the same roots
    rebuilt = State(state.accounts.items(), state.message_hashes)
    assert rebuilt.commit() == roots


def test_roots_after_each_item_end_at_the_block_root() -> None:
    state = funded()
    items: list[Transaction | Deposit] = [
        tx(),
        Deposit(keccak256(b"d"), CAROL, ETHER),
        tx(nonce=5),  # refused by the rules: skipped
        tx(nonce=1, to=MESSAGE_PASSER, value=1, data=b""),
        tx(BOB_KEY, to=CAROL, value=1),
    ]
    per_item = roots_after_each(state.copy(), items, ENV)
    assert len(per_item) == len(items)
    assert per_item[2] == per_item[1]
    assert per_item[3].message_root != per_item[2].message_root
    # the same block applied with one commit at the end
    block = state.copy()
    gas = 0
    for item in items:
        if isinstance(item, Deposit):
            apply_deposit(block, item)
        elif item.nonce != 5:
            gas += apply_transaction(block, item, ENV, gas).gas_used
    assert block.commit() == per_item[-1]
    # and the intermediate roots are those of the prefixes
    prefix = state.copy()
    apply_transaction(prefix, items[0], ENV)  # type: ignore[arg-type]
    assert prefix.commit() == per_item[0]


def test_deterministic() -> None:
    def run() -> tuple[object, ...]:
        state = funded()
        results = [apply_transaction(state, tx(nonce=n, value=n), ENV) for n in range(5)]
        return (state.commit(), tuple(results))

    assert run() == run()
