"""A pod that keeps failing costs a bounded number of writes and events: the bounds of
core/recovery.py's docstring, checked on simulated crash loops with a clock of our own.

A small simulation stands in for the cluster: a kubelet that kills and restarts a container on
a schedule, a cache that shows the operator's writes (sometimes late: a reconcile woken by
another object's watch event before its own write came back), requeues at the time the plan
asks, an operator restart half-way. Each reconcile is `plan()`; its steps are applied, its
events recorded. No cluster, no sleeps.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haoperator.core.actions import Delete, Patch, Plan
from haoperator.core.memory import PENDING_SECONDS, Memory
from haoperator.core.plan import plan
from haoperator.core.recovery import MAX_REMEMBERED, History
from haoperator.core.times import stamp
from haoperator.core.vocabulary import Annotation
from tests.unit.plans import NOW, haservice, made, node, pod, results, world

Obj = dict[str, Any]


@dataclass
class Sim:
    """One HAService and its pods, reconciled as the operator would."""

    obj: Obj
    pods: dict[str, Obj]
    nodes: dict[str, Obj] = field(default_factory=lambda: {"node-a": node("node-a")})
    now: float = NOW
    started_at: float = NOW - 10
    memory: Memory = field(default_factory=Memory)
    requeue_at: float | None = None
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    """(when, reason, message, what it is about)"""
    pod_patches: list[tuple[float, str, str]] = field(default_factory=list)
    """(when, pod, restarts annotation written)"""
    other_steps: list[tuple[float, str]] = field(default_factory=list)
    status_writes: int = 0
    reconciles: int = 0
    version: int = 100

    def __post_init__(self) -> None:
        self.children = made(self.obj)

    # -- the operator ---------------------------------------------------------------------------

    def reconcile(self, cached: dict[str, Obj] | None = None) -> Plan:
        """One reconcile on the cache (`cached`: pods as a lagging cache still has them)."""
        self.reconciles += 1
        pods = cached if cached is not None else self.pods
        the_world = world(
            self.obj,
            children=self.children,
            pods=[copy.deepcopy(p) for p in pods.values()],
            nodes=copy.deepcopy(self.nodes),
            started_at=self.started_at,
        )
        outcome = plan(the_world, self.memory, self.now)
        for event in outcome.due_events(results(outcome)):
            self.events.append((self.now, event.reason, event.message, event.about.kind))
        for _, step in outcome.steps:
            self._apply(step)
        assert outcome.memory is not None
        self.memory = outcome.memory
        if outcome.status_patch is not None:
            self.status_writes += 1
            self.obj = {**self.obj, "status": dict(outcome.status or {})}
        self.requeue_at = (
            None if outcome.requeue_after is None else self.now + outcome.requeue_after
        )
        return outcome

    def _apply(self, step: Any) -> None:
        self.version += 1
        if isinstance(step, Patch) and step.kind == "Pod":
            target = self.pods[step.name]
            annotations = step.patch["metadata"]["annotations"]
            target["metadata"]["annotations"].update(annotations)
            target["metadata"]["resourceVersion"] = str(self.version)
            self.pod_patches.append((self.now, step.name, annotations[Annotation.RESTARTS]))
        elif isinstance(step, Patch) and step.kind == "Node":
            labels = self.nodes[step.name]["metadata"]["labels"]
            for key, value in step.patch["metadata"]["labels"].items():
                if value is None:
                    labels.pop(key, None)
                else:
                    labels[key] = value
            self.other_steps.append((self.now, f"node {step.name}"))
        elif isinstance(step, Delete) and step.kind == "Pod":
            self.other_steps.append((self.now, f"delete {step.name}"))
            if step.grace == 0:
                self.pods.pop(step.name, None)
            elif step.name in self.pods:
                self.pods[step.name]["metadata"]["deletionTimestamp"] = stamp(self.now)
        else:
            self.other_steps.append((self.now, repr(step)))

    def run_until(self, when: float) -> None:
        """Requeues due before `when`, then the clock at `when`."""
        while self.requeue_at is not None and self.requeue_at <= when:
            self.now = max(self.now, self.requeue_at)
            self.reconcile()
        self.now = when

    def restart_operator(self) -> None:
        self.memory = Memory()
        self.started_at = self.now
        self.reconcile()

    # -- the kubelet ----------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        container = self.pods[name]["status"]["containerStatuses"][0]
        container["state"] = {
            "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": stamp(self.now)}
        }
        self._ready(name, False)

    def restart(self, name: str) -> None:
        container = self.pods[name]["status"]["containerStatuses"][0]
        container["restartCount"] += 1
        container["lastState"] = container.pop("state")
        container["state"] = {"running": {}}
        self._ready(name, True)

    def _ready(self, name: str, ready: bool) -> None:
        self.version += 1
        target = self.pods[name]
        target["status"]["conditions"] = [{"type": "Ready", "status": str(ready)}]
        target["metadata"]["resourceVersion"] = str(self.version)

    # -- what it cost ---------------------------------------------------------------------------

    def said(self, reason: str, about: str = "HAService") -> list[float]:
        return [when for when, r, _, kind in self.events if r == reason and kind == about]


def running(name: str) -> Obj:
    made_pod = pod(name)
    made_pod["status"]["containerStatuses"] = [
        {"name": "app", "restartCount": 0, "state": {"running": {}}}
    ]
    return made_pod


def notify(max_restarts: int, window: int, category: str = "QueueWorker") -> Obj:
    return haservice(
        category=category,
        replicas=1 if category == "QueueWorker" else 2,
        recovery={
            "restart": {"maxRestarts": max_restarts, "windowSeconds": window, "onLimit": "Notify"}
        },
    )


def crash_loop(
    sim: Sim, name: str, gaps: list[int], lags: list[bool], operator_restart_at: int | None
) -> None:
    """The container exits after each gap (seconds) and is back a second later; a reconcile
    follows each change, and some find the cache behind the writes of the one before."""
    sim.reconcile()
    for index, gap in enumerate(gaps):
        sim.run_until(sim.now + gap)
        if index == operator_restart_at:
            sim.restart_operator()
        for change in (sim.crash, sim.restart):
            stale = copy.deepcopy(sim.pods)
            change(name)
            sim.reconcile()
            if lags[index % len(lags)]:
                # Woken by another watch event before our write's own: the pods as the cache
                # had them when the kubelet's change came in.
                stale[name]["status"] = copy.deepcopy(sim.pods[name]["status"])
                stale[name]["metadata"]["resourceVersion"] = sim.pods[name]["metadata"][
                    "resourceVersion"
                ]
                sim.now += 0.01
                sim.reconcile(stale)
                sim.reconcile()
            sim.run_until(sim.now + 1)


def assert_the_bounds(sim: Sim, name: str, max_restarts: int, window: int, restarts: int) -> None:
    # RecoveryLimitReached: at most once per pod per window.
    warned = sim.said("RecoveryLimitReached")
    assert all(b - a >= window for a, b in itertools.pairwise(warned)), warned
    # PodFailed: at most maxRestarts + 1 per pod within any window, on the HAService and the pod.
    failed = sim.said("PodFailed")
    assert len(sim.said("PodFailed", "Pod")) == len(failed)
    for at in failed:
        assert sum(1 for t in failed if at - window < t <= at) <= max_restarts + 1, failed
    # The history annotation: one write per restart at most (a warning rides along, or costs one
    # of its own), never the same value twice, and small.
    written = [value for _, pod_name, value in sim.pod_patches if pod_name == name]
    assert len(written) <= restarts + len(warned)
    assert len(set(written)) == len(written)
    assert all(len(value) <= 1024 for value in written)
    assert not sim.other_steps  # Notify: no node, no deletion


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_restarts=st.integers(0, 6),
    window=st.sampled_from([30, 60, 600]),
    gaps=st.lists(st.integers(1, 120), min_size=1, max_size=40),
    lags=st.lists(st.booleans(), min_size=1, max_size=5),
    operator_restart_at=st.none() | st.integers(0, 40),
    category=st.sampled_from(["QueueWorker", "ActivePassive"]),
)
def test_a_crash_loop_costs_a_bounded_number_of_writes_and_events(
    max_restarts: int,
    window: int,
    gaps: list[int],
    lags: list[bool],
    operator_restart_at: int | None,
    category: str,
) -> None:
    sim = Sim(notify(max_restarts, window, category), {"web-a": running("web-a")})
    crash_loop(sim, "web-a", gaps, lags, operator_restart_at)
    assert_the_bounds(sim, "web-a", max_restarts, window, restarts=len(gaps))


def test_thirty_fast_restarts_cost_one_warning_and_one_write_each() -> None:
    """The integration tier's scenario (tests/integration/test_crash_loop.py), every reconcile
    lagging: 30 restarts, maxRestarts 3, a window longer than the loop."""
    sim = Sim(notify(3, 3600), {"web-a": running("web-a")})
    crash_loop(sim, "web-a", [1] * 30, [True], None)
    assert len(sim.said("RecoveryLimitReached")) == 1
    assert len(sim.said("PodFailed")) == 4  # the terminations up to the limit
    assert len(sim.pod_patches) == 30
    history = json.loads(sim.pods["web-a"]["metadata"]["annotations"][Annotation.RESTARTS])
    assert history["seen"] == 30
    assert history["warned"] == pytest.approx(sim.said("RecoveryLimitReached")[0])


def test_a_pod_that_keeps_failing_is_warned_about_once_per_window() -> None:
    sim = Sim(notify(2, 60), {"web-a": running("web-a")})
    crash_loop(sim, "web-a", [10] * 30, [False], None)  # a restart every 12 s for 6 minutes
    warned = sim.said("RecoveryLimitReached")
    windows = (sim.now - NOW) / 60
    assert windows - 1 <= len(warned) <= windows + 1
    assert all(b - a >= 60 for a, b in itertools.pairwise(warned))


def test_an_operator_restart_repeats_no_warning_and_no_failure() -> None:
    """The warning is marked on the pod; failures from before it started were someone else's."""
    sim = Sim(notify(2, 3600), {"web-a": running("web-a")})
    crash_loop(sim, "web-a", [5] * 6, [False], None)
    before = (len(sim.events), len(sim.pod_patches), sim.status_writes)
    sim.now += 5
    sim.restart_operator()
    sim.run_until(sim.now + 600)
    assert (len(sim.events), len(sim.pod_patches), sim.status_writes) == before
    sim.run_until(sim.now + 3600)  # the window is over: Degraded clears, nothing is said
    assert (len(sim.events), len(sim.pod_patches), sim.status_writes) == (
        before[0],
        before[1],
        before[2] + 1,
    )


