"""contracts.json and key files, as every service reads them (services.l1.Deployment, read_key):
what l2node's deploy writes reads back, and each way a file can be wrong is refused by name."""

from __future__ import annotations

import json
import pathlib

import pytest

from l2node.node.deploy import Addresses, contracts_path
from protocol import DEV_PRIVATE_KEYS
from services.l1 import Deployment, DeploymentError, read_key

ADDRESSES = Addresses(chain_id=31337, block_number=7, block_hash=b"\x01" * 32, deployer=b"\x02" * 20,
                      batcher=b"\x03" * 20, batch_inbox=b"\x04" * 20, deposit_portal=b"\x05" * 20,
                      step_verifier=b"\x06" * 20, output_registry=b"\x07" * 20)


def test_reads_what_the_node_writes(tmp_path: pathlib.Path) -> None:
    path = contracts_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(ADDRESSES.to_json()))
    deployment = Deployment.load(path)
    assert deployment.block_number == 7 and deployment.address_of("OutputRegistry") == b"\x07" * 20
    assert deployment.contract("BatchInbox").address == b"\x04" * 20 and deployment.has("DepositPortal")
    assert deployment.rollups["sequencer_window"] == ADDRESSES.rollups.sequencer_window


@pytest.mark.parametrize(("text", "said"), [
    (None, "FileNotFoundError"),
    ("{not json", "JSONDecodeError"),
    ('{"block_number": 1}', "KeyError: 'contracts'"),
    ('{"contracts": {"BatchInbox": "0x1234"}, "block_number": 1}', "ValueError"),
    ('{"contracts": {}, "block_number": "soon"}', "ValueError"),
])
def test_a_bad_contracts_file_is_refused_with_its_name(tmp_path: pathlib.Path, text: str | None, said: str) -> None:
    path = tmp_path / "contracts.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DeploymentError, match=f"contracts file {path}: .*{said}"):
        Deployment.load(path)


def test_a_missing_contract_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "contracts.json"
    path.write_text('{"contracts": {"BatchInbox": "0x' + "04" * 20 + '"}, "block_number": 1}')
    deployment = Deployment.load(path)
    assert not deployment.has("OutputRegistry")
    with pytest.raises(DeploymentError, match="no OutputRegistry address"):
        deployment.contract("OutputRegistry")


def test_key_files(tmp_path: pathlib.Path) -> None:
    key = tmp_path / "batcher.key"
    key.write_text("0x" + DEV_PRIVATE_KEYS[1].hex() + "\n")
    assert read_key(key) == DEV_PRIVATE_KEYS[1]
    key.write_text(DEV_PRIVATE_KEYS[1].hex()[:-2])
    with pytest.raises(DeploymentError, match="32 bytes, not 31"):
        read_key(key)
    key.write_text("0xnot hex")
    with pytest.raises(DeploymentError, match=f"key file {key}: ValueError"):
        read_key(key)
    with pytest.raises(DeploymentError, match="FileNotFoundError"):
        read_key(tmp_path / "missing.key")
