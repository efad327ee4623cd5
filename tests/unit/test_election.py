"""The elector's safety rules, as a pure function of what it observed."""

from __future__ import annotations

from typing import Any

import pytest

from haoperator.core.election import (
    Action,
    Handover,
    Member,
    PeerAnswer,
    SeenLease,
    Takeover,
    Timing,
    app_ready,
    decide,
    failover_gap_start,
    failsafe_holds,
    failsafe_lasted,
    failsafe_members,
    foreign,
    handover,
    holder_gone,
    leading,
    member,
    parse_members,
    preferred,
    role_to_write,
    routed_elsewhere,
    takeover,
)
from haoperator.core.vocabulary import FailoverReason

T = Timing(lease_duration=5, renew_deadline=3, retry_period=1)


def lease(
    holder: str | None, at: float = 100.0, handover: str | None = None, theirs: str | None = None
) -> SeenLease:
    return SeenLease(
        holder=holder, lease_duration=5, observed_at=at, handover_to=handover, foreign=theirs
    )


def test_no_lease_creates_it() -> None:
    assert decide("a", None, is_leader=False, last_renew=0, now=1, timing=T).action is Action.CREATE


def test_a_valid_lease_of_another_is_never_taken() -> None:
    for now in (100.0, 102.0, 104.99):
        d = decide("b", lease("a"), is_leader=False, last_renew=0, now=now, timing=T)
        assert d.action is Action.WAIT
        assert d.wait <= min(T.retry_period, 105 - now) + 1e-9


def test_an_expired_lease_is_acquired() -> None:
    d = decide("b", lease("a"), is_leader=False, last_renew=0, now=105.0, timing=T)
    assert d.action is Action.ACQUIRE


def test_a_released_lease_is_acquired_at_once() -> None:
    d = decide("b", lease(None), is_leader=False, last_renew=0, now=100.1, timing=T)
    assert d.action is Action.ACQUIRE


def test_a_handover_to_another_pod_is_left_to_it_for_two_retry_periods() -> None:
    early = decide("c", lease(None, handover="b"), is_leader=False, last_renew=0, now=101, timing=T)
    assert early.action is Action.WAIT
    late = decide(
        "c", lease(None, handover="b"), is_leader=False, last_renew=0, now=102.5, timing=T
    )
    assert late.action is Action.ACQUIRE
    named = decide(
        "b", lease(None, handover="b"), is_leader=False, last_renew=0, now=100.1, timing=T
    )
    assert named.action is Action.ACQUIRE


def test_a_leader_renews_while_within_the_renew_deadline() -> None:
    d = decide("a", lease("a"), is_leader=True, last_renew=99, now=101, timing=T)
    assert d.action is Action.RENEW


def test_a_leader_renews_once_per_retry_period_however_often_it_is_woken() -> None:
    """Its own renew comes back through the watch and wakes it: that is not a reason to renew
    again (it was, once: a hot loop of renews that also kept resetting every standby's clock)."""
    d = decide("a", lease("a"), is_leader=True, last_renew=100, now=100.05, timing=T)
    assert d.action is Action.WAIT
    assert abs(d.wait - 0.95) < 1e-9
    assert decide("a", lease("a"), is_leader=True, last_renew=100, now=101, timing=T).action is (
        Action.RENEW
    )


def test_a_leader_past_its_renew_deadline_steps_down_before_anything_else() -> None:
    # Frozen for 20 s: on resuming, whatever the Lease says, it first steps down.
    for observed in (lease("a"), lease("b"), None):
        d = decide("a", observed, is_leader=True, last_renew=99, now=119, timing=T)
        assert d.action is Action.STEP_DOWN
    assert not leading(True, 99, 102.0, T)
    assert leading(True, 99, 101.9, T)


def test_a_leader_that_sees_another_holder_steps_down() -> None:
    d = decide("a", lease("b"), is_leader=True, last_renew=100, now=100.5, timing=T)
    assert d.action is Action.STEP_DOWN


