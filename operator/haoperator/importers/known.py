"""What the importers know about well-known software: which agents are addresses, storage or
infrastructure (virtual machines, lock daemons, node health and network agents, notifiers: by
class, each with what replaces it in Kubernetes) rather than services, which are clusters, and the
ports services usually listen on.

A configuration rarely states its ports: pacemaker agents find them in the application's own
configuration. These tables are the heuristic that fills the gap; everything taken from them is
reported, so a user can correct it. Keys are lowercase agent types or unit names without the
`.service` suffix and an `openstack-` prefix (`systemd:openstack-nova-api` -> `nova-api`).
"""

from __future__ import annotations

from dataclasses import dataclass

VIP_AGENTS = frozenset({"ipaddr2", "ipaddr", "ipv6addr"})
"""Agents that float an address: folded into the Service of what they are colocated with."""

CLOUD_ADDRESS_AGENTS = frozenset({
    "aws-vpc-move-ip", "awseip", "awsvip", "aws-vpc-route53", "gcp-vpc-move-vip",
    "gcp-vpc-move-ip", "gcp-vpc-move-route", "aliyun-vpc-move-ip", "ibm-cloud-vpc-cr-vip",
    "ibm-cloud-vpc-move-fip", "openstack-virtual-ip", "openstack-floating-ip", "powervs-subnet",
})  # fmt: skip
"""Agents that move a cloud address (or the route or DNS name to it) to the active node: addresses
too, folded the same way, with a note that the cloud's load balancer is the usual replacement."""

ADDRESS_PARAMETERS = ("ip", "alias_ip", "elastic_ip", "secondary_private_ip", "address", "vip")
"""Parameters that hold the address an address agent floats."""

STORAGE_AGENTS = frozenset({
    "filesystem", "lvm", "lvm-activate", "drbd", "drbddisk", "drbdlinks", "raid1", "zfs",
    "iscsi", "iscsitarget", "iscsilogicalunit", "exportfs", "evmsscc", "evmsd", "volgroup",
    "lvm2", "libvirtstoragepool", "datadisk", "gcp-pd-move", "aws-ebs", "vdo-vol", "nfsnotify",
    "tgtd", "iscsi-target", "iscsi_target", "ietd", "scst", "targetcli", "nfs-common",
})  # fmt: skip
"""Agents that make storage available on the active node: a PersistentVolumeClaim does that. The
iSCSI target daemons (`lsb:tgtd`, `lsb:iscsi-target`...) are the init-script forms of the
iSCSITarget agent, `nfs-common` the NFS client's lock and notify daemons (as nfsnotify)."""


@dataclass(frozen=True)
class Infrastructure:
    """A class of agents that keep the cluster's machines running rather than serve clients."""

    label: str
    """What they are, in a word or three, plural: `virtual machines`."""
    what: str
    instead: str
    """What takes its place in Kubernetes."""


VIRTUAL_MACHINE = Infrastructure(
    "virtual machines",
    "a virtual machine",
    "KubeVirt's VirtualMachine (runStrategy Always) restarts it on another node, and its live "
    "migration replaces allow-migrate; a pod is not a VM",
)
HYPERVISOR = Infrastructure(
    "hypervisor daemons",
    "the hypervisor's daemon on each node",
    "KubeVirt runs its own on every node",
)
SHARED_DISK_DAEMON = Infrastructure(
    "shared-disk daemons",
    "a cluster lock manager or cluster volume/filesystem daemon for disks shared by the nodes "
    "(DLM, cLVM, OCFS2, GPFS, GlusterFS)",
    "a CSI driver with ReadWriteMany volumes: pods share storage without lock daemons",
)
LOAD_BALANCER_PROBE = Infrastructure(
    "load balancer health checks",
    "answers a cloud load balancer's health check on the active node",
    "a Service of type LoadBalancer: the cloud's load balancer follows the ready pods",
)
NOTIFIER = Infrastructure(
    "notifiers",
    "sends mail, SNMP traps or other alerts when resources move",
    "Kubernetes Events and the HAService's conditions: alert on them (e.g. with Alertmanager)",
)
NODE_HEALTH = Infrastructure(
    "node health agents",
    "watches a node's health or connectivity and records it as a node attribute for location rules",
    "node conditions and taints (the kubelet, node-problem-detector) keep pods off unhealthy "
    "nodes, readiness probes check what a pod needs to reach",
)
NODE_NETWORK = Infrastructure(
    "node network agents",
    "configures the node's network (routes, firewall rules, ARP, VLANs, source addresses)",
    "the cluster network, Services and NetworkPolicies",
)
NODE_FILES = Infrastructure(
    "node files",
    "changes files on the node",
    "a ConfigMap or volume mounted at that path in the pods",
)
REMOTE_NODE = Infrastructure(
    "remote nodes",
    "a pacemaker remote node's connection",
    "a Kubernetes node: join the machine to the cluster",
)
COMPUTE_NODE = Infrastructure(
    "compute node agents",
    "OpenStack's compute agent on a hypervisor node, or the evacuator of a failed node's instances",
    "it runs on every hypervisor node (a DaemonSet with host access), not as one copy anywhere; "
    "KubeVirt's VirtualMachines (runStrategy Always) restart on another node without an evacuator",
)
MEMBERSHIP = Infrastructure(
    "cluster membership",
    "the cluster's own membership layer",
    "Kubernetes tracks its nodes itself",
)

_INFRASTRUCTURE_CLASSES = (
    ("xen virtualdomain xcatvirtualdomain vm managevm", VIRTUAL_MACHINE),
    ("libvirtd libvirt-qpid", HYPERVISOR),
    ("controld dlm clvm clvmd lxclvmd lvmlockd cmirrord o2cb ocfs2 gfs2 gpfs glusterd",
     SHARED_DISK_DAEMON),
    ("azure-lb gcp-ilb", LOAD_BALANCER_PROBE),
    ("mailto clustermon snmp", NOTIFIER),
    ("ping pingd diskd ethmonitor sysinfo healthcpu healthiowait healthsmart healthmem attribute "
     "nodeutilization nodeparams azure-events azure-events-az", NODE_HEALTH),
    ("portblock ipsrcaddr sendarp route iface-vlan iface-bridge iface-macvlan bridgedvlan "
     "vipfirewall mcasttunnel netnscleanup ovscleanup conntrackd iptables", NODE_NETWORK),
    ("symlink", NODE_FILES),
    ("novacompute nova-compute novaevacuate nova-evacuate", COMPUTE_NODE),
    ("remote", REMOTE_NODE),
    ("cman", MEMBERSHIP),
)  # fmt: skip
INFRASTRUCTURE_AGENTS: dict[str, Infrastructure] = {
    agent: kind for agents, kind in _INFRASTRUCTURE_CLASSES for agent in agents.split()
}
"""Agents that are the cluster's infrastructure, by class: reported with what replaces them in
Kubernetes, never imported as an application container."""

PLUMBING_AGENTS = frozenset(INFRASTRUCTURE_AGENTS)
"""Every infrastructure agent (the name earlier versions used)."""

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
