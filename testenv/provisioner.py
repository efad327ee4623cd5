"""A dynamic volume provisioner for the local cluster's `standard` StorageClass.

Like kind's local-path provisioner it answers claims once the scheduler has picked a node; unlike
it, volumes model network storage (an NFS export nobody serves here, no node affinity), so a pod
whose node is lost can come back on another node with the same claim. Volumes of deleted claims
are deleted (reclaimPolicy Delete). Nothing is mounted: kwok runs no containers.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

PROVISIONER = "testenv.haoperator.dev/network-volume"
log = logging.getLogger("provisioner")


def wants_volume(pvc: Any) -> bool:
    annotations = pvc.metadata.annotations or {}
    return (
        pvc.status.phase == "Pending"
        and not pvc.spec.volume_name
        and annotations.get("volume.kubernetes.io/storage-provisioner") == PROVISIONER
        and "volume.kubernetes.io/selected-node" in annotations
        and pvc.metadata.deletion_timestamp is None
    )


def provision(core: client.CoreV1Api, pvc: Any) -> None:
    name = f"pvc-{pvc.metadata.uid}"
    size = (pvc.spec.resources.requests or {}).get("storage", "1Gi")
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": pvc.spec.access_modes or ["ReadWriteOnce"],
            "storageClassName": pvc.spec.storage_class_name,
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": pvc.spec.volume_mode or "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": pvc.metadata.namespace,
                "name": pvc.metadata.name,
                "uid": pvc.metadata.uid,
            },
            "nfs": {"server": "network-storage.testenv.invalid", "path": f"/volumes/{name}"},
        },
    }
    try:
        core.create_persistent_volume(body)
        log.info("provisioned %s for %s/%s", name, pvc.metadata.namespace, pvc.metadata.name)
    except ApiException as exc:
        if exc.status != 409:
            raise


def reclaim(core: client.CoreV1Api, pv: Any) -> None:
    annotations = pv.metadata.annotations or {}
    if (
        annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
        and pv.status.phase == "Released"
        and pv.spec.persistent_volume_reclaim_policy == "Delete"
    ):
        try:
            core.delete_persistent_volume(pv.metadata.name)
            log.info("deleted released volume %s", pv.metadata.name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def follow(list_call: Any, handle: Any) -> None:
    """Handle every object now and on every change; restart the watch when it ends or fails."""
    while True:
        try:
            for event in watch.Watch().stream(list_call, timeout_seconds=300):
                handle(event["object"])
        except Exception:  # the loop must outlive API server restarts and expired watches
            log.exception("watch failed; retrying")
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config.load_kube_config(args.kubeconfig)
    core = client.CoreV1Api()

    def on_claim(pvc: Any) -> None:
        if wants_volume(pvc):
            provision(core, pvc)

    threading.Thread(
        target=follow,
        args=(core.list_persistent_volume, lambda pv: reclaim(core, pv)),
        daemon=True,
    ).start()
    follow(core.list_persistent_volume_claim_for_all_namespaces, on_claim)


if __name__ == "__main__":
    main()
