"""The round trip with the relayer on (dev key 7, serving everyone): 1 ETH deposited on L1 and
credited on L2, part of it withdrawn on L2, proven and finalized on L1 by the bridge's relayer
alone, and the L1 balance of the withdrawal's target up by exactly that part."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from services.l1 import LocalSigner
from tests.bridge._cluster import Cluster, wait_for
from tests.bridge.test_deposits import credited
from tests.bridge.test_withdrawals import ALICE, ALICE_KEY, PARAMS, status_is, withdraw
from tests.l1.anvil import Anvil

RELAYER_KEY = DEV_PRIVATE_KEYS[7]
ETHER = 10**18


@pytest.fixture
def l1() -> Iterator[Anvil]:
    anvil = Anvil()
    anvil.start()
    anvil.rpc("evm_setIntervalMining", 1)
    try:
        yield anvil
    finally:
        anvil.stop()


def balance(l1: Anvil, who: str) -> int:
    return int(l1.rpc("eth_getBalance", who, "latest"), 16)


def test_deposit_withdraw_and_the_relayer_finalizes(tmp_path: pathlib.Path, l1: Anvil) -> None:
    key_file = tmp_path / "relayer.key"
    key_file.write_text(RELAYER_KEY.hex())
    c = Cluster(tmp_path, l1, PARAMS, rollups={}, bridge={"relayer_key_file": str(key_file)})
    try:
        credited(c, c.deposit(ALICE, ALICE, ETHER))
        before = balance(l1, ALICE)  # Alice sends nothing more on L1: the relayer pays the gas
        part = 4 * ETHER // 10
        l2_tx = withdraw(c, ALICE_KEY, 0, part, bytes.fromhex(ALICE[2:]))
        h = wait_for("the withdrawal", lambda: c.stub.GetWithdrawal(bpb.GetWithdrawalRequest(l2_tx_hash=l2_tx),
                                                                    timeout=5).withdrawal).withdrawal_hash
        w = wait_for("proven by the relayer", lambda: status_is(c, h, "PROVEN"), timeout=90)
        assert w.prover.lower() == "0x" + LocalSigner(RELAYER_KEY).address.hex()
        l1.rpc("evm_increaseTime", PARAMS.challenge_window_s + w.matures_at - w.proven_at + 1)
        l1.rpc("evm_mine")
        w = wait_for("finalized by the relayer", lambda: status_is(c, h, "FINALIZED"), timeout=90)
        assert w.outcome == bpb.WITHDRAWAL_OUTCOME_SUCCEEDED
        assert balance(l1, ALICE) == before + part
    finally:
        c.close()
