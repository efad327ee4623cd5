"""The kube layer's create-only server-side apply, on the real API server."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from haoperator.controller.kube import FIELD_MANAGER, Kube

pytestmark = pytest.mark.cluster


def service(namespace: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"a": "b"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": port}]},
    }


def test_create_makes_an_absent_object_owned_by_our_apply(
    namespace: str, api_client: ApiClient, core: client.CoreV1Api
) -> None:
    created = Kube(api_client).create_only(service(namespace, 80))
    assert created is not None
    live = core.read_namespaced_service("web", namespace)
    assert live.metadata.uid == created["metadata"]["uid"]
    # A real apply: our manager owns the fields with operation Apply (not Update, which a later
    # apply would not take back), so a field later dropped from what we apply goes away.
    assert [(m.manager, m.operation) for m in live.metadata.managed_fields] == [
        (FIELD_MANAGER, "Apply")
    ]
    dropped = service(namespace, 80)
    del dropped["metadata"]["labels"]
    Kube(api_client).apply(dropped)
    assert not core.read_namespaced_service("web", namespace).metadata.labels


def test_create_leaves_an_existing_object_untouched(
    namespace: str, api_client: ApiClient, core: client.CoreV1Api
) -> None:
    before = core.create_namespaced_service(namespace, service(namespace, 80))
    assert Kube(api_client).create_only(service(namespace, 81)) is None
    after = core.read_namespaced_service("web", namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.spec.ports[0].port == 80
    assert [m.manager for m in after.metadata.managed_fields] != [FIELD_MANAGER]