def test_when_the_loop_stops_the_limit_clears_once_and_nothing_spins() -> None:
    """After the last restart: a reconcile when the limit clears (Degraded changes), then
    nothing. A restart older than the window once brought the HAService back every 0.5 s."""
    sim = Sim(notify(2, 60), {"web-a": running("web-a")})
    crash_loop(sim, "web-a", [2] * 5, [False], None)
    settled = (len(sim.events), len(sim.pod_patches), sim.reconciles, sim.status_writes)
    sim.run_until(sim.now + 3600)
    assert len(sim.events) == settled[0]
    assert len(sim.pod_patches) == settled[1]
    assert sim.reconciles - settled[2] <= 2
    assert sim.status_writes - settled[3] <= 1  # Degraded: RecoveryLimitReached no more
    assert sim.requeue_at is None


def test_requeues_never_come_sooner_than_the_floor() -> None:
    sim = Sim(notify(1, 30), {"web-a": running("web-a")})
    sim.pods["web-a"]["metadata"]["annotations"][Annotation.RESTARTS] = History(
        5, (NOW - 4000, NOW - 3000, NOW - 2000)
    ).to_annotation()
    sim.pods["web-a"]["status"]["containerStatuses"][0]["restartCount"] = 5
    outcome = sim.reconcile()
    assert outcome.requeue_after is None
    assert not outcome.steps


