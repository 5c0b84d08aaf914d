"""The Kubernetes manifests and the worker image, checked offline.

Every manifest validates strictly against the Kubernetes OpenAPI schemas (kubernetes-validate,
no cluster needed); the Deployment runs a command line that the real CLI parses; the image's
Dockerfile is multi-stage and runs as a non-root user; its entrypoint really execs the CLI.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from flashalpha.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[str, dict]:
    kustomization = documents(K8S / "kustomization.yaml")[0]
    found = {}
    for name in kustomization["resources"]:
        for doc in documents(K8S / name):
            found[doc["kind"]] = doc
    return found


def test_kustomization_lists_every_manifest():
    kustomization = documents(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    kinds = set(resources())
    assert {
        "Namespace",
        "ConfigMap",
        "Service",
        "EndpointSlice",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= kinds
    image = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.split(":")[0] in {i["name"] for i in kustomization["images"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "manifest", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_every_manifest_validates_against_the_kubernetes_schemas(manifest, version):
    for doc in documents(K8S / manifest):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_is_not_vacuous():
    deployment = copy.deepcopy(resources()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["portt"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def worker_container() -> dict:
    return resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def expand(argument: str, environment: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: environment[m.group(1)], argument)


def test_deployment_runs_a_command_line_the_real_cli_accepts():
    container = worker_container()
    environment = resources()["ConfigMap"]["data"]
    assert (
        container["envFrom"][0]["configMapRef"]["name"]
        == resources()["ConfigMap"]["metadata"]["name"]
    )
    argv = [expand(a, environment) for a in container["args"]]
    args = build_parser().parse_args(argv)
    assert args.command == "worker"
    assert args.connect == "tcp://flashalpha-broker:5557"
    assert args.health == ("0.0.0.0", 8080)
    assert args.threads == int(environment["FLASHALPHA_WORKER_THREADS"])
    # The broker address names the Service, on the Service's port.
    service = resources()["Service"]
    assert args.connect.endswith(
        f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    )
    # The probes hit the port --health serves.
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert port == args.health[1]
    # The image's entrypoint is what the Deployment runs, and it execs `flashalpha "$@"`.
    dockerfile = (ROOT / "workers" / "Dockerfile").read_text()
    assert f'ENTRYPOINT ["{container["command"][0]}"]' in dockerfile
    assert 'exec flashalpha "$@"' in (ROOT / "workers" / "entrypoint.sh").read_text()


def test_deployment_is_operable():
    spec = resources()["Deployment"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in ("/healthz", "/readyz")
    assert spec["terminationGracePeriodSeconds"] >= 10
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = resources()["HorizontalPodAutoscaler"]["spec"]
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    pdb = resources()["PodDisruptionBudget"]["spec"]
    labels = resources()["Deployment"]["spec"]["selector"]["matchLabels"]
    assert pdb["selector"]["matchLabels"] == labels
    assert hpa["scaleTargetRef"]["name"] == resources()["Deployment"]["metadata"]["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_and_its_output_validates():
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(built) == sum(len(documents(p)) for p in K8S.glob("*.yaml")) - 1
    for doc in built:
        assert doc["metadata"].get("namespace", "flashalpha") == "flashalpha"
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)


def test_dockerfile_is_multi_stage_slim_and_non_root():
    lines = [line.strip() for line in (ROOT / "workers" / "Dockerfile").read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert "AS build" in stages[0] and "slim" in stages[-1]
    assert any("pip wheel" in line for line in lines)
    runtime = lines[lines.index(stages[-1]) :]
    assert not any("build-essential" in line for line in runtime)
    users = [line for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("root", "0")


def test_entrypoint_seeds_the_numba_cache_and_runs_the_cli(tmp_path):
    seed = tmp_path / "seed"
    (seed / "kernels").mkdir(parents=True)
    (seed / "kernels" / "index.nbi").write_bytes(b"cache")
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "FLASHALPHA_NUMBA_SEED": str(seed),
        "NUMBA_CACHE_DIR": str(cache),
    }
    result = subprocess.run(
        ["sh", str(ROOT / "workers" / "entrypoint.sh"), "worker", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--connect" in result.stdout
    assert (cache / "kernels" / "index.nbi").read_bytes() == b"cache"
    assert (cache / ".seeded").exists()


def test_curve_keys_come_from_an_optional_secret_the_worker_reads_when_enabled(monkeypatch):
    """The Secret is optional (pods run without it); uncommenting the ConfigMap's two CURVE
    lines points the worker's --curve-* options (by environment) into its mount."""
    spec = resources()["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"]["optional"] is True
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    mount = next(m for m in worker_container()["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    text = (K8S / "configmap.yaml").read_text()
    assert "\n  FLASHALPHA_WORKER_CURVE" not in text  # off by default
    enabled = yaml.safe_load(
        text.replace("  # FLASHALPHA_WORKER_CURVE", "  FLASHALPHA_WORKER_CURVE")
    )
    environment = enabled["data"]
    for name in ("FLASHALPHA_WORKER_CURVE_SERVER_KEY", "FLASHALPHA_WORKER_CURVE_KEY"):
        assert os.path.dirname(environment[name]) == mount["mountPath"]
        monkeypatch.setenv(name, environment[name])
    argv = [expand(a, environment) for a in worker_container()["args"]]
    args = build_parser().parse_args(argv)
    assert args.curve_server_key == f"{mount['mountPath']}/server.key"
    assert args.curve_key == f"{mount['mountPath']}/worker.key_secret"
    # The file names are the Secret's keys, as OPERATIONS.md creates them.
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert f"secret generic {volume['secret']['secretName']}" in operations
    assert (
        "--from-file=server.key=" in operations and "--from-file=worker.key_secret=" in operations
    )
    for document in documents(K8S / "deployment.yaml"):
        kubernetes_validate.validate(document, KUBERNETES_VERSIONS[0], strict=True)
