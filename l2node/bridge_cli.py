"""`l2node deposit`, `l2node withdraw` and `l2node withdrawals`: ETH across the bridge, from the CLI.

    deposit     DepositPortal.depositTransaction(to) on L1, signed by the chosen key (the same
                dev account on L1 and L2), then the bridge's TrackDeposit with the command's trace;
                --wait credited follows the deposit through the bridge until it is minted on L2.
    withdraw    an L2 transaction to MESSAGE_PASSER (protocol.encode_withdrawal_call); --wait
                follows the withdrawal through the bridge (INITIATED ... FINALIZED on L1).
    withdrawals one withdrawal, or one address's; --follow streams every change.

Keys as `tx send` picks them (--dev N or --key-file); the running tree is found through
--data-dir as for every command. The L1 URL is the tree's (endpoints.json), the portal's address
the data dir's l1/contracts.json (what `l2node up` deployed); an external L1 whose URL carries
credentials (shown redacted in endpoints.json) is given with --l1-rpc, its contracts.json with
--contracts. cli.py registers these commands (``register``); this module holds them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

import grpc

from l2node import cli
from l2node.cli_values import parse_address, parse_amount, show_amount
from l2node.node.config import default_data_dir

#: How long each --wait waits unless --timeout says: a deposit is credited a few L1 blocks after
#: its own (confirmation depth 4, ~5 s on the devnet); a withdrawal is final after an output covers
#: it, that output's challenge window (20 s on the devnet) and the proof's maturity (10 s).
WAIT_TIMEOUT_S: Final = {"credited": 120.0, "initiated": 60.0, "in_output": 300.0, "proven": 300.0,
                         "ready": 600.0, "finalized": 600.0}
#: TrackDeposit's own deadline when no --wait asks for more: the bridge sees an L1 block within
#: a poll or two of it being mined.
_TRACK_S: Final = 30.0
_L1_RECEIPT_S: Final = 120.0


def parse_hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 0x-hex bytes") from None


def _bridge(data_dir: pathlib.Path | None) -> tuple[grpc.Channel, Any]:
    from protos.l2node.bridge.v1 import bridge_pb2_grpc

    channel = cli._service_channel(data_dir, "bridge")
    return channel, bridge_pb2_grpc.BridgeServiceStub(channel)  # type: ignore[no-untyped-call]  # generated


def _word(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


# -- deposit ---------------------------------------------------------------------------------------


def _l1_target(args: argparse.Namespace) -> tuple[str, pathlib.Path]:
    """The L1 URL and the contracts.json a deposit goes through."""
    data_dir = args.data_dir or default_data_dir()
    url = args.l1_rpc or cli._endpoints(args.data_dir).get("l1_rpc")
    if not url:
        raise cli.CliError("the running tree names no L1 URL; pass --l1-rpc URL")
    if "***" in url:
        raise cli.CliError(f"the tree's L1 URL is shown redacted ({url}); pass it with --l1-rpc URL")
    return url, args.contracts or data_dir / "l1" / "contracts.json"


async def _send_deposit(url: str, contracts: pathlib.Path, key: bytes, to: bytes, value: int) -> Any:
    """DepositPortal.depositTransaction(to) with ``value``; its L1 receipt."""
    from services.l1 import Deployment, L1Client, LocalSigner, TxSender

    portal = Deployment.load(contracts).contract("DepositPortal")
    async with L1Client(url) as l1:
        sender = await TxSender.create(l1, LocalSigner(key))
        tx_hash = await sender.send(portal.address, portal.encode_call("depositTransaction", to), value)
        print(f"sent L1 tx 0x{tx_hash.hex()}: DepositPortal {cli_address(portal.address)}.depositTransaction("
              f"0x{to.hex()}) from 0x{sender.address.hex()} with {show_amount(value)}", flush=True)
        return await sender.wait_receipt(tx_hash, _L1_RECEIPT_S)


def cli_address(raw: bytes | None) -> str:
    return "0x" + (raw or b"").hex()


def cmd_deposit(args: argparse.Namespace) -> int:
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb
    from services.l1 import DeploymentError, L1Error, LocalSigner

    key = cli._private_key(args)
    to = bytes.fromhex((args.to or cli_address(LocalSigner(key).address)).removeprefix("0x"))
    url, contracts = _l1_target(args)
    timeout_s = args.timeout or WAIT_TIMEOUT_S["credited"]
    deadline = time.monotonic() + timeout_s
    channel, stub = _bridge(args.data_dir)  # before any ETH moves: a tree without a bridge cannot track it
    with channel:
        try:
            receipt = asyncio.run(_send_deposit(url, contracts, key, to, args.value))
        except (DeploymentError, L1Error) as exc:
            raise cli.CliError(f"deposit: {exc}") from None
        l1_tx = cli_address(receipt.tx_hash)
        if not receipt.success:
            raise cli.CliError(f"deposit: L1 tx {l1_tx} reverted in block {receipt.block_number}")
        print(f"mined in L1 block {receipt.block_number}", flush=True)
        track_s = max(1.0, deadline - time.monotonic()) if args.wait else _TRACK_S
        try:  # the command's trace goes with the call: the bridge's deposit spans join it
            deposits = stub.TrackDeposit(bpb.TrackDepositRequest(l1_tx_hash=l1_tx), timeout=track_s).deposits
        except grpc.RpcError as exc:
            raise cli.CliError(f"the bridge did not report the deposit of L1 tx {l1_tx} "
                               f"({exc.code().name}: {exc.details()}); it is on L1 and will be credited "
                               f"all the same") from None
        for d in deposits:
            cli.span_attribute("l2.deposit.hash", d.deposit_hash)
            print(deposit_line(d), flush=True)
        if not args.wait:
            return 0
        codes = [_follow_deposit(stub, d, deadline, timeout_s) for d in deposits]
    for d in deposits:
        _print_l2_balance(args.data_dir, d.to)
    return max(codes, default=0)


def deposit_line(d: Any) -> str:
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    status = _word(bpb.DepositStatus, d.status, "DEPOSIT_STATUS_")
    if d.status == bpb.DEPOSIT_STATUS_CREDITED:
        where = f"in L2 block {d.l2_block}"
    elif d.status == bpb.DEPOSIT_STATUS_REORGED:
        where = f"its L1 block {d.l1_block} left the chain: it never happened"
    elif d.status == bpb.DEPOSIT_STATUS_CONFIRMED:
        where = f"L1 block {d.l1_block} is {d.confirmed_at_l1_block - d.l1_block} deep, the sequencer mints it next"
    else:
        where = f"in L1 block {d.l1_block}, credited on L2 once L1 reaches block {d.confirmed_at_l1_block}"
    return f"deposit {d.deposit_hash} {status} {where}: {show_amount(int(d.value or 0))} to {d.to}"


def _follow_deposit(stub: Any, first: Any, deadline: float, timeout_s: float) -> int:
    """Print the deposit's statuses as the bridge records them until CREDITED (0) or REORGED (1)."""
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    print(f"waiting up to {timeout_s:g}s for deposit {first.deposit_hash} to be credited on L2", flush=True)
    last = [first.status]  # a cell: the timeout's message says the latest
    request = bpb.SubscribeEventsRequest(from_sequence=0, hash=first.deposit_hash)
    for d in _events(stub, request, deadline, lambda: f"deposit {first.deposit_hash} to be credited; it is "
                     + _word(bpb.DepositStatus, last[0], "DEPOSIT_STATUS_"), kind="deposit", timeout_s=timeout_s):
        if d.status != last[0]:
            last[0] = d.status
            print(deposit_line(d), flush=True)
        if d.status == bpb.DEPOSIT_STATUS_CREDITED:
            return 0
        if d.status == bpb.DEPOSIT_STATUS_REORGED:
            return 1
    return 1