def test_the_renew_deadline_ends_leadership_before_the_lease_frees_anyone_else() -> None:
    # The leader's last renew at 99 is seen by others at 99 or later; they may take over at
    # 104 at the earliest, by which time the leader has stopped acting (at 102).
    last_renew = 99.0
    standby_earliest = last_renew + T.lease_duration
    assert not leading(True, last_renew, standby_earliest, T)


def test_preferred_is_the_oldest_then_the_first_name() -> None:
    pods = [
        ("2026-01-01T00:00:02Z", "b"),
        ("2026-01-01T00:00:01Z", "c"),
        ("2026-01-01T00:00:01Z", "a"),
    ]
    assert preferred(pods) == "a"
    assert preferred([]) is None


def test_a_lease_naming_us_while_we_do_not_lead_is_acquired_every_retry_period() -> None:
    """A restart within the lease, or a win whose fence or label failed: the acquisition (which
    renews the Lease, fences and labels) is retried until it succeeds."""
    for now in (100.0, 103.0, 110.0):  # valid or expired by now: ours either way
        d = decide("a", lease("a"), is_leader=False, last_renew=0, now=now, timing=T)
        assert (d.action, d.wait) == (Action.ACQUIRE, T.retry_period)


OURS = {"haoperator.dev/service": "vip", "app.kubernetes.io/managed-by": "haoperator"}


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        (OURS, None),
        ({**OURS, "other": "x"}, None),
        ({}, "it lacks the label haoperator.dev/service=vip"),
        ({"app": "vip"}, "it lacks the label haoperator.dev/service=vip"),
        (
            {**OURS, "haoperator.dev/service": "web"},
            "its label haoperator.dev/service is 'web', not 'vip'",
        ),
        (
            {"haoperator.dev/service": "vip"},
            "it lacks the label app.kubernetes.io/managed-by=haoperator",
        ),
        (
            {**OURS, "app.kubernetes.io/managed-by": "helm"},
            "its label app.kubernetes.io/managed-by is 'helm', not 'haoperator'",
        ),
    ],
)
def test_only_a_lease_labelled_for_the_service_is_ours(
    labels: dict[str, str], why: str | None
) -> None:
    assert foreign(labels, "vip") == why


def test_a_lease_controlled_by_something_else_is_not_ours_whatever_its_labels() -> None:
    """The operator calls such a Lease someone else's (NameConflict); so must the electors."""
    mine = {"kind": "HAService", "name": "vip", "uid": "u"}
    assert foreign(OURS, "vip", mine) is None
    assert foreign(OURS, "vip", {**mine, "name": "other"}) == "it belongs to HAService other"
    assert foreign(OURS, "vip", {"kind": "Deployment", "name": "vip"}) == (
        "it belongs to Deployment vip"
    )


def test_a_lease_that_is_not_ours_is_never_taken() -> None:
    """Free, expired, even naming us: another controller's Lease is left alone."""
    for holder in (None, "a", "b"):
        for now in (100.0, 200.0):
            d = decide(
                "a", lease(holder, theirs="x"), is_leader=False, last_renew=0, now=now, timing=T
            )
            assert d.action is Action.WAIT
    d = decide("a", lease("a", theirs="x"), is_leader=True, last_renew=100, now=100.5, timing=T)
    assert d.action is Action.STEP_DOWN


@pytest.mark.parametrize(
    ("holder", "released_by", "expected"),
    [
        ("me", None, Takeover(failover_from=None, transitions=3, retake=True)),
        ("me", "other", Takeover(failover_from=None, transitions=3, retake=True)),
        ("other", None, Takeover(failover_from="other", transitions=4, retake=False)),
        (None, "other", Takeover(failover_from="other", transitions=4, retake=False)),
        (None, "me", Takeover(failover_from=None, transitions=3, retake=False)),
        (None, None, Takeover(failover_from=None, transitions=3, retake=False)),
    ],
)
def test_only_a_takeover_from_another_pod_is_a_transition(
    holder: str | None, released_by: str | None, expected: Takeover
) -> None:
    assert takeover("me", holder, released_by, 3) == expected


