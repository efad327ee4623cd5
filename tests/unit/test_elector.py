"""The elector's loop and its Lease and pod writes, against an in-memory API that enforces
resourceVersion like the real one. (The real API server is exercised by
tests/integration/test_active_passive.py; these pin down orderings and failures that are hard
to hit there: a refused fence or label, a label removed by hand, a pause, a foreign Lease.)"""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

import pytest

from haoperator.controller.kube import ApiError, Kube
from haoperator.core.election import PeerAnswer, Timing
from haoperator.sidecar.elector import UNROUTE_POLL, UNROUTE_WAIT, Elector

SERVICE = "haoperator.dev/service"
OURS = {SERVICE: "vip", "app.kubernetes.io/managed-by": "haoperator"}
ROLE = "haoperator.dev/role"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
LEASE_PATH = f"{LEASES}/vip"
PODS = "/api/v1/namespaces/ns/pods"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
LOST_AT = "2026-12-02T00:00:00.000000Z"


class Clock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApi(Kube):
    """Just enough of the API server for one Lease and the service's pods, with resourceVersions
    from one counter as etcd's, behind the real Kube (whose requests it answers). `refuse` makes
    one request fail (403, 404, ...) until `allow`; `follow` feeds an elector its own pod as its
    pod watch would, on every change."""

    def __init__(
        self,
        holder: str | None,
        *,
        lease_labels: dict[str, str] | None = None,
        exists: bool = True,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.version = 1
        self.lease: dict[str, Any] | None = None
        if exists:
            self.lease = {
                "metadata": {
                    "name": "vip",
                    "namespace": "ns",
                    "resourceVersion": "1",
                    "labels": dict(OURS) if lease_labels is None else lease_labels,
                },
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5, "renewTime": LOST_AT},
            }
        self.pods: dict[str, dict[str, Any]] = {
            name: {
                "metadata": {"name": name, "resourceVersion": "1", "labels": {SERVICE: "vip"}},
                "status": status(ready=True),
            }
            for name in ("me", "other")
        }
        self.puts: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str | None]] = []
        self.refused: dict[tuple[str, str], int] = {}
        self.followers: list[Elector] = []
        self.clock, self.slow_puts = clock, 0.0
        self.lock = threading.Lock()
        # The Service's EndpointSlice as the controller writes it: the active pods, `slice_lag`
        # reads after a change of them (0: at once). `calls` orders slice reads and patches.
        self.slice_lag = 0
        self.calls: list[str] = []
        self.routed: list[str] = []  # the pods the slice lists now
        self._lagging = 0

    # -- what a test does to the world --------------------------------------------------------

    def refuse(self, method: str, path: str, status: int = 403) -> None:
        self.refused[(method, path)] = status

    def allow(self, method: str, path: str) -> None:
        self.refused.pop((method, path), None)

    def follow(self, elector: Elector) -> None:
        """Start the elector's pod watch: a list, then every change of the service's pods."""
        self.followers.append(elector)
        elector.read_pods()

    def set_role(self, pod: str, role: str | None) -> None:
        """Someone else (kubectl, a rogue writer) sets or removes a pod's role label."""
        self._label(pod, role)

    def role(self, pod: str) -> str | None:
        role: str | None = self.pods[pod]["metadata"]["labels"].get(ROLE)
        return role

    def bump(self, **spec: Any) -> dict[str, Any]:
        """Another writer changed the Lease (a renew, say)."""
        with self.lock:
            assert self.lease is not None
            self.lease["metadata"]["resourceVersion"] = self._next()
            self.lease["spec"].update(spec)
            return copy.deepcopy(self.lease)

    def put_lease(self, labels: dict[str, str]) -> dict[str, Any]:
        """Someone else (the operator) creates the Lease: empty, with these labels."""
        with self.lock:
            meta = {"name": "vip", "namespace": "ns", "labels": labels}
            self.lease = {"metadata": {**meta, "resourceVersion": self._next()}, "spec": {}}
            return copy.deepcopy(self.lease)

    def _next(self) -> str:
        self.version += 1
        return str(self.version)

    def _slices(self, selector: str) -> list[dict[str, Any]]:
        assert selector == "kubernetes.io/service-name=vip", selector
        if ("GET", SLICES) in self.refused:
            raise ApiError(self.refused[("GET", SLICES)], "Refused", f"GET {SLICES}")
        self.calls.append("slices")
        active = sorted(n for n in self.pods if self.role(n) == "active")
        if active != self.routed:
            if self._lagging < self.slice_lag:
                self._lagging += 1
            else:
                self.routed, self._lagging = active, 0
        endpoints = [{"targetRef": {"kind": "Pod", "name": name}} for name in self.routed]
        return [{"metadata": {"name": "vip-x"}, "endpoints": endpoints}]

    def _label(self, pod: str, role: str | None) -> dict[str, Any]:
        self.calls.append(f"{pod}={role}")
        meta = self.pods[pod]["metadata"]
        if role is None:
            meta["labels"].pop(ROLE, None)
        else:
            meta["labels"][ROLE] = role
        meta["resourceVersion"] = self._next()
        self.changed(pod)
        return copy.deepcopy(self.pods[pod])

    def set_status(self, pod: str, **how: Any) -> None:
        """The kubelet reports the pod's containers (see `status`)."""
        with self.lock:
            self.pods[pod]["status"] = status(**how)
            self.pods[pod]["metadata"]["resourceVersion"] = self._next()
        self.changed(pod)

    def changed(self, pod: str) -> None:
        """Feed every following elector the pod's new copy, as their pod watches would."""
        for elector in self.followers:
            elector.observe_pod(copy.deepcopy(self.pods[pod]))

    # -- the API ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if (method, path) in self.refused:
            status = self.refused[(method, path)]
            raise ApiError(status, "Refused", f"{method} {path}: {status}")
        if path.startswith(f"{PODS}/"):
            name = path.rsplit("/", 1)[1]
            if name not in self.pods:
                raise ApiError(404, "NotFound", f"pods {name!r} not found")
            if method == "GET":
                return copy.deepcopy(self.pods[name])
            assert method == "PATCH", method
            role = body["metadata"]["labels"][ROLE]
            self.patches.append((name, role))
            return self._label(name, role)
        with self.lock:
            if method == "POST":
                assert path == LEASES, path
                if self.lease is not None:
                    raise ApiError(409, "AlreadyExists", "leases 'vip' already exists")
                self.posts.append(copy.deepcopy(body))
                self.lease = copy.deepcopy(body)
                self.lease["metadata"]["resourceVersion"] = self._next()
                return copy.deepcopy(self.lease)
            assert path == LEASE_PATH, path
            if self.lease is None:
                raise ApiError(404, "NotFound", "leases 'vip' not found")
            if method == "GET":
                return copy.deepcopy(self.lease)
            assert method == "PUT"
            if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            if self.clock is not None:
                self.clock.now += self.slow_puts  # the request took this long
            self.calls.append(f"lease={body['spec'].get('holderIdentity')}")
            self.puts.append(copy.deepcopy(body))
            self.lease = copy.deepcopy(body)
            self.lease["metadata"]["resourceVersion"] = self._next()
            return copy.deepcopy(self.lease)

    def list_page(self, kind: str, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        if kind == "EndpointSlice":  # the slice watch's list: the slice as `routed` says now
            self.calls.append("slice-list")
            items = [self.slice(self.routed)]
        else:
            items = [copy.deepcopy(pod) for pod in self.pods.values()]  # the watch's list
        return {"metadata": {"resourceVersion": str(self.version)}, "items": items}

    def slice(self, routed: list[str]) -> dict[str, Any]:
        """The Service's one EndpointSlice listing `routed`, as a new version."""
        endpoints = [{"targetRef": {"kind": "Pod", "name": name}} for name in routed]
        meta = {"name": "vip-x", "resourceVersion": self._next()}
        return {"metadata": meta, "endpoints": endpoints}

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict[str, Any]]:
        if kind == "EndpointSlice":
            return self._slices(selector)
        assert kind == "Pod"
        if ("GET", PODS) in self.refused:
            raise ApiError(self.refused[("GET", PODS)], "Refused", f"GET {PODS}")
        wanted = dict(term.split("=") for term in selector.split(",") if term)
        return [
            copy.deepcopy(pod)
            for pod in self.pods.values()
            if all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]