def _print_l2_balance(data_dir: pathlib.Path | None, address: str) -> None:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    channel, stub = cli._sequencer(data_dir)
    with channel:
        a = cli._rpc(stub.GetAccount, spb.GetAccountRequest(address=address))
    print(f"L2 balance of {address}: {show_amount(int(a.balance))} at L2 block {a.block_number}", flush=True)


def _events(stub: Any, request: Any, deadline: float, waiting_for: Callable[[], str], kind: str,
            timeout_s: float) -> Iterator[Any]:
    """The ``kind`` ("deposit" / "withdrawal") items of SubscribeEvents until ``deadline``;
    CliError then, saying what it waited for and where it stands (``waiting_for``)."""
    remaining = deadline - time.monotonic()
    try:
        for item in stub.SubscribeEvents(request, timeout=max(0.1, remaining)):
            if item.WhichOneof("item") == kind:
                yield getattr(item, kind)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise cli.CliError(f"timed out after {timeout_s:g}s waiting for {waiting_for()}") from None
        raise cli.rpc_refused(exc) from None
    raise cli.CliError(f"the bridge ended the stream while waiting for {waiting_for()}")


# -- withdraw --------------------------------------------------------------------------------------


def withdrawal_line(w: Any) -> str:
    """A withdrawal in one line: its status, where it is, and what comes next."""
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    status = _word(bpb.WithdrawalStatus, w.status, "WITHDRAWAL_STATUS_")
    parts = [f"withdrawal {w.withdrawal_hash} {status}", f"{show_amount(int(w.value or 0))} {w.sender} -> {w.target}",
             f"L2 block {w.l2_block}"]
    if w.HasField("output_index"):
        parts.append(f"output {w.output_index}")
    if w.proven_l1_tx_hash:
        parts.append(f"proven in L1 tx {w.proven_l1_tx_hash} by {w.prover}, matures {cli._utc(w.matures_at)}")
    if w.finalized_l1_tx_hash:
        outcome = _word(bpb.WithdrawalOutcome, w.outcome, "WITHDRAWAL_OUTCOME_")
        parts.append(f"finalized in L1 tx {w.finalized_l1_tx_hash}: target call {outcome}")
    return ", ".join(parts)


