"""The CRD on a real API server: it is accepted, it rejects every HAService in tests/data/bad with
the expected message naming the field, accepts every sample and what the models accept, keeps
category immutable, explains every field and shows the effective replicas.

The unit tier checks that the models reject the same files (tests/unit/test_bad_corpus.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from haoperator.api import HAService
from haoperator.cli import main
from testenv.harness.cluster import REPO
from tests.unit.corpus import BadInput, bad_inputs

pytestmark = pytest.mark.cluster

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
CRD = REPO / "crds" / "haservice.yaml"
SAMPLES = sorted(
    path
    for path in (REPO / "manifests" / "samples").glob("*.yaml")
    if path.name != "kustomization.yaml"
)


@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> None:
    applied = kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=haoperator-tests",
        "-f", str(CRD),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    established = kubectl(
        "wait", "--for=condition=Established", "crd/haservices.haoperator.dev", "--timeout=60s"
    )
    assert established.returncode == 0, established.stderr


@pytest.fixture(scope="module")
def admission_namespace(kubectl: Kubectl, crd: None) -> Iterator[str]:
    """One namespace for the module: every check here is a server-side dry run or cleans up."""
    name = f"api-check-{uuid.uuid4().hex[:6]}"
    created = kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    # enforce refuses pods; warn is what makes a Deployment or StatefulSet whose pods would be
    # refused say so at its own admission ("would violate PodSecurity"), which a test reads.
    restricted = kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    assert restricted.returncode == 0, restricted.stderr
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def _create(
    kubectl: Kubectl, namespace: str, document: dict[str, Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    """JSON, not YAML: a YAML 1.1 reader would turn a container named `y` into a boolean."""
    document = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
    return kubectl("create", "-f", "-", *extra, stdin=json.dumps(document))


TYPES_SHOWN_AS_VALUES = ('Invalid value: "object"', 'Invalid value: "string"',
                         'Invalid value: "integer"', 'Invalid value: ""')  # fmt: skip
"""What the API server prints for a rule without a reason: the schema's type where the value
belongs."""


@pytest.mark.parametrize("bad", bad_inputs(), ids=lambda bad: bad.path.stem)
def test_the_api_server_rejects_it_naming_the_field(
    bad: BadInput, kubectl: Kubectl, admission_namespace: str
) -> None:
    result = _create(kubectl, admission_namespace, yaml.safe_load(bad.text), "--dry-run=server")
    assert result.returncode != 0, f"{bad.path.name} was accepted"
    assert bad.expect in result.stderr
    assert bad.field in result.stderr
    assert not [shown for shown in TYPES_SHOWN_AS_VALUES if shown in result.stderr], result.stderr


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_api_server_accepts_every_sample(
    sample: Any, kubectl: Kubectl, admission_namespace: str
) -> None:
    for document in yaml.safe_load_all(sample.read_text()):
        if document["apiVersion"].startswith("haoperator.dev/"):
            result = _create(kubectl, admission_namespace, document, "--dry-run=server")
            assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_the_api_server_accepts_what_a_sample_renders_under_restricted_pod_security(
    sample: Any, kubectl: Kubectl, admission_namespace: str
) -> None:
    out = io.StringIO()
    assert main(["render", "-f", str(sample), "-n", admission_namespace], out=out) == 0
    for child in yaml.safe_load_all(out.getvalue()):
        result = kubectl("create", "-f", "-", "--dry-run=server", stdin=json.dumps(child))
        assert result.returncode == 0, result.stderr
        assert "would violate PodSecurity" not in result.stderr


def _haservice(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": name},
        "spec": {
            "category": "Clustered",
            "template": {
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            },
            **spec,
        },
    }


PAUSE = "registry.k8s.io/pause:3.10"
ACCEPTED = {
    "float-cpu": {"category": "LoadBalanced", "template": {"spec": {"containers": [
        {"name": "app", "image": PAUSE,
         "resources": {"requests": {"cpu": 0.5, "memory": "64Mi"}, "limits": {"cpu": 1}}}]}}},
    "target-port-on-a-sidecar": {
        "category": "LoadBalanced",
        "template": {"spec": {
            "initContainers": [{"name": "proxy", "image": PAUSE, "restartPolicy": "Always",
                                "ports": [{"name": "web", "containerPort": 8080}]}],
            "containers": [{"name": "app", "image": PAUSE}]}},
        "service": {"ports": [{"name": "http", "port": 80, "targetPort": "web"}]}},
    "udp-target-port": {
        "category": "LoadBalanced",
        "template": {"spec": {"containers": [{"name": "dns", "image": PAUSE, "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53}]}]}},
        "service": {"ports": [{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                             {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp"}]}},
    "elector-port-beside-a-udp-port": {
        "category": "ActivePassive",
        "template": {"spec": {"containers": [{"name": "app", "image": PAUSE, "ports": [
            {"containerPort": 8099, "protocol": "UDP"}, {"containerPort": 80}]}]}}},
    "at-the-bounds": {
        "category": "Clustered", "replicas": 1000, "clustered": {"quorum": 1000},
        "placement": {"topologyKey": "topology.kubernetes.io/zone"},
        "recovery": {"restart": {"maxRestarts": 1000, "windowSeconds": 86400},
                     "nodeLoss": {"graceSeconds": 3600}},
        "template": {"spec": {"containers": [{"name": "app", "image": PAUSE}]}}},
}  # fmt: skip
"""Edges of the new rules that both sides must take."""


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_the_api_server_accepts_what_the_models_accept(
    name: str, kubectl: Kubectl, admission_namespace: str
) -> None:
    document = {**_haservice(name), "spec": ACCEPTED[name]}
    HAService.model_validate(document)
    result = _create(kubectl, admission_namespace, document, "--dry-run=server")
    assert result.returncode == 0, result.stderr


def _patch(kubectl: Kubectl, namespace: str, name: str, patch: dict[str, Any]) -> str:
    result = kubectl(
        "patch",
        "haservices.haoperator.dev",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    assert result.returncode != 0, f"{patch} was accepted"
    return result.stderr


def test_category_and_pod_management_policy_are_immutable(
    kubectl: Kubectl, admission_namespace: str
) -> None:
    created = _create(kubectl, admission_namespace, _haservice("immutable"))
    assert created.returncode == 0, created.stderr
    try:
        assert "category is immutable" in _patch(
            kubectl, admission_namespace, "immutable", {"spec": {"category": "LoadBalanced"}}
        )
        assert "clustered.podManagementPolicy is immutable" in _patch(
            kubectl,
            admission_namespace,
            "immutable",
            {"spec": {"clustered": {"podManagementPolicy": "OrderedReady"}}},
        )
    finally:
        kubectl("delete", "haservices.haoperator.dev", "immutable", "-n", admission_namespace)


def test_the_server_applies_the_documented_defaults(
    kubectl: Kubectl, admission_namespace: str
) -> None:
    result = _create(
        kubectl, admission_namespace, _haservice("defaults", clustered={}), "--dry-run=server",
        "-o", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout)["spec"]
    assert spec["clustered"] == {"quorum": "Majority", "podManagementPolicy": "Parallel"}


@pytest.mark.parametrize(
    "field", ["category", "replicas", "clustered.quorum", "activePassive.renewDeadlineSeconds",
              "activePassive.electorPort", "recovery.nodeLoss.action", "service.ports.targetPort",
              "placement.topologyKey", "template.spec.initContainers",
              "template.spec.containers.resources.requests", "template.spec.volumes.name"],
)  # fmt: skip
def test_kubectl_explain_shows_the_description(kubectl: Kubectl, crd: None, field: str) -> None:
    result = kubectl("explain", f"haservices.spec.{field}", "--api-version=haoperator.dev/v1alpha1")
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("DESCRIPTION:", 1)[1].strip()
    assert len(description) > 20


def test_the_replicas_column_shows_the_effective_count(
    kubectl: Kubectl, admission_namespace: str
) -> None:
    """Blank spec.replicas (the category's default) still shows a count: the operator's
    status.desiredReplicas."""
    created = _create(kubectl, admission_namespace, _haservice("column"))
    assert created.returncode == 0, created.stderr
    try:
        patched = kubectl(
            "patch", "haservices.haoperator.dev", "column", "-n", admission_namespace,
            "--subresource=status", "--type=merge", "-p", '{"status": {"desiredReplicas": 3}}',
        )  # fmt: skip
        assert patched.returncode == 0, patched.stderr
        table = kubectl("get", "haservices.haoperator.dev", "column", "-n", admission_namespace)
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()[:2]
        assert row[header.index("REPLICAS") :].split()[0] == "3"
    finally:
        kubectl("delete", "haservices.haoperator.dev", "column", "-n", admission_namespace)