def status(ready: bool = True, elector: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pod's container statuses: the application `ready` or not; the ha-elector's state
    (default: running since long before any elector of these tests started)."""
    return {
        "initContainerStatuses": [
            {"name": "ha-elector", "state": elector or {"running": {"startedAt": LOST_AT}}}
        ],
        "containerStatuses": [{"name": "app", "ready": ready}],
    }


class Logs:
    """Stands in for the elector's logger: what it said, at which level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **_: self.lines.append((level, event))

    def warnings(self, containing: str) -> int:
        return sum(1 for level, event in self.lines if level == "warning" and containing in event)


def elector(api: FakeApi, pod: str, clock: Clock | None = None) -> Elector:
    made = Elector(
        api,  # type: ignore[arg-type]
        namespace="ns",
        pod=pod,
        lease="vip",
        timing=Timing(),
        clock=clock or time.monotonic,
    )
    made.log = Logs()
    return made


def watched(api: FakeApi, clock: Clock, pod: str = "me") -> Elector:
    """An elector whose Lease and pod watches have both synced."""
    made = elector(api, pod, clock)
    made.observe(api.get("Lease", "ns", "vip"))
    api.follow(made)
    return made


def leader(api: FakeApi, clock: Clock) -> Elector:
    """`me`, elected from a free Lease."""
    me = watched(api, clock)
    me.step()
    assert me.leader_now()
    assert api.role("me") == "active"
    return me


def logs(e: Elector) -> Logs:
    assert isinstance(e.log, Logs)
    return e.log


# -- the loop -------------------------------------------------------------------------------------


def test_a_lease_change_seen_during_a_step_wakes_the_next_step_at_once() -> None:
    """The lost wake-up: a release observed while a step runs must not wait for `delay`."""
    api = FakeApi(holder="other")
    standby = elector(api, "me")
    standby.observe(api.get("Lease", "ns", "vip"))
    steps: list[str | None] = []
    real_step = standby.step

    def step() -> float:
        steps.append(standby.observed.holder if standby.observed else None)
        if len(steps) == 1:
            real_step()  # waits: another holder's Lease is valid
            standby.observe(api.bump(holderIdentity=None))  # the release lands mid-step
            return 3600.0  # the step had decided to wait this long
        standby.stop.set()
        return 0.0

    standby.step = step  # type: ignore[method-assign]
    runner = threading.Thread(target=standby.run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the loop slept through a Lease change it had already seen"
    assert steps == ["other", None]


def test_release_retries_on_a_stale_copy_and_frees_the_lease() -> None:
    api = FakeApi(holder="me")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    leader.is_leader = True
    api.bump(renewTime="2026-11-25T00:00:01.000000Z")  # written, but not yet seen back

    leader.release()

    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] is None
    assert api.lease["metadata"]["annotations"]["haoperator.dev/released-by"] == "me"
    assert api.role("me") == "standby"
    assert not leader.is_leader


def test_release_frees_the_lease_before_it_unlabels_our_pod() -> None:
    """The Lease first: the standby starts at once; our label after (see Elector.release for
    what the other order cost on real pods)."""
    api = FakeApi(holder="me")
    api.set_role("me", "active")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    leader.is_leader = True
    api.calls.clear()

    leader.release()

    assert api.calls == ["lease=None", "me=standby"]
    assert not leader.is_leader


def test_release_leaves_a_lease_someone_else_took() -> None:
    api = FakeApi(holder="me")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    leader.is_leader = True
    api.bump(holderIdentity="other")  # the Lease moved on before we saw it

    leader.release()

    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "other"
    assert api.puts == []
    assert api.role("me") == "standby"


def test_stopping_frees_a_lease_still_naming_us_after_stepping_down() -> None:
    """A leader that stepped down (renew deadline) but is still on the Lease frees it on exit,
    so the standby need not wait out the lease."""
    api = FakeApi(holder="me")
    stepped_down = elector(api, "me")
    stepped_down.observe(api.get("Lease", "ns", "vip"))
    stepped_down.stop.set()

    stepped_down.run()

    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] is None
    assert api.role("me") == "standby"