#: What a FAILED target call leaves to do (the value waits in the portal).
FAILED_HINT: Final = ("the target call failed: the value waits in DepositPortal. Anyone may retry it "
                      "(retryWithdrawal, with at least its gas limit), or its L2 sender may take it back on L1 "
                      "(refundWithdrawal, to the same address)")


def cmd_withdraw(args: argparse.Namespace) -> int:
    from protocol import MESSAGE_PASSER, WITHDRAWAL_DEFAULT_GAS_LIMIT, encode_withdrawal_call, intrinsic_gas
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
    from services.l1 import LocalSigner, UnsignedTransaction

    signer = LocalSigner(cli._private_key(args))
    target = bytes.fromhex((args.to or cli_address(signer.address)).removeprefix("0x"))
    gas_limit = WITHDRAWAL_DEFAULT_GAS_LIMIT if args.gas_limit is None else args.gas_limit
    calldata = encode_withdrawal_call(target, gas_limit, args.data)
    timeout_s = args.timeout or WAIT_TIMEOUT_S.get(args.wait or "", 0.0)
    deadline = time.monotonic() + timeout_s
    # Before any ETH moves: a tree without a bridge cannot follow it.
    bridge_channel, bridge = _bridge(args.data_dir) if args.wait else (None, None)
    before = _l1_balance(args.data_dir, target) if args.wait == "finalized" else None
    channel, stub = cli._sequencer(args.data_dir)
    with channel:
        info = cli._rpc(stub.GetChainInfo, spb.GetChainInfoRequest())
        nonce = cli._rpc(stub.GetAccount, spb.GetAccountRequest(address=cli_address(signer.address))).nonce
        tip = 1 * cli._GWEI
        signed = signer.sign(UnsignedTransaction(
            chain_id=info.chain_id, nonce=nonce, max_priority_fee_per_gas=tip,
            max_fee_per_gas=2 * int(info.base_fee) + tip, gas_limit=intrinsic_gas(calldata, ()), to=MESSAGE_PASSER,
            value=args.value, data=calldata))
        cli._tx_span(cli_address(signed.hash))
        reply = cli._rpc(stub.SendRawTransaction, spb.SendRawTransactionRequest(raw_transaction=signed.raw,
                                                                                 request_id=uuid.uuid4().hex))
    print(f"sent L2 tx {reply.tx_hash} from {cli_address(signer.address)} nonce {nonce}: withdraw "
          f"{show_amount(args.value)} to {cli_address(target)} on L1 (gas limit {gas_limit}"
          f"{f', data {len(args.data)} bytes' if args.data else ''})", flush=True)
    if bridge_channel is None:
        print(f"`l2node withdrawals {reply.tx_hash} --follow` follows it", flush=True)
        return 0
    with bridge_channel:
        code = _follow_withdrawal(bridge, reply.tx_hash, args.wait, deadline, timeout_s)
    after = _l1_balance(args.data_dir, target) if before is not None else None
    if before is not None and after is not None:
        print(f"L1 balance of {cli_address(target)}: {show_amount(before)} -> {show_amount(after)}", flush=True)
    return code


