"""What the samples' pods need is shipped with them.

`kubectl apply -k manifests/samples` (or `manifests/samples/quickstart`) must give pods that can
start: every ConfigMap, Secret, PersistentVolumeClaim and ServiceAccount a pod the operator
renders from a sample names (volumes, env, envFrom, imagePullSecrets, serviceAccountName) is
either shipped in the same kustomization, rendered by the operator itself (the elector's
ServiceAccount), or a prerequisite that the kustomization's header comment names (a default
StorageClass). Each kustomization puts all of it in its own namespace, which it ships, held to
the `restricted` Pod Security Standard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator.api import HAService
from haoperator.core import render
from testenv.harness.cluster import REPO

SAMPLES = REPO / "manifests" / "samples"
KUSTOMIZATIONS = [SAMPLES, SAMPLES / "quickstart"]
# What every namespace has without anybody shipping it (the ServiceAccount and root CA
# publishers of kube-controller-manager create them).
BUILT_IN = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
# A volume claim template without storageClassName needs the cluster's default StorageClass.
DEFAULT_STORAGE_CLASS = "default StorageClass"
PATH = re.compile(r"(?<![\w.])/[\w./-]+")


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str
    key: str | None  # a key of a ConfigMap or Secret, when one is named
    where: str


def kustomization(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return document


def shipped(directory: Path) -> list[dict[str, Any]]:
    """The objects the kustomization ships, in its namespace (as kustomize puts them)."""
    namespace = kustomization(directory)["namespace"]
    objects = []
    for resource in kustomization(directory)["resources"]:
        for document in yaml.safe_load_all((directory / resource).read_text()):
            if document and document["kind"] != "Namespace":
                document["metadata"]["namespace"] = namespace
            if document:
                objects.append(document)
    return objects


def data_keys(obj: dict[str, Any]) -> set[str]:
    return {*obj.get("data", {}), *obj.get("stringData", {}), *obj.get("binaryData", {})}


def haservices(directory: Path) -> list[HAService]:
    return [
        HAService.model_validate(obj)
        for obj in shipped(directory)
        if obj["apiVersion"].startswith("haoperator.dev/")
    ]


def workloads(directory: Path) -> list[dict[str, Any]]:
    return [
        child
        for haservice in haservices(directory)
        for child in render.desired(haservice)
        if child["kind"] in ("Deployment", "StatefulSet")
    ]


def _items(source: dict[str, Any]) -> list[str | None]:
    return [item["key"] for item in source.get("items", [])] or [None]


def pod_references(workload: dict[str, Any]) -> list[Ref]:
    """Every object the workload's pods name, with the key when one is named."""
    pod = workload["spec"]["template"]["spec"]
    name = f"{workload['kind']} {workload['metadata']['name']}"
    refs = [Ref("ServiceAccount", pod.get("serviceAccountName", "default"), None, name)]
    for pull_secret in pod.get("imagePullSecrets", []):
        refs.append(Ref("Secret", pull_secret["name"], None, f"{name} imagePullSecrets"))
    for volume in pod.get("volumes", []):
        where = f"{name} volume {volume['name']}"
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            if "configMap" in source and not source["configMap"].get("optional"):
                cm = source["configMap"]
                refs += [Ref("ConfigMap", cm["name"], key, where) for key in _items(cm)]
            if "secret" in source and not source["secret"].get("optional"):
                secret = source["secret"]
                secret_name = secret.get("secretName") or secret["name"]
                refs += [Ref("Secret", secret_name, key, where) for key in _items(secret)]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            refs.append(Ref("PersistentVolumeClaim", claim, None, where))
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name} container {container['name']}"
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if field in source and not source[field].get("optional"):
                    refs.append(Ref(kind, source[field]["name"], source[field]["key"], where))
        for env_from in container.get("envFrom", []):
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if field in env_from and not env_from[field].get("optional"):
                    refs.append(Ref(kind, env_from[field]["name"], None, where))
    return refs


Objects = dict[tuple[str, str], dict[str, Any]]