def test_our_own_write_echoing_back_through_the_watch_is_not_news() -> None:
    api = FakeApi(holder="me")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    api.follow(leader)
    leader.is_leader = True
    leader.last_renew = leader.clock() - 2  # a renew is due
    leader.step()  # renews (and labels the pod active: it was not)
    assert len(api.puts) == 1
    leader.wake.clear()
    leader.observe(api.get("Lease", "ns", "vip"))  # the watch brings the same version back
    leader.observe_pod(api.get("Pod", "ns", "me"))  # and the label's echo
    assert not leader.wake.is_set()
    leader.step()  # woken or not, the next renew waits a retry period
    assert len(api.puts) == 1

    leader.observe(api.bump(holderIdentity="other"))  # real news wakes it
    assert leader.wake.is_set()


# -- leading means fenced and labelled ------------------------------------------------------------


def test_a_refused_fence_keeps_the_lease_but_not_the_lead_until_it_is_permitted() -> None:
    """The issue's variant: the Role cut to get/list/watch on pods, the leader's elector killed.
    The standby takes the Lease but cannot fence: it must not answer 200, must keep the Lease
    (renewed by retried acquisitions, not counted as new transitions), and must lead as soon as
    the Role is back."""
    clock = Clock()
    api = FakeApi(holder="other", clock=clock)
    api.set_role("other", "active")
    me = watched(api, clock)
    clock.now += 5  # the killed elector's Lease expired
    api.refuse("PATCH", f"{PODS}/other")

    me.step()
    assert api.lease is not None
    won = copy.deepcopy(api.lease)
    assert won["spec"]["holderIdentity"] == "me"
    assert not me.leader_now()
    assert (api.role("me"), api.role("other")) == ("standby", "active")
    assert won["spec"]["leaseTransitions"] == 1
    # The failover is recorded once this pod serves, not at the Lease write.
    assert "haoperator.dev/last-failover" not in won["metadata"]["annotations"]

    for _ in range(5):
        clock.now += 1
        assert me.step() <= 1.0  # retried every retry period
        assert not me.leader_now()
    assert len(api.puts) == 6  # each retry renewed the Lease: nobody else may take it
    assert api.lease["spec"]["holderIdentity"] == "me"
    assert api.lease["spec"]["leaseTransitions"] == 1
    assert api.lease["spec"]["acquireTime"] == won["spec"]["acquireTime"]
    assert api.lease["metadata"]["annotations"] == won["metadata"]["annotations"]
    assert logs(me).warnings("could not fence") == 1  # once, not every second

    api.allow("PATCH", f"{PODS}/other")  # the Role restored
    clock.now += 1
    me.step()
    assert me.leader_now()
    assert (api.role("me"), api.role("other")) == ("active", "standby")
    assert api.lease["spec"]["leaseTransitions"] == 1
    clock.now += 1
    me.step()  # the first renew records the failover, measured to when it began serving
    failover = json.loads(api.lease["metadata"]["annotations"]["haoperator.dev/last-failover"])
    assert (failover["from"], failover["to"], failover["reason"]) == ("other", "me", "LeaseExpired")