# -- migrations and lost nodes ----------------------------------------------------------------


def test_a_migration_is_made_and_said_once_while_the_cache_catches_up() -> None:
    obj = haservice(
        category="QueueWorker",
        replicas=1,
        recovery={"restart": {"maxRestarts": 1, "windowSeconds": 600, "onLimit": "Migrate"}},
    )
    sim = Sim(obj, {"web-a": running("web-a")})
    sim.reconcile()
    for _ in range(2):
        sim.crash("web-a")
        sim.reconcile()
        stale = copy.deepcopy(sim.pods)
        sim.restart("web-a")
        stale["web-a"]["status"] = copy.deepcopy(sim.pods["web-a"]["status"])
        sim.reconcile()
        sim.now += 0.01
        sim.reconcile(stale)  # before the watch showed the pod deleted, or our annotation
        sim.now += 1
    sim.reconcile()  # the deletion shown
    assert Counter(r for _, r, _, kind in sim.events if kind == "HAService") == {
        "PodFailed": 2,
        "RecoveryLimitReached": 1,
        "PodMigrated": 1,
    }
    assert [what for _, what in sim.other_steps] == ["node node-a", "delete web-a"]
    history = json.loads(sim.pods["web-a"]["metadata"]["annotations"][Annotation.RESTARTS])
    assert history["seen"] == 2  # the count the deleted pod leaves behind is the kubelet's


