"""The operator installed with Helm, as users install it that way, on the real node:
`helm install` of charts/haoperator, with values that change only what the kustomize overlay
(tests/realnode/overlay/operator) changes — the image, which testenv/image built and the real
node's containerd holds (there is no registry), and the real node's label and taint — brings the
operator's Deployment Available there; `helm uninstall` removes everything the release made but
the HAService CRD, which Helm never deletes (it installs crds/ once and leaves them: Helm's
convention, so that uninstalling an operator never deletes its users' resources).

The chart's helm is testenv/build's (`testenv/build helm`, built here if the cache lacks it). The
release's own record lives in a namespace of its own, made for the test: the chart makes the
operator's namespace itself, and Helm cannot keep a release's record in a namespace the release
creates."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from testenv.harness.cluster import REPO, kubeconfig_path, wait_until
from tests.realnode.conftest import check_real_node
from tests.realnode.support import (
    INSTALLATIONS,
    LOCAL_IMAGE,
    OPERATOR,
    REAL_NODE,
    REAL_NODE_KEY,
    SYSTEM_NAMESPACE,
    available,
    kubectl,
    kubectl_ok,
    kubelet_probes,
    local_images,
    operator_pod,
    other_operators,
    run_testenv,
)

# The operator installed by `kubectl apply -k` (the `installed` fixture, for the other modules)
# and this release make the same objects, so they cannot be installed together. Modules that set
# RESTARTS_CLUSTER run last, after every module that uses `installed`, and find that installation
# removed (tests/realnode/conftest.py): exactly what this module needs, though it restarts nothing.
RESTARTS_CLUSTER = True
pytestmark = pytest.mark.cluster
CHART = REPO / "charts" / "haoperator"
RELEASE = "haoperator"
CRD = "haservices.haoperator.dev"
TIMEOUT = 180


@dataclass
class Release:
    helm: Path
    home: Path
    namespace: str  # where Helm keeps the release's record
    core: client.CoreV1Api
    apps: client.AppsV1Api
    installed: bool = True

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        result = subprocess.run(
            [str(self.helm), "--kubeconfig", str(kubeconfig_path()), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT + 60,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result

    def manifest(self) -> list[dict[str, Any]]:
        """What the release made: `helm get manifest` (templates, not crds/)."""
        text = self.run("get", "manifest", RELEASE, "--namespace", self.namespace).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def uninstall(self, check: bool = True) -> None:
        """`helm uninstall --wait`; check=False after a failed install, which may have left no
        release to uninstall."""
        if self.installed:
            self.run("uninstall", RELEASE, "--namespace", self.namespace, "--wait",
                     "--timeout", f"{TIMEOUT}s", check=check)  # fmt: skip
            self.installed = False


def local_values() -> dict[str, Any]:
    """What the kustomize overlay for this machine changes, as values: the local image, and the
    real node's label and taint beside the chart's own nodeSelector and tolerations."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    repository, tag = LOCAL_IMAGE.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag},
        "nodeSelector": {**defaults["nodeSelector"], REAL_NODE_KEY: "true"},
        "tolerations": [
            *defaults["tolerations"],
            {"key": REAL_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"},
        ],
    }


def namespace_gone(core: client.CoreV1Api) -> bool:
    try:
        core.read_namespace(SYSTEM_NAMESPACE)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    # Clients of their own: a module that restarted the cluster before this one left the
    # session's clients with old credentials.
    api = config.new_client_from_config(str(kubeconfig_path()))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    check_real_node(core)
    for installation in INSTALLATIONS:  # the kustomize install, if a module made it
        installation.uninstall()
    wait_until(
        lambda: not other_operators(), timeout=900, interval=2, what="other operators to stop"
    )
    wait_until(
        lambda: namespace_gone(core),
        timeout=TIMEOUT,
        what=f"namespace {SYSTEM_NAMESPACE} (an earlier install's) to be gone",
    )
    local_images()
    helm = Path(run_testenv("build", "helm", timeout=1500).stdout.strip()) / "helm"
    home = tmp_path_factory.mktemp("helm-home")
    values = home / "local-values.yaml"
    values.write_text(yaml.safe_dump(local_values()))
    namespace = f"helm-release-{uuid.uuid4().hex[:5]}"
    core.create_namespace(
        {"metadata": {"name": namespace, "labels": {"haoperator.dev/test": "true"}}}
    )
    found = Release(helm, home, namespace, core, apps)
    try:
        found.run("install", RELEASE, str(CHART), "--namespace", namespace, "--values", str(values),
                  "--wait", "--timeout", f"{TIMEOUT}s")  # fmt: skip
        yield found
    finally:
        found.uninstall(check=False)
        core.delete_namespace(namespace, propagation_policy="Background")


