"""The samples in manifests/samples: valid, rendered to valid Kubernetes, restricted-compliant,
and all listed in the kustomization (what their pods reference: test_sample_references.py)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator.api import HAService
from haoperator.cli import main
from testenv.harness.cluster import REPO
from tests.unit import pod_security
from tests.unit.kubernetes_schemas import assert_valid

SAMPLES_DIR = REPO / "manifests" / "samples"
SAMPLES = sorted(path for path in SAMPLES_DIR.glob("*.yaml") if path.name != "kustomization.yaml")
PUBLIC_IMAGE = re.compile(r"(docker\.io|quay\.io|ghcr\.io|registry\.k8s\.io)/[a-z0-9./_-]+:[\w.-]+")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _haservices(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in _documents(path) if doc["apiVersion"].startswith("haoperator.dev/")]


def _rendered(path: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert main(["render", "-f", str(path)], out=out) == 0
    return list(yaml.safe_load_all(out.getvalue()))


def test_the_kustomization_lists_every_sample_and_what_they_share() -> None:
    """Every file: the samples, and shared/ (their namespace, nova-config); the quickstart is a
    kustomization of its own."""
    kustomization = yaml.safe_load((SAMPLES_DIR / "kustomization.yaml").read_text())
    files = sorted(
        path.relative_to(SAMPLES_DIR).as_posix()
        for path in SAMPLES_DIR.rglob("*.yaml")
        if path.name != "kustomization.yaml" and "quickstart" not in path.parts
    )
    assert sorted(kustomization["resources"]) == files
    assert {path.name for path in SAMPLES} <= set(files)


def test_every_category_has_a_sample() -> None:
    categories = {doc["spec"]["category"] for path in SAMPLES for doc in _haservices(path)}
    assert categories == {"LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"}


def test_the_samples_cover_the_classic_services() -> None:
    names = {doc["metadata"]["name"] for path in SAMPLES for doc in _haservices(path)}
    assert {"nova-api", "galera", "rabbitmq", "nova-conductor", "haproxy", "cinder-volume"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_sample_is_valid(sample: Path) -> None:
    assert _haservices(sample)
    for document in _documents(sample):
        if document["apiVersion"].startswith("haoperator.dev/"):
            HAService.model_validate(document)
        else:
            assert_valid(document)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_sample_renders_to_valid_kubernetes(sample: Path) -> None:
    for child in _rendered(sample):
        assert_valid(child)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_sample_pods_meet_the_restricted_pod_security_standard(sample: Path) -> None:
    workloads = [c for c in _rendered(sample) if c["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for workload in workloads:
        assert pod_security.violations(workload["spec"]["template"]["spec"]) == []


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_sample_uses_public_images_with_a_tag(sample: Path) -> None:
    for document in _haservices(sample):
        for container in document["spec"]["template"]["spec"]["containers"]:
            assert PUBLIC_IMAGE.fullmatch(container["image"]), container["image"]
            assert not container["image"].endswith(":latest")


def test_the_restricted_check_catches_a_root_container() -> None:
    pod = {"containers": [{"name": "app", "image": "x", "securityContext": {"privileged": True}}]}
    assert "app: runAsNonRoot is not true" in pod_security.violations(pod)
    assert "app: privileged" in pod_security.violations(pod)