def test_a_migration_that_failed_is_made_again_once_the_cache_should_have_shown_it() -> None:
    obj = haservice(
        category="QueueWorker",
        replicas=1,
        recovery={"restart": {"maxRestarts": 0, "windowSeconds": 600, "onLimit": "Migrate"}},
    )
    sim = Sim(obj, {"web-a": running("web-a")})
    sim.crash("web-a")
    sim.restart("web-a")
    first = sim.reconcile()
    assert [type(step).__name__ for _, step in first.steps] == ["Patch", "Patch", "Delete"]
    sim.pods["web-a"]["metadata"].pop("deletionTimestamp")  # the deletion did not happen
    sim.now += 1
    retry = sim.reconcile()  # the work queue's backoff
    assert not retry.steps
    assert retry.requeue_after == pytest.approx(PENDING_SECONDS - 1)
    sim.now = NOW + PENDING_SECONDS
    again = sim.reconcile()
    assert [type(step).__name__ for _, step in again.steps] == ["Patch", "Delete"]


def test_a_lost_node_is_reported_once_and_its_pod_force_deleted_once() -> None:
    recovery = {"nodeLoss": {"graceSeconds": 60, "action": "ForceDelete"}}
    sim = Sim(haservice(category="QueueWorker", replicas=1, recovery=recovery), {})
    sim.started_at = NOW - 3600
    sim.pods["web-a"] = running("web-a")
    sim.pods["web-a"]["metadata"]["deletionTimestamp"] = stamp(NOW - 30)  # stuck Terminating
    sim.nodes["node-a"] = node("node-a", ready=False, since=NOW - 100)
    stale = copy.deepcopy(sim.pods)
    sim.reconcile()
    for _ in range(5):  # the cache has not shown the pod gone yet
        sim.now += 1
        sim.reconcile(stale)
    assert [r for _, r, _, _ in sim.events] == ["NodeLost", "PodForceDeleted"]
    assert [what for _, what in sim.other_steps] == ["delete web-a"]
    sim.restart_operator()  # a loss whose grace ran out before we started is not news
    sim.pods["web-b"] = running("web-b")  # the replacement: on the lost node, for the test
    sim.now += 1
    sim.reconcile()
    assert [r for _, r, _, _ in sim.events] == ["NodeLost", "PodForceDeleted", "PodForceDeleted"]


def test_the_history_annotation_is_small_however_long_the_loop() -> None:
    worst = History(2**31 - 1, tuple(NOW + 0.123 + i for i in range(MAX_REMEMBERED)), NOW + 0.5)
    assert len(worst.to_annotation()) <= 1024
