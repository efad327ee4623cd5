"""The elector's safety rules, as a pure function of what it observed."""

from __future__ import annotations

import pytest

from haoperator.core.election import (
    Action,
    SeenLease,
    Takeover,
    Timing,
    decide,
    foreign,
    leading,
    preferred,
    role_to_write,
    takeover,
)

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