def test_a_refused_label_at_the_win_leaves_it_not_leading() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = watched(api, clock)
    api.refuse("PATCH", f"{PODS}/me")

    for _ in range(5):
        me.step()
        assert api.lease is not None
        assert api.lease["spec"]["holderIdentity"] == "me"
        assert not me.leader_now()
        clock.now += 1
    assert logs(me).warnings("could not label this pod active") == 1
    assert logs(me).warnings("could not label this pod standby") == 1

    api.allow("PATCH", f"{PODS}/me")
    me.step()
    assert me.leader_now()
    assert api.role("me") == "active"


@pytest.mark.parametrize(
    ("refused", "leads"),
    [
        (("PATCH", f"{PODS}/other", 404), True),  # deleted between the list and the patch
        (("GET", PODS, 403), False),  # could not even list the pods: no fence
    ],
)
def test_a_vanished_pod_counts_as_fenced_an_unlisted_one_does_not(
    refused: tuple[str, str, int], leads: bool
) -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.set_role("other", "active")
    api.refuse(*refused)
    me = watched(api, clock)
    me.step()
    assert me.leader_now() is leads
    assert api.role("me") == ("active" if leads else "standby")


def test_a_new_leader_labels_itself_once_the_service_dropped_the_fenced_pod() -> None:
    """The EndpointSlice controller meets a label arriving just behind the fence's removal with
    a stale cache and routes it a second later (1.0-1.2 s gaps in 2 of 30 real-node failovers):
    the new leader waits until the Service routes to no other pod, then labels itself."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.set_role("other", "active")
    api.routed = ["other"]
    api.slice_lag = 3  # the controller writes the removal on the fourth read
    me = watched(api, clock)
    api.calls.clear()
    me.step()
    assert me.leader_now()
    assert api.calls == [
        "lease=me",
        "other=standby",
        "slices",
        "slices",
        "slices",
        "slices",
        "me=active",
    ]  # the Lease taken, fenced, waited for the Service to drop the other pod, labelled


def slices_watched() -> tuple[FakeApi, Elector]:
    """A free Lease, `other` active and routed, and `me` with every watch synced, slices too."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.set_role("other", "active")
    api.routed = ["other"]
    me = watched(api, clock)
    me.read_slices()
    return api, me


def test_with_the_slice_watch_synced_a_new_leader_waits_on_its_events_not_on_reads() -> None:
    """The slices come from their watch: the removal is acted on when its event arrives, and the
    API server, busy with the handover, gets no read of them every UNROUTE_POLL."""
    api, me = slices_watched()

    def controller() -> None:
        """The EndpointSlice controller drops the fenced pod a little later."""
        deadline = time.monotonic() + 5
        while api.role("other") != "standby" and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.05)
        api.calls.append("slice-event")
        me.observe_slice(api.slice([]))

    api.calls.clear()
    thread = threading.Thread(target=controller)
    thread.start()
    me.step()
    thread.join()
    assert me.leader_now()
    assert api.calls == ["lease=me", "other=standby", "slice-event", "me=active"]


def test_a_watched_slice_that_never_drops_the_fenced_pod_holds_the_takeover_up_boundedly() -> None:
    api, me = slices_watched()
    me.observe_slice(api.slice(["other", "me"]))  # a newer version, still routing elsewhere
    me.step()  # returns: the wait gives up after UNROUTE_WAIT instead of waiting on events
    assert me.leader_now()
    assert api.role("me") == "active"
    assert "slices" not in api.calls  # never polled: the watch is synced


def test_a_slice_watch_that_broke_falls_back_to_reading_the_slices() -> None:
    api, me = slices_watched()
    api.slice_lag = 2
    me._slices_unsynced()  # the watch failed; _follow lists again before it watches
    me.step()
    assert me.leader_now()
    assert api.calls.count("slices") == 3


def test_a_takeover_never_waits_long_for_slices_it_cannot_read_or_that_do_not_change() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.set_role("other", "active")
    api.refuse("GET", SLICES)  # a Role from before the elector read slices
    me = watched(api, clock)
    me.step()
    assert me.leader_now()
    assert logs(me).warnings("could not read the Service's EndpointSlices") == 1

    api = FakeApi(holder=None, clock=clock)
    api.set_role("other", "active")
    api.routed = ["other"]
    api.slice_lag = 10**6  # a controller that never writes
    me = watched(api, clock)
    me.step()
    assert me.leader_now()
    assert api.role("me") == "active"
    assert 1 < api.calls.count("slices") <= UNROUTE_WAIT / UNROUTE_POLL + 1  # given up, bounded


# -- the label is a level --------------------------------------------------------------------------