def test_helm_install_brings_the_operator_available_on_the_real_node(release: Release) -> None:
    core, apps = release.core, release.apps
    wait_until(lambda: available(apps), timeout=TIMEOUT, what="the operator's Deployment Available")
    deployment = apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE)
    labels = deployment.metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert deployment.metadata.annotations["meta.helm.sh/release-namespace"] == release.namespace
    pod = wait_until(lambda: operator_pod(core), timeout=60, what="the operator's pod")
    assert pod.spec.node_name == REAL_NODE
    (status,) = core.read_namespaced_pod(
        pod.metadata.name, SYSTEM_NAMESPACE
    ).status.container_statuses
    assert status.image == LOCAL_IMAGE
    assert status.ready
    assert status.restart_count == 0
    # The kubelet on the real node probes it, and its probes pass.
    wait_until(
        lambda: kubelet_probes(core, SYSTEM_NAMESPACE, pod.metadata.name, "operator", "Readiness")
        .get("successful", 0) >= 1,
        timeout=60,
        what="a successful readiness probe of the operator, counted by the kubelet",
    )  # fmt: skip
    logs = kubectl_ok("-n", SYSTEM_NAMESPACE, "logs", pod.metadata.name)
    started = [json.loads(line) for line in logs.splitlines() if '"operator started"' in line]
    assert [line["namespaces"] for line in started] == ["all"]
    # The operator's namespace is the chart's: the restricted Pod Security level, as manifests/.
    labels = core.read_namespace(SYSTEM_NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    # The CRD is there and served (crds/: installed by Helm unless the cluster had it already).
    crd = kubectl_ok(
        "get", "crd", CRD, "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    )
    assert crd == "True"
    status_doc = json.loads(
        release.run("status", RELEASE, "--namespace", release.namespace, "-o", "json").stdout
    )
    assert status_doc["info"]["status"] == "deployed"


def test_helm_uninstall_removes_everything_but_the_crd(release: Release) -> None:
    made = release.manifest()
    kinds = {doc["kind"] for doc in made}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
            "Service"} <= kinds  # fmt: skip
    assert "CustomResourceDefinition" not in kinds
    release.uninstall()

    def left() -> list[str]:
        found = []
        for doc in made:
            meta = doc["metadata"]
            where = ["-n", meta["namespace"]] if "namespace" in meta else []
            result = kubectl("get", doc["kind"], meta["name"], *where, "--ignore-not-found",
                             "-o", "name")  # fmt: skip
            assert result.returncode == 0, result.stderr
            found += result.stdout.split()
        return found

    # The namespace goes last, once the pods in it are gone.
    wait_until(lambda: left() == [], timeout=TIMEOUT, what="every object of the release deleted")
    assert namespace_gone(release.core)
    assert operator_pod(release.core) is None
    # Helm's record of the release is gone too, and the CRD stays.
    records = kubectl_ok(
        "get", "secrets", "-n", release.namespace, "-l", f"owner=helm,name={RELEASE}", "-o", "name"
    )  # fmt: skip
    assert records.strip() == ""
    listed = release.run("list", "--namespace", release.namespace, "--all", "-q").stdout.split()
    assert RELEASE not in listed
    assert (
        kubectl_ok("get", "crd", CRD, "-o", "name").strip()
        == f"customresourcedefinition.apiextensions.k8s.io/{CRD}"
    )
