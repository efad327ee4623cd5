"""What the importers know about well-known software: which agents are addresses, storage or node
plumbing rather than services, which are clusters, and the ports services usually listen on.

A configuration rarely states its ports: pacemaker agents find them in the application's own
configuration. These tables are the heuristic that fills the gap; everything taken from them is
reported, so a user can correct it. Keys are lowercase agent types or unit names without the
`.service` suffix and an `openstack-` prefix (`systemd:openstack-nova-api` -> `nova-api`).
"""

from __future__ import annotations

VIP_AGENTS = frozenset({"ipaddr2", "ipaddr", "ipv6addr"})
"""Agents that float an address: folded into the Service of what they are colocated with."""

STORAGE_AGENTS = frozenset({
    "filesystem", "lvm", "lvm-activate", "lvmlockd", "clvm", "drbd", "raid1", "zfs", "iscsi",
    "iscsitarget", "iscsilogicalunit", "exportfs",
})  # fmt: skip
"""Agents that make storage available on the active node: a PersistentVolumeClaim does that."""

PLUMBING_AGENTS = frozenset({
    "ping", "pingd", "ethmonitor", "sysinfo", "healthcpu", "healthiowait", "healthsmart",
    "clustermon", "attribute", "controld", "remote", "nodeutilization", "portblock", "ipsrcaddr",
    "sendarp", "route", "virtualdomain",
})  # fmt: skip
"""Agents that watch or configure nodes (or run virtual machines): Kubernetes nodes, conditions
and other projects take their place, not an HAService."""

CONTAINER_AGENTS = frozenset({"docker", "podman"})
"""Agents that run a container: their `image` parameter is the image."""

CLUSTERED_AGENTS = frozenset({"galera", "rabbitmq-cluster", "rabbitmq-server-ha"})
"""Agents whose copies form one cluster with a quorum, whatever the clone says."""

HAPROXY = "haproxy"

PORT_PARAMETERS = ("port", "pgport", "listen_port")
"""OCF parameters that name the port the service listens on."""

SERVICE_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    "galera": (("mysql", 3306),),
    "mysql": (("mysql", 3306),),
    "mariadb": (("mysql", 3306),),
    "pgsql": (("postgresql", 5432),),
    "pgsqlms": (("postgresql", 5432),),
    "postgresql": (("postgresql", 5432),),
    "redis": (("redis", 6379),),
    "rabbitmq-cluster": (("amqp", 5672),),
    "rabbitmq-server": (("amqp", 5672),),
    "rabbitmq-server-ha": (("amqp", 5672),),
    "apache": (("http", 80),),
    "apache2": (("http", 80),),
    "httpd": (("http", 80),),
    "nginx": (("http", 80),),
    "memcached": (("memcache", 11211),),
    "nfsserver": (("nfs", 2049),),
    "nfs-server": (("nfs", 2049),),
    "squid": (("squid", 3128),),
    "nova-api": (("api", 8774),),
    "glance-api": (("api", 9292),),
    "keystone": (("api", 5000),),
    "neutron-server": (("api", 9696),),
    "cinder-api": (("api", 8776),),
    "heat-api": (("api", 8004),),
    "placement-api": (("api", 8778),),
}
"""Client ports by agent or unit, for services whose configuration does not say."""

PEER_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    "galera": (("gcomm", 4567), ("ist", 4568), ("sst", 4444)),
    "rabbitmq-cluster": (("epmd", 4369), ("dist", 25672)),
    "rabbitmq-server-ha": (("epmd", 4369), ("dist", 25672)),
}
"""Ports cluster members use among themselves, for the headless peers Service."""

PORT_NAMES = {
    80: "http", 443: "https", 3306: "mysql", 5432: "postgresql", 5672: "amqp", 6379: "redis",
    11211: "memcache", 2049: "nfs", 8080: "http-alt", 3128: "squid",
}  # fmt: skip


def agent_key(agent_type: str) -> str:
    """The key of an agent or unit in these tables."""
    key = agent_type.lower().removesuffix(".service").split("@", 1)[0]
    return key.removeprefix("openstack-")