def test_a_leader_whose_label_is_removed_puts_it_back() -> None:
    """`kubectl label pod <leader> haoperator.dev/role-`: the Service routed to nobody for 12+
    minutes while /leader said 200."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    me.wake.clear()
    api.set_role("me", None)
    assert me.wake.is_set()  # news: the step comes at once, not at the next renew

    clock.now += 1
    me.step()
    assert api.role("me") == "active"
    assert me.leader_now()


def test_a_leader_whose_pod_watch_is_down_relabels_on_every_renew() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    me._pod_unsynced()
    before = len(api.patches)
    for _ in range(3):
        clock.now += 1
        me.step()
    assert api.patches[before:] == [("me", "active")] * 3


def test_a_leader_that_cannot_relabel_stays_leader_and_warns_once() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    api.refuse("PATCH", f"{PODS}/me")
    api.set_role("me", None)
    for _ in range(4):
        clock.now += 1
        me.step()
        assert me.leader_now()  # it holds the Lease: nobody else may act
    assert logs(me).warnings("could not restore this pod's active label") == 1

    api.allow("PATCH", f"{PODS}/me")
    clock.now += 1
    me.step()
    assert api.role("me") == "active"


@pytest.mark.parametrize("slow_renew", [False, True])
def test_a_process_paused_past_its_renew_deadline_never_relabels_itself_active(
    slow_renew: bool,
) -> None:
    """Frozen (SIGSTOP, a stalled VM) with its label gone, or its renew answered after the renew
    deadline: the new leader may have fenced it meanwhile, so it must not write `active`."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    api.set_role("me", None)
    before = len(api.patches)
    if slow_renew:
        clock.now += 1
        api.slow_puts = 3.5  # the renew succeeds, but its answer comes too late
    else:
        clock.now += 20
        api.bump(holderIdentity="other")  # taken over meanwhile; not seen yet
    for _ in range(3):
        me.step()
        assert not me.leader_now()
    assert ("me", "active") not in api.patches[before:]
    assert api.role("me") == "standby"


def test_a_standby_whose_pod_is_labelled_active_labels_it_standby() -> None:
    """A rogue write, or a leftover of a crash: a standby never keeps `active`."""
    clock = Clock()
    api = FakeApi(holder="other", clock=clock)
    me = watched(api, clock)
    me.step()  # waits: the other's Lease is valid
    api.set_role("me", "active")
    assert me.wake.is_set()
    me.step()
    assert api.role("me") == "standby"
    assert api.puts == []


def test_taking_back_its_own_lease_is_no_transition() -> None:
    """A restart within the lease: the Lease still names us. Retaking it is the same term: no
    transition counted, no failover recorded, acquireTime kept (client-go does the same)."""
    clock = Clock()
    api = FakeApi(holder="me", clock=clock)
    record = '{"from": "other", "seconds": 4.2, "time": "x", "to": "me"}'
    assert api.lease is not None
    api.lease["metadata"]["annotations"] = {"haoperator.dev/last-failover": record}
    api.bump(leaseTransitions=3, acquireTime=LOST_AT)
    me = watched(api, clock)
    me.step()
    assert me.leader_now()
    spec = api.lease["spec"]
    assert (spec["leaseTransitions"], spec["acquireTime"]) == (3, LOST_AT)
    assert spec["renewTime"] != LOST_AT
    annotations = api.lease["metadata"]["annotations"]
    assert annotations["haoperator.dev/last-failover"] == record
    assert float(annotations["haoperator.dev/holder-started"]) == pytest.approx(me.started)


# -- only our own Lease ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        ({"app": "someone-else"}, "lacks the label haoperator.dev/service=vip"),
        ({**OURS, SERVICE: "web"}, "is 'web'"),
        ({SERVICE: "vip"}, "lacks the label app.kubernetes.io/managed-by"),
    ],
)
@pytest.mark.parametrize("holder", [None, "someone-else"])
def test_a_lease_that_is_not_ours_is_never_written(
    labels: dict[str, str], says: str, holder: str | None
) -> None:
    """Another controller's leader election used the same name: free or expired, it is left
    alone (it was taken over, its lease duration rewritten)."""
    clock = Clock()
    api = FakeApi(holder=holder, lease_labels=labels, clock=clock)
    me = watched(api, clock)
    for _ in range(10):
        clock.now += 1
        me.step()
    me.stop.set()
    me.run()  # and on SIGTERM nothing is released either
    assert (api.puts, api.posts) == ([], [])
    assert not me.leader_now()
    assert api.role("me") == "standby"
    warned = [e for level, e in logs(me).lines if level == "warning" and "not ours" in e]
    assert len(warned) == 1
    assert says in warned[0]
    assert "NameConflict" in warned[0]


def test_a_leader_whose_lease_stops_being_ours_steps_down_without_writing_it() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    puts = len(api.puts)
    assert api.lease is not None
    api.lease["metadata"]["labels"] = {}
    me.observe(api.bump())
    clock.now += 1
    me.step()
    assert not me.leader_now()
    assert api.role("me") == "standby"
    me.release()
    assert len(api.puts) == puts


def test_a_refused_create_waits_for_the_operator_to_create_the_lease() -> None:
    """The operator creates the Lease (empty, labelled as ours); the electors may no longer."""
    clock = Clock()
    api = FakeApi(holder=None, exists=False, clock=clock)
    api.refuse("POST", LEASES)
    me = watched(api, clock)
    assert me.step() >= Timing().lease_duration  # the watch wakes it when the Lease appears
    assert not me.leader_now()

    me.observe(api.put_lease(OURS))
    assert me.wake.is_set()
    me.step()
    assert me.leader_now()
    assert api.lease is not None
    assert api.lease["spec"]["leaseTransitions"] == 0
    assert "haoperator.dev/last-failover" not in (api.lease["metadata"].get("annotations") or {})


