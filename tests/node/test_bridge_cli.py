"""l2node/bridge_cli.py offline: amounts with units, addresses and the commands' arguments, as the
`l2node` parser reads them (the round trip itself: test_bridge_roundtrip.py)."""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

import pytest

from l2node.bridge_cli import WAIT_TIMEOUT_S
from l2node.cli import parser
from l2node.cli_values import parse_address, parse_amount, show_amount
from protocol import WITHDRAWAL_DEFAULT_GAS_LIMIT

ETHER = 10**18


@pytest.mark.parametrize(("text", "wei"), [
    ("1ether", ETHER), ("0.5ether", ETHER // 2), ("5gwei", 5 * 10**9), ("123", 123), ("123wei", 123),
    ("1ETH", ETHER), (" 2 ether ", 2 * ETHER), ("1_000wei", 1000), ("0.000000001ether", 10**9), ("1e3", 1000),
])
def test_amounts_take_units(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize(("text", "says"), [
    ("abc", "is not an amount"), ("1 btc", "is not an amount"), ("", "is not an amount"), ("ether", "is not an amount"),
    ("1.5wei", "not a whole number of wei"), ("0.1gwei1", "is not an amount"), ("0", "more than 0"),
    ("-1ether", "more than 0"), ("nan", "is not an amount"), ("inf", "is not an amount"),
])
def test_bad_amounts_are_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=says):
        parse_amount(text)


def test_amounts_show_ether_and_wei() -> None:
    assert show_amount(ETHER) == f"1 ETH ({ETHER} wei)"
    assert show_amount(ETHER // 4) == "0.25 ETH (250000000000000000 wei)"
    assert show_amount(7) == "0.000000000000000007 ETH (7 wei)"


def test_addresses_are_20_bytes_of_hex() -> None:
    assert parse_address("0x000000000000000000000000000000000000dEaD") == "0x" + "00" * 18 + "dead"
    for bad in ("0xdead", "0x" + "zz" * 20, "0x" + "00" * 21):
        with pytest.raises(argparse.ArgumentTypeError, match="20-byte"):
            parse_address(bad)


def test_deposit_arguments() -> None:
    args = parser().parse_args(["deposit", "--value", "1ether", "--wait", "credited", "--dev", "3"])
    assert (args.command, args.value, args.wait, args.dev, args.key_file, args.to) == \
        ("deposit", ETHER, "credited", 3, None, None)
    assert args.timeout is None and WAIT_TIMEOUT_S["credited"] == 120  # --timeout's default
    args = parser().parse_args(["deposit", "--value", "5gwei", "--key-file", "k", "--to", "0x" + "11" * 20,
                                "--timeout", "30", "--l1-rpc", "http://l1:8545", "--contracts", "c.json"])
    assert (args.value, args.key_file, args.to, args.timeout, args.l1_rpc, str(args.contracts)) == \
        (5 * 10**9, "k", "0x" + "11" * 20, 30.0, "http://l1:8545", "c.json")


def test_withdraw_arguments() -> None:
    args = parser().parse_args(["withdraw", "--value", "0.5ether", "--wait", "finalized"])
    assert (args.value, args.wait, args.to, args.data, args.gas_limit) == (ETHER // 2, "finalized", None, b"", None)
    assert WAIT_TIMEOUT_S["finalized"] == 600
    args = parser().parse_args(["withdraw", "--value", "1", "--to", "0x" + "22" * 20, "--data", "0xabcd",
                                "--gas-limit", "250000", "--wait", "ready", "--timeout", "5"])
    assert (args.to, args.data, args.gas_limit, args.wait, args.timeout) == \
        ("0x" + "22" * 20, b"\xab\xcd", 250_000, "ready", 5.0)
    assert WITHDRAWAL_DEFAULT_GAS_LIMIT == 100_000  # what --gas-limit's help promises


def test_withdrawals_arguments() -> None:
    args = parser().parse_args(["withdrawals"])
    assert (args.hash, args.follow, args.address, args.json) == (None, False, None, False)
    args = parser().parse_args(["withdrawals", "0xabc", "--follow", "--address", "0x" + "33" * 20, "--json"])
    assert (args.hash, args.follow, args.address, args.json) == ("0xabc", True, "0x" + "33" * 20, True)


@pytest.mark.parametrize(("argv", "says"), [
    (["deposit", "--value", "1.5wei"], "argument --value: '1.5wei' is not a whole number of wei"),
    (["deposit", "--value", "1ether", "--wait", "finalized"], "argument --wait: invalid choice: 'finalized'"),
    (["deposit", "--value", "1ether", "--timeout", "0"], "argument --timeout: '0' is not a positive number"),
    (["deposit", "--value", "1ether", "--dev", "1", "--key-file", "k"], "not allowed with argument --dev"),
    (["deposit"], "the following arguments are required: --value"),
    (["withdraw", "--value", "1ether", "--data", "0xzz"], "argument --data: '0xzz' is not 0x-hex bytes"),
    (["withdraw", "--value", "1ether", "--gas-limit", "-1"], "argument --gas-limit: '-1' is not a gas limit"),
    (["withdraw", "--value", "1ether", "--to", "0x12"], "argument --to: '0x12' is not a 20-byte 0x address"),
    (["withdraw", "--value", "1ether", "--wait", "credited"], "argument --wait: invalid choice: 'credited'"),
])
def test_usage_errors_say_what_is_wrong(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    assert says in capsys.readouterr().err


def test_the_command_without_a_tree_says_so(tmp_path: pathlib.Path) -> None:
    """Run as `python -m l2node.cli` (one module, not two copies): an error is the CLI's, exit 1."""
    argv = ["withdraw", "--value", "1ether", "--data-dir", str(tmp_path)]
    r = subprocess.run([sys.executable, "-m", "l2node.cli", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("l2node: no running tree in "), r.stderr