@pytest.mark.parametrize(
    ("leader", "label", "synced", "write"),
    [
        (True, "active", True, None),
        (True, "active", False, "active"),  # cannot be sure it is still there: write it
        (True, None, True, "active"),  # removed by hand
        (True, "standby", True, "active"),
        (True, None, False, "active"),
        (False, "active", True, "standby"),  # a rogue write, or left over from a crash
        (False, "active", False, "standby"),
        (False, None, True, "standby"),
        (False, None, False, "standby"),  # never seen (starting): standby until elected
        (False, "standby", True, None),
        (False, "standby", False, None),
        (False, "bogus", True, "standby"),
    ],
)
def test_the_role_label_is_a_level(
    leader: bool, label: str | None, synced: bool, write: str | None
) -> None:
    assert role_to_write(leader, label, synced=synced) == write


def test_a_pod_being_deleted_gives_the_lease_up_and_never_takes_it() -> None:
    """A native sidecar hears SIGTERM only after the application exited (its whole grace
    period, on real pods); meanwhile the Service no longer routes to the terminating pod."""
    leading_ = decide("a", lease("a"), is_leader=True, last_renew=100, now=100.5, timing=T,
                      terminating=True)  # fmt: skip
    assert leading_.action is Action.RELEASE
    named = decide("a", lease("a"), is_leader=False, last_renew=0, now=100, timing=T,
                   terminating=True)  # fmt: skip
    assert named.action is Action.RELEASE  # won but not yet labelled: free it for the others
    for holder in (None, "b"):
        standby = decide("a", lease(holder), is_leader=False, last_renew=0, now=500, timing=T,
                         terminating=True)  # fmt: skip
        assert standby.action is Action.WAIT


# -- the role follows the application ------------------------------------------------------------

STARTED = 1_000_000.0  # when the holder's elector process started (epoch seconds)


def stamp(epoch: float) -> str:
    from haoperator.core.times import micro_stamp

    return micro_stamp(epoch).split(".")[0] + "Z"  # the kubelet's whole seconds


def pod(
    name: str,
    *,
    ready: bool = True,
    elector: dict[str, object] | None = None,
    created: str = "2026-12-02T00:00:00Z",
    deleting: bool = False,
    containers: tuple[str, ...] = ("app",),
) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T00:10:00Z"
    return {
        "metadata": meta,
        "status": {
            "initContainerStatuses": [
                {"name": "ha-elector", "state": elector or {"running": {"startedAt": stamp(1.0)}}}
            ],
            "containerStatuses": [{"name": c, "ready": ready} for c in containers],
        },
    }


def test_the_application_is_every_container_but_the_elector_or_those_named() -> None:
    both = pod("a", containers=("app", "log"))
    assert app_ready(both)
    both["status"]["containerStatuses"][1]["ready"] = False  # type: ignore[index]
    assert not app_ready(both)
    assert app_ready(both, ["app"])
    assert not app_ready(pod("a", ready=False))
    assert not app_ready({"metadata": {"name": "a"}})  # no status yet: not ready


def test_a_member_is_fit_only_with_its_application_ready_its_elector_up_and_not_deleting() -> None:
    assert member(pod("a")).fit
    assert not member(pod("a", ready=False)).fit
    assert not member(pod("a", deleting=True)).fit
    dead = {"terminated": {"finishedAt": stamp(STARTED + 60)}}
    assert not member(pod("a", elector=dead)).fit


@pytest.mark.parametrize(
    ("state", "gone"),
    [
        ({"terminated": {"finishedAt": stamp(STARTED + 60)}}, True),  # the writer died
        ({"waiting": {"reason": "CrashLoopBackOff"}}, False),  # no termination time: unknown
        ({"running": {"startedAt": stamp(STARTED + 60)}}, True),  # a newer process runs
        ({"running": {"startedAt": stamp(STARTED - 1)}}, False),  # the writer itself
        ({"terminated": {"finishedAt": stamp(STARTED - 5)}}, False),  # stale: an older process
        ({"terminated": {"finishedAt": stamp(STARTED + 0.5)}}, False),  # the same second: unsure
    ],
)
def test_a_holder_is_gone_only_when_its_pod_shows_the_writer_stopped(
    state: dict[str, object], gone: bool
) -> None:
    assert holder_gone(pod("a", elector=state), STARTED) is gone