def test_a_missing_lease_is_created_labelled_as_ours() -> None:
    clock = Clock()
    api = FakeApi(holder=None, exists=False, clock=clock)
    me = watched(api, clock)
    me.step()
    assert me.leader_now()
    assert api.posts[0]["metadata"]["labels"] == OURS


def test_a_starting_elector_reads_the_lease_before_it_acts() -> None:
    """Its first step used to run before the watch had read the Lease, took "no copy" for
    "missing" and tried to create it: refused (403) now that electors may not create Leases."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.refuse("POST", LEASES)
    me = elector(api, "me", clock)
    api.follow(me)
    stepped = threading.Event()
    real_step = me.step

    def step_once() -> float:
        wait = real_step()
        stepped.set()
        me.stop.set()
        return wait

    me.step = step_once  # type: ignore[method-assign]
    runner = threading.Thread(target=me.run)
    runner.start()
    assert stepped.wait(5)
    runner.join(5)
    assert api.posts == []
    assert api.puts  # it acquired the free Lease it had read (and released it on stopping)


def test_a_leader_whose_pod_is_being_deleted_frees_the_lease_before_its_sigterm() -> None:
    """On a real pod the sidecar's SIGTERM comes after the application has exited: a graceful
    handover waited out the application's whole grace period with no pod routed."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    api.pods["me"]["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    api.set_role("me", "active")  # any change of the pod reaches the watch
    assert me.wake.is_set()
    me.step()
    assert not me.leader_now()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] is None
    assert api.role("me") == "standby"
    clock.now += 60
    me.step()  # a free Lease, but our pod is going: never take it again
    assert api.lease["spec"]["holderIdentity"] is None


def test_a_restarted_elector_takes_its_lease_back_without_unlabelling_its_pod() -> None:
    """The kubelet restarts a killed sidecar within a second; the Lease still names the pod.
    The new process labelled its pod standby before taking the Lease back, so the Service
    routed to nobody for that time."""
    clock = Clock()
    api = FakeApi(holder="me", clock=clock)
    api.set_role("me", "active")
    me = elector(api, "me", clock)
    api.follow(me)
    roles: list[str | None] = []
    real_label = me.label

    def label(role: str) -> None:
        roles.append(role)
        real_label(role)

    me.label = label  # type: ignore[method-assign]
    real_step = me.step

    def step_once() -> float:
        wait = real_step()
        me.stop.set()
        return wait

    me.step = step_once  # type: ignore[method-assign]
    runner = threading.Thread(target=me.run)
    runner.start()
    runner.join(5)
    # Taken back as it was; `standby` only for the release when it stops at the end.
    assert roles[0] == "active", roles


# -- the role follows the application; takeover at the kubelet's speed ---------------------------


def annotations(api: FakeApi) -> dict[str, str]:
    assert api.lease is not None
    return dict(api.lease["metadata"].get("annotations") or {})


def test_a_leader_whose_application_fails_hands_over_to_the_ready_standby() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    api.set_status("me", ready=False)
    me.step()
    assert not me.leader_now()
    assert api.role("me") == "standby"
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] is None
    assert annotations(api)["haoperator.dev/handover-to"] == "other"
    assert annotations(api)["haoperator.dev/release-reason"] == "ApplicationUnhealthy"

    other = watched(api, clock, "other")  # the standby takes it and records why
    other.step()
    assert other.leader_now()
    clock.now += 1
    other.step()
    record = json.loads(annotations(api)["haoperator.dev/last-failover"])
    assert (record["from"], record["to"], record["reason"]) == (
        "me",
        "other",
        "ApplicationUnhealthy",
    )
    assert "haoperator.dev/handover-to" not in annotations(api)
    me.step()  # the old leader, still unhealthy, does not take it back
    assert not me.leader_now()


def test_with_no_ready_pod_the_leader_keeps_the_role() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    api.set_status("other", ready=False)
    api.set_status("me", ready=False)
    for _ in range(30):
        clock.now += 1
        me.step()
        assert me.leader_now()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "me"
    assert api.role("me") == "active"


def test_an_unhealthy_standby_does_not_take_a_free_lease_from_a_ready_one() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    api.set_status("me", ready=False)
    me = watched(api, clock)
    me.step()
    assert not me.leader_now()
    assert api.puts == []
    api.set_status("other", ready=False)  # nobody better: someone must hold it
    clock.now += 1
    me.step()
    assert me.leader_now()


def test_a_holder_whose_elector_the_kubelet_reports_dead_is_replaced_at_once() -> None:
    clock = Clock()
    api = FakeApi(holder="other", clock=clock)
    assert api.lease is not None
    api.lease["metadata"]["annotations"] = {"haoperator.dev/holder-started": "1796169600.5"}
    api.set_role("other", "active")
    me = watched(api, clock)
    me.step()
    assert not me.leader_now()  # the holder's elector runs: its Lease is valid
    api.set_status("other", elector={"terminated": {"finishedAt": "2026-12-02T00:00:09Z"}})
    me.step()  # well inside the lease: nothing changed on the Lease since we saw it
    assert me.leader_now()
    assert (api.role("me"), api.role("other")) == ("active", "standby")
    clock.now += 1
    me.step()
    record = json.loads(annotations(api)["haoperator.dev/last-failover"])
    assert (record["from"], record["reason"]) == ("other", "ElectorTerminated")


