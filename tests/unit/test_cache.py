"""Which child changes wake a reconcile: the ones that can change what it does or reports."""

from __future__ import annotations

from typing import Any

from haoperator.controller.store import Store


def child(kind: str, version: str, **parts: Any) -> dict[str, Any]:
    meta = {"name": "web", "namespace": "ns", "resourceVersion": version,
            "labels": {"haoperator.dev/service": "web"}}  # fmt: skip
    return {"kind": kind, "metadata": meta, **parts}


def lease(version: str, holder: str, renewed: str) -> dict[str, Any]:
    return child("Lease", version, spec={"holderIdentity": holder, "renewTime": renewed})


def test_a_new_child_wakes_its_haservice() -> None:
    assert Store().put_child(child("PodDisruptionBudget", "1", spec={})) == ("ns", "web")


def test_a_lease_renewal_does_not_wake_but_a_new_holder_does() -> None:
    store = Store()
    store.put_child(lease("1", "web-a", "2026-01-01T00:00:00.000000Z"))
    assert store.put_child(lease("2", "web-a", "2026-01-01T00:00:01.000000Z")) is None
    assert store.put_child(lease("3", "web-b", "2026-01-01T00:00:02.000000Z")) == ("ns", "web")


def test_the_cache_keeps_the_renewal_it_did_not_wake_for() -> None:
    store = Store()
    store.put_child(lease("1", "web-a", "t1"))
    store.put_child(lease("2", "web-a", "t2"))
    kept = store.snapshot(("ns", "web")).children[("Lease", "web")]
    assert kept["spec"]["renewTime"] == "t2"
    assert kept["metadata"]["resourceVersion"] == "2"


def test_status_of_a_budget_or_service_does_not_wake_but_its_spec_and_labels_do() -> None:
    store = Store()
    store.put_child(child("PodDisruptionBudget", "1", spec={"maxUnavailable": 1}))
    healthy = child("PodDisruptionBudget", "2", spec={"maxUnavailable": 1},
                    status={"currentHealthy": 2})  # fmt: skip
    assert store.put_child(healthy) is None
    edited = child("PodDisruptionBudget", "3", spec={"maxUnavailable": 5},
                   status={"currentHealthy": 2})  # fmt: skip
    assert store.put_child(edited) == ("ns", "web")
    relabelled = child("PodDisruptionBudget", "4", spec={"maxUnavailable": 5},
                       status={"currentHealthy": 2})  # fmt: skip
    relabelled["metadata"]["labels"]["team"] = "x"
    assert store.put_child(relabelled) == ("ns", "web")


def test_a_workloads_status_wakes_because_ours_is_made_of_it() -> None:
    store = Store()
    store.put_child(child("Deployment", "1", spec={"replicas": 2}))
    ready = child("Deployment", "2", spec={"replicas": 2}, status={"readyReplicas": 1})
    assert store.put_child(ready) == ("ns", "web")


def test_an_endpointslice_change_wakes() -> None:
    store = Store()
    store.put_child(child("EndpointSlice", "1", endpoints=[]))
    routed = child("EndpointSlice", "2", endpoints=[{"conditions": {"ready": True}}])
    assert store.put_child(routed) == ("ns", "web")


def test_an_object_that_is_not_ours_wakes_nothing() -> None:
    foreign = child("Service", "1", spec={})
    foreign["metadata"]["labels"] = {}
    assert Store().put_child(foreign) is None


def test_listed_children_are_held_with_kind_and_api_version_like_watched_ones() -> None:
    """List items carry no kind or apiVersion; a child held without its apiVersion once made
    every child of every HAService look drifted after each operator restart or relist."""
    from haoperator.api import HAService
    from haoperator.core import render
    from haoperator.core.diff import differences

    haservice = HAService.model_validate(
        {
            "apiVersion": "haoperator.dev/v1alpha1",
            "kind": "HAService",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {
                "category": "LoadBalanced",
                "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}},
                "service": {"ports": [{"name": "http", "port": 80}]},
            },
        }
    )
    store = Store()
    for child in render.desired(haservice):
        listed = {k: v for k, v in child.items() if k not in ("kind", "apiVersion")}
        store.resync_children(child["kind"], "ns", [listed])
        held = store.snapshot(("ns", "web")).children[(child["kind"], "web")]
        assert held["apiVersion"] == child["apiVersion"]
        assert differences(child, held) == [], child["kind"]
