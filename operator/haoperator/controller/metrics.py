"""Prometheus metrics of the operator (`--metrics-port`, default 9090; 0 turns them off).

Two kinds: the operator's own (reconciles, requests, recovery actions, failovers, all
HAServices counted by category and readiness), and at most one series per HAService and metric
(`haoperator_haservice_*{namespace, name}`), which alerts need to say which service is in
trouble. Those come from each reconcile (`SERVICES.observe`: the status it computed, the pod
serving as the active one) and the events it records (`SERVICES.recovery_limit_reached`), and
go when the HAService does (`SERVICES.observe(key, None)`). Only the instance that reconciles
exports them and haoperator_haservices (`SERVICES.reporting`): a standby, or a leader that stepped
down, would count every HAService twice and fire every per-service alert twice. Their
`namespace` label is the HAService's: a scrape must honour it (the ServiceMonitor in
manifests/monitoring/ sets honorLabels), as for kube-state-metrics. No other label of theirs is
one a scrape adds (job, instance, pod, ...): the active pod's is `active_pod`.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, get_args

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from haoperator.api.haservice import Category
from haoperator.core.vocabulary import Action, ConditionType, Reason

RECONCILE_RESULTS: Final = ("ok", "problem", "error", "not_leading")
"""Labels of haoperator_reconcile_total."""
RECOVERY_ACTION_NAMES: Final = tuple(
    value for name, value in vars(Action).items() if not name.startswith("_")
)
CATEGORIES: Final = get_args(Category)

RECONCILES = Counter(
    "haoperator_reconcile_total", "Reconciles of HAServices, by result.", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "haoperator_reconcile_seconds",
    "Time one reconcile took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECOVERY_ACTIONS = Counter(
    "haoperator_recovery_actions_total",
    "Recovery actions taken: pod_failed, recovery_limit, pod_migrated, node_lost, "
    "pod_force_deleted, split_brain_prevented.",
    ["action"],
)
API_REQUESTS = Counter(
    "haoperator_api_requests_total",
    "Requests the operator made to the API server (watches excepted), by HTTP method.",
    ["method"],
)
FAILOVERS = Counter("haoperator_failovers_total", "Changes of the active pod (ActivePassive).")
FAILOVER_SECONDS = Histogram(
    "haoperator_failover_seconds",
    "Seconds without an active pod in a failover, as the electors measured them.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34),
)
LEADER = Gauge(
    "haoperator_leader",
    "1 on the operator instance that holds the operator's Lease and reconciles (run "
    "--leader-elect), 0 on a standby; without leader election, always 1. identity: the "
    "instance (its pod's name).",
    ["identity"],
)
for _result in RECONCILE_RESULTS:  # from 0: increase() misses a series that appears at 1
    RECONCILES.labels(_result)
for _action in RECOVERY_ACTION_NAMES:
    RECOVERY_ACTIONS.labels(_action)


Key = tuple[str, str]
"""(namespace, name) of an HAService."""


@dataclass(frozen=True)
class ServiceState:
    """What the per-HAService series say of one HAService."""

    category: str
    ready: bool
    active_pod: str | None = None
    """ActivePassive: the pod that serves as the active one, "" when none does; None otherwise."""
    quorum_lost: bool | None = None
    """Clustered: the quorum it had is lost (a cluster still forming its first one is not);
    None otherwise."""
    failovers: int | None = None
    """ActivePassive: status.failovers, the Lease's transitions; None otherwise."""


