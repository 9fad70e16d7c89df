"""The container and Kubernetes examples say what the sidecar does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def pod(name: str = "pod.yaml") -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((REPO / "deploy/kubernetes" / name).read_text())
    return spec


def test_the_pod_runs_the_sidecar_beside_a_sender() -> None:
    spec = pod()
    assert spec["kind"] == "Pod"
    names = [c["name"] for c in spec["spec"]["containers"]]
    assert names == ["sender", "msgarchive"]


def test_readiness_asks_grpc_health_and_liveness_only_needs_an_answer() -> None:
    (sidecar,) = [c for c in pod()["spec"]["containers"] if c["name"] == "msgarchive"]
    ready = sidecar["readinessProbe"]["exec"]["command"]
    alive = sidecar["livenessProbe"]["exec"]["command"]
    assert ready[:2] == ["msgarchive", "health"]
    assert "--alive" not in ready
    assert alive[:3] == ["msgarchive", "health", "--alive"]
    assert sidecar["securityContext"]["runAsNonRoot"] is True


def test_the_image_is_non_root_with_a_health_check() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile
    assert 'CMD ["msgarchive", "health"' in dockerfile
    assert "EXPOSE 50051 9464" in dockerfile
    assert dockerfile.count("FROM ") == 2  # multi-stage


def test_the_native_sidecar_starts_before_the_sender_and_outlives_it() -> None:
    spec = pod("pod-native-sidecar.yaml")["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == "msgarchive"
    assert sidecar["restartPolicy"] == "Always"  # what makes an init container a sidecar
    assert sidecar["startupProbe"]["exec"]["command"][:2] == ["msgarchive", "health"]
    assert sidecar["readinessProbe"]["exec"]["command"][:2] == ["msgarchive", "health"]
    assert "--alive" not in sidecar["readinessProbe"]["exec"]["command"]
    assert [c["name"] for c in spec["containers"]] == ["sender"]
    grace = int(sidecar["env"][-1]["value"])  # MSGARCHIVE_GRACE_PERIOD
    assert sidecar["env"][-1]["name"] == "MSGARCHIVE_GRACE_PERIOD"
    assert spec["terminationGracePeriodSeconds"] > grace  # the sender's drain, then this


def test_both_pod_variants_run_the_same_sidecar() -> None:
    plain = next(c for c in pod()["spec"]["containers"] if c["name"] == "msgarchive")
    native = pod("pod-native-sidecar.yaml")["spec"]["initContainers"][0]
    for field in ("image", "args", "env", "livenessProbe", "readinessProbe", "securityContext"):
        assert plain[field] == native[field], field