def test_a_waiting_elector_after_a_termination_is_gone_and_nothing_is_known_without_status() -> (
    None
):
    crashed = {
        "state": {"waiting": {}},
        "lastState": {"terminated": {"finishedAt": stamp(STARTED + 9)}},
    }
    p = pod("a")
    p["status"]["initContainerStatuses"] = [{"name": "ha-elector", **crashed}]  # type: ignore[index]
    assert holder_gone(p, STARTED)
    assert not holder_gone(None, STARTED)  # force-deleted, node lost: wait for the expiry
    assert not holder_gone(
        pod("a", elector={"terminated": {"finishedAt": stamp(STARTED + 9)}}), None
    )


def test_a_gone_holders_lease_is_taken_at_once_and_only_then() -> None:
    held = lease("a", at=100.0)
    d = decide("b", held, is_leader=False, last_renew=0, now=101, timing=T, holder_gone=True)
    assert d.action is Action.ACQUIRE
    d = decide("b", held, is_leader=False, last_renew=0, now=101, timing=T)
    assert d.action is Action.WAIT


def test_an_unhealthy_standby_leaves_a_free_or_expired_lease_to_a_ready_rival() -> None:
    for seen, now in ((lease(None), 101.0), (lease("a"), 106.0)):
        unfit = decide(
            "b", seen, is_leader=False, last_renew=0, now=now, timing=T, healthy=False,
            ready_rival=True,
        )  # fmt: skip
        assert unfit.action is Action.WAIT
        alone = decide("b", seen, is_leader=False, last_renew=0, now=now, timing=T, healthy=False)
        assert alone.action is Action.ACQUIRE  # nobody better: someone must hold it


def test_an_unhealthy_pod_named_on_the_lease_gives_it_to_a_ready_rival() -> None:
    d = decide(
        "a", lease("a"), is_leader=False, last_renew=0, now=101, timing=T, healthy=False,
        ready_rival=True,
    )  # fmt: skip
    assert d.action is Action.RELEASE


def members(*pods: dict[str, object]) -> dict[str, Member]:
    return {m.name: m for m in (member(p) for p in pods)}


def test_an_unhealthy_leader_hands_over_to_the_best_ready_standby_after_unhealthy_seconds() -> None:
    pods = members(
        pod("a", ready=False),
        pod("b", created="2026-12-02T00:00:05Z"),
        pod("c", created="2026-12-02T00:00:01Z"),
        pod("d", created="2026-12-01T00:00:00Z", ready=False),
    )
    kwargs = {"switch_to": None, "preempt": False, "unhealthy_seconds": 2.0}
    assert handover("a", pods, unhealthy_for=None, **kwargs) is None  # type: ignore[arg-type]
    assert handover("a", pods, unhealthy_for=1.9, **kwargs) is None  # type: ignore[arg-type]
    moved = handover("a", pods, unhealthy_for=2.0, **kwargs)  # type: ignore[arg-type]
    assert moved == Handover("c", FailoverReason.APPLICATION_UNHEALTHY)


def test_with_no_ready_standby_an_unhealthy_leader_keeps_the_role() -> None:
    pods = members(pod("a", ready=False), pod("b", ready=False), pod("c", deleting=True))
    assert (
        handover("a", pods, unhealthy_for=60, unhealthy_seconds=0, switch_to=None, preempt=False)
        is None
    )


def test_a_switchover_goes_to_the_named_pod_only_while_it_is_fit() -> None:
    pods = members(pod("a"), pod("b"), pod("c", ready=False))
    args = {"unhealthy_for": None, "unhealthy_seconds": 0.0, "preempt": False}
    assert handover("a", pods, switch_to="b", **args) == Handover("b", FailoverReason.SWITCHOVER)  # type: ignore[arg-type]
    assert handover("a", pods, switch_to="c", **args) is None  # type: ignore[arg-type]
    assert handover("a", pods, switch_to="zz", **args) is None  # type: ignore[arg-type]
    assert handover("a", pods, switch_to="a", **args) is None  # type: ignore[arg-type]


