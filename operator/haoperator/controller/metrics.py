"""Prometheus metrics of the operator (`--metrics-port`, default 9090; 0 turns them off)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
HASERVICES = Gauge(
    "haoperator_haservices", "HAServices watched, by category and readiness.", ["category", "ready"]
)


def recount(before: tuple[str, bool] | None, after: tuple[str, bool] | None) -> None:
    """Keep haoperator_haservices in step with one HAService's (category, ready), which was
    `before` and is now `after` (None: not counted, or no longer)."""
    if before == after:
        return
    if before is not None:
        HASERVICES.labels(before[0], "true" if before[1] else "false").dec()
    if after is not None:
        HASERVICES.labels(after[0], "true" if after[1] else "false").inc()


def serve(port: int) -> None:
    if port:
        start_http_server(port)