def _l1_balance(data_dir: pathlib.Path | None, who: bytes) -> int | None:
    """``who``'s balance on the tree's L1; None when its URL is shown redacted (an external L1)."""
    from services.l1 import L1Client, L1Error

    url = cli._endpoints(data_dir).get("l1_rpc") or ""
    if not url or "***" in url:
        return None

    async def read() -> int:
        async with L1Client(url) as l1:
            return await l1.get_balance(who)

    try:
        return asyncio.run(read())
    except L1Error:
        return None


def _follow_withdrawal(stub: Any, l2_tx_hash: str, until: str, deadline: float, timeout_s: float) -> int:
    """Print the withdrawal's statuses as the bridge records them until ``until``: 0 once there
    (1 if finalized with a failed target call)."""
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    goal = bpb.WithdrawalStatus.Value("WITHDRAWAL_STATUS_" + until.upper())
    print(f"waiting up to {timeout_s:g}s for the withdrawal of L2 tx {l2_tx_hash} to be {until.upper()}"
          + (" on L1 (the relayer proves and finalizes it: output, challenge window, proof maturity)"
             if goal >= bpb.WITHDRAWAL_STATUS_PROVEN else ""), flush=True)
    last: list[str] = ["not yet seen by the bridge"]
    shown = ""
    request = bpb.SubscribeEventsRequest(from_sequence=0, hash=l2_tx_hash)
    for w in _events(stub, request, deadline, lambda: f"L2 tx {l2_tx_hash} to be {until.upper()}; it is {last[0]}",
                     kind="withdrawal", timeout_s=timeout_s):
        cli.span_attribute("l2.withdrawal.hash", w.withdrawal_hash)
        line = withdrawal_line(w)
        last[0] = _word(bpb.WithdrawalStatus, w.status, "WITHDRAWAL_STATUS_")
        if line != shown:
            shown = line
            print(line, flush=True)
        if w.status >= goal:
            if w.status == bpb.WITHDRAWAL_STATUS_FINALIZED and w.outcome == bpb.WITHDRAWAL_OUTCOME_FAILED:
                print(FAILED_HINT, flush=True)
                return 1
            return 0
    return 1


# -- withdrawals -----------------------------------------------------------------------------------


def cmd_withdrawals(args: argparse.Namespace) -> int:
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    def show(w: Any) -> None:
        print(json.dumps(cli._message_dict(w)) if args.json else withdrawal_line(w), flush=True)

    channel, stub = _bridge(args.data_dir)
    with channel:
        if args.follow:
            request = bpb.SubscribeEventsRequest(from_sequence=0, hash=args.hash or "", address=args.address or "")
            try:
                for item in stub.SubscribeEvents(request):
                    if item.WhichOneof("item") == "withdrawal":
                        show(item.withdrawal)
            except grpc.RpcError as exc:
                raise cli.rpc_refused(exc) from None
            except KeyboardInterrupt:
                return 0
            return 0
        if args.hash:
            show(_one_withdrawal(stub, args.hash))
            return 0
        if not args.address:
            raise cli.CliError("withdrawals: give a HASH, or --address A for one address's (--follow: everyone's)")
        token, shown = "", 0
        while True:
            page = cli._rpc(stub.ListWithdrawals, bpb.ListWithdrawalsRequest(address=args.address, page_size=500,
                                                                             page_token=token))
            for w in page.withdrawals:
                show(w)
            shown += len(page.withdrawals)
            if not (token := page.next_page_token):
                break
    if not shown and not args.json:
        print(f"no withdrawals of {args.address}")
    return 0


