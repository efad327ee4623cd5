"""Building HAServices and reading what the API server holds about them, for the tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from testenv.harness.cluster import wait_until

GROUP, VERSION, PLURAL = "haoperator.dev", "v1alpha1", "haservices"
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(
    name: str = "app", image: str = "registry.k8s.io/pause:3.10", **extra: Any
) -> dict[str, Any]:
    return {"name": name, "image": image, "securityContext": RESTRICTED, **extra}


def haservice(name: str, category: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HAService",
        "metadata": {"name": name},
        "spec": {
            "category": category,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container()]},
            },
            **spec,
        },
    }
    return body


SERVICE = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
EXAMPLES: dict[str, dict[str, Any]] = {
    "LoadBalanced": {"replicas": 3, "service": SERVICE},
    "Clustered": {
        "replicas": 3,
        "service": {"ports": [{"name": "mysql", "port": 3306}]},
        "clustered": {
            "peerPorts": [{"name": "gcomm", "port": 4567}],
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    },
    "QueueWorker": {"replicas": 2},
    "ActivePassive": {"replicas": 2, "service": SERVICE},
}
WORKLOAD = {"Clustered": "StatefulSet"}


def clustered(name: str, action: str, grace: int, replicas: int = 3) -> dict[str, Any]:
    """A quorum service whose members are recovered from node loss by `action` after `grace`."""
    return haservice(
        name, "Clustered", replicas=replicas, placement={"spread": "Preferred"},
        clustered=EXAMPLES["Clustered"]["clustered"],
        recovery={"nodeLoss": {"graceSeconds": grace, "action": action}},
    )  # fmt: skip


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return result


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return result


def patch(
    custom: client.CustomObjectsApi, namespace: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, body
    )
    return result


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def ready_because(
    custom: client.CustomObjectsApi, namespace: str, name: str, reason: str, timeout: float = 30
) -> dict[str, Any]:
    """Wait until the HAService's Ready condition has `reason`; that condition."""

    def found() -> dict[str, Any]:
        ready = condition(get(custom, namespace, name), "Ready")
        return ready if ready.get("reason") == reason else {}

    return dict(wait_until(found, timeout=timeout, what=f"{name}: Ready reason {reason}"))


def is_ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    obj = get(custom, namespace, name)
    ready = condition(obj, "Ready")
    return (
        ready.get("status") == "True"
        and ready.get("observedGeneration") == obj["metadata"]["generation"]
    )


def events(
    core: client.CoreV1Api, namespace: str, name: str, reason: str | None = None
) -> list[Any]:
    selector = f"involvedObject.name={name},involvedObject.kind=HAService"
    if reason:
        selector += f",reason={reason}"
    return list(core.list_namespaced_event(namespace, field_selector=selector).items)