def mounted_files(workload: dict[str, Any], objects: Objects) -> list[tuple[str, Ref]]:
    """(path, the key it is) for every file under a ConfigMap or Secret mount that a container's
    command or arguments, or one of its mounted files, names."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    found: list[tuple[str, Ref]] = []
    for container in pod.get("initContainers", []) + pod["containers"]:
        mounts: dict[str, tuple[str, str]] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "subPath" in mount:
                continue
            if "configMap" in volume:
                mounts[mount["mountPath"]] = ("ConfigMap", volume["configMap"]["name"])
            elif "secret" in volume:
                mounts[mount["mountPath"]] = ("Secret", volume["secret"]["secretName"])
        texts = [*container.get("command", []), *container.get("args", [])]
        for kind, name in mounts.values():
            obj = objects.get((kind, name), {})
            texts += [str(v) for v in {**obj.get("data", {}), **obj.get("stringData", {})}.values()]
        where = f"{workload['kind']} {workload['metadata']['name']} container {container['name']}"
        for path in (path for text in texts for path in PATH.findall(text)):
            for mount_path, (kind, name) in mounts.items():
                directory = mount_path.rstrip("/") + "/"
                if path.startswith(directory):
                    found.append((path, Ref(kind, name, path.removeprefix(directory), where)))
    return found


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_the_kustomization_ships_its_restricted_namespace_and_puts_everything_in_it(
    directory: Path,
) -> None:
    namespace = kustomization(directory)["namespace"]
    namespaces = [obj for obj in shipped(directory) if obj["kind"] == "Namespace"]
    assert [ns["metadata"]["name"] for ns in namespaces] == [namespace]
    labels = namespaces[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in kustomization(directory)["resources"]:
        for document in yaml.safe_load_all((directory / resource).read_text()):
            if document and document["kind"] != "Namespace":  # kustomize sets it, `-n` not needed
                assert "namespace" not in document["metadata"], f"{resource}: {document['kind']}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_every_object_the_sample_pods_name_is_shipped_rendered_or_a_documented_prerequisite(
    directory: Path,
) -> None:
    objects: Objects = {(o["kind"], o["metadata"]["name"]): o for o in shipped(directory)}
    rendered = {
        (child["kind"], child["metadata"]["name"])
        for haservice in haservices(directory)
        for child in render.desired(haservice)
    }
    missing = []
    for workload in workloads(directory):
        for ref in pod_references(workload):
            if (ref.kind, ref.name) in BUILT_IN | rendered:
                continue
            obj = objects.get((ref.kind, ref.name))
            if obj is None:
                missing.append(f"{ref.where}: {ref.kind} {ref.name} is not shipped")
            elif ref.key is not None and ref.key not in data_keys(obj):
                missing.append(f"{ref.where}: {ref.kind} {ref.name} has no key {ref.key}")
    assert missing == []


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_the_files_the_pods_read_from_shipped_config_are_in_it(directory: Path) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in shipped(directory)}
    missing = [
        f"{ref.where}: {path} is not a key of {ref.kind} {ref.name}"
        for workload in workloads(directory)
        for path, ref in mounted_files(workload, objects)
        if ref.key not in data_keys(objects.get((ref.kind, ref.name), {}))
    ]
    assert missing == []


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda d: d.relative_to(REPO).as_posix())
def test_volume_claims_name_a_documented_storage_class(directory: Path) -> None:
    header = " ".join((directory / "kustomization.yaml").read_text().replace("#", " ").split())
    for workload in workloads(directory):
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            storage_class = claim["spec"].get("storageClassName")
            needs = DEFAULT_STORAGE_CLASS if storage_class is None else storage_class
            assert needs in header, f"{workload['metadata']['name']}: {needs} is not documented"


def test_the_walk_sees_every_kind_of_reference() -> None:
    secret_key = {"name": "es", "key": "x"}
    workload = {
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "sa",
                    "imagePullSecrets": [{"name": "pull"}],
                    "volumes": [
                        {"name": "a", "configMap": {"name": "cm", "items": [{"key": "k"}]}},
                        {"name": "b", "secret": {"secretName": "s"}},
                        {"name": "c", "persistentVolumeClaim": {"claimName": "pvc"}},
                        {"name": "d", "projected": {"sources": [{"secret": {"name": "ps"}}]}},
                        {"name": "e", "configMap": {"name": "maybe", "optional": True}},
                    ],
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "X", "valueFrom": {"secretKeyRef": secret_key}}],
                            "envFrom": [{"configMapRef": {"name": "ecm"}}],
                        }
                    ],
                }
            }
        },
    }
    found = {(ref.kind, ref.name, ref.key) for ref in pod_references(workload)}
    assert found == {
        ("ServiceAccount", "sa", None),
        ("Secret", "pull", None),
        ("ConfigMap", "cm", "k"),
        ("Secret", "s", None),
        ("PersistentVolumeClaim", "pvc", None),
        ("Secret", "ps", None),
        ("Secret", "es", "x"),
        ("ConfigMap", "ecm", None),
    }


def test_shipped_secrets_say_they_are_sample_values() -> None:
    for directory in KUSTOMIZATIONS:
        for obj in shipped(directory):
            if obj["kind"] == "Secret":
                for key, value in obj.get("stringData", {}).items():
                    assert "sample" in value, f"Secret {obj['metadata']['name']}: {key}"
