"""The tree's one Prometheus endpoint, scraped from a real `l2node up`: the counters move with
what happens (a transfer, a worker killed), survive the worker's restart, and every metric the
Grafana dashboard and the alert rules name is one the tree really exports."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import urllib.request

import grpc
import promql_parser as promql
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from protos.l2node.supervisor.v1 import supervisor_pb2 as pb
from services.runtime import exit_reason
from tests.node.test_up import Node, cli, status, wait_for
from tests.ports import free_base_port

OPS = pathlib.Path(__file__).resolve().parents[2] / "ops"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, labels), and every metric name the endpoint declares."""
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        for s in family.samples:
            names.add(s.name)
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples, names


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects, from its syntax tree (ValueError if it is not PromQL)."""
    found: set[str] = set()

    def walk(e: object) -> None:
        if isinstance(e, promql.MatrixSelector):
            e = e.vector_selector
        if isinstance(e, promql.VectorSelector):
            assert e.name, f"a selector without a metric name in {expr!r}"
            found.add(e.name)
        elif isinstance(e, promql.BinaryExpr):
            walk(e.lhs)
            walk(e.rhs)
        elif isinstance(e, promql.Call):
            for arg in e.args:
                walk(arg)
        elif isinstance(e, promql.AggregateExpr | promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
            walk(e.expr)

    walk(promql.parse(expr))
    return found


def test_metric_names_come_from_the_syntax_tree() -> None:
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(a_bucket[1m]))) > on() group_left() (b{x="1"})'
                        ' or -max_over_time(c[5m:1m])') == {"a_bucket", "b", "c"}
    with pytest.raises(ValueError):
        metric_names("rate(a[1m]")


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_one_endpoint_serves_workers_and_supervisor_across_a_transfer_and_a_kill(node: Node) -> None:
    url = node.doc()["metrics"]
    assert url == f"http://127.0.0.1:{node.base_port + 8}/metrics"  # after the 7 workers' ports
    assert status(node.data_dir)["metrics"] == url
    samples, _ = scrape(url)
    assert value(samples, "l2node_transactions_accepted_total") == 0
    assert value(samples, "l2node_child_up", child="sequencer", kind="worker") == 1
    assert value(samples, "l2node_child_restarts_total", child="sequencer") == 0  # there before the first one

    to = "0x000000000000000000000000000000000000bEEF"
    cli(node.data_dir, "tx", "send", "--to", to, "--value", "5", "--dev", "3", "--wait", "safe")
    samples, _ = scrape(url)
    assert value(samples, "l2node_transactions_accepted_total") == 1
    assert (value(samples, "l2node_batches_posted_total") or 0) >= 1
    assert (value(samples, "l2node_batch_posted_bytes_total") or 0) > 0

    def heads() -> Samples | None:
        now, _ = scrape(url)
        safe, derived = value(now, "l2node_l2_head_block", status="safe"), value(now, "l2node_derived_head_block")
        return now if (safe or 0) >= 1 and (derived or 0) >= 1 else None

    samples = wait_for(heads, 30, "SAFE and derived heads")
    assert value(samples, "l2node_l2_head_lag_blocks", status="safe") is not None
    assert value(samples, "l2node_derivation_lag_blocks") is not None
    assert (value(samples, "l2node_l2_head_block", status="sealed") or 0) >= 1
    assert (value(samples, "l2node_seal_duration_seconds_count") or 0) >= 1
    assert any(k[0] == "l2node_l1_requests_total" and ("service", "sequencer") in k[1] and v > 0
               for k, v in samples.items())
    assert value(samples, "l2node_breaker_state", service="sequencer", target="l1") == 0
    assert value(samples, "l2node_pool_transactions", pool="pending") == 0  # sealed: the pool is empty

    refused = cli(node.data_dir, "tx", "send", "--to", to, "--value", str(10**40), "--dev", "3", check=False)
    assert refused.returncode != 0
    samples, _ = scrape(url)
    counted = {dict(k[1])["reason"]: v for k, v in samples.items() if k[0] == "l2node_transactions_refused_total"}
    assert sum(counted.values()) == 1 and counted["INSUFFICIENT_FUNDS"] == 1, refused.stderr

    victim = next(c for c in node.doc()["children"] if c["id"] == "sequencer")
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted() -> Samples | None:
        now, _ = scrape(url)
        return now if value(now, "l2node_child_restarts_total", child="sequencer") == 1 else None

    samples = wait_for(restarted, 30, "the restart counted")
    assert value(samples, "l2node_child_exits_total", child="sequencer", reason="SIGKILL") == 1
    # The dead worker's counters stay in the sum; its gauges went with it (no pid label, no double count).
    assert value(samples, "l2node_transactions_accepted_total") == 1
    wait_for(lambda: value(scrape(url)[0], "l2node_child_up", child="sequencer", kind="worker") == 1, 30,
             "sequencer back up")
    assert value(scrape(url)[0], "l2node_pool_transactions", pool="pending") == 0


def test_a_worker_loop_that_crashes_is_counted_by_reason(node: Node) -> None:
    spec = pb.ChildSpec(id="crashy", restart=pb.RESTART_TYPE_TEMPORARY, worker=pb.WorkerStart(
        definition="tests.workers.echo:WORKER", address=f"127.0.0.1:{free_base_port(1)}",
        settings_json=json.dumps({"tasks": "crash"})))
    with contextlib.suppress(grpc.RpcError):  # its task tree may give up before or after it is SERVING
        node.control().StartChild(pb.StartChildRequest(spec=spec), timeout=30)
    url = node.doc()["metrics"]
    wait_for(lambda: (value(scrape(url)[0], "l2node_task_exits_total", service="crashy", task="crasher",
                            reason="error_RuntimeError") or 0) >= 1, 30, "the task's crash counted")


def _dashboard_names() -> set[str]:
    dash = json.loads((OPS / "grafana" / "l2node.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs
    return {n for e in exprs for n in metric_names(e)}


def _alert_names() -> set[str]:
    doc = yaml.safe_load((OPS / "prometheus" / "alerts.yaml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"L2SafeLagGrowing", "L2BreakerOpen", "L2RestartsEscalating",
                                           "L2DisputeOpen"}
    for g in doc["groups"]:
        assert set(g) <= {"name", "interval", "rules", "limit"} and g["name"]
    for r in rules:  # Prometheus' rule-file shape: an alert has a name, a PromQL expression, maybe more
        assert set(r) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, r
        assert isinstance(r["expr"], str) and metric_names(r["expr"]), r
        assert all(isinstance(v, str) for v in {**r.get("labels", {}), **r.get("annotations", {})}.values())
    return {n for r in rules for n in metric_names(r["expr"])}


def test_the_dashboard_and_the_alerts_name_only_metrics_the_tree_exports(node: Node) -> None:
    wanted = _dashboard_names() | _alert_names()
    _, names = scrape(node.doc()["metrics"])
    assert all(n.startswith("l2node_") for n in wanted), wanted
    missing = sorted(wanted - names)
    assert not missing, f"named in ops/ but not exported: {missing}"


def test_a_taken_metrics_port_is_refused_by_name(tmp_path: pathlib.Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(AssertionError, match="cannot serve metrics"):
            Node(tmp_path, node_extra=f"metrics_port = {port}\n")


@pytest.mark.parametrize(("reason", "label"), [
    ("exited with code 1", "exit_code_1"), ("killed by SIGKILL", "SIGKILL"),
    ("killed by SIGSEGV (core dumped)", "SIGSEGV"), ("hung: 3 probes missed in a row (DEADLINE_EXCEEDED)", "hung"),
    ("did not stop within 500 ms; killed by SIGKILL", "stop_timeout"),
    ("ValueError: boom", "error_ValueError"), ("shutdown", "shutdown"), ("vanished before it was watched", "other"),
])
def test_exit_reasons_become_labels_of_bounded_cardinality(reason: str, label: str) -> None:
    assert exit_reason(reason) == label