def test_preempt_hands_over_to_an_older_ready_pod_only_while_we_are_ready() -> None:
    pods = members(pod("a", created="2026-12-02T00:00:09Z"), pod("b"))
    args = {"unhealthy_for": None, "unhealthy_seconds": 0.0, "switch_to": None}
    assert handover("a", pods, preempt=True, **args) == Handover("b", FailoverReason.PREEMPTED)  # type: ignore[arg-type]
    assert handover("b", pods, preempt=True, **args) is None  # type: ignore[arg-type]
    assert handover("a", pods, preempt=False, **args) is None  # type: ignore[arg-type]


def test_a_failover_gap_starts_when_the_old_leader_last_answered() -> None:
    assert failover_gap_start(50.0, None, None, T) == 50.0  # released: the release time
    assert failover_gap_start(None, 40.0, None, T) == 43.0  # expired: renew + renew deadline
    assert failover_gap_start(None, 40.0, 41.5, T) == 41.5  # its elector stopped earlier
    assert failover_gap_start(None, None, None, T) is None


# -- failsafe -------------------------------------------------------------------------------------


def test_a_pod_the_holder_did_not_publish_waits_the_failsafe_longer_for_an_expired_lease() -> None:
    held = SeenLease(holder="a", lease_duration=5, observed_at=100.0, members=frozenset({"b"}))
    assert (
        decide("b", held, is_leader=False, last_renew=0, now=105, timing=T, failsafe=60).action
        is Action.ACQUIRE
    )
    late = decide("c", held, is_leader=False, last_renew=0, now=105, timing=T, failsafe=60)
    assert late.action is Action.WAIT
    assert (
        decide("c", held, is_leader=False, last_renew=0, now=165, timing=T, failsafe=60).action
        is Action.ACQUIRE
    )
    unpublished = SeenLease(holder="a", lease_duration=5, observed_at=100.0)
    assert (
        decide(
            "c", unpublished, is_leader=False, last_renew=0, now=105, timing=T, failsafe=60
        ).action
        is Action.ACQUIRE
    )


def test_a_failsafe_holds_only_when_every_member_confirms() -> None:
    yes = PeerAnswer(reachable=False, leading=False, holder="a")
    assert failsafe_holds("a", {"b", "c"}, {"b": yes, "c": yes}) is None
    assert failsafe_holds("a", set(), {}) is None
    cases = {
        "c did not answer": {"b": yes},
        "c can reach the API server": {"b": yes, "c": PeerAnswer(reachable=True, holder="a")},
        "c says it leads": {"b": yes, "c": PeerAnswer(reachable=False, leading=True, holder="a")},
        "c sees the Lease held by nobody": {"b": yes, "c": PeerAnswer(reachable=False)},
        "b did not answer": {"b": PeerAnswer(reachable=None), "c": yes},
    }
    for why, answers in cases.items():
        assert failsafe_holds("a", {"b", "c"}, answers) == why


def test_the_failsafe_members_are_the_pods_that_could_take_the_lease() -> None:
    done = pod("d")
    done["status"]["phase"] = "Failed"  # type: ignore[index]
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), done]
    assert failsafe_members("a", pods) == {"b"}
    assert parse_members("b,c") == {"b", "c"}
    assert parse_members("") == frozenset()
    assert parse_members(None) is None
    assert failsafe_lasted(100.0, 220.0, 120.0)
    assert not failsafe_lasted(100.0, 219.0, 120.0)


def _slice(*names: str | None) -> dict[str, Any]:
    return {"endpoints": [{"targetRef": {"kind": "Pod", "name": n}} if n else {} for n in names]}


@pytest.mark.parametrize(
    ("slices", "elsewhere"),
    [
        ([], False),  # no Service, or no slice yet
        ([_slice()], False),  # the removal written
        ([_slice("me")], False),
        ([_slice("other")], True),
        ([_slice(), _slice("me", "other")], True),  # in any slice
        ([_slice(None)], False),  # an endpoint without a pod reference is no pod of ours
    ],
)
def test_the_service_routes_elsewhere_while_any_slice_lists_another_pod(
    slices: list[dict[str, Any]], elsewhere: bool
) -> None:
    assert routed_elsewhere("me", slices) is elsewhere
