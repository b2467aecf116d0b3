"""The `l2node` command: run the tree, and look at or steer a running one.

Every command finds the running tree through DATA_DIR/run/endpoints.json; the default data
dir is the same for all of them (see l2node.node.config.default_data_dir).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc

from l2node.node import endpoints
from l2node.node.config import NODE_CONFIG_DIR, NODE_KEYS_DIR, ConfigError, default_data_dir, load
from protos.l2node.supervisor.v1 import supervisor_pb2 as pb
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as pb_grpc
from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc

_RPC_TIMEOUT_S = 5.0


def _enum_word(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


class CliError(Exception):
    pass


class RpcRefused(CliError):
    """A call the service answered with an error: its status code, its ErrorInfo reason (the
    stable word programs match; the code's name when the service gave none) and its message."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if reason == code else f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason, "message": self.message}


def rpc_refused(exc: grpc.RpcError) -> RpcRefused:
    """``exc`` as one line: code, reason (from the google.rpc.Status details) and message."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    code = exc.code().name  # a call's RpcError is a grpc.Call too
    reason = code
    status = rpc_status.from_call(exc)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason or code
    return RpcRefused(code, reason, exc.details() or "")


# -- tracing -------------------------------------------------------------------------------------

#: The traced channel interceptor while a command runs under tracing (see ``_traced``).
_INTERCEPTORS: list[grpc.UnaryUnaryClientInterceptor] = []


def _channel(address: str) -> grpc.Channel:
    """A channel whose calls are CLIENT spans of the command's trace and carry its traceparent."""
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, *_INTERCEPTORS) if _INTERCEPTORS else channel


@contextlib.contextmanager
def _traced(args: argparse.Namespace) -> Iterator[None]:
    """A command is one trace: a span named for it, its gRPC calls under it (the services continue
    it). Only when OTLP export is configured (the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT):
    a traceparent naming a span nobody exports would show every server span as orphaned. A
    TRACEPARENT in the environment (a traced script calling us) is the command's parent. `up`
    traces itself (the supervisor and every worker)."""
    if args.command == "up" or not (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        yield
        return
    from opentelemetry import propagate

    from services.runtime import BlockingClientInterceptor, init_tracing

    tracing = init_tracing("l2node-cli")
    carrier = {k.lower(): v for k in ("TRACEPARENT", "TRACESTATE") if (v := os.environ.get(k))}
    name = " ".join(["l2node", args.command, *([args.tx] if args.command == "tx" else [])])
    _INTERCEPTORS.append(BlockingClientInterceptor(tracing.tracer))
    try:
        with tracing.tracer.start_as_current_span(name, context=propagate.extract(carrier)):
            yield
    finally:
        _INTERCEPTORS.clear()
        tracing.shutdown()


def _tx_span(tx_hash: str) -> None:
    """The command's span is about this transaction: Jaeger finds it by the hash."""
    span_attribute("l2.tx.hash", tx_hash)


def span_attribute(key: str, value: str) -> None:
    """The command's span is about this (a transaction, a deposit, a payment): Jaeger finds it by
    ``key`` = ``value``. Nothing when the command is not traced."""
    if not _INTERCEPTORS:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value)


def _control(data_dir: pathlib.Path) -> tuple[dict[str, Any], grpc.Channel]:
    try:
        doc = endpoints.read(data_dir / "run")
    except FileNotFoundError:
        raise CliError(f"no running tree in {data_dir} (no run/endpoints.json); start one with `l2node up`"
                       ) from None
    return doc, _channel(doc["control"])


def _worker_status(address: str) -> tuple[list[dict[str, Any]], list[str]]:
    """A worker's breakers, and why it is not ready (empty: ready)."""
    with _channel(address) as ch:
        try:
            reply = worker_pb2_grpc.WorkerServiceStub(ch).GetWorkerStatus(
                worker_pb2.GetWorkerStatusRequest(), timeout=1.0)
        except grpc.RpcError:
            return [], []
    breakers = [
        {"target": b.target, "state": _enum_word(worker_pb2.BreakerState, b.state, "BREAKER_STATE_"),
         "failures": b.failures, "calls": b.calls, "retries": b.retries, "rejected": b.rejected}
        for b in reply.breakers
    ]
    return breakers, list(reply.not_ready)


