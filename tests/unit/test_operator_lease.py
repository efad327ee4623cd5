"""The operator's own leader election (`run --leader-elect`, controller/operator_lease.py)
against an in-memory Lease that enforces resourceVersion as the API server does, with a clock
that moves only when the test says; and the executor's one rule about it: no write once it no
longer leads.
(Two real operator processes on the local cluster: tests/integration/test_operator_ha.py.)"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from haoperator.controller import metrics
from haoperator.controller.executor import Executor, NotLeading
from haoperator.controller.kube import ApiError
from haoperator.controller.operator_lease import DEFAULT_TIMING, Leadership
from haoperator.controller.reconciler import Reconciler
from haoperator.controller.run import identity
from haoperator.core.election import Timing, renew_timeout, seen_lease, timing_problem
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.world import Operator
from tests.unit.plans import NOW, SERVICE, haservice, world
from tests.unit.test_executor import FakeKube, store_with

TIMING = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


@pytest.fixture(autouse=True)
def _no_leader_series_left() -> Iterator[None]:
    """The contenders here set haoperator_leader in the process's registry: leave none behind
    for the tests that read what the registry serves (the dashboard's, the scrape's)."""
    yield
    metrics.LEADER.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseApi:
    """One Lease, `ns/haoperator`, shared by the contenders; `down` makes every request fail."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 1
        self.down = False
        self.writes: list[tuple[str, str | None]] = []  # (verb, holder written)
        self.pods: dict[str, dict[str, str]] = {}  # the operator's pods' labels

    def _check(self) -> None:
        if self.down:
            raise ApiError(0, "Unavailable", "connection refused")

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        kept = copy.deepcopy(obj)
        kept["metadata"]["resourceVersion"] = str(self.version)
        self.lease = kept
        return copy.deepcopy(kept)

    def get(self, kind: str, namespace: str | None, name: str, **_: Any) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ApiError(409, "AlreadyExists", "leases.coordination.k8s.io exists")
        self.writes.append(("create", obj["spec"]["holderIdentity"]))
        return self._store(obj)

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict[str, Any]]:
        self._check()
        key, value = selector.split("=")
        return [
            {"metadata": {"name": name, "labels": labels}}
            for name, labels in self.pods.items()
            if labels.get(key) == value
        ]

    def patch(
        self, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self._check()
        self.pods.setdefault(name, {}).update(patch["metadata"]["labels"])
        return {"metadata": {"name": name}}

    def replace(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if obj["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        self.writes.append(("update", obj["spec"].get("holderIdentity")))
        return self._store(obj)


def contender(
    api: LeaseApi, me: str, clock: Clock, pod: str | None = None, **callbacks: Any
) -> Leadership:
    found = Leadership(
        api,  # type: ignore[arg-type]
        namespace="ns",
        identity=me,
        timing=TIMING,
        clock=clock,
        pod=pod,
        **callbacks,
    )
    found.observe(api.get("Lease", "ns", "haoperator"))  # what its watch does first
    return found


def see(api: LeaseApi, *contenders: Leadership) -> None:
    """The watch delivering the Lease as it is now."""
    for c in contenders:
        c.observe(copy.deepcopy(api.lease))


# -- the rules, pure ------------------------------------------------------------------------------


def test_the_default_timing_is_controller_runtimes_and_safe() -> None:
    assert DEFAULT_TIMING == TIMING
    assert timing_problem(DEFAULT_TIMING) is None


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        (Timing(10, 10, 2), "renew deadline must be shorter than the lease"),
        (Timing(15, 10, 10), "retry period must be shorter than the renew deadline"),
        (Timing(15, 10, 0), "positive"),
    ],
)
def test_unsafe_timings_are_refused(timing: Timing, problem: str) -> None:
    assert problem in (timing_problem(timing) or "")


def test_a_renew_may_never_outlast_the_renew_deadline() -> None:
    assert renew_timeout(100.0, 101.0, TIMING) == 2.0  # a retry period
    assert renew_timeout(100.0, 109.0, TIMING) == 1.0  # what is left of the deadline
    assert renew_timeout(100.0, 112.0, TIMING) == 0.2  # past it: a last, short try


def test_the_leases_clock_restarts_only_when_its_spec_changes() -> None:
    record = {"metadata": {}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    first = seen_lease(record, None, True, 10.0, 15.0)
    assert first is not None
    assert (first.holder, first.lease_duration, first.observed_at) == ("a", 15.0, 10.0)
    same = seen_lease(record, first, False, 20.0, 15.0)
    assert same is not None
    assert same.observed_at == 10.0
    assert seen_lease(None, first, True, 20.0, 15.0) is None


def test_without_a_pod_each_leader_electing_instance_has_its_own_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    assert identity(True) != identity(True)
    assert identity(False) == identity(False)
    monkeypatch.setenv("POD_NAME", "haoperator-abc")
    assert identity(True) == "haoperator-abc"


# -- the contenders -------------------------------------------------------------------------------


def test_the_first_instance_creates_the_lease_and_leads_the_other_stands_by() -> None:
    api, clock = LeaseApi(), Clock()
    started: list[str] = []
    a = contender(api, "a", clock, on_started=lambda: started.append("a"))
    b = contender(api, "b", clock, on_started=lambda: started.append("b"))
    a.step()
    see(api, b)
    b.step()
    assert a.still_leading()
    assert not b.still_leading()
    assert started == ["a"]
    assert api.writes == [("create", "a")]
    assert metrics.LEADER.labels("a")._value.get() == 1
    assert metrics.LEADER.labels("b")._value.get() == 0


def test_a_standby_never_writes_while_the_leader_renews() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = contender(api, "a", clock), contender(api, "b", clock)
    a.step()
    see(api, b)
    for _ in range(30):  # a minute
        clock.now += 2.0
        a.step()
        see(api, b)
        b.step()
        assert a.still_leading()
        assert not b.still_leading()
    assert {holder for _, holder in api.writes} == {"a"}


def test_a_leader_that_vanished_is_replaced_once_its_lease_expired_not_before() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = contender(api, "a", clock), contender(api, "b", clock)
    a.step()
    see(api, b)  # b saw a's last renew now; a is then kill -9'd
    clock.now += TIMING.lease_duration - 0.1
    b.step()
    assert not b.still_leading()
    assert api.writes == [("create", "a")]
    clock.now += 0.1
    b.step()
    assert b.still_leading()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


def test_a_leader_that_cannot_renew_stops_acting_before_its_lease_can_expire() -> None:
    api, clock = LeaseApi(), Clock()
    stopped: list[str] = []
    a = contender(api, "a", clock, on_stopped=lambda: stopped.append("a"))
    b = contender(api, "b", clock)
    a.step()
    see(api, b)
    api.down = True  # a is cut off from the API server; b's view of the Lease is as it was
    acting_until = None
    while clock.now < 1000.0 + TIMING.lease_duration:
        clock.now += 0.5
        if a.still_leading():
            acting_until = clock.now
        a.step()
    assert acting_until is not None
    assert acting_until < 1000.0 + TIMING.renew_deadline
    assert stopped == ["a"]
    api.down = False
    b.step()  # the standby may take over only now, when a has long stopped
    assert b.still_leading()
    assert not a.still_leading()


def test_still_leading_is_by_the_clock_even_when_the_loop_is_stuck() -> None:
    api, clock = LeaseApi(), Clock()
    a = contender(api, "a", clock)
    a.step()
    clock.now += TIMING.renew_deadline  # no step ran meanwhile (a frozen process, say)
    assert not a.still_leading()


def test_a_released_lease_is_taken_at_once() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = contender(api, "a", clock), contender(api, "b", clock)
    a.step()
    see(api, b)
    a.shutdown()
    a.release()
    assert not a.still_leading()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] is None
    see(api, b)
    b.step()
    assert b.still_leading()


def test_a_standby_does_not_release_what_it_does_not_hold() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = contender(api, "a", clock), contender(api, "b", clock)
    a.step()
    see(api, b)
    b.release()
    assert api.writes == [("create", "a")]


def test_a_restarted_leader_takes_its_lease_back_at_once() -> None:
    """The same pod restarted within the lease (its container killed): it names itself still."""
    api, clock = LeaseApi(), Clock()
    contender(api, "a", clock).step()
    again = contender(api, "a", clock)
    again.step()
    assert again.still_leading()
    assert api.lease is not None
    assert api.lease["spec"]["leaseTransitions"] == 0


def test_two_acquiring_at_once_only_one_wins() -> None:
    api, clock = LeaseApi(), Clock()
    a = contender(api, "a", clock)
    a.step()
    a.shutdown()
    a.release()
    b, c = contender(api, "b", clock), contender(api, "c", clock)
    b.step()
    c.step()  # its copy is stale: 409, it reads the Lease again and stands by
    assert b.still_leading()
    assert not c.still_leading()
    c.step()
    assert not c.still_leading()


def test_a_leader_whose_lease_was_taken_steps_down() -> None:
    api, clock = LeaseApi(), Clock()
    stopped: list[str] = []
    a = contender(api, "a", clock, on_stopped=lambda: stopped.append("a"))
    a.step()
    assert api.lease is not None
    api.lease["spec"]["holderIdentity"] = "intruder"
    api.version += 1
    api.lease["metadata"]["resourceVersion"] = str(api.version)
    see(api, a)
    a.step()
    assert not a.still_leading()
    assert stopped == ["a"]


def test_an_older_copy_of_the_lease_is_ignored() -> None:
    api, clock = LeaseApi(), Clock()
    a, b = contender(api, "a", clock), contender(api, "b", clock)
    a.step()
    see(api, b)
    stale = copy.deepcopy(api.lease)
    clock.now += 16
    b.step()  # took the expired Lease
    assert b.still_leading()
    b.observe(stale)  # a slow watch delivers a's last renew after b's write
    b.step()
    assert b.still_leading()


def test_in_a_pod_the_leaders_pod_is_labelled_and_a_vanished_leaders_label_taken_off() -> None:
    api, clock = LeaseApi(), Clock()
    a = contender(api, "a", clock, pod="a")
    b = contender(api, "b", clock, pod="b")
    a.step()
    see(api, b)
    b.step()
    assert api.pods == {"a": {"haoperator.dev/leader": "true"}}  # a standby writes nothing
    clock.now += TIMING.lease_duration  # a's node is lost: it never stepped down
    b.step()
    assert b.still_leading()
    assert api.pods == {
        "a": {"haoperator.dev/leader": "false"},
        "b": {"haoperator.dev/leader": "true"},
    }
    b.shutdown()
    assert api.pods["b"] == {"haoperator.dev/leader": "false"}


def test_outside_a_pod_no_pod_is_labelled() -> None:
    api, clock = LeaseApi(), Clock()
    a = contender(api, "a", clock)
    a.step()
    a.shutdown()
    assert api.pods == {}


# -- the executor: the one place that checks before it writes -------------------------------------


def test_the_executor_writes_nothing_once_it_no_longer_leads() -> None:
    kube = FakeKube()
    executor = Executor(kube, still_leading=lambda: False)  # type: ignore[arg-type]
    current = plan(world(haservice(service=SERVICE)), Memory(), NOW)
    assert current.steps
    progress = executor.run(current)
    executor.report(current, progress, Memory())
    assert isinstance(progress.failure, NotLeading)
    assert kube.calls == []
    assert kube.events == []
    assert kube.statuses == []


def test_a_reconcile_that_loses_the_lead_midway_stops_before_its_next_write() -> None:
    kube = FakeKube()
    answers = iter([True, True])  # two writes, then the lead is lost

    def still_leading() -> bool:
        return next(answers, False)

    obj = haservice(service=SERVICE)
    reconciler = Reconciler(kube, store_with(obj, {}), Operator(), still_leading)  # type: ignore[arg-type]
    with pytest.raises(NotLeading):
        reconciler.reconcile(("ns", "web"))
    assert len(kube.calls) == 2
    assert kube.statuses == []


def test_forget_all_drops_every_memory_as_a_fresh_start_would() -> None:
    kube = FakeKube()
    obj = haservice(service=SERVICE)
    reconciler = Reconciler(kube, store_with(obj, {}), Operator())  # type: ignore[arg-type]
    reconciler.reconcile(("ns", "web"))
    assert reconciler.memories
    reconciler.forget_all()
    assert reconciler.memories == {}
