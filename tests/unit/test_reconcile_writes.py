"""The reconciler reads its own status writes until the watch cache catches up with them."""

from __future__ import annotations

from typing import Any

from haoperator.controller.reconciler import Reconciler
from haoperator.controller.store import Snapshot, Store
from haoperator.core.objects import ObjectRef


class StatusKube:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(status)
        return {"metadata": {"resourceVersion": "10"}, "status": {"phase": "written"}}


def haservice(version: str, status: dict[str, Any]) -> Snapshot:
    obj = {"metadata": {"name": "web", "namespace": "ns", "resourceVersion": version}}
    return Snapshot({**obj, "status": status}, {}, [])


def test_a_cache_older_than_our_write_reads_as_what_we_wrote() -> None:
    kube = StatusKube()
    reconciler = Reconciler(kube, Store(), elector_image="elector")  # type: ignore[arg-type]
    ref = ObjectRef("HAService", "ns", "web", "uid-1")
    reconciler._write_status(ref, {"phase": "old"}, {"phase": "written"})
    assert len(kube.writes) == 1

    stale = reconciler._read_own_writes(("ns", "web"), haservice("9", {"phase": "old"}))
    assert stale.haservice is not None
    assert stale.haservice["status"] == {"phase": "written"}
    # ...so the next reconcile finds nothing to write (it once wrote the same status again).
    reconciler._write_status(ref, stale.haservice["status"], {"phase": "written"})
    assert len(kube.writes) == 1

    fresh = reconciler._read_own_writes(("ns", "web"), haservice("11", {"phase": "newer"}))
    assert fresh.haservice is not None
    assert fresh.haservice["status"] == {"phase": "newer"}