def status_document(data_dir: pathlib.Path) -> dict[str, Any]:
    doc, channel = _control(data_dir)
    with channel:
        try:
            reply = pb_grpc.SupervisorServiceStub(channel).WhichChildren(
                pb.WhichChildrenRequest(recursive=True), timeout=_RPC_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise CliError(f"the tree at {doc['control']} does not answer ({exc.code().name}); "
                           f"is it still running? (pid {doc.get('pid')})") from None
    children = []
    for c in reply.children:
        kind = _enum_word(pb.ChildKind, c.kind, "CHILD_KIND_")
        state = _enum_word(pb.ChildState, c.state, "CHILD_STATE_")
        breakers, not_ready = _worker_status(c.address) if kind == "worker" and state == "running" else ([], [])
        children.append({
            "id": c.id, "kind": kind, "state": state, "pid": c.pid, "restarts": c.restarts,
            "uptime_s": round(c.uptime_s, 3), "address": c.address,
            "breakers": breakers, "not_ready": not_ready,
            "restart": _enum_word(pb.RestartType, c.restart, "RESTART_TYPE_"),
            "last_exit_reason": c.last_exit_reason, "parent": c.parent,
        })
    ready = all(c["state"] == "running" and not c["not_ready"] for c in children)
    return {"control": doc["control"], "pid": doc.get("pid"), "l1_rpc": doc.get("l1_rpc"), "ready": ready,
            "metrics": doc.get("metrics"), "jsonrpc": doc.get("jsonrpc"), "children": children}


def _draw(status: dict[str, Any]) -> str:
    lines = [f"l2node tree  pid {status['pid']}  control {status['control']}"
             f"{'' if status['ready'] else '  NOT READY'}"]
    rows = status["children"]
    for i, c in enumerate(rows):
        depth = c["id"].count("/")
        last = not any(r["parent"] == c["parent"] for r in rows[i + 1:])
        branch = ("│   " * depth) + ("└── " if last else "├── ")
        name = c["id"].rsplit("/", 1)[-1]
        detail = f"{c['state']:<10} pid {c['pid'] or '-':<7} restarts {c['restarts']:<3} up {c['uptime_s']:>8.1f}s"
        where = f"  {c['address']}" if c["address"] else ""
        lines.append(f"{branch}{name:<12} {c['kind']:<10} {detail}{where}")
        for reason in c["not_ready"]:
            lines.append(f"{'│   ' * (depth + 1)}   not ready: {reason}")
        for b in c["breakers"]:
            lines.append(f"{'│   ' * (depth + 1)}   breaker {b['target']}: {b['state']} "
                         f"(failures {b['failures']}, calls {b['calls']}, retries {b['retries']})")
        if c["last_exit_reason"] and c["restarts"]:
            lines.append(f"{'│   ' * (depth + 1)}   last exit: {c['last_exit_reason']}")
        if c["id"] == "jsonrpc" and status.get("jsonrpc"):
            lines.append(f"{'│   ' * (depth + 1)}   Ethereum JSON-RPC: {status['jsonrpc']} (and WebSocket)")
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    from l2node.node import run  # imports grpc servers, otel: only for `up`

    try:
        cfg = load(args.config, data_dir=args.data_dir, l1_rpc=args.l1_rpc)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return run.main(cfg)


def cmd_deploy(args: argparse.Namespace) -> int:
    import asyncio

    from l2node.node.deploy import DeployError
    from l2node.node.provision import Request, batcher_of, provision
    from services.l1 import DeploymentError, checksum
    from services.runtime import redact_url

    try:
        request = Request(l1_rpc=args.l1_rpc, key_file=args.key_file, out=args.out, config=args.config,
                          batcher=batcher_of(args.batcher_address, args.batcher_key_file),
                          node_config_dir=args.node_config_dir, node_keys_dir=args.node_keys_dir,
                          timeout_s=args.timeout, force=args.force)
        print(f"deploying to {redact_url(args.l1_rpc)} (batcher {checksum(request.batcher)})", flush=True)
        addresses, written = asyncio.run(provision(request))
    except (DeployError, DeploymentError, ConfigError, ValueError) as exc:
        raise CliError(f"deploy: {exc}") from None
    doc = addresses.to_json()
    print(f"deployed and verified on L1 chain {doc['chain_id']} in block {doc['block_number']} "
          f"(deployer {doc['deployer']})")
    for name, at in doc["contracts"].items():
        print(f"  {name:<15} {at}")
    print("wrote " + ", ".join(map(str, written)))
    print(f"the node reads its keys from {args.node_keys_dir}/{{batcher,proposer,challenger}}.key; "
          f"fund the batcher ({doc['batcher']}) for gas and the proposer and challenger for bonds "
          f"({doc['rollups']['proposal_bond']} / {doc['rollups']['challenge_bond']} wei)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = status_document(args.data_dir or default_data_dir())
    print(json.dumps(status, indent=2) if args.json else _draw(status))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """Stop the child and start it again (terminate_child + restart_child)."""
    _, channel = _control(args.data_dir or default_data_dir())
    stub = pb_grpc.SupervisorServiceStub(channel)
    with channel:
        try:
            stub.TerminateChild(pb.TerminateChildRequest(id=args.id, request_id=uuid.uuid4().hex),
                                timeout=60)
            reply = stub.RestartChild(pb.RestartChildRequest(id=args.id, request_id=uuid.uuid4().hex),
                                      timeout=60)
        except grpc.RpcError as exc:
            raise CliError(f"restart {args.id}: {exc.code().name}: {exc.details()}") from None
    print(f"{reply.child.id} restarted: pid {reply.child.pid}")
    return 0


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (a tree started by a shell script may not be reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def cmd_stop(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or default_data_dir()
    doc, channel = _control(data_dir)
    channel.close()
    pid = int(doc["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        endpoints.remove(data_dir / "run")
        print(f"tree pid {pid} was not running; removed its stale endpoints.json")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"stopped tree pid {pid}")
            return 0
        time.sleep(0.05)
    raise CliError(f"tree pid {pid} still running after {args.timeout:g}s")


# -- client commands for the sequencer --------------------------------------------------------

_GWEI = 10**9
#: How long `--wait` waits for each status unless --timeout says: sealing takes a block time;
#: SAFE a few L1 blocks; FINALIZED L1 finality (~10 s on the devnet's anvil, ~13 min on Ethereum).
_WAIT_TIMEOUT_S = {"sealed": 60.0, "safe": 600.0, "finalized": 1800.0}


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _service_channel(data_dir: pathlib.Path | None, service: str) -> grpc.Channel:
    doc = _endpoints(data_dir)
    address = next((c["address"] for c in doc["children"] if c["id"].rsplit("/", 1)[-1] == service), None)
    if not address:
        raise CliError(f"the running tree has no {service}")
    return _channel(address)


def _sequencer(data_dir: pathlib.Path | None) -> tuple[grpc.Channel, Any]:
    from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as seq_grpc

    channel = _service_channel(data_dir, "sequencer")
    return channel, seq_grpc.SequencerServiceStub(channel)


def _rollups(data_dir: pathlib.Path | None) -> tuple[grpc.Channel, Any]:
    from protos.l2node.rollups.v1 import rollups_pb2_grpc as rollups_grpc

    channel = _service_channel(data_dir, "rollups")
    return channel, rollups_grpc.RollupsServiceStub(channel)


def _endpoints(data_dir: pathlib.Path | None) -> dict[str, Any]:
    doc, channel = _control(data_dir or default_data_dir())
    channel.close()
    return doc


def _rpc(call: Any, *args: Any, timeout: float = _RPC_TIMEOUT_S, **kw: Any) -> Any:
    try:
        return call(*args, timeout=timeout, **kw)
    except grpc.RpcError as exc:
        raise rpc_refused(exc) from None


def _private_key(args: argparse.Namespace) -> bytes:
    from protocol import DEV_PRIVATE_KEYS

    if args.key_file:
        text = pathlib.Path(args.key_file).read_text().strip().removeprefix("0x")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise CliError(f"{args.key_file}: expected a 32-byte hex private key")
        return key
    index: int = args.dev
    if not 0 <= index < len(DEV_PRIVATE_KEYS):
        raise CliError(f"--dev must be 0..{len(DEV_PRIVATE_KEYS) - 1}")
    return DEV_PRIVATE_KEYS[index]


def cmd_tx_send(args: argparse.Namespace) -> int:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
    from services.l1 import LocalSigner, UnsignedTransaction

    signer = LocalSigner(_private_key(args))
    sender = signer.address
    to = bytes.fromhex(args.to.removeprefix("0x"))
    if len(to) != 20:
        raise CliError("--to must be a 20-byte 0x address")
    channel, stub = _sequencer(args.data_dir)
    with channel:
        info = _rpc(stub.GetChainInfo, spb.GetChainInfoRequest())
        nonce = args.nonce
        if nonce is None:
            nonce = _rpc(stub.GetAccount, spb.GetAccountRequest(address="0x" + sender.hex())).nonce
        tip = int(args.tip_gwei * _GWEI)
        max_fee = int(args.max_fee_gwei * _GWEI) if args.max_fee_gwei else 2 * int(info.base_fee) + tip
        unsigned = UnsignedTransaction(chain_id=info.chain_id, nonce=nonce, max_priority_fee_per_gas=tip,
                                       max_fee_per_gas=max_fee, gas_limit=21_000, to=to, value=int(args.value))
        signed = signer.sign(unsigned)
        raw = signed.raw
        _tx_span("0x" + signed.hash.hex())
        reply = _rpc(stub.SendRawTransaction, spb.SendRawTransactionRequest(raw_transaction=raw,
                                                                             request_id=uuid.uuid4().hex))
        print(f"sent {reply.tx_hash} from 0x{sender.hex()} nonce {nonce}")
        if args.wait:
            return _watch_receipt(stub, reply.tx_hash, args.wait, args.timeout or _WAIT_TIMEOUT_S[args.wait])
    return 0


def _watch_receipt(stub: Any, tx_hash: str, until: str, timeout_s: float) -> int:
    """Print the receipt's status (and why it waits) as it changes, until ``until``: 0 once there,
    1 if DROPPED; CliError after ``timeout_s``, saying where it stands."""
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    goal = spb.ReceiptStatus.Value("RECEIPT_STATUS_" + until.upper())
    deadline = time.monotonic() + timeout_s
    last = None
    last_status = None
    while True:
        with _quiet():  # a poll that sees no change is no span; a change is an event on the command's
            try:
                r = stub.GetTransactionReceipt(spb.GetTransactionReceiptRequest(tx_hash=tx_hash),
                                               timeout=_RPC_TIMEOUT_S).receipt
            except grpc.RpcError as exc:
                # A read replica that has not reached the transaction's block yet: it will.
                if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() >= deadline:
                    raise rpc_refused(exc) from None
                time.sleep(0.1)
                continue
        line = _receipt_line(spb, r)
        if line != last:
            if r.status != last_status:
                last_status = r.status
                _receipt_event(r)
            last = line
            print(line, flush=True)
        if r.status == spb.RECEIPT_STATUS_DROPPED:
            return 1
        if r.status >= goal:
            return 0
        if time.monotonic() >= deadline:
            raise CliError(f"timed out after {timeout_s:g}s waiting for {tx_hash} to be {until}; it is {line} "
                           f"(`l2node tx status {tx_hash}` follows it)")
        time.sleep(0.1)


def _receipt_line(spb: Any, r: Any) -> str:
    """A receipt in one line: its status, where it is, and why it waits or was dropped."""
    where = f" in block {r.block_number} (index {r.index})" if r.HasField("block_number") else ""
    if r.l1_tx_hash:
        where += f", batch {r.batch_index} in L1 tx {r.l1_tx_hash}"
    why = f": {r.drop_reason}" if r.drop_reason else f": {r.wait_message}" if r.wait_message else ""
    return f"{_enum_word(spb.ReceiptStatus, r.status, 'RECEIPT_STATUS_')}{where}{why}"


def _quiet() -> contextlib.AbstractContextManager[None]:
    if not _INTERCEPTORS:  # not traced: nothing to quiet, and no OTel import
        return contextlib.nullcontext()
    from services.runtime import quiet

    return quiet()


def _receipt_event(r: Any) -> None:
    if not _INTERCEPTORS:
        return
    from opentelemetry import trace

    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    attributes: dict[str, str | int] = {"l2.tx.hash": r.tx_hash}
    if r.HasField("block_number"):
        attributes["l2.block.number"] = r.block_number
    if r.l1_tx_hash:
        attributes["l1.tx.hash"] = r.l1_tx_hash
    if r.drop_reason:
        attributes["l2.tx.drop_reason"] = r.drop_reason
    trace.get_current_span().add_event(spb.ReceiptStatus.Name(r.status).removeprefix("RECEIPT_STATUS_"), attributes)


def cmd_tx_status(args: argparse.Namespace) -> int:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    channel, stub = _sequencer(args.data_dir)
    _tx_span(args.hash)
    with channel:
        if args.wait:
            return _watch_receipt(stub, args.hash, args.wait, args.timeout or _WAIT_TIMEOUT_S[args.wait])
        r = _rpc(stub.GetTransactionReceipt, spb.GetTransactionReceiptRequest(tx_hash=args.hash)).receipt
    doc = {"tx_hash": r.tx_hash, "status": _enum_word(spb.ReceiptStatus, r.status, "RECEIPT_STATUS_"),
           "from": getattr(r, "from"), "to": r.to, "nonce": r.nonce,
           "block_number": r.block_number if r.HasField("block_number") else None, "block_hash": r.block_hash,
           "index": r.index if r.HasField("index") else None, "gas_used": r.gas_used,
           "effective_gas_price": r.effective_gas_price, "drop_reason": r.drop_reason,
           "wait_reason": r.wait_reason, "wait_message": r.wait_message,
           "batch_index": r.batch_index if r.HasField("batch_index") else None, "l1_tx_hash": r.l1_tx_hash}
    print(json.dumps(doc, indent=2))
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    channel, stub = _sequencer(args.data_dir)
    with channel:
        a = _rpc(stub.GetAccount, spb.GetAccountRequest(address=args.address))
    print(json.dumps({"address": a.address, "balance": a.balance, "nonce": a.nonce, "block": a.block_number}))
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb

    channel, stub = _sequencer(args.data_dir)
    with channel:
        head = _rpc(stub.GetBlock, spb.GetBlockRequest(latest=True)).block.number
        start = max(0, head - args.last + 1) if args.start is None else args.start
        if not args.follow:
            for n in range(start, head + 1):
                _print_block(_rpc(stub.GetBlock, spb.GetBlockRequest(number=n)).block)
            return 0
        try:
            for item in stub.SubscribeBlocks(spb.SubscribeBlocksRequest(from_number=start)):
                _print_block(item.block)
        except grpc.RpcError as exc:
            raise rpc_refused(exc) from None
        except KeyboardInterrupt:
            return 0
    return 0


# -- client commands for the rollups service ---------------------------------------------------


def _message_dict(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    doc: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    return doc


def cmd_outputs(args: argparse.Namespace) -> int:
    from protos.l2node.rollups.v1 import rollups_pb2 as rpb

    channel, stub = _rollups(args.data_dir)
    with channel:
        if args.follow:
            try:
                for item in stub.SubscribeOutputs(rpb.SubscribeOutputsRequest(from_index=args.start)):
                    _print_output(item.output, args.json)
            except grpc.RpcError as exc:
                raise rpc_refused(exc) from None
            except KeyboardInterrupt:
                return 0
            return 0
        token = str(args.start) if args.start else ""
        shown = 0
        while True:
            page = _rpc(stub.ListOutputs, rpb.ListOutputsRequest(page_size=100, page_token=token))
            for o in page.outputs:
                _print_output(o, args.json)
            shown += len(page.outputs)
            token = page.next_page_token
            if not token:
                if not shown and not args.json:
                    print("no outputs yet (the proposer posts one every few L2 blocks with news)")
                return 0


def _print_output(o: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_message_dict(o)), flush=True)
        return
    from protos.l2node.rollups.v1 import rollups_pb2 as rpb

    status = _enum_word(rpb.OutputStatus, o.status, "OUTPUT_STATUS_")
    disputes = f"  disputes {','.join(map(str, o.dispute_ids))}" if o.dispute_ids else ""
    print(f"output {o.index:>5}  l2 block {o.l2_block:>7}  {status:<11}  {o.output_root}  "
          f"proposed {_utc(o.proposed_at)}  window ends {_utc(o.window_ends_at)}{disputes}", flush=True)


def _utc(unix_s: int) -> str:
    """A unix time (an L1 block timestamp) as ISO-8601 UTC, for people; JSON output keeps the number."""
    return datetime.datetime.fromtimestamp(unix_s, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_disputes(args: argparse.Namespace) -> int:
    from protos.l2node.rollups.v1 import rollups_pb2 as rpb

    channel, stub = _rollups(args.data_dir)
    with channel:
        if args.id is not None:
            disputes = [_rpc(stub.GetDispute, rpb.GetDisputeRequest(id=args.id)).dispute]
        else:
            disputes, token = [], ""
            while True:
                page = _rpc(stub.ListDisputes, rpb.ListDisputesRequest(page_size=100, page_token=token))
                disputes.extend(page.disputes)
                if not (token := page.next_page_token):
                    break
    if not disputes and not args.json:
        print("no disputes")
    for d in disputes:
        if args.json:
            print(json.dumps(_message_dict(d)), flush=True)
            continue
        status = _enum_word(rpb.DisputeStatus, d.status, "DISPUTE_STATUS_")
        turn = _enum_word(rpb.Side, d.turn, "SIDE_")
        print(f"dispute {d.id:>4}  output {d.output_index:>5}  {status:<14}  round {d.round}/{d.max_rounds}  "
              f"range [{d.lo}, {d.hi}]  turn {turn}  clocks {d.defender_clock_remaining_s}s/"
              f"{d.challenger_clock_remaining_s}s  bonds {d.bonds} wei  game {d.game}")
        if args.id is not None:
            for m in d.moves:
                kind = _enum_word(rpb.MoveKind, m.kind, "MOVE_KIND_")
                detail = {"bisect": f"claim at {m.position}: {m.claim}", "choose": "agree" if m.agree else "disagree",
                          "step": f"L1 computed {m.claim}", "timeout": "clock ran out"}.get(kind, "")
                print(f"  {kind:<8} round {m.round:>3}  {detail}  (L1 block {m.l1_block})")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from l2node.node import logs  # imports the runtime (otel): only for `logs`

    data_dir = args.data_dir or default_data_dir()
    try:
        paths = logs.select(data_dir, args.id)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    readable = sys.stdout.isatty() and not args.json

    def emit(line: str) -> None:
        print(logs.render(line, readable), flush=True)

    for line in logs.last_lines(paths, args.lines):
        emit(line)
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a follow ends
            logs.follow(paths, emit)
    return 0


def _print_block(b: Any) -> None:
    print(f"block {b.number:>8}  {b.hash}  txs {len(b.transaction_hashes):>5}  gas {b.gas_used:>10}  "
          f"base fee {b.base_fee}", flush=True)


_DEPLOY_HELP = """\
Deploy BatchInbox, DepositPortal, StepVerifier and OutputRegistry on any Ethereum JSON-RPC L1,
read every one back (code, the inbox's batcher, the verifier's and registry's parameters, the
registry's anchor at the L2 genesis) and fail on any difference. Then write into --out:

  contracts.json   the deployment (addresses, block, [rollups] parameters, anchor)
  l2node.toml      --config (if given) with [l1] naming the node's files:
                     contracts           = NODE_CONFIG_DIR/contracts.json
                     batcher_key_file    = NODE_KEYS_DIR/batcher.key
                     proposer_key_file   = NODE_KEYS_DIR/proposer.key
                     challenger_key_file = NODE_KEYS_DIR/challenger.key
                   and [rollups] as deployed ([node] genesis = NODE_CONFIG_DIR/genesis.json, copied, if set)

The deployer's key only pays for the deployment. The node signs with its own keys, one file per
role (a 0x-hex private key), which you put where l2node.toml says (e.g. a read-only Secret). The
L1 URL is never written (it may carry credentials): start the node with
  l2node up --config NODE_CONFIG_DIR/l2node.toml --l1-rpc URL
A node missing a file its roles need is not ready, and `l2node status` names the file.
"""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="l2node", description="A Layer-2 rollup node as a supervision tree.")
    sub = ap.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=pathlib.Path, default=None,
                       help=f"state and run files (default {default_data_dir()})")

    def wait_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", choices=["sealed", "safe", "finalized"],
                       help="follow the receipt until then (exit 1 if it is dropped)")
        p.add_argument("--timeout", type=_positive_seconds, default=None, metavar="S",
                       help="give up waiting after S seconds, exit 1 (default: "
                            + ", ".join(f"{k} {v:g}" for k, v in _WAIT_TIMEOUT_S.items()) + ")")

    p = sub.add_parser("up", help="run the tree in the foreground; Ctrl-C stops it")
    data_dir(p)
    p.add_argument("--config", type=pathlib.Path, help="TOML config file")
    p.add_argument("--l1-rpc", help="use this Ethereum JSON-RPC URL instead of a local anvil")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser(
        "deploy", help="deploy and verify the rollup contracts on an L1; write contracts.json and a node config",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=_DEPLOY_HELP)
    p.add_argument("--l1-rpc", required=True, help="the L1's Ethereum JSON-RPC URL (shown redacted)")
    p.add_argument("--key-file", required=True, type=pathlib.Path,
                   help="hex private key of the deployer (pays for the deployment; not one of the node's keys)")
    batcher = p.add_mutually_exclusive_group(required=True)
    batcher.add_argument("--batcher-address", help="0x address the sequencer will post batches from")
    batcher.add_argument("--batcher-key-file", help="... or the batcher's key file, to take its address from")
    p.add_argument("--config", type=pathlib.Path,
                   help="the node's TOML config: its [rollups] and [node] genesis are deployed, and it is "
                        "the base of the written l2node.toml")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."),
                   help="where contracts.json and l2node.toml go (default: the current directory)")
    p.add_argument("--node-config-dir", default=NODE_CONFIG_DIR,
                   help=f"where the node will find l2node.toml, contracts.json (and genesis.json) "
                        f"(default {NODE_CONFIG_DIR})")
    p.add_argument("--node-keys-dir", default=NODE_KEYS_DIR,
                   help=f"where the node will find batcher.key, proposer.key, challenger.key (default {NODE_KEYS_DIR})")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each deployment's receipt")
    p.add_argument("--force", action="store_true", help="replace an existing contracts.json in --out")
    p.set_defaults(fn=cmd_deploy)
    p = sub.add_parser("status", help="the live tree")
    data_dir(p)
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("restart", help="restart one child, e.g. `l2node restart l1`")
    data_dir(p)
    p.add_argument("id", help="child path, e.g. sequencer or core/sequencer")
    p.set_defaults(fn=cmd_restart)
    p = sub.add_parser("stop", help="stop the running tree gracefully")
    data_dir(p)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(fn=cmd_stop)

    p = sub.add_parser("logs", help="the tree's logs (DATA_DIR/logs), or one child's; --follow streams new lines")
    data_dir(p)
    p.add_argument("id", nargs="?", default=None, help="a child id (sequencer, rollups, supervisor...); default: all")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--lines", "-n", type=int, default=50, help="how many past lines first (default 50)")
    p.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    p.set_defaults(fn=cmd_logs)

    tx = sub.add_parser("tx", help="send and follow L2 transactions").add_subparsers(dest="tx", required=True)
    p = tx.add_parser("send", help="sign and send a transfer (from a dev account or a key file)")
    data_dir(p)
    p.add_argument("--to", required=True, help="0x recipient address")
    p.add_argument("--value", required=True, help="wei")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--dev", type=int, default=0, help="dev account index 0-9 (default 0)")
    who.add_argument("--key-file", help="file holding a hex private key")
    p.add_argument("--nonce", type=int, default=None, help="default: the account's next nonce")
    p.add_argument("--tip-gwei", type=float, default=1.0)
    p.add_argument("--max-fee-gwei", type=float, default=None, help="default: 2 x base fee + tip")
    wait_options(p)
    p.set_defaults(fn=cmd_tx_send)
    p = tx.add_parser("status", help="a transaction's receipt")
    data_dir(p)
    p.add_argument("hash")
    wait_options(p)
    p.set_defaults(fn=cmd_tx_status)
    p = sub.add_parser("account", help="an L2 account's balance and nonce")
    data_dir(p)
    p.add_argument("address")
    p.set_defaults(fn=cmd_account)
    p = sub.add_parser("blocks", help="recent L2 blocks; --follow streams new ones")
    data_dir(p)
    p.add_argument("--follow", action="store_true")
    p.add_argument("--from", dest="start", type=int, default=None)
    p.add_argument("--last", type=int, default=10)
    p.set_defaults(fn=cmd_blocks)
    p = sub.add_parser("outputs", help="output proposals on L1 and their status; --follow streams changes")
    data_dir(p)
    p.add_argument("--follow", action="store_true")
    p.add_argument("--from", dest="start", type=int, default=0, help="first output index")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_outputs)
    p = sub.add_parser("disputes", help="dispute games on L1; with an id, its moves")
    data_dir(p)
    p.add_argument("id", type=int, nargs="?", default=None)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(fn=cmd_disputes)
    from l2node import bridge_cli  # they import this module: registered here, not at import time

    bridge_cli.register(sub, data_dir)
    from l2node import channels_cli

    channels_cli.register(sub, data_dir)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with _traced(args):
            code: int = args.fn(args)
    except CliError as exc:
        print(f"l2node: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # `python -m l2node.cli`: run the module bridge_cli imports, not a second copy
    from l2node.cli import main as _main

    sys.exit(_main())