def state_of(category: str, status: Mapping[str, Any], serving: str | None = None) -> ServiceState:
    """The series of an HAService of `category` whose status is now `status`; `serving`
    (ActivePassive): the pod that holds the Lease, is Ready and is labelled active, the one the
    Service routes to (core.status.serving_leader). status.activePod is only the Lease holder,
    which may be a pod that cannot serve (not Ready, not labelled)."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get(ConditionType.READY) or {}
    quorum = conditions.get(ConditionType.QUORUM_LOST) or {}
    state = ServiceState(category, ready=ready.get("status") == "True")
    if category == "ActivePassive":
        return replace(
            state,
            active_pod=serving or "",
            failovers=int(status.get("failovers") or 0),
        )
    if category == "Clustered":
        lost = quorum.get("status") == "True" and quorum.get("reason") == Reason.QUORUM_LOST
        return replace(state, quorum_lost=lost)
    return state


class HAServiceCollector(Collector):
    """The per-HAService series, made at each scrape from what the reconciles last saw: no
    series outlives its HAService, and a new active pod replaces the old one's series."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[Key, ServiceState] = {}
        self._limits: dict[Key, int] = {}
        self._counted: dict[Key, tuple[str, bool]] = {}
        self._reporting = True

    def reporting(self, on: bool) -> None:
        """Export the series (this instance reconciles) or none (it stands by)."""
        with self._lock:
            self._reporting = on

    def clear(self) -> None:
        """Forget every HAService (a new term as leader starts from what it reconciles)."""
        with self._lock:
            self._states.clear()
            self._limits.clear()
            self._counted.clear()

    def count(self, key: Key, counted: tuple[str, bool] | None) -> None:
        """haoperator_haservices counts the HAService as (category, ready); None: not at all."""
        with self._lock:
            if counted is None:
                self._counted.pop(key, None)
            else:
                self._counted[key] = counted

    def observe(self, key: Key, state: ServiceState | None) -> None:
        """Set the HAService's series; None: it is gone, drop them."""
        with self._lock:
            if state is None:
                self._states.pop(key, None)
                self._limits.pop(key, None)
                return
            self._states[key] = state
            # From 0, so that increase() sees the first one.
            self._limits.setdefault(key, 0)

    def recovery_limit_reached(self, key: Key) -> None:
        with self._lock:
            self._limits[key] = self._limits.get(key, 0) + 1

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            reporting = self._reporting
            states = dict(self._states) if reporting else {}
            limits = dict(self._limits) if reporting else {}
            counted = Tally(self._counted.values()) if reporting else Tally()
        ready, active, quorum, failovers, reached, services = self._families()
        if reporting:
            for category in CATEGORIES:
                for is_ready in (True, False):
                    services.add_metric(
                        [category, "true" if is_ready else "false"],
                        float(counted[(category, is_ready)]),
                    )
        for (namespace, name), state in sorted(states.items()):
            ready.add_metric([namespace, name, state.category], float(state.ready))
            if state.active_pod is not None:
                active.add_metric(
                    [namespace, name, state.active_pod], float(bool(state.active_pod))
                )
            if state.quorum_lost is not None:
                quorum.add_metric([namespace, name], float(state.quorum_lost))
            if state.failovers is not None:
                failovers.add_metric([namespace, name], float(state.failovers))
        for (namespace, name), count in sorted(limits.items()):
            reached.add_metric([namespace, name], float(count))
        return iter((ready, active, quorum, failovers, reached, services))

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
    ]:
        service = ["namespace", "name"]
        return (
            GaugeMetricFamily(
                "haoperator_haservice_ready",
                "1 when the HAService's Ready condition is True, else 0.",
                labels=[*service, "category"],
            ),
            GaugeMetricFamily(
                "haoperator_haservice_active_pod",
                "ActivePassive: 1 with the pod serving as the active one (it holds the Lease, is "
                "Ready and labelled active) as active_pod; 0, without it, when none does.",
                labels=[*service, "active_pod"],
            ),
            GaugeMetricFamily(
                "haoperator_haservice_quorum_lost",
                "Clustered: 1 when fewer members than the quorum are ready after it had one.",
                labels=service,
            ),
            CounterMetricFamily(
                "haoperator_haservice_failovers",
                "ActivePassive: changes of the active pod (status.failovers, kept on the Lease).",
                labels=service,
            ),
            CounterMetricFamily(
                "haoperator_haservice_recovery_limit_reached",
                "Pods of the HAService that went past their restart budget "
                "(RecoveryLimitReached events), since this operator started.",
                labels=service,
            ),
            GaugeMetricFamily(
                "haoperator_haservices",
                "HAServices watched, by category and readiness.",
                labels=["category", "ready"],
            ),
        )


SERVICES = HAServiceCollector()
REGISTRY.register(SERVICES)


def serve(port: int) -> None:
    if port:
        start_http_server(port)