def test_a_restarted_elector_is_not_taken_for_its_dead_predecessor() -> None:
    """The kubelet shows a newer process running than the Lease's writer: gone. The Lease's
    writer started after the status' start: it is the running one, not gone."""
    clock = Clock()
    api = FakeApi(holder="other", clock=clock)
    assert api.lease is not None
    api.lease["metadata"]["annotations"] = {"haoperator.dev/holder-started": "1796169600.7"}
    api.set_status("other", elector={"running": {"startedAt": "2026-12-02T00:00:00Z"}})
    me = watched(api, clock)
    me.step()
    assert not me.leader_now()
    assert api.puts == []


def test_a_switchover_passed_on_by_the_operator_moves_the_role_to_that_pod() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    assert api.lease is not None
    api.lease["metadata"].setdefault("annotations", {})["haoperator.dev/switchover-to"] = "other"
    me.observe(api.bump())
    me.step()
    assert not me.leader_now()
    assert annotations(api)["haoperator.dev/handover-to"] == "other"
    assert annotations(api)["haoperator.dev/release-reason"] == "Switchover"
    other = watched(api, clock, "other")
    other.step()
    assert other.leader_now()
    assert "haoperator.dev/switchover-to" not in annotations(api)


# -- failsafe through an unreachable API server ---------------------------------------------------

CONFIRMS = PeerAnswer(reachable=False, leading=False, holder="me")


def failsafe_leader(api: FakeApi, clock: Clock, answers: dict[str, PeerAnswer]) -> Elector:
    """`me`, elected with a 60 s failsafe, asking its peers gets `answers` (no network)."""
    me = elector(api, "me", clock)
    me.failsafe = 60.0
    me.ask = lambda members: {m: answers[m] for m in members if m in answers}  # type: ignore[method-assign]
    me.observe(api.get("Lease", "ns", "vip"))
    api.follow(me)
    me.step()
    assert me.leader_now()
    assert annotations(api)["haoperator.dev/failsafe-members"] == "other"
    return me


def test_a_leader_keeps_the_role_through_an_outage_while_every_member_confirms() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = failsafe_leader(api, clock, {"other": CONFIRMS})
    api.refuse("PUT", LEASE_PATH, 0)  # the API server does not answer
    for _ in range(30):  # far past the renew deadline
        clock.now += 1
        me.step()
        assert me.leader_now()
    assert "failsafe" in me.state()
    api.allow("PUT", LEASE_PATH)
    clock.now += 1
    me.step()
    assert me.leader_now()
    assert me.state() == "leader"
    outage = json.loads(annotations(api)["haoperator.dev/last-failsafe"])
    assert (outage["pod"], outage["peers"]) == ("me", 1)


def test_failsafe_rounds_at_their_slowest_never_let_the_leader_lapse() -> None:
    """Seen on the real node: /leader said 503 for a third of a second in 3 of 10 frozen minutes,
    and a test saw both pods answer 503. Every request of the outage took its whole timeout, the
    members answered at the last moment, and the next round was counted from the answers of the
    last: two such rounds in a row passed the renew deadline between them."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = failsafe_leader(api, clock, {"other": CONFIRMS})
    lapses: list[float] = []

    def hung(obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        clock.now += 1.0 if timeout is None else timeout  # the client's default: 1 s
        raise ApiError(0, "Timeout", "no answer")

    def slow(members: frozenset[str]) -> dict[str, PeerAnswer]:
        clock.now += 0.8  # the whole of its share of the retry period
        if not me.leader_now():
            lapses.append(clock.now)
        return dict.fromkeys(members, CONFIRMS)

    api.replace = hung  # type: ignore[method-assign]
    me.ask = slow  # type: ignore[method-assign]
    for _ in range(40):
        wait = me.step()
        if not me.leader_now():
            lapses.append(clock.now)
        clock.now += wait
    assert lapses == []
    assert "failsafe" in me.state()


@pytest.mark.parametrize(
    "answer",
    [
        PeerAnswer(reachable=True, holder="me"),  # the outage is ours alone: let them take over
        PeerAnswer(reachable=None),  # no answer: it may be leading on its own
        PeerAnswer(reachable=False, holder="someone"),
    ],
)
def test_a_leader_steps_down_at_once_when_a_member_does_not_confirm(answer: PeerAnswer) -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = failsafe_leader(api, clock, {"other": answer})
    api.refuse("PUT", LEASE_PATH, 0)
    clock.now += 1  # well within the renew deadline
    me.step()
    assert not me.leader_now()


def test_a_renew_carried_out_late_does_not_end_the_role_when_the_api_server_returns() -> None:
    """Seen on the real node after a 60 s freeze: a renew the leader sent during the outage (its
    client gave up) was carried out when the API server resumed, so the leader's copy of the
    Lease was stale; its next renew met a conflict, it stepped down, and took the Lease back
    0.08 s later with /leader 503 meanwhile. A conflict whose fresh copy still names us is our
    own write: renewed again at once, the role kept."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = failsafe_leader(api, clock, {"other": PeerAnswer(reachable=True, holder="me")})
    replace = api.replace

    def timed_out_then_carried_out(obj: dict[str, Any], **how: Any) -> dict[str, Any]:
        api.replace = replace  # type: ignore[method-assign]
        api.bump(renewTime=obj["spec"]["renewTime"])  # still names us
        raise ApiError(0, "Timeout", "no answer")

    api.replace = timed_out_then_carried_out  # type: ignore[method-assign]
    clock.now += 1
    me.step()  # the renew times out; the peer reaches the API server; one more renew
    assert me.leader_now()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "me"
    assert api.role("me") == "active"
    api.bump(holderIdentity="other")  # someone else's write: no retry, the Lease moved on
    clock.now += 1
    me.step()
    me.step()
    assert not me.leader_now()


