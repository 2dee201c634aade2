"""The Kubernetes manifests (deploy/k8s/) are valid and say what the fleet needs.

Each object is checked against the Kubernetes API schemas (``kubernetes-validate``
ships them: no cluster, no network), strictly (a misspelt field fails). Then what
makes the fleet work: the frontends' probes ask the real health check, a stop drains
(preStop, a grace period longer than Murmur's own), a disruption budget, vLLM on a
GPU with /health probes, the container's arguments and environment accepted by
`murmur serve`'s own parser and settings, and the balancer hashing on the header the
bridge really sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mobile_bridge.connection import DEVICE_HEADER
from server.cli import _parser
from server.config import load_settings

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy/k8s"
VERSION = "1.30"  # the oldest Kubernetes these manifests are checked against


def _docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _objects() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in _docs() if doc["kind"] != "Kustomization"]


def _one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for _, d in _objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    ("file", "doc"), _objects(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_every_object_is_valid_kubernetes(file, doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_kustomization_lists_every_file():
    [kustomization] = [d for _, d in _docs() if d["kind"] == "Kustomization"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_frontends_probe_health_and_drain_on_stop(tmp_path):
    frontend = _one("Deployment", "murmur-frontend")
    pod = frontend["spec"]["template"]["spec"]
    c = _container(frontend)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][-1] == "/opt/murmur/healthcheck.py", probe
    assert (ROOT / "deploy/healthcheck.py").is_file()
    assert c["readinessProbe"]["failureThreshold"] == 1  # a draining pod leaves at once
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (tmp_path / "none.toml").write_text("")  # not this machine's own settings file
    settings = load_settings(tmp_path / "none.toml", env=env)  # every MURMUR_* is real
    assert settings.fleet.store.startswith("redis://") and settings.fleet.advertise
    assert settings.server.tls_cert and settings.server.tls_key
    assert settings.server.port == c["ports"][0]["containerPort"]
    # Kubernetes kills the pod after the grace period: it must outlast the preStop
    # wait, Murmur's own grace and the sessions' closing.
    waited = float(pre_stop[-1]) + settings.server.grace_s + 10
    assert pod["terminationGracePeriodSeconds"] >= waited
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(Path(settings.server.tls_cert).parent) in mounts


def test_the_frontend_arguments_are_what_murmur_serve_accepts():
    for workload in ("murmur-frontend",):
        args = _parser().parse_args(_container(_one("Deployment", workload))["args"])
        assert args.command == "serve"
        assert args.model.startswith("http://vllm:") and args.model.endswith("/v1")
    vllm = _one("Service", "vllm")
    assert f":{vllm['spec']['ports'][0]['port']}/" in args.model


def test_every_workload_has_a_disruption_budget_matching_its_pods():
    budgets = [d for _, d in _objects() if d["kind"] == "PodDisruptionBudget"]
    for name in ("murmur-frontend", "vllm", "murmur-balancer"):
        labels = _one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]  # fmt: skip
        assert len(matching) == 1, name


def test_services_select_their_pods():
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for _, d in _objects()
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for _, svc in (x for x in _objects() if x[1]["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pods.values()), svc


def test_vllm_runs_on_a_gpu_with_health_probes_and_prefix_caching():
    c = _container(_one("Deployment", "vllm"))
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health", probe
    assert "--enable-prefix-caching" in c["args"]


def test_the_balancer_keeps_a_device_on_one_frontend_and_skips_draining_ones():
    envoy = yaml.safe_load(_one("ConfigMap", "murmur-balancer")["data"]["envoy.yaml"])
    [listener] = envoy["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    [route] = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["hash_policy"] == [{"header": {"header_name": DEVICE_HEADER}}]
    assert route["route"]["timeout"] == "0s"  # streams are not cut
    [cluster] = envoy["static_resources"]["clusters"]
    assert cluster["lb_policy"] == "RING_HASH" and cluster["type"] == "STRICT_DNS"
    assert "grpc_health_check" in cluster["health_checks"][0]
    assert cluster["common_lb_config"]["healthy_panic_threshold"]["value"] == 0
    [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    frontend = _one("Service", "murmur-frontend")
    assert address["address"] == "murmur-frontend" and frontend["spec"]["clusterIP"] == "None"
    assert address["port_value"] == frontend["spec"]["ports"][0]["port"]
    # The balancer presents the frontends' certificate: the bridge's pin still holds.
    assert _secrets("murmur-balancer") == _secrets("murmur-frontend") == {"murmur-tls"}


def _secrets(deployment: str) -> set[str]:
    volumes = _one("Deployment", deployment)["spec"]["template"]["spec"]["volumes"]
    return {v["secret"]["secretName"] for v in volumes if "secret" in v}
