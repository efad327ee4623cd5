"""The baseline for bench/failover.py: the `kubernetes` client's own leader election
(`kubernetes.leaderelection` with a LeaseLock), labelling its pod active when it leads, as ours
does, so that the same Service measures both. It polls (no watch) and does not release the Lease
on exit: a graceful stop costs as much as a crash.

    python bench/baseline_elector.py NAMESPACE POD LEASE LEASE_S RENEW_S RETRY_S
"""

from __future__ import annotations

import sys
import threading

from kubernetes import client, config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

ROLE = "haoperator.dev/role"


def main() -> None:
    namespace, pod, lease = sys.argv[1:4]
    lease_s, renew_s, retry_s = (int(v) for v in sys.argv[4:7])
    config.load_kube_config()
    core = client.CoreV1Api()

    def label(name: str, role: str) -> None:
        core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {ROLE: role}}})

    def lead() -> None:
        # Same fencing as ours, so the Service never shows two pods and the measure is the same.
        for p in core.list_namespaced_pod(namespace, label_selector=f"{ROLE}=active").items:
            if p.metadata.name != pod:
                label(p.metadata.name, "standby")
        label(pod, "active")
        threading.Event().wait()

    def stopped() -> None:
        label(pod, "standby")

    label(pod, "standby")
    election = electionconfig.Config(
        LeaseLock(lease, namespace, pod), lease_s, renew_s, retry_s, lead, stopped
    )
    leaderelection.LeaderElection(election).run()


if __name__ == "__main__":
    main()