def test_a_leader_publishes_its_failsafe_members_as_soon_as_it_knows_them() -> None:
    """Seen on the real node: a leader elected before its pod watch had listed the pods
    published no members, the API server froze a second later, before the next renew, and the
    leader stepped down for the whole outage (no member to ask). It now publishes them the
    moment they are known or change, not at the next renew."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = elector(api, "me", clock)
    me.failsafe = 60.0
    me.ask = lambda members: dict.fromkeys(members, CONFIRMS)  # type: ignore[method-assign]
    me.observe(api.get("Lease", "ns", "vip"))
    me.step()  # won before the pod watch listed anything
    assert me.leader_now()
    assert "haoperator.dev/failsafe-members" not in annotations(api)
    api.follow(me)  # the pod watch lists the pods: `other` is a member
    puts = len(api.puts)
    me.step()  # no clock advance: the renew is not due yet
    assert len(api.puts) == puts + 1
    assert annotations(api)["haoperator.dev/failsafe-members"] == "other"
    me.step()
    assert len(api.puts) == puts + 1  # published once: no write while nothing changes
    api.refuse("PUT", LEASE_PATH, 0)  # the outage, right after
    for _ in range(10):
        clock.now += 1
        me.step()
        assert me.leader_now()


def test_a_failsafe_ends_after_its_limit() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = failsafe_leader(api, clock, {"other": CONFIRMS})
    api.refuse("PUT", LEASE_PATH, 0)
    for _ in range(59):
        clock.now += 1
        me.step()
    assert me.leader_now()
    clock.now += 2
    me.step()
    assert not me.leader_now()


def test_without_a_failsafe_a_leader_steps_down_at_the_renew_deadline() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)
    assert "haoperator.dev/failsafe-members" not in annotations(api)
    api.refuse("PUT", LEASE_PATH, 0)
    for _ in range(3):
        clock.now += 1
        me.step()
    assert not me.leader_now()


def test_a_standby_asked_in_an_outage_treats_the_question_as_a_renewal() -> None:
    clock = Clock()
    api = FakeApi(holder="other", clock=clock)
    me = watched(api, clock)
    api.refuse("GET", LEASE_PATH, 0)
    clock.now += 4
    assert me.answer_failsafe("other") == {
        "pod": "me", "apiReachable": False, "leading": False, "holder": "other",
    }  # fmt: skip
    clock.now += 4  # 8 s after it last saw the Lease change, 4 s after the question
    me.step()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "other"
    clock.now += 1.1
    me.step()  # the lease, counted from the question, is over
    assert api.lease["spec"]["holderIdentity"] == "me"
    # Reachable: an answer that ends the failsafe, and no renewal by proxy.
    api.allow("GET", LEASE_PATH)
    assert me.answer_failsafe("other")["apiReachable"] is True


def test_a_pod_handed_the_role_that_lets_it_lie_is_not_handed_it_again_soon() -> None:
    """preempt hands the role to the preferred pod (`me`: the first name); its elector frozen, it
    never takes it. The other retakes it after two retry periods and keeps it for two leases,
    instead of handing it over (and leaving the service leaderless) every few seconds."""
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    other = watched(api, clock, "other")
    other.preempt = True
    other.step()
    assert other.leader_now()
    other.step()  # the preferred pod is ready: hand over
    assert not other.leader_now()
    assert annotations(api)["haoperator.dev/handover-to"] == "me"
    clock.now += 2.1  # `me` never came
    other.step()
    assert other.leader_now()
    for _ in range(9):
        clock.now += 1
        other.step()
        assert other.leader_now()
    clock.now += 1.5  # two leases later: the preferred pod is worth another try
    other.step()
    assert not other.leader_now()


def test_a_role_moved_by_a_switchover_is_not_taken_back_by_preempt() -> None:
    clock = Clock()
    api = FakeApi(holder=None, clock=clock)
    me = leader(api, clock)  # `me` is also the preferred pod (first name)
    me.preempt = True
    assert api.lease is not None
    api.lease["metadata"].setdefault("annotations", {})["haoperator.dev/switchover-to"] = "other"
    me.observe(api.bump())
    me.step()
    assert not me.leader_now()
    other = watched(api, clock, "other")
    other.preempt = True
    other.step()
    assert other.leader_now()
    for _ in range(5):
        clock.now += 1
        other.step()
        assert other.leader_now()  # no handover back to the preferred `me`
