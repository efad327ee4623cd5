"""Pacemaker bundles' container settings, as far as a restricted pod can take them.

A bundle's `port-mapping`s become container ports (the mapped `port` on the Service, the
`internal-port` in the pod, declared once). Its `storage-mapping`s are host paths, which
restricted pods cannot mount: read-only ones are configuration (a ConfigMap or Secret takes their
place), writable ones under /var/lib are data (a volume claim for Clustered, an emptyDir with a
warning otherwise), other writable ones become emptyDirs, and device or kernel paths are reported.
The runtime's options and run-command are not carried over; its other attributes
(replicas-per-host, network) and the `<network>` element's (ip-range-start, control-port,
add-host...) are reported by name.
"""

from __future__ import annotations

from haoperator.importers.cib import Resource, shown
from haoperator.importers.common import Report, dns_label, named_port
from haoperator.importers.workload import ContainerPlan, Mount, Port

TRANSLATED_RUNTIME = frozenset({
    "image", "replicas", "promoted-max", "masters", "run-command", "options", "replicas-per-host",
})  # fmt: skip
"""Attributes of the docker/podman/rkt element the import reads (the run-command and options are
reported as not carried over, replicas-per-host when it is not 1, the one per node of
placement.spread Required); the others are reported by name."""
NETWORK_MEANINGS = {
    "ip-range-start": "pods get their addresses from the cluster network",
    "host-interface": "pods get their addresses from the cluster network",
    "host-netmask": "pods get their addresses from the cluster network",
    "control-port": "the port pacemaker_remote listened on inside the container; no agent runs "
    "in the pod",
    "add-host": "replicas found each other by /etc/hosts entries; Clustered pods have stable "
    "names in the peers Service",
}
"""What the `<network>` attributes did, for the report."""
HOST_PATHS = ("/dev", "/sys", "/proc", "/run", "/var/run", "/lib/modules")
"""Mapped from the host for device or kernel access, which restricted pods do not get."""


def bundle_container(top: Resource, container: ContainerPlan, report: Report) -> None:
    """Add what a bundle says about its container: ports, writable paths as volumes."""
    bundle = top.bundle
    assert bundle is not None
    subject = f"bundle {top.id}"
    declared: dict[int, str] = {}
    """Container port -> the port-mapping that declared it."""
    for mapping in bundle.ports:
        port = mapping.internal_port or mapping.port
        if mapping.range or mapping.port is None or not _valid(mapping.port, port):
            report.unsupported(
                subject,
                f"port-mapping {mapping.id} (a range, or no valid port): list its ports "
                "in spec.service",
            )
            continue
        assert port is not None
        if port in declared:
            report.unsupported(
                subject,
                f"port-mapping {mapping.id}: port {port} in the container is already declared "
                f"by port-mapping {declared[port]}, and a pod declares a port once: add port "
                f"{mapping.port} to spec.service with targetPort {port}",
            )
            continue
        declared[port] = mapping.id
        name = named_port(mapping.id, mapping.port)
        container.ports.append(Port(name, container_port=port, service_port=mapping.port))
    if bundle.options or bundle.run_command:
        report.note(
            subject,
            f"the {bundle.runtime} options and run-command are not carried "
            "over: the image's entrypoint runs as a restricted, non-root pod",
        )
    _runtime(top, report)
    config = [m.id for m in bundle.storage if not m.writable]
    if config:
        report.unsupported(
            subject,
            f"host files {', '.join(config)} (read-only): put "
            "them in ConfigMaps or Secrets and mount those",
        )
    host = [m.id for m in bundle.storage if m.writable and _host_path(m.target)]
    if host:
        report.unsupported(
            subject,
            f"host paths {', '.join(host)}: host access is not allowed in restricted pods",
        )
    for storage in bundle.storage:
        if storage.writable and not _host_path(storage.target) and storage.target != "/tmp":
            volume = dns_label(storage.id, max_length=63, letter_first=False)
            persistent = storage.target.startswith("/var/lib/")
            container.mounts.append(Mount(volume, storage.target, persistent))


def _runtime(top: Resource, report: Report) -> None:
    """Report the runtime and network attributes with no equivalent, by name."""
    bundle = top.bundle
    assert bundle is not None
    subject = f"bundle {top.id}"
    per_host = bundle.runtime_attrs.get("replicas-per-host")
    if per_host is not None and per_host.strip() != "1":
        report.unsupported(
            subject,
            f"replicas-per-host {shown(per_host)}: placement.spread is Required (one per node); "
            "set it to Preferred to allow more",
        )
    if bundle.runtime_attrs.get("network"):
        report.unsupported(
            subject,
            f"{bundle.runtime} network {shown(bundle.runtime_attrs['network'])}: pods use the "
            "cluster network (a restricted pod gets no host network)",
        )
    other = sorted(set(bundle.runtime_attrs) - TRANSLATED_RUNTIME - {"network"})
    if other:
        report.unsupported(subject, f"{bundle.runtime} {', '.join(other)}: no equivalent")
    by_meaning: dict[str, list[str]] = {}
    for name in sorted(bundle.network):
        if name != "id":
            by_meaning.setdefault(NETWORK_MEANINGS.get(name, "no equivalent"), []).append(name)
    for meaning, names in by_meaning.items():
        report.unsupported(subject, f"network {', '.join(names)}: {meaning}")


def _host_path(target: str) -> bool:
    path = target.rstrip("/") or "/"
    return path in HOST_PATHS or path.startswith(("/dev/", "/sys/", "/proc/", "/lib/modules/"))


def _valid(*ports: int | None) -> bool:
    return all(port is not None and 0 < port < 65536 for port in ports)
