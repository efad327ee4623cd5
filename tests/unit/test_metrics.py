"""The per-HAService series (haoperator_haservice_*): what a status makes of them, that each
HAService has one series per metric and loses them when it is deleted, and that the reconciler
and the executor keep them up to date."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from haoperator.controller import metrics
from haoperator.controller.executor import Executor
from haoperator.controller.metrics import HAServiceCollector, ServiceState, state_of
from haoperator.controller.reconciler import Reconciler
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.world import Operator
from tests.unit.plans import NOW, SERVICE, haservice, lease, made, pod
from tests.unit.test_executor import FakeKube, migrating_world, store_with

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(collector: HAServiceCollector) -> Samples:
    """Every sample the collector serves: (name, labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def of(found: Samples, key: tuple[str, str]) -> Samples:
    namespace, name = key
    return {
        (metric, labels): value
        for (metric, labels), value in found.items()
        if ("namespace", namespace) in labels and ("name", name) in labels
    }


def status(*conditions: tuple[str, str, str], **fields: Any) -> dict[str, Any]:
    return {
        "conditions": [{"type": t, "status": s, "reason": r} for t, s, r in conditions],
        **fields,
    }


# -- what a status makes of them -----------------------------------------------------------------


def test_a_load_balanced_service_has_readiness_only() -> None:
    ready = status(("Ready", "True", "AllReplicasReady"))
    assert state_of("LoadBalanced", ready) == ServiceState("LoadBalanced", ready=True)
    not_ready = status(("Ready", "False", "NotEnoughReplicas"))
    assert state_of("QueueWorker", not_ready) == ServiceState("QueueWorker", ready=False)
    assert state_of("QueueWorker", {}) == ServiceState("QueueWorker", ready=False)


@pytest.mark.parametrize(
    ("reason", "lost"),
    [("QuorumLost", True), ("Forming", False)],
)
def test_a_quorum_is_lost_only_once_the_cluster_had_one(reason: str, lost: bool) -> None:
    below = status(("Ready", "False", reason), ("QuorumLost", "True", reason))
    assert state_of("Clustered", below).quorum_lost is lost
    reached = status(("Ready", "True", "QuorumReached"), ("QuorumLost", "False", "QuorumReached"))
    assert state_of("Clustered", reached) == ServiceState("Clustered", True, quorum_lost=False)


def test_an_active_passive_service_has_its_serving_pod_and_failovers() -> None:
    ready = status(("Ready", "True", "ActivePodReady"), activePod="web-a", failovers=3)
    assert state_of("ActivePassive", ready, "web-a") == ServiceState(
        "ActivePassive", True, active_pod="web-a", failovers=3
    )
    # The Lease holder is not Ready: status.activePod names it, but nothing serves.
    holder_down = status(("Ready", "False", "NoActivePod"), activePod="web-a")
    assert state_of("ActivePassive", holder_down, None) == ServiceState(
        "ActivePassive", False, active_pod="", failovers=0
    )


# -- the series ----------------------------------------------------------------------------------


def test_one_series_per_service_and_metric_and_none_after_it_is_deleted() -> None:
    collector = HAServiceCollector()
    web, db = ("shop", "web"), ("shop", "db")
    collector.observe(web, ServiceState("ActivePassive", True, active_pod="web-a", failovers=2))
    collector.observe(db, ServiceState("Clustered", False, quorum_lost=True))
    assert of(samples(collector), web) == {
        ("haoperator_haservice_ready", (("category", "ActivePassive"), ("name", "web"),
                                        ("namespace", "shop"))): 1.0,
        ("haoperator_haservice_active_pod", (("active_pod", "web-a"), ("name", "web"),
                                             ("namespace", "shop"))): 1.0,
        ("haoperator_haservice_failovers_total", (("name", "web"), ("namespace", "shop"))): 2.0,
        ("haoperator_haservice_recovery_limit_reached_total", (("name", "web"),
                                                               ("namespace", "shop"))): 0.0,
    }  # fmt: skip
    assert of(samples(collector), db) == {
        ("haoperator_haservice_ready", (("category", "Clustered"), ("name", "db"),
                                        ("namespace", "shop"))): 0.0,
        ("haoperator_haservice_quorum_lost", (("name", "db"), ("namespace", "shop"))): 1.0,
        ("haoperator_haservice_recovery_limit_reached_total", (("name", "db"),
                                                               ("namespace", "shop"))): 0.0,
    }  # fmt: skip
    collector.observe(web, None)
    assert of(samples(collector), web) == {}
    assert of(samples(collector), db)


def test_a_new_active_pod_replaces_the_old_ones_series() -> None:
    collector = HAServiceCollector()
    key = ("shop", "web")
    collector.observe(key, ServiceState("ActivePassive", True, active_pod="web-a", failovers=0))
    collector.observe(key, ServiceState("ActivePassive", False, active_pod="", failovers=1))
    active = {k: v for k, v in samples(collector).items() if k[0].endswith("active_pod")}
    assert active == {
        ("haoperator_haservice_active_pod", (("active_pod", ""), ("name", "web"),
                                             ("namespace", "shop"))): 0.0
    }  # fmt: skip
    collector.observe(key, ServiceState("ActivePassive", True, active_pod="web-b", failovers=1))
    active = {k: v for k, v in samples(collector).items() if k[0].endswith("active_pod")}
    assert list(active.values()) == [1.0]
    assert ("active_pod", "web-b") in next(iter(active))[1]


def test_the_restart_budget_counter_starts_at_zero_and_counts() -> None:
    collector = HAServiceCollector()
    key = ("shop", "worker")
    collector.observe(key, ServiceState("QueueWorker", True))
    name = "haoperator_haservice_recovery_limit_reached_total"
    labels = (("name", "worker"), ("namespace", "shop"))
    assert samples(collector)[(name, labels)] == 0.0
    collector.recovery_limit_reached(key)
    collector.recovery_limit_reached(key)
    assert samples(collector)[(name, labels)] == 2.0
    collector.observe(key, None)
    assert (name, labels) not in samples(collector)


def test_the_exposition_names_and_types_the_series() -> None:
    registry = CollectorRegistry()
    collector = HAServiceCollector()
    registry.register(collector)
    collector.observe(("shop", "web"), ServiceState("ActivePassive", True, "web-a", None, 4))
    text = generate_latest(registry).decode()
    assert "# TYPE haoperator_haservice_ready gauge" in text
    assert "# TYPE haoperator_haservice_failovers_total counter" in text
    assert 'haoperator_haservice_failovers_total{name="web",namespace="shop"} 4.0' in text
    assert (
        'haoperator_haservice_active_pod{active_pod="web-a",name="web",namespace="shop"} 1.0'
        in text
    )


def test_the_operators_registry_serves_them() -> None:
    from prometheus_client import REGISTRY

    text = generate_latest(REGISTRY).decode()
    for name in ("ready", "active_pod", "quorum_lost", "failovers", "recovery_limit_reached"):
        assert f"# HELP haoperator_haservice_{name}" in text


# -- the call sites ------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> HAServiceCollector:
    """A fresh collector where the reconciler and the executor find the operator's."""
    collector = HAServiceCollector()
    monkeypatch.setattr(metrics, "SERVICES", collector)
    return collector


def test_a_reconcile_sets_the_series_and_a_deletion_drops_them(
    served: HAServiceCollector,
) -> None:
    obj = haservice(category="ActivePassive", service=SERVICE, replicas=2)
    children = made(obj)
    lease(children, "web-a")
    pods = [pod("web-a", role="active"), pod("web-b", role="standby")]
    store = store_with(obj, children, pods)
    reconciler = Reconciler(FakeKube(children), store, Operator())  # type: ignore[arg-type]
    reconciler.reconcile(("ns", "web"))
    found = of(samples(served), ("ns", "web"))
    active = [labels for name, labels in found if name == "haoperator_haservice_active_pod"]
    assert active == [(("active_pod", "web-a"), ("name", "web"), ("namespace", "ns"))]
    assert found[("haoperator_haservice_failovers_total", (("name", "web"), ("namespace", "ns")))]
    store.remove_haservice(obj)
    reconciler.reconcile(("ns", "web"))
    assert of(samples(served), ("ns", "web")) == {}


def test_a_holder_that_is_not_ready_serves_nothing(served: HAServiceCollector) -> None:
    obj = haservice(category="ActivePassive", service=SERVICE, replicas=2)
    children = made(obj, ready=0)
    lease(children, "web-a")
    pods = [pod("web-a", role="active", ready=False), pod("web-b", role="standby", ready=False)]
    store = store_with(obj, children, pods)
    reconciler = Reconciler(FakeKube(children), store, Operator())  # type: ignore[arg-type]
    reconciler.reconcile(("ns", "web"))
    found = of(samples(served), ("ns", "web"))
    labels = (("name", "web"), ("namespace", "ns"))
    assert found[("haoperator_haservice_active_pod", (("active_pod", ""), *labels))] == 0.0
    assert found[("haoperator_haservice_ready", (("category", "ActivePassive"), *labels))] == 0.0


def test_a_migration_counts_the_restart_budget_reached(served: HAServiceCollector) -> None:
    the_world = migrating_world()
    kube = FakeKube(dict(the_world.children))
    executor = Executor(kube)  # type: ignore[arg-type]
    current = plan(the_world, Memory(), NOW)
    executor.report(current, executor.run(current), current.memory or Memory())
    assert [e[2] for e in kube.events if e[2] == "RecoveryLimitReached"] == ["RecoveryLimitReached"]
    name = "haoperator_haservice_recovery_limit_reached_total"
    assert samples(served)[(name, (("name", "web"), ("namespace", "ns")))] == 1.0


def test_services_are_counted_by_category_and_readiness_from_zero() -> None:
    collector = HAServiceCollector()
    collector.count(("shop", "web"), ("ActivePassive", True))
    collector.count(("shop", "api"), ("ActivePassive", True))
    collector.count(("db", "galera"), ("Clustered", False))
    counted = {
        dict(labels)["category"] + "/" + dict(labels)["ready"]: value
        for (name, labels), value in samples(collector).items()
        if name == "haoperator_haservices"
    }
    assert counted == {
        "ActivePassive/true": 2.0, "ActivePassive/false": 0.0,
        "Clustered/true": 0.0, "Clustered/false": 1.0,
        "LoadBalanced/true": 0.0, "LoadBalanced/false": 0.0,
        "QueueWorker/true": 0.0, "QueueWorker/false": 0.0,
    }  # fmt: skip
    collector.count(("shop", "web"), ("ActivePassive", False))  # the same service, now not Ready
    collector.count(("shop", "api"), None)  # gone
    counted_now = {
        (dict(labels)["category"], dict(labels)["ready"]): value
        for (name, labels), value in samples(collector).items()
        if name == "haoperator_haservices" and dict(labels)["category"] == "ActivePassive"
    }
    assert counted_now == {("ActivePassive", "true"): 0.0, ("ActivePassive", "false"): 1.0}


def test_an_instance_standing_by_exports_no_haservice() -> None:
    """Two operator instances are scraped; only the leader's series may count, or every sum
    doubles and every per-service alert fires twice (seen: a leader that stepped down kept
    exporting what it saw last)."""
    collector = HAServiceCollector()
    key = ("shop", "web")
    collector.observe(key, ServiceState("ActivePassive", True, active_pod="web-a", failovers=1))
    collector.count(key, ("ActivePassive", True))
    collector.reporting(False)
    assert samples(collector) == {}
    collector.reporting(True)
    assert of(samples(collector), key)
    assert (
        samples(collector)[
            ("haoperator_haservices", (("category", "ActivePassive"), ("ready", "true")))
        ]
        == 1.0
    )


def test_every_reconcile_result_and_recovery_action_is_exported_from_zero() -> None:
    """increase() over a series that appears at 1 is 0: the first action of a kind would be
    missed by the dashboard and by the reconcile-errors alert."""
    from prometheus_client import REGISTRY

    text = generate_latest(REGISTRY).decode()
    for action in ("pod_failed", "recovery_limit", "pod_migrated", "node_lost",
                   "pod_force_deleted", "split_brain_prevented"):  # fmt: skip
        assert f'haoperator_recovery_actions_total{{action="{action}"}}' in text
    for result in ("ok", "problem", "error", "not_leading"):
        assert f'haoperator_reconcile_total{{result="{result}"}}' in text


def test_taking_over_and_stepping_down_switch_the_series(
    served: HAServiceCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's leadership callbacks: a standby exports nothing until it leads, and a
    leader that steps down stops at once."""
    import asyncio

    from haoperator.controller import handlers
    from haoperator.controller.store import Store
    from haoperator.controller.workqueue import WorkQueue

    served.observe(("ns", "web"), ServiceState("QueueWorker", True))
    loop = asyncio.new_event_loop()
    try:
        reconciler = Reconciler(FakeKube({}), Store(), Operator())  # type: ignore[arg-type]
        made_leadership: dict[str, Any] = {}

        class Recorder:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                made_leadership.update(kwargs)

        monkeypatch.setattr(handlers, "Leadership", Recorder)
        monkeypatch.setattr(handlers, "Kube", lambda *args, **kwargs: None)
        monkeypatch.setattr(handlers, "api_client", lambda *args: None)
        settings = handlers.Settings(namespaces=["ns"], leader_elect=True)
        handlers._leadership(
            settings, Store(), WorkQueue(), loop, asyncio.Event(), lambda: reconciler
        )
        assert samples(served) == {}  # standing by from the start
        made_leadership["on_started"]()
        loop.run_until_complete(asyncio.sleep(0))
        assert of(samples(served), ("ns", "web")) == {}  # what it knew before: forgotten
        served.observe(("ns", "web"), ServiceState("QueueWorker", True))
        assert of(samples(served), ("ns", "web"))
        made_leadership["on_stopped"]()
        assert samples(served) == {}
    finally:
        loop.close()
