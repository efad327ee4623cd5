"""Pacemaker bundles' container settings, as far as a restricted pod can take them.

A bundle's `port-mapping`s become container ports (the mapped `port` on the Service, the
`internal-port` in the pod). Its `storage-mapping`s are host paths, which restricted pods cannot
mount: read-only ones are configuration (a ConfigMap or Secret takes their place), writable ones
under /var/lib are data (a volume claim for Clustered, an emptyDir with a warning otherwise),
other writable ones become emptyDirs, and device or kernel paths are reported. The runtime's
options and run-command are not carried over.
"""

from __future__ import annotations

from haoperator.importers.cib import Resource
from haoperator.importers.common import Report, dns_label, named_port
from haoperator.importers.workload import ContainerPlan, Mount, Port

HOST_PATHS = ("/dev", "/sys", "/proc", "/run", "/var/run", "/lib/modules")
"""Mapped from the host for device or kernel access, which restricted pods do not get."""


def bundle_container(top: Resource, container: ContainerPlan, report: Report) -> None:
    """Add what a bundle says about its container: ports, writable paths as volumes."""
    bundle = top.bundle
    assert bundle is not None
    subject = f"bundle {top.id}"
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
        name = named_port(mapping.id, mapping.port)
        container.ports.append(Port(name, container_port=port, service_port=mapping.port))
    if bundle.options or bundle.run_command:
        report.note(
            subject,
            f"the {bundle.runtime} options and run-command are not carried "
            "over: the image's entrypoint runs as a restricted, non-root pod",
        )
    if bundle.network.get("ip-range-start"):
        report.unsupported(
            subject, "ip-range-start: pods get their addresses from the cluster network"
        )
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


def _host_path(target: str) -> bool:
    path = target.rstrip("/") or "/"
    return path in HOST_PATHS or path.startswith(("/dev/", "/sys/", "/proc/", "/lib/modules/"))


def _valid(*ports: int | None) -> bool:
    return all(port is not None and 0 < port < 65536 for port in ports)