def _one_withdrawal(stub: Any, hash_: str) -> Any:
    """By its withdrawal hash, else by its L2 transaction hash."""
    from protos.l2node.bridge.v1 import bridge_pb2 as bpb

    try:
        request = bpb.GetWithdrawalRequest(withdrawal_hash=hash_)
        return stub.GetWithdrawal(request, timeout=cli._RPC_TIMEOUT_S).withdrawal
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise cli.rpc_refused(exc) from None
    return cli._rpc(stub.GetWithdrawal, bpb.GetWithdrawalRequest(l2_tx_hash=hash_)).withdrawal


# -- the commands' arguments -----------------------------------------------------------------------


def register(sub: Any, data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add deposit, withdraw and withdrawals to the `l2node` command's subparsers."""

    def keys(p: argparse.ArgumentParser) -> None:
        who = p.add_mutually_exclusive_group()
        who.add_argument("--dev", type=int, default=0, help="dev account index 0-9, the same key on L1 and L2 "
                                                            "(default 0)")
        who.add_argument("--key-file", help="file holding a hex private key")

    def wait(p: argparse.ArgumentParser, choices: list[str]) -> None:
        p.add_argument("--wait", choices=choices, help="follow it through the bridge until then, printing each status")
        p.add_argument("--timeout", type=cli._positive_seconds, default=None, metavar="S",
                       help="give up waiting after S seconds, exit 1 (default: "
                            + ", ".join(f"{k} {WAIT_TIMEOUT_S[k]:g}" for k in choices) + ")")

    amount_help = "wei, or with a unit: 1ether, 0.5ether, 5gwei"
    p = sub.add_parser("deposit", help="send ETH from L1 to L2 (DepositPortal.depositTransaction)")
    data_dir(p)
    p.add_argument("--value", required=True, type=parse_amount, help=amount_help)
    p.add_argument("--to", type=parse_address, help="0x recipient on L2 (default: the sender's own address)")
    keys(p)
    wait(p, ["credited"])
    p.add_argument("--l1-rpc", help="the L1's JSON-RPC URL (default: the running tree's, from endpoints.json)")
    p.add_argument("--contracts", type=pathlib.Path,
                   help="the L1's contracts.json (default: DATA_DIR/l1/contracts.json, what `l2node up` deployed)")
    p.set_defaults(fn=cmd_deposit)

    p = sub.add_parser("withdraw", help="send ETH from L2 to L1 (an L2 transaction to the message passer)")
    data_dir(p)
    p.add_argument("--value", required=True, type=parse_amount, help=amount_help)
    p.add_argument("--to", type=parse_address, help="0x target on L1 (default: the sender's own address)")
    p.add_argument("--data", type=parse_hex, default=b"", help="0x calldata the target is called with on L1")
    p.add_argument("--gas-limit", type=_gas_limit, default=None,
                   help="L1 gas the target call gets at least (default 100000)")
    keys(p)
    wait(p, ["initiated", "in_output", "proven", "ready", "finalized"])
    p.set_defaults(fn=cmd_withdraw)

    p = sub.add_parser("withdrawals", help="withdrawals and their status; --follow streams every change")
    data_dir(p)
    p.add_argument("hash", nargs="?", default=None, help="a withdrawal hash or its L2 transaction hash")
    p.add_argument("--address", type=parse_address, help="only this address's (as L2 sender or L1 target)")
    p.add_argument("--follow", action="store_true", help="every change, from the first, as it happens")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_withdrawals)


def _gas_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a gas limit (a whole number)")
    return value
