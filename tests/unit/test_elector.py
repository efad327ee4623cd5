"""The elector's loop and its Lease writes, against an in-memory API that enforces
resourceVersion like the real one. (The real API server is exercised by
tests/integration/test_active_passive.py; these pin down orderings that are hard to hit there.)"""

from __future__ import annotations

import copy
import threading
from typing import Any

from haoperator.election import Timing
from haoperator.elector import Elector
from haoperator.kube import ApiError

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/vip"


class FakeApi:
    """Just enough of the API for one Lease and the pods' role labels."""

    def __init__(self, holder: str | None) -> None:
        self.version = 1
        self.lease: dict[str, Any] = {
            "metadata": {"name": "vip", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5},
        }
        self.labels: dict[str, str] = {}
        self.puts: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def bump(self, **spec: Any) -> dict[str, Any]:
        """Another writer changed the Lease (a renew, say)."""
        with self.lock:
            self.version += 1
            self.lease["metadata"]["resourceVersion"] = str(self.version)
            self.lease["spec"].update(spec)
            return copy.deepcopy(self.lease)

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if path.startswith("/api/v1/namespaces/ns/pods/"):
            self.labels[path.rsplit("/", 1)[1]] = body["metadata"]["labels"]["haoperator.dev/role"]
            return {}
        assert path == LEASE_PATH, path
        with self.lock:
            if method == "GET":
                return copy.deepcopy(self.lease)
            assert method == "PUT"
            if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            self.puts.append(copy.deepcopy(body))
            self.version += 1
            self.lease = copy.deepcopy(body)
            self.lease["metadata"]["resourceVersion"] = str(self.version)
            return copy.deepcopy(self.lease)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.request("GET", LEASE_PATH)

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict[str, Any]]:
        return []


def elector(api: FakeApi, pod: str) -> Elector:
    return Elector(api, namespace="ns", pod=pod, lease="vip", timing=Timing())  # type: ignore[arg-type]


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

    assert api.lease["spec"]["holderIdentity"] is None
    assert api.lease["metadata"]["annotations"]["haoperator.dev/released-by"] == "me"
    assert api.labels["me"] == "standby"
    assert not leader.is_leader


def test_release_leaves_a_lease_someone_else_took() -> None:
    api = FakeApi(holder="me")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    leader.is_leader = True
    api.bump(holderIdentity="other")  # the Lease moved on before we saw it

    leader.release()

    assert api.lease["spec"]["holderIdentity"] == "other"
    assert api.puts == []
    assert api.labels["me"] == "standby"


def test_stopping_frees_a_lease_still_naming_us_after_stepping_down() -> None:
    """A leader that stepped down (renew deadline) but is still on the Lease frees it on exit,
    so the standby need not wait out the lease."""
    api = FakeApi(holder="me")
    stepped_down = elector(api, "me")
    stepped_down.observe(api.get("Lease", "ns", "vip"))
    stepped_down.stop.set()

    stepped_down.run()

    assert api.lease["spec"]["holderIdentity"] is None
    assert api.labels["me"] == "standby"


def test_our_own_write_echoing_back_through_the_watch_is_not_news() -> None:
    api = FakeApi(holder="me")
    leader = elector(api, "me")
    leader.observe(api.get("Lease", "ns", "vip"))
    leader.is_leader = True
    leader.last_renew = leader.clock() - 2  # a renew is due
    leader.wake.clear()

    leader.step()  # renews: the PUT's answer is observed
    assert len(api.puts) == 1
    leader.wake.clear()
    leader.observe(api.get("Lease", "ns", "vip"))  # the watch brings the same version back
    assert not leader.wake.is_set()
    leader.step()  # woken or not, the next renew waits a retry period
    assert len(api.puts) == 1

    leader.observe(api.bump(holderIdentity="other"))  # real news wakes it
    assert leader.wake.is_set()
