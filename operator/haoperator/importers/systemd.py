"""systemd service units as HAServices: `haoperator import systemd UNIT`.

Pure: the unit's text in (read by systemd_syntax), one HAService and a report out. Everything the
unit says is either translated (the directives in `TRANSLATED`) or named in the report.

- `ExecStart=` is the container's command, as a hint: the program must exist in the image. Its
  prefixes (`-`, `@`, `+`, `!`, `:`) are dropped and reported, `${VAR}` and `$VAR` become
  Kubernetes' `$(VAR)` (except inside `sh -c '...'`, whose shell expands them itself), and
  specifiers with a fixed meaning (`%t`, `%S`, `%n`, `%i`...) are expanded.
- Category, from what the unit runs and never from the file's name (two names of one unit get
  the same answer): the program (through `sh -c`, `env`, interpreters, init scripts and wrappers
  such as `ovs-ctl`; else the path or an `Alias=`), the ports it listens on (`--port N`,
  `--listen HOST:N`, `PORT=N`...), and whether it keeps state. A stateless server (web server,
  proxy, API, cache, or an unknown program that listens) is **LoadBalanced** with a Service; a
  database or broker that keeps its data on local disk is **ActivePassive** (copies behind one
  Service would be independent databases) unless the unit shows clustering, then **Clustered**,
  as is a consensus store (etcd, ZooKeeper); a worker, a node agent, the HA stack itself or a
  program that shows no port is a **QueueWorker**. What the unit alone cannot tell is said.
- `Restart=` other than `no` gives `recovery.restart`: `StartLimitBurst=` (default 5) is
  `maxRestarts`; `StartLimitIntervalSec=` (default 10 s) is widened to a window that can hold
  that many restarts under the kubelet's crash back-off, so the limit can fire.
- Secrets (in `Environment=`, options such as `--requirepass X`, the short flags of programs known
  to take a secret by them such as `mysqladmin -pX` or `redis-cli -a X`, credentials in URLs) are
  never copied: the container reads them from the Secret `<name>-secrets` (env valueFrom, and
  `$(VAR)` in the command), and a warning names the keys to create. The hooks (`ExecStartPre=`...)
  are not carried over; their report line names the secrets they hold, never the values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from haoperator.api.base import MAX_RESTARTS, MAX_WINDOW_SECONDS
from haoperator.importers.backoff import (
    BACKOFF_CAP_SECONDS,
    BACKOFF_INITIAL_SECONDS,
    window_for_restarts,
)
from haoperator.importers.common import (
    Kind,
    Options,
    Report,
    Unreadable,
    dns_label,
    duration,
    flag_secrets,
    has_secret_value,
    is_option_name,
    is_secret_literal,
    is_secret_name,
    well_known_port_name,
    whole_seconds,
)
from haoperator.importers.systemd_syntax import Entry, last, list_value, parse_unit, split_words
from haoperator.importers.workload import ContainerPlan, Mount, Plan, Port, Session

TRANSLATED: frozenset[str] = frozenset({
    "Service.ExecStart", "Service.Environment", "Service.User", "Service.Group",
    "Service.WorkingDirectory", "Service.Type", "Service.Restart",
    "Service.RuntimeDirectory", "Service.StateDirectory", "Service.CacheDirectory",
    "Service.LogsDirectory",
    "Unit.StartLimitBurst", "Unit.StartLimitIntervalSec", "Unit.StartLimitInterval",
    "Service.StartLimitBurst", "Service.StartLimitIntervalSec", "Service.StartLimitInterval",
})  # fmt: skip
"""Directives (`Section.Key`) whose meaning the HAService carries. A value of one of them that
does not translate (`User=nova`, `WorkingDirectory=~`, `Type=forking`) is reported; every other
directive is named in the report."""

SHELLS = {"sh", "bash", "dash", "ash", "zsh"}
"""`sh -c '...'`: the shell expands the script's variables itself, so they are left as written."""
HOOKS = {
    "ExecStartPre": "an init container",
    "ExecStartPost": "a postStart hook",
    "ExecStop": "a preStop hook",
    "ExecStopPost": "a preStop hook",
    "ExecReload": "a rollout restart of the pods",
    "ExecCondition": "an init container",
}
DIRECTORIES = {
    "RuntimeDirectory": ("/run", False),
    "StateDirectory": ("/var/lib", True),
    "CacheDirectory": ("/var/cache", False),
    "LogsDirectory": ("/var/log", False),
}
"""Directories systemd creates for the service: volumes, since the root filesystem is read-only
(a state directory outlives restarts: persistent)."""
SERVICE_TYPES = {"simple", "exec", "idle", "forking", "oneshot", "notify", "notify-reload", "dbus"}


# --- what the unit runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """What the importer knows of a program a unit may run."""

    what: str
    role: str
    """`stateless` (serves clients, copies side by side), `stateful` (one copy owns its data),
    `clustered` (copies form one cluster), `worker` (consumes work), `node` (works on its own
    host), `ha` (the HA stack haoperator replaces) or `noop` (runs nothing)."""
    ports: tuple[tuple[str, int], ...] = ()
    """Usual client ports, assumed (and reported) when the unit names none."""
    peers: tuple[tuple[str, int], ...] = ()
    """Ports the copies use among themselves when clustered."""
    data: str | None = None
    """The usual data directory of a stateful or clustered server."""
    clustering: tuple[str, ...] = ()
    """Options (words of their names) that show a stateful server runs as a cluster."""
    cluster_hint: str = ""
    """Where its clustering is configured when the unit does not show it."""
    advice: str = ""
    """A warning about importing it at all."""


_MYSQL = Program(
    "the MariaDB/MySQL database server", "stateful", (("mysql", 3306),),
    (("gcomm", 4567), ("ist", 4568), ("sst", 4444)), "/var/lib/mysql", ("wsrep",),
    "a Galera cluster (wsrep_on and wsrep_cluster_address in my.cnf)",
)  # fmt: skip
_POSTGRES = Program(
    "the PostgreSQL database server", "stateful", (("postgresql", 5432),), (),
    "/var/lib/postgresql", (), "replication (primary_conninfo in postgresql.conf, or Patroni)",
)  # fmt: skip
_REDIS = Program(
    "the Redis key-value store", "stateful", (("redis", 6379),), (("cluster-bus", 16379),),
    "/var/lib/redis", ("cluster", "enabled"), "Redis Cluster (cluster-enabled yes in redis.conf)",
)  # fmt: skip
_SENTINEL = Program(
    "Redis Sentinel, monitors whose quorum elects the Redis master",
    "clustered",
    (("sentinel", 26379),),
    advice="sentinels find the master and each other through sentinel.conf (sentinel monitor): "
    "point it at the master's Service, and give each pod a writable copy (sentinel rewrites it)",
)
_RABBITMQ = Program(
    "the RabbitMQ message broker", "stateful", (("amqp", 5672),),
    (("epmd", 4369), ("dist", 25672)), "/var/lib/rabbitmq", (),
    "a RabbitMQ cluster (cluster_formation in rabbitmq.conf)",
)  # fmt: skip
_WEB = Program("a web server", "stateless", (("http", 80),))
_ZOOKEEPER = Program(
    "the ZooKeeper coordination service", "clustered", (("client", 2181),),
    (("quorum", 2888), ("election", 3888)), "/var/lib/zookeeper",
    advice="servers find each other through server.N lines in zoo.cfg: list the pods' stable "
    "names <name>-N.<name>-peers",
)  # fmt: skip
_KAFKA = Program(
    "the Kafka message broker", "clustered", (("kafka", 9092),), (("controller", 9093),),
    "/var/lib/kafka",
)  # fmt: skip
_HA_STACK = (
    "it is the cluster stack haoperator replaces: import the CIB (haoperator import pacemaker) "
    "rather than running it in a pod"
)
_NODE = (
    "it works on the node it runs on (hypervisor, network namespaces, switch): run it on every "
    "node, e.g. a DaemonSet with host access; copies elsewhere do not replace it"
)


def _api(port: int) -> Program:
    return Program("an OpenStack API server", "stateless", (("api", port),))


PROGRAMS: dict[str, Program] = {
    "mysqld": _MYSQL, "mariadbd": _MYSQL, "mysqld-safe": _MYSQL, "mariadbd-safe": _MYSQL,
    "mysql": _MYSQL, "mariadb": _MYSQL, "galera": _MYSQL,
    "postgres": _POSTGRES, "postmaster": _POSTGRES, "postgresql": _POSTGRES,
    "pg-ctlcluster": _POSTGRES, "pg-ctl": _POSTGRES,
    "mongod": Program(
        "the MongoDB database server", "stateful", (("mongodb", 27017),), (), "/var/lib/mongodb",
        ("replset",), "a replica set (replication.replSetName in mongod.conf)",
    ),
    "redis-server": _REDIS, "valkey-server": _REDIS, "keydb-server": _REDIS, "redis": _REDIS,
    "redis-sentinel": _SENTINEL, "valkey-sentinel": _SENTINEL,
    "rabbitmq-server": _RABBITMQ, "rabbitmq": _RABBITMQ,
    "mosquitto": Program(
        "the Mosquitto MQTT broker", "stateful", (("mqtt", 1883),), (), "/var/lib/mosquitto",
        (), "a bridge between brokers (mosquitto.conf)",
    ),
    "slapd": Program(
        "the OpenLDAP directory server", "stateful", (("ldap", 389),), (), "/var/lib/ldap", (),
        "replication (syncrepl in its configuration)",
    ),
    "influxd": Program(
        "the InfluxDB time-series database", "stateful", (("http", 8086),), (), "/var/lib/influxdb"
    ),
    "ovsdb-server-nb": Program(
        "the OVN northbound database (ovsdb-server)", "stateful", (("ovsdb-nb", 6641),),
        (("raft-nb", 6643),), "/var/lib/ovn", ("cluster",),
        "a raft cluster (--db-nb-cluster-local-addr in OVN_CTL_OPTS)",
    ),
    "ovsdb-server-sb": Program(
        "the OVN southbound database (ovsdb-server)", "stateful", (("ovsdb-sb", 6642),),
        (("raft-sb", 6644),), "/var/lib/ovn", ("cluster",),
        "a raft cluster (--db-sb-cluster-local-addr in OVN_CTL_OPTS)",
    ),
    "etcd": Program(
        "a replicated key-value store", "clustered", (("client", 2379),),
        (("peer", 2380),), "/var/lib/etcd",
        advice="members find each other through --initial-cluster (ETCD_INITIAL_CLUSTER): list "
        "the pods' stable names <name>-N.<name>-peers",
    ),
    "zookeeper": _ZOOKEEPER,
    "zkserver": _ZOOKEEPER,
    "quorumpeermain": _ZOOKEEPER,
    "ceph-mon": Program(
        "the Ceph monitor, whose quorum holds the cluster map", "clustered",
        (("msgr2", 3300), ("msgr1", 6789)), (), "/var/lib/ceph/mon",
    ),
    "ceph-osd": Program("the Ceph daemon of one of the node's disks", "node", advice=_NODE),
    "glusterd": Program(
        "the GlusterFS management daemon", "clustered", (("glusterd", 24007),), (),
        "/var/lib/glusterd",
    ),
    "kafka-server-start": _KAFKA,
    "pgbouncer": Program("the PgBouncer connection pooler", "stateless", (("pgbouncer", 6432),)),
    "dockerd": Program("the node's container runtime", "node", advice=_NODE),
    "containerd": Program("the node's container runtime", "node", advice=_NODE),
    "kubelet": Program("the node's Kubernetes agent", "node", advice=_NODE),
    "pacemaker-remoted": Program("pacemaker's remote node daemon", "ha", advice=_HA_STACK),
    "corosync-qnetd": Program("corosync's quorum device server", "ha", advice=_HA_STACK),
    "corosync-qdevice": Program("corosync's quorum device client", "ha", advice=_HA_STACK),
    "kafka": _KAFKA,
    "haproxy": Program(
        "the HAProxy load balancer", "stateless", (("http", 80),),
        advice="in front of copies of a service it does what a LoadBalanced HAService's "
        "Service does: import the services behind it, and keep haproxy only for what a Service "
        "cannot do (TLS, routing); its ports are the bind lines of haproxy.cfg",
    ),
    "nginx": _WEB, "apache2": _WEB, "httpd": _WEB, "apache": _WEB, "apachectl": _WEB,
    "apache2ctl": _WEB, "lighttpd": _WEB, "caddy": _WEB, "traefik": _WEB,
    "envoy": Program("the Envoy proxy", "stateless"),
    "varnishd": Program("the Varnish caching proxy", "stateless", (("http", 6081),)),
    "squid": Program("the Squid caching proxy", "stateless", (("squid", 3128),)),
    "memcached": Program(
        "a memory cache", "stateless", (("memcache", 11211),),
        advice="memcached copies share nothing: clients that spread keys over servers need each "
        "pod's address (a headless Service), not one Service",
    ),
    "gunicorn": Program("an application server", "stateless", (("http", 8000),)),
    "uvicorn": Program("an application server", "stateless", (("http", 8000),)),
    "uwsgi": Program("an application server", "stateless"),
    "nova-api": _api(8774), "nova-api-metadata": _api(8775), "nova-api-os-compute": _api(8774),
    "nova-novncproxy": _api(6080), "nova-spicehtml5proxy": _api(6082),
    "nova-serialproxy": _api(6083), "glance-api": _api(9292), "keystone": _api(5000),
    "neutron-server": _api(9696), "neutron-api": _api(9696), "cinder-api": _api(8776),
    "heat-api": _api(8004), "heat-api-cfn": _api(8000), "placement-api": _api(8778),
    "aodh-api": _api(8042), "barbican-api": _api(9311), "designate-api": _api(9001),
    "manila-api": _api(8786), "octavia-api": _api(9876), "ironic-api": _api(6385),
    "magnum-api": _api(9511), "trove-api": _api(8779), "gnocchi-api": _api(8041),
    "watcher-api": _api(9322), "cloudkitty-api": _api(8889), "mistral-api": _api(8989),
    "masakari-api": _api(15868), "zaqar-server": _api(8888), "swift-proxy-server": _api(8080),
    "celery": Program("a Celery task queue worker", "worker"),
    "ovn-northd": Program(
        "the OVN daemon that turns the northbound database into the southbound one", "worker"
    ),
    "nova-compute": Program("the node's hypervisor agent", "node", advice=_NODE),
    "ovn-controller": Program("the node's OVN agent", "node", advice=_NODE),
    "ovs-vswitchd": Program("the node's Open vSwitch switch", "node", advice=_NODE),
    "ovsdb-server": Program("the node's Open vSwitch database", "node", advice=_NODE),
    "libvirtd": Program("the node's libvirt hypervisor daemon", "node", advice=_NODE),
    "virtqemud": Program("the node's libvirt hypervisor daemon", "node", advice=_NODE),
    "corosync": Program("the cluster membership layer of pacemaker", "ha", advice=_HA_STACK),
    "pacemakerd": Program("the pacemaker cluster resource manager", "ha", advice=_HA_STACK),
    "pacemaker": Program("the pacemaker cluster resource manager", "ha", advice=_HA_STACK),
    "pcsd": Program("pacemaker's configuration daemon", "ha", advice=_HA_STACK),
    "sbd": Program("pacemaker's storage-based fencing daemon", "ha", advice=_HA_STACK),
    "keepalived": Program(
        "the VRRP daemon that moves addresses between hosts", "ha",
        advice="the Service's cluster IP replaces the addresses it moves: import keepalived.conf "
        "(haoperator import keepalived) rather than running it in a pod",
    ),
    "true": Program(
        "a program that does nothing", "noop",
        advice="the unit only groups or orders other units: import those instead",
    ),
}  # fmt: skip
"""Programs by normalized name (lowercase, `_` as `-`, no extension or version). Ports and
directories taken from here are reported as assumed."""

_SUFFIXES: tuple[tuple[tuple[str, ...], Program], ...] = (
    (("-api", "-api-server"), Program("an API server", "stateless")),
    (("-agent", "-compute"), Program("a per-node agent", "node", advice=_NODE)),
    (
        (
            "-conductor", "-scheduler", "-engine", "-worker", "-volume", "-backup", "-share",
            "-evaluator", "-notifier", "-listener", "-central", "-producer", "-housekeeping",
            "-notification", "-polling", "-consumer", "-beat",
        ),
        Program("a worker that takes its work from a queue or database", "worker"),
    ),
)  # fmt: skip
"""Name endings that say what an unlisted program does (`aodh-api`, `neutron-l3-agent`,
`heat-engine`)."""

_RUNNERS = frozenset({
    "env", "nice", "ionice", "chrt", "taskset", "numactl", "setpriv", "runuser", "su-exec",
    "gosu", "chpst", "stdbuf", "tini", "dumb-init", "catatonit", "authbind", "exec", "sudo",
    "setsid", "prlimit", "systemd-cat", "start-stop-daemon",
})  # fmt: skip
"""Programs that run another: the program after their options is the one that matters."""
_INTERPRETER = re.compile(r"(python|pypy|ruby|node|nodejs|perl|php|java|lua|bash|sh|dash)[\d.]*")
_OVN_ACTIONS = {
    "nb_ovsdb": "ovsdb-server-nb",
    "sb_ovsdb": "ovsdb-server-sb",
    "northd": "ovn-northd",
    "controller": "ovn-controller",
}
_GENERIC_DIRECTORIES = frozenset({
    "", "usr", "bin", "sbin", "lib", "lib64", "libexec", "share", "local", "opt", "scripts",
    "etc", "init.d", "srv", "home", "var", "app", "apps", "current", "release", "dist",
})  # fmt: skip

# --- what the command line says ---------------------------------------------------------------

_LISTEN_WORDS = frozenset({
    "listen", "bind", "http", "https", "socket", "address", "addr", "host", "web", "api",
    "public", "server", "service", "metrics", "admin", "app", "status", "stats", "grpc", "client",
})  # fmt: skip
_CONNECT_WORDS = frozenset({
    "connect", "connection", "upstream", "backend", "master", "primary", "replicaof", "slaveof",
    "join", "remote", "target", "forward", "db", "database", "redis", "mysql", "postgres", "pg",
    "amqp", "rabbit", "broker", "ldap", "smtp", "mail", "dns", "ntp", "proxy", "advertise",
    "initial", "seed", "seeds", "statsd", "syslog", "log", "otel", "collector", "zookeeper",
    "etcd", "memcache", "memcached", "sentinel", "dest", "destination", "upstreams",
})  # fmt: skip
"""Option words that name a port or address the program connects *to*: `--db-port 5432` is not
one it listens on."""
_PEER_WORDS = frozenset({"peer", "peers", "cluster", "raft", "gossip", "election", "quorum"})
_WILDCARD_HOSTS = frozenset({"", "*", "0.0.0.0", "::", "[::]"})
_HOST_PORT = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(\[[0-9a-fA-F:]*\]|[\w.*-]*):(\d{1,5})/?")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_WHOLE_VARIABLE = re.compile(r"\$(\w+)")
_SPECIFIER = re.compile(r"%(.)")
_PLACEHOLDER = re.compile(r"@[A-Za-z_][A-Za-z0-9_]*@")
_FIXED_SPECIFIERS = {
    "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc", "T": "/tmp",
    "V": "/var/tmp", "%": "%",
}  # fmt: skip
_HOST_SPECIFIERS = {
    "H": "the host's name", "l": "the host's short name", "h": "the user's home",
    "u": "the user's name", "U": "the user's id", "g": "the group's name", "G": "the group's id",
    "m": "the machine id", "b": "the boot id", "o": "the OS id", "v": "the kernel release",
    "d": "the credentials directory", "a": "the architecture", "w": "the OS version",
    "s": "the user's shell", "q": "the host's pretty name",
}  # fmt: skip

# --- directives the HAService has no place for, as the report groups them ---------------------

_GROUPS: tuple[tuple[str, Kind, str], ...] = (
    (
        r"After|Before|Requires|Wants|BindsTo|PartOf|Requisite|Conflicts|Upholds|OnFailure|"
        r"OnSuccess|OnFailureJobMode|PropagatesReloadTo|ReloadPropagatedFrom|PropagatesStopTo|"
        r"StopPropagatedFrom|JoinsNamespaceOf|RequiresMountsFor|WantsMountsFor|StopWhenUnneeded|"
        r"DefaultDependencies|RefuseManualStart|RefuseManualStop|AllowIsolate|IgnoreOnIsolate",
        "unsupported",
        "(ordering and dependencies): no equivalent; let it retry until they answer",
    ),
    (r"(Condition|Assert)\w+", "unsupported", "(start conditions): no equivalent"),
    (r"Description|Documentation|SourcePath", "note", "documentation only, not carried over"),
    (
        r"WantedBy|RequiredBy|UpheldBy|Also|DefaultInstance",
        "unsupported",
        "(enabling at boot): no equivalent; an HAService runs while it exists",
    ),
    (
        r"Protect\w+|Private\w+|NoNewPrivileges|CapabilityBoundingSet|SystemCall\w+|Restrict\w+|"
        r"ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|ExecPaths|NoExecPaths|"
        r"ReadWriteDirectories|ReadOnlyDirectories|InaccessibleDirectories|"
        r"MemoryDenyWriteExecute|LockPersonality|RemoveIPC|UMask|DevicePolicy|DeviceAllow|"
        r"KeyringMode|SecureBits|BindPaths|BindReadOnlyPaths|TemporaryFileSystem|MountFlags|"
        r"IPAddressAllow|IPAddressDeny|SupplementaryGroups|PAMName|DynamicUser|"
        r"\w+DirectoryMode|RuntimeDirectoryPreserve|ConfigurationDirectory",
        "unsupported",
        "(sandboxing and file access): the restricted pod stands in (non-root, no "
        "capabilities, RuntimeDefault seccomp, read-only root filesystem); mount volumes where "
        "it must write and a ConfigMap for its configuration",
    ),
    (
        r"Limit\w+|TasksMax|Memory\w+|CPU\w+|IO\w+|OOMScoreAdjust|OOMPolicy|Nice|Slice|Delegate|"
        r"ManagedOOM\w+|Startup\w+|AllowedCPUs|AllowedMemoryNodes",
        "unsupported",
        "(resources and scheduling): size the pod's requests and limits; open-file limits come "
        "from the container runtime",
    ),
    (
        r"KillMode|KillSignal|SendSIGKILL|SendSIGHUP|FinalKillSignal|RestartKillSignal|"
        r"TimeoutStopSec|TimeoutSec|TimeoutAbortSec|TimeoutStartSec|TimeoutStartFailureMode|"
        r"TimeoutStopFailureMode",
        "unsupported",
        "(start and stop timing): Kubernetes stops with SIGTERM (or the image's STOPSIGNAL), "
        "then SIGKILL after terminationGracePeriodSeconds (30 s); a slow start needs a "
        "startupProbe",
    ),
    (
        r"Standard\w+|Syslog\w+|LogLevelMax|LogExtraFields|LogRateLimit\w+|LogNamespace|TTY\w+",
        "unsupported",
        "(logging): a container logs to stdout and stderr, which the cluster collects",
    ),
    (
        r"PIDFile|NotifyAccess|RemainAfterExit|GuessMainPID|SuccessExitStatus|"
        r"RestartPreventExitStatus|RestartForceExitStatus|BusName|FileDescriptorStore\w+|"
        r"NonBlocking|Sockets|PermissionsStartOnly|RestartMode|RestartSteps|RestartMaxDelaySec|"
        r"ExitType",
        "unsupported",
        "(process supervision): no equivalent; the container's main process is the service",
    ),
    (
        r"(Load|Set|Import)Credential\w*",
        "warning",
        "(credentials): put them in a Secret, mount it, and point CREDENTIALS_DIRECTORY at the "
        "mount",
    ),
)


def import_systemd(
    text: str, options: Options, unit: str | None = None
) -> tuple[list[dict[str, Any]], Report]:
    """The unit's HAService and the report; `unit` is the unit's file name, for its name."""
    report = Report()
    sections = parse_unit(text)
    if "Service" not in sections:
        raise Unreadable("", "no [Service] section: not a service unit")
    importer = _Importer(sections, report, unit)
    plan = importer.plan(options.name or (unit or ""), options.categories)
    session = Session(options, report)
    session.add(plan)
    return session.finish(), report


@dataclass(frozen=True)
class _Listen:
    port: int
    origin: str
    peer: bool = False


class _Importer:
    def __init__(
        self, sections: dict[str, list[Entry]], report: Report, unit_file: str | None
    ) -> None:
        self.sections = sections
        self.service = sections["Service"]
        self.unit = sections.get("Unit", [])
        self.install = sections.get("Install", [])
        self.report = report
        self.unit_file = unit_file
        self.subject = "unit"
        self.handled: set[str] = set()
        self.unexpanded: set[str] = set()
        self.env: dict[str, str] = {}
        self.secret_env: list[tuple[str, str]] = []
        self.split_variables: list[str] = []

    # --- the report ---------------------------------------------------------------------------

    def _say(self, kind: Kind, text: str, *keys: str) -> None:
        """Report `text`; `keys` (`Section.Key`) are the directives it speaks for."""
        self.report.add(kind, self.subject, text)
        self.handled.update(keys)

    # --- the plan -----------------------------------------------------------------------------

    def plan(self, given_name: str, overrides: Mapping[str, str]) -> Plan:
        starts = list_value(self.service, "ExecStart")
        if not starts:
            drop_in = "Unit" not in self.sections and "Install" not in self.sections
            raise Unreadable(
                "[Service]",
                "has no ExecStart=: nothing to run"
                + (
                    " (a drop-in? import the unit merged with it: systemctl cat UNIT)"
                    if drop_in
                    else ""
                ),
            )
        words = split_words(starts[0])
        if not words:
            raise Unreadable(f"line {starts[0].line}", "ExecStart= is empty")
        program_word = words[0].lstrip("-@:+!")
        raw = (
            given_name.removesuffix(".service").replace("@", "")
            or PurePosixPath(program_word).name
            or "service"
        )
        self.subject = f"unit {raw}"
        self._placeholders()
        self.env = self._environment()
        argv, expand = self._prefixes(words)
        command = self._command(argv, expand)
        if len(starts) > 1:
            self._say(
                "unsupported",
                f"ExecStart= given {len(starts)} times (Type=oneshot runs them in turn): only the "
                "first is the command; run the others from it or from init containers",
                "Service.ExecStart",
            )
        resolved = self._resolved(argv)
        key, program, how = _identify(resolved, self._aliases())
        container = ContainerPlan(
            name=dns_label(raw, max_length=63, letter_first=False), ids=(raw,)
        )
        container.command = command
        container.env = list(self.env.items())
        container.secret_env = list(self.secret_env)
        listens = self._listens(resolved)
        plan = Plan(
            source=f"systemd unit {raw}",
            subject=self.subject,
            ids=(raw, *[a for a in self._aliases() if a != raw]),
            raw_name=raw,
            category="QueueWorker",
            containers=[container],
            replicas=2,
        )
        self._categorize(plan, container, key, program, how, listens, resolved)
        wanted = next(
            (overrides[k] for k in (*plan.ids, dns_label(raw)) if k in overrides), plan.category
        )
        if wanted == "Clustered" and plan.category != "Clustered":
            self._clustered_instead(plan, container, program)
        self._directories(container)
        if program is not None and program.role in ("stateful", "clustered"):
            self._data(container, key, program, resolved)
        self._working_directory(container)
        plan.restart = self._restart()
        self._user(plan)
        self._type()
        self._hooks()
        self._capabilities()
        self._alias_note(raw)
        if self.unexpanded:
            shown = ", ".join(
                f"%{s} ({self._specifier_meaning(s)})" for s in sorted(self.unexpanded)
            )
            self._say("unsupported", f"specifiers {shown} are not expanded")
        self._rest()
        return plan

    # --- ExecStart ----------------------------------------------------------------------------

    def _prefixes(self, words: list[str]) -> tuple[list[str], bool]:
        """The command without ExecStart's prefixes, and whether variables are expanded."""
        words = list(words)
        prefixes = words[0][: len(words[0]) - len(words[0].lstrip("-@:+!"))]
        words[0] = words[0][len(prefixes) :]
        if "@" in prefixes and len(words) > 1:
            del words[1]
        if "-" in prefixes:
            self._say(
                "note", "ExecStart=- (failure ignored): a container's exit status always counts"
            )
        if "+" in prefixes or "!" in prefixes:
            self._say(
                "warning", "ExecStart=+ or ! ran with full privileges: the restricted pod has none"
            )
        if ":" in prefixes:
            self._say("note", "ExecStart=: (no variable expansion): $ is passed as written")
        return words, ":" not in prefixes

    def _command(self, words: list[str], expand: bool) -> list[str]:
        shell = PurePosixPath(words[0]).name in SHELLS and "-c" in words
        script_at = words.index("-c") + 1 if shell else -1
        scanned = [word if i != script_at else "" for i, word in enumerate(words)]
        replaced = {
            i: (prefix, v, suffix)
            for i, prefix, v, suffix in self._secret_words(scanned, "ExecStart")
        }
        kept: list[str] = []
        for position, word in enumerate(words):
            if position == script_at:
                script = self._script(word)
                if script is None:
                    self._say(
                        "warning",
                        "ExecStart left out: its shell script holds a secret in quotes that "
                        "could not be separated; write the command, reading the secret from "
                        "the environment",
                        "Service.ExecStart",
                    )
                    return []
                kept.append(self._specifiers(script))
                continue
            if position in replaced:
                prefix, var, suffix = replaced[position]
                kept.append(f"{prefix}$({var}){suffix}")
                continue
            word = self._specifiers(word)
            if expand:
                whole = _WHOLE_VARIABLE.fullmatch(word)
                if whole and not shell:
                    self._whole_variable(whole.group(1))
                word = _VARIABLE.sub(lambda m: f"$({m.group(1) or m.group(2)})", word)
            kept.append(word)
        if self.split_variables:
            names = list(dict.fromkeys(self.split_variables))
            self._say(
                "note",
                f"ExecStart {', '.join('$' + n for n in names)}: systemd splits such a variable "
                f"into words, Kubernetes passes $({names[0]}) as one argument: if one holds "
                "several words, write them into the command",
            )
        return kept

    def _whole_variable(self, name: str) -> None:
        value = self.env.get(name)
        if value is None or len(value.split()) > 1:
            self.split_variables.append(name)

    def _secret_words(
        self, words: list[str], origin: str, shell: bool = False
    ) -> list[tuple[int, str, str, str]]:
        """Where `words` hold secret values (see `_secrets_in`): (index, what stays before the
        value, the variable now holding it, what stays after it)."""
        return [
            (found.index, found.prefix, self._secret_var(found.hint, f"{origin} {found.label}"),
             found.suffix)
            for found in _secrets_in(words, shell)
        ]  # fmt: skip

    def _script(self, script: str) -> str | None:
        """`sh -c`'s script with secret values replaced by `"${VAR}"` (the shell expands it);
        None when a secret is in quotes that cannot be cut out."""
        tokens = list(re.finditer(r"\S+", script))
        values = [t.group(0) for t in tokens]
        pieces: list[str] = []
        end = 0
        secrets = self._secret_words(values, "ExecStart's script", shell=True)
        for index, prefix, variable, suffix in secrets:
            token = tokens[index]
            value = token.group(0)[len(prefix) : len(token.group(0)) - len(suffix)]
            if value.count("'") % 2 or value.count('"') % 2 or prefix.count("'") % 2:
                return None
            pieces += [script[end : token.start()], f'{prefix}"${{{variable}}}"{suffix}']
            end = token.end()
        return "".join(pieces) + script[end:]

    def _secret_var(self, hint: str, origin: str) -> str:
        """A fresh variable (and Secret key) for a secret found at `hint`."""
        base = re.sub(r"[^A-Za-z0-9]+", "_", hint.lstrip("-")).strip("_").upper() or "SECRET"
        if base[0].isdigit():
            base = f"SECRET_{base}"
        taken = set(self.env) | {variable for variable, _ in self.secret_env}
        variable, counter = base, 2
        while variable in taken:
            variable, counter = f"{base}_{counter}", counter + 1
        self.secret_env.append((variable, f"{origin} (now $({variable}))"))
        return variable

    def _specifiers(self, text: str) -> str:
        """Expand the specifiers whose meaning does not depend on the host."""

        def one(match: re.Match[str]) -> str:
            letter = match.group(1)
            if letter in _FIXED_SPECIFIERS:
                return _FIXED_SPECIFIERS[letter]
            named = self._unit_specifier(letter)
            if named is not None:
                return named
            self.unexpanded.add(letter)
            return match.group(0)

        return _SPECIFIER.sub(one, text)

    def _specifier_meaning(self, letter: str) -> str:
        if letter in "iIf":
            return (
                "the instance: import an instance's name, NAME@INSTANCE.service"
                if self.unit_file
                else "the instance: give the unit's file name"
            )
        if letter in "nNpPjJ":
            return "the unit's name: give the unit's file name"
        return _HOST_SPECIFIERS.get(letter, "not known here")

    def _unit_specifier(self, letter: str) -> str | None:
        """%n, %N, %p, %P, %i, %I, %j, %J, %f from the unit's file name, when it is known (a
        template's instance is known only for an instance's name)."""
        if not self.unit_file or letter not in "nNpPiIjJf":
            return None
        full = self.unit_file
        stem = full.removesuffix(".service")
        prefix, at, instance = stem.partition("@")
        if at and not instance and letter in "iIf":
            return None
        values = {
            "n": full,
            "N": stem,
            "p": prefix,
            "P": prefix,
            "i": instance,
            "I": instance,
            "j": prefix.rsplit("-", 1)[-1],
            "J": prefix.rsplit("-", 1)[-1],
            "f": f"/{instance or prefix}",
        }
        return values[letter]

    def _resolved(self, words: list[str]) -> list[str]:
        """The command as the program sees it, as far as the unit tells: variables from
        Environment= substituted (a whole-word `$VAR` split into words, as systemd does)."""
        resolved: list[str] = []
        for word in words:
            whole = _WHOLE_VARIABLE.fullmatch(word)
            if whole and whole.group(1) in self.env:
                resolved += self._specifiers(self.env[whole.group(1)]).split()
                continue
            word = _VARIABLE.sub(lambda m: self.env.get(m.group(1) or m.group(2), m.group(0)), word)
            resolved.append(self._specifiers(word))
        return resolved

    # --- Environment --------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        secret: dict[str, None] = {}
        for entry in list_value(self.service, "Environment"):
            for assignment in split_words(entry):
                name, sep, value = assignment.partition("=")
                if not sep or not name:
                    raise Unreadable(f"line {entry.line}", "Environment= takes NAME=VALUE words")
                if (is_secret_name(name) and is_secret_literal(value)) or has_secret_value(value):
                    env.pop(name, None)
                    secret[name] = None
                else:
                    secret.pop(name, None)
                    env[name] = self._specifiers(value)
        self.secret_env = [(name, f"Environment {name}") for name in secret]
        for entry in list_value(self.service, "EnvironmentFile"):
            self._say(
                "unsupported",
                f"EnvironmentFile={entry.value}: put it in a "
                "ConfigMap (or a Secret) and use envFrom",
                "Service.EnvironmentFile",
            )
        if not list_value(self.service, "EnvironmentFile"):
            self.handled.add("Service.EnvironmentFile")
        return env

    # --- what it is -----------------------------------------------------------------------------

    def _aliases(self) -> list[str]:
        names: list[str] = []
        for entry in list_value(self.install, "Alias"):
            for alias in entry.value.split():
                if alias.endswith(".service"):
                    names.append(alias.removesuffix(".service").replace("@", ""))
        return list(dict.fromkeys(names))

    def _alias_note(self, raw: str) -> None:
        aliases = self._aliases()
        if not last(self.install, "Alias"):
            return
        text = (
            f"Alias={', '.join(aliases)}: other names of this unit; --category and --image-map "
            "take them too"
            if aliases
            else "Alias= names no service"
        )
        if raw in aliases:
            text += f" ({raw} is one of them: import the unit once, under any name)"
        self._say("note", text, "Install.Alias")

    def _listens(self, words: list[str]) -> list[_Listen]:
        """Ports the command or Environment= say the program listens on."""
        found: list[_Listen] = []
        for position, word in enumerate(words):
            option, equals, value = word.partition("=")
            if not option.startswith("-"):
                match = _HOST_PORT.fullmatch(word)
                if match and match.group(1) in _WILDCARD_HOSTS and "//" not in word:
                    found.append(_Listen(int(match.group(2)), word))
                continue
            if not equals:
                value = words[position + 1] if position + 1 < len(words) else ""
            parts = set(_words(option))
            if parts & _CONNECT_WORDS:
                continue
            peer = bool(parts & _PEER_WORDS)
            port_option = option in ("-p", "-P") or _words(option)[-1:] == ["port"]
            if port_option and value.isdigit():
                found.append(_Listen(int(value), f"{option} {value}", peer))
            elif parts & (_LISTEN_WORDS | _PEER_WORDS) or port_option:
                for item in value.split(","):
                    match = _HOST_PORT.fullmatch(item)
                    if match:
                        found.append(_Listen(int(match.group(2)), f"{option} {item}", peer))
        for name, value in self.env.items():
            parts = set(_words(name))
            listening = parts & (_LISTEN_WORDS | _PEER_WORDS) or parts == {"port"}
            if "port" in parts and value.isdigit() and not parts & _CONNECT_WORDS and listening:
                peer = bool(parts & _PEER_WORDS)
                found.append(_Listen(int(value), f"Environment {name}", peer))
        unique: dict[int, _Listen] = {}
        for listen in found:
            if 0 < listen.port < 65536 and listen.port not in unique:
                unique[listen.port] = listen
        return list(unique.values())

    def _categorize(
        self,
        plan: Plan,
        container: ContainerPlan,
        key: str,
        program: Program | None,
        how: str,
        listens: list[_Listen],
        words: list[str],
    ) -> None:
        """Category, replicas and ports, from what runs and what it listens on."""
        raw = plan.raw_name
        change = f"--category {raw}=CATEGORY to change"
        start = len(self.report.items)

        def conclude(text: str) -> None:
            self.report.insert(start, "note", self.subject, text)

        role = program.role if program is not None else "unknown"
        clients = [listen for listen in listens if not listen.peer]
        if program is not None and how:
            self._say("note", f"runs {key}, {program.what} ({how})")
        for listen in listens:
            self._say(
                "note",
                f"listens on port {listen.port}{' (peers)' if listen.peer else ''}: "
                f"{listen.origin}",
            )
        clustered_by = self._clustered_by(program, words) if program is not None else ""
        if role == "stateful" and clustered_by:
            role = "clustered"
        known = {n: name for name, n in (*program.ports, *program.peers)} if program else {}

        def named(number: int) -> str:
            return known.get(number) or well_known_port_name(number)

        ports = [(named(listen.port), listen.port) for listen in clients]
        if program is not None and not clients and role in ("stateless", "stateful", "clustered"):
            for name, number in program.ports:
                ports.append((name, number))
                self._say(
                    "note",
                    f"port {number} ({name}) assumed: the usual port of {key}; the unit does not "
                    "name it (it is in the program's configuration): correct spec.service if it "
                    "differs",
                )
        container.ports = [Port(name, number, number) for name, number in ports]
        if program is not None and program.advice:
            self._say("warning", f"{key}: {program.advice}")
        if role == "stateless" or (role in ("unknown", "worker") and clients):
            plan.category = "LoadBalanced"
            why = (
                f"{key} is {program.what}"
                if program is not None and role == "stateless"
                else f"it listens on port {', '.join(str(n) for _, n in ports)} and nothing says "
                "it keeps state"
            )
            conclude(
                f"LoadBalanced: {why}: copies serve side by side behind one "
                f"Service ({change}; ActivePassive if they must not run side by side)",
            )
            if not ports:
                self._say(
                    "warning",
                    "it listens, but the unit names no port: add spec.service with the ports "
                    "clients use (and the container's ports)",
                )
            else:
                self._say("note", "a unit has no health check: add a readinessProbe")
        elif role == "stateful":
            assert program is not None
            plan.category = "ActivePassive"
            conclude(
                f"ActivePassive, not LoadBalanced: {key} is {program.what} that keeps its data on "
                "local disk, so copies behind one Service would be independent servers with "
                f"different data; one pod serves, the other stands by ({change})",
            )
            hint = f"if it runs as {program.cluster_hint or 'a cluster'}, "
            variables = sorted(
                {
                    m.group(1) or m.group(2)
                    for w in words
                    for m in _VARIABLE.finditer(w)
                    if any(c in (m.group(1) or m.group(2)).lower() for c in program.clustering)
                }
            )
            prepared = f" (it refers to ${', $'.join(variables)})" if variables else ""
            self._say(
                "warning",
                "the standby does not have the active pod's data: give the data directory "
                "shared storage or replication before relying on failover; "
                f"{hint}which the unit alone does not show{prepared}, use --category "
                f"{raw}=Clustered"
                + (
                    f" (peer port{'s' if len(program.peers) > 1 else ''} "
                    f"{', '.join(str(n) for _, n in program.peers)} then added)"
                    if program.peers
                    else ""
                ),
            )
            if ports:
                self._say("note", "a unit has no health check: add a readinessProbe")
        elif role == "clustered":
            assert program is not None
            plan.category = "Clustered"
            plan.replicas = self._members(words) or 3
            reason = (
                f"it runs clustered ({clustered_by})"
                if clustered_by
                else "its copies form one cluster with a quorum"
            )
            conclude(
                f"Clustered: {key} is {program.what}; {reason}: {plan.replicas} members, quorum "
                f"Majority ({change})",
            )
            numbers = {n for _, n in ports}
            peers = [(named(p.port), p.port) for p in listens if p.peer]
            if not peers:
                peers = list(program.peers)
                if peers:
                    self._say(
                        "note",
                        f"peer port {', '.join(str(n) for _, n in peers)} assumed: the usual one "
                        f"of {key}",
                    )
            for name, number in peers:
                if number not in numbers:
                    container.ports.append(Port(name, number, None, peer=True))
            if ports:
                self._say("note", "a unit has no health check: add a readinessProbe")
        else:
            plan.category = "QueueWorker"
            service_type = last(self.service, "Type")
            kind = service_type.value if service_type is not None else "simple"
            if role == "worker":
                assert program is not None
                why = f"{key} is {program.what}; it names no port"
            elif role in ("node", "ha", "noop"):
                assert program is not None
                why = f"{key} is {program.what}, not a service clients reach through a Service"
            else:
                why = (
                    "nothing in the unit says it listens (no port option, not a program known "
                    "here)"
                    + (
                        f"; Type={kind} is common for servers"
                        if kind in ("notify", "notify-reload", "dbus", "forking")
                        else ""
                    )
                )
            conclude(f"QueueWorker: {why} ({change})")
            if role == "unknown":
                self._say(
                    "warning",
                    f"the unit alone cannot tell whether {key or raw} serves clients: if it "
                    f"listens, use --category {raw}=LoadBalanced and add spec.service with its "
                    "ports",
                )

    def _clustered_instead(
        self, plan: Plan, container: ContainerPlan, program: Program | None
    ) -> None:
        """--category NAME=Clustered: three members and the program's peer ports."""
        plan.replicas = 3
        numbers = {port.container_port for port in container.ports}
        peers = [(n, p) for n, p in (program.peers if program else ()) if p not in numbers]
        for name, number in peers:
            container.ports.append(Port(name, number, None, peer=True))
        self._say(
            "note",
            "Clustered by --category: 3 members"
            + (f", peer port {', '.join(str(p) for _, p in peers)}" if peers else ""),
        )

    def _clustered_by(self, program: Program, words: list[str]) -> str:
        """The option that shows a stateful server runs clustered, if the command has one."""
        if not program.clustering:
            return ""
        for position, word in enumerate(words):
            option, equals, value = word.partition("=")
            if not option.startswith("-"):
                continue
            parts = _words(option)
            if all(any(c in part for part in parts) for c in program.clustering):
                if (
                    not equals
                    and position + 1 < len(words)
                    and not words[position + 1].startswith("-")
                ):
                    value = words[position + 1]
                if value.lower() in ("no", "off", "false", "0", "none"):
                    continue
                return option
        return ""

    def _members(self, words: list[str]) -> int | None:
        """How many members an `--initial-cluster a=URL,b=URL,...` (or the like) lists."""
        for position, word in enumerate(words):
            option, equals, value = word.partition("=")
            if option.startswith("-") and "initial" in option and "cluster" in option:
                if not equals and position + 1 < len(words):
                    value = words[position + 1]
                members = [m for m in value.split(",") if "=" in m]
                if len(members) >= 3 and len(members) % 2:
                    return len(members)
        return None

    # --- volumes ------------------------------------------------------------------------------

    def _directories(self, container: ContainerPlan) -> None:
        made: list[str] = []
        for key, (base, persistent) in DIRECTORIES.items():
            entries = list_value(self.service, key)
            for entry in entries:
                for name in entry.value.split():
                    relative = self._specifiers(name.split(":", 1)[0]).strip("/")
                    if not relative or ".." in relative.split("/"):
                        self._say(
                            "unsupported", f"{key}={name}: not a directory name", f"Service.{key}"
                        )
                        continue
                    path = f"{base}/{relative}"
                    if any(m.path == path for m in container.mounts):
                        continue
                    container.mounts.append(Mount(dns_label(path, max_length=63), path, persistent))
                    made.append(path)
        if made:
            self._say(
                "note",
                f"{', '.join(k + '=' for k in DIRECTORIES if list_value(self.service, k))} "
                f"volumes at {', '.join(made)} (the root filesystem is read-only)",
            )

    def _data(self, container: ContainerPlan, key: str, program: Program, words: list[str]) -> None:
        """A persistent volume where a stateful or clustered server keeps its data."""
        path, origin = None, ""
        for position, word in enumerate(words):
            option, equals, value = word.partition("=")
            parts = _words(option)
            if option.startswith("-") and (
                ("data" in parts and {"dir", "path", "directory"} & set(parts))
                or option in ("--datadir", "--dbpath", "--dir", "-D")
            ):
                if not equals and position + 1 < len(words):
                    value = words[position + 1]
                if value.startswith("/"):
                    path, origin = value, option
                    break
        if path is None:
            for name, value in self.env.items():
                if value.startswith("/") and ("DATA_DIR" in name.upper() or name == "PGDATA"):
                    path, origin = value, f"Environment {name}"
                    break
        if path is None and program.data:
            path, origin = program.data, f"assumed: the usual data directory of {key}"
        if path is None:
            return
        path = path.rstrip("/") or "/"
        for mount in container.mounts:
            if path == mount.path or path.startswith(mount.path + "/"):
                mount.persistent = True
                return
        container.mounts.append(Mount("data", path, persistent=True))
        self._say("note", f"data in {path} ({origin}): a persistent volume")

    def _working_directory(self, container: ContainerPlan) -> None:
        working = last(self.service, "WorkingDirectory")
        if working is None:
            return
        value = self._specifiers(working.value.removeprefix("-"))
        if value.startswith("/"):
            container.working_dir = value
        elif value == "~":
            user = last(self.service, "User")
            whose = f"User={user.value}" if user is not None else "the user (root)"
            self._say(
                "note",
                f"WorkingDirectory=~ (the home directory of {whose}): left to the image's "
                "working directory; set workingDir to that home in the image if the program uses "
                "paths relative to it",
                "Service.WorkingDirectory",
            )
        else:
            self._say(
                "unsupported",
                f"WorkingDirectory={working.value}: not an absolute path: left out",
                "Service.WorkingDirectory",
            )

    # --- restarts -------------------------------------------------------------------------------

    def _restart(self) -> dict[str, Any] | None:
        restart = last(self.service, "Restart")
        policy = restart.value if restart is not None else "no"
        if policy == "no":
            self._say(
                "unsupported", "Restart=no (the default): a pod restarts its containers regardless"
            )
            return None
        if policy != "always":
            self._say("note", f"Restart={policy}: Kubernetes restarts after any exit")
        delay = last(self.service, "RestartSec")
        if delay is not None:
            self._say(
                "unsupported",
                f"RestartSec={delay.value}: Kubernetes waits with "
                f"its own back-off ({BACKOFF_INITIAL_SECONDS} s, doubling up to "
                f"{BACKOFF_CAP_SECONDS // 60} min)",
                "Service.RestartSec",
            )
        burst = last(self.unit, "StartLimitBurst") or last(self.service, "StartLimitBurst")
        interval = last(self.unit, "StartLimitIntervalSec") or last(self.unit, "StartLimitInterval")
        old = last(self.service, "StartLimitInterval") or last(
            self.service, "StartLimitIntervalSec"
        )
        if interval is None and old is not None:
            interval = old
            self._say(
                "note",
                f"{old.key}= in [Service] is the old "
                f"{'spelling' if old.key == 'StartLimitInterval' else 'place'} of [Unit] "
                "StartLimitIntervalSec=",
            )
        if burst is not None and not burst.value.isdigit():
            raise Unreadable(f"line {burst.line}", "StartLimitBurst= must be a whole number")
        seconds = 10.0
        if interval is not None:
            try:
                seconds = (
                    MAX_WINDOW_SECONDS if interval.value == "infinity" else duration(interval.value)
                )
            except ValueError:
                raise Unreadable(
                    f"line {interval.line}", f"{interval.key}= is not a time span"
                ) from None
        action = last(self.unit, "StartLimitAction")
        if action is not None:
            self._say(
                "unsupported",
                f"StartLimitAction={action.value}: onLimit Migrate moves the pod instead",
                "Unit.StartLimitAction",
            )
        restarts = min(int(burst.value), MAX_RESTARTS) if burst is not None else 5
        fitting = _restarts_within_a_day(restarts)
        if fitting < restarts:
            self._say(
                "note",
                f"maxRestarts {fitting}, not StartLimitBurst={restarts}: under the kubelet's "
                f"back-off ({BACKOFF_INITIAL_SECONDS} s doubling up to {BACKOFF_CAP_SECONDS} s) "
                f"no more than {fitting + 1} restarts fit in the longest window, a day",
            )
            restarts = fitting
        given = min(whole_seconds(seconds), MAX_WINDOW_SECONDS)
        needed = window_for_restarts(restarts + 1)
        limit = {
            "maxRestarts": restarts,
            "windowSeconds": max(given, needed),
            "onLimit": "Migrate",
        }
        if seconds == 0:
            limit["onLimit"] = "Notify"
            self._say(
                "note",
                "a start limit interval of 0 disables the limit: onLimit Notify only reports "
                f"(windowSeconds {needed}: the time {restarts + 1} restarts take under the "
                "kubelet's back-off)",
            )
        elif needed > given:
            spelled = (
                f"{interval.key}={interval.value}" if interval is not None else "10 s (the default)"
            )
            self._say(
                "note",
                f"windowSeconds {needed}, not {spelled}: the limit is reached on restart "
                f"{restarts + 1}, and the kubelet waits {BACKOFF_INITIAL_SECONDS} s before a "
                f"restart, doubling up to {BACKOFF_CAP_SECONDS} s, so {restarts + 1} restarts "
                f"take {needed} s; a shorter window could never see them. The intent is kept: "
                f"give up on this node after {restarts} restarts in a row",
            )
        return limit

    # --- the rest -----------------------------------------------------------------------------

    def _user(self, plan: Plan) -> None:
        for key in ("User", "Group"):
            entry = last(self.service, key)
            if entry is None:
                continue
            value = self._specifiers(entry.value)
            if value in ("0", "root"):
                self._say(
                    "warning",
                    f"{key}={entry.value}: the restricted pod runs "
                    "as non-root; the image must work without root",
                    f"Service.{key}",
                )
            elif value.isdigit():
                setattr(plan, "run_as_user" if key == "User" else "run_as_group", int(value))
            else:
                self._say(
                    "note",
                    f"{key}={entry.value}: set securityContext.runAs{key} to its number in the "
                    "image",
                    f"Service.{key}",
                )
        dynamic = last(self.service, "DynamicUser")
        if dynamic is not None and dynamic.value.lower() in ("yes", "true", "on", "1"):
            self._say(
                "note",
                "DynamicUser=yes (a throw-away user): the pod runs as non-root; set runAsUser to "
                "an unused number",
                "Service.DynamicUser",
            )

    def _type(self) -> None:
        service_type = last(self.service, "Type")
        kind = service_type.value if service_type is not None else "simple"
        if kind in ("forking", "oneshot"):
            self._say(
                "warning",
                f"Type={kind}: a container's main process must keep running in the foreground",
            )
        elif kind in ("notify", "notify-reload", "dbus"):
            self._say("note", f"Type={kind}: readiness comes from a probe instead")
        elif kind not in SERVICE_TYPES:
            self._say(
                "warning",
                f"Type={kind} is not a service type systemd knows: read as simple",
                "Service.Type",
            )

    def _hooks(self) -> None:
        for key, hook in HOOKS.items():
            entries = list_value(self.service, key)
            if entries:
                labels = [
                    found.label
                    for entry in entries
                    for found in _secrets_in(entry.value.split(), shell=True)
                ]
                secrets = (
                    f"; its command line holds secrets ({', '.join(dict.fromkeys(labels))}): not "
                    "copied, read them from a Secret there"
                    if labels
                    else ""
                )
                self._say(
                    "unsupported", f"{key}= is not run: use {hook}{secrets}", f"Service.{key}"
                )
            self.handled.add(f"Service.{key}")
        watchdog = last(self.service, "WatchdogSec")
        if watchdog is not None:
            self._say("unsupported", "WatchdogSec=: use a livenessProbe", "Service.WatchdogSec")

    def _capabilities(self) -> None:
        wanted = [
            name
            for entry in self.service
            if entry.key == "AmbientCapabilities"
            for name in entry.value.replace(",", " ").split()
        ]
        if wanted:
            self._say(
                "warning",
                f"AmbientCapabilities={' '.join(dict.fromkeys(wanted))}: the restricted pod drops "
                "every capability (it may add only NET_BIND_SERVICE): the program must work "
                "without the others, or the pod needs a less restricted namespace",
                "Service.AmbientCapabilities",
            )

    def _placeholders(self) -> None:
        found = sorted(
            {
                match.group(0)
                for entries in self.sections.values()
                for entry in entries
                if entry.key != "Environment" and "Credential" not in entry.key
                for match in _PLACEHOLDER.finditer(entry.value)
            }
        )
        if found:
            self._say(
                "warning",
                f"build-time placeholders {', '.join(found)}: this is the unit's template, not "
                "the installed unit; import the installed one",
            )

    def _rest(self) -> None:
        """Report every directive neither translated nor reported yet, by group."""
        missing: dict[str, list[str]] = {}
        for section, entries in self.sections.items():
            for entry in entries:
                qualified = f"{section}.{entry.key}"
                if qualified in TRANSLATED or qualified in self.handled:
                    continue
                if section not in ("Unit", "Service", "Install"):
                    missing.setdefault(f"[{section}]", []).append(entry.key)
                    continue
                missing.setdefault(self._group(entry.key), []).append(entry.key)
        for group, keys in missing.items():
            named = ", ".join(f"{k}=" for k in dict.fromkeys(keys))
            if group.startswith("["):
                self._say("unsupported", f"section {group} ({named}): not a service's; ignored")
                continue
            kind, text = _GROUP_TEXT.get(group, ("unsupported", "no equivalent"))
            self._say(kind, f"{named} {text}" if text.startswith("(") else f"{named}: {text}")

    @staticmethod
    def _group(key: str) -> str:
        for pattern, _, _ in _GROUPS:
            if re.fullmatch(pattern, key):
                return pattern
        return ""


_GROUP_TEXT: dict[str, tuple[Kind, str]] = {
    pattern: (kind, text) for pattern, kind, text in _GROUPS
}


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def _restarts_within_a_day(restarts: int) -> int:
    """The most restarts (at most `restarts`) whose limit, reached one restart later, fits in
    the longest window under the kubelet's back-off."""
    low, high = 0, restarts
    while low < high:
        middle = (low + high + 1) // 2
        if window_for_restarts(middle + 1) < MAX_WINDOW_SECONDS:
            low = middle
        else:
            high = middle - 1
    return low


def _normalized(name: str) -> str:
    name = name.lower().replace("_", "-")
    name = re.sub(r"\.(sh|py|rb|pl|js|jar|bin)$", "", name)
    name = re.sub(r"[-.]\d+(\.\d+)*$", "", name)
    name = name.removeprefix("openstack-").removeprefix("systemd-")
    return name.removesuffix("-wrapper").removesuffix("-systemd").removesuffix("-foreground")


def _lookup(name: str, *, endings_too: bool = True) -> Program | None:
    key = _normalized(name)
    if key in PROGRAMS or not endings_too:
        return PROGRAMS.get(key)
    for endings, program in _SUFFIXES:
        if key.endswith(endings):
            return program
    return None


@dataclass(frozen=True)
class _Secret:
    """A secret value in a command's words: `words[index]` holds it between `prefix` and `suffix`;
    `hint` names its variable, `label` says where it was (`--requirepass`, `mysqladmin -p`)."""

    index: int
    prefix: str
    suffix: str
    hint: str
    label: str


def _secrets_in(words: list[str], shell: bool = False) -> list[_Secret]:
    """Where `words` (a command, or a shell script split on blanks when `shell`) hold secret
    values. Long options and assignments are found by their names (`--requirepass X`,
    `DB_PASSWORD=X`), short flags only for the programs known to take a secret by them
    (`mysqladmin -pX`, `redis-cli -a X`: see SECRET_FLAGS), and URLs with a password."""
    found: list[_Secret] = []
    by_flag = {secret.index: secret for secret in flag_secrets(words, shell)}
    skip = False
    for position, word in enumerate(words):
        if skip:
            skip = False
            continue
        if position in by_flag:
            flag = by_flag[position]
            label = f"{flag.program} {flag.flag}"
            found.append(_Secret(position, flag.prefix, flag.suffix, flag.hint, label))
            continue
        name, equals, value = word.partition("=")
        following = words[position + 1] if position + 1 < len(words) else ""
        if is_option_name(name) and is_secret_name(name):
            if equals and is_secret_literal(value):
                found.append(_Secret(position, f"{name}=", "", name, name))
            elif not equals and following and not following.startswith("-"):
                skip = True
                if is_secret_literal(following):
                    found.append(_Secret(position + 1, "", "", name, name))
        elif equals and re.fullmatch(r"[A-Za-z_]\w*", name) and is_secret_name(name):
            if is_secret_literal(value):
                found.append(_Secret(position, f"{name}=", "", name, name))
        elif has_secret_value(word):
            before = words[position - 1] if position else ""
            hint = (
                name
                if equals
                else before
                if before.startswith("-") and "=" not in before
                else f"argument-{position}"
            )
            label = f"{hint} (credentials in a URL)"
            found.append(_Secret(position, f"{name}=" if equals else "", "", hint, label))
    return found


def _candidates(words: list[str]) -> tuple[str, str]:
    """The name of the program that does the work, looking through runners, shells,
    interpreters, init scripts and ovs/ovn-ctl; and how it was found ("" for the plain program)."""
    how = ""
    position = 0
    while position < len(words):
        word = words[position]
        name = PurePosixPath(word).name
        lowered = name.lower()
        if lowered in _RUNNERS:
            rest = words[position + 1 :]
            if lowered == "start-stop-daemon":
                for flag in ("--exec", "-x", "--startas", "-a"):
                    if flag in rest and rest.index(flag) + 1 < len(rest):
                        target = PurePosixPath(rest[rest.index(flag) + 1]).name
                        return target, "run by start-stop-daemon"
            position += 1
            while position < len(words) and (
                words[position].startswith("-") or re.fullmatch(r"\w+=.*", words[position])
            ):
                position += 1
            how = how or f"run by {lowered}"
            continue
        if lowered in SHELLS and "-c" in words[position:]:
            script = words[words.index("-c", position) + 1 :][:1]
            tokens = script[0].split() if script else []
            while tokens and (tokens[0] == "exec" or re.fullmatch(r"\w+=\S*", tokens[0])):
                tokens = tokens[1:]
            return (PurePosixPath(tokens[0]).name if tokens else ""), "in its shell script"
        interpreter = _INTERPRETER.fullmatch(lowered)
        if interpreter:
            rest = words[position + 1 :]
            if "-m" in rest and rest.index("-m") + 1 < len(rest):
                return rest[rest.index("-m") + 1].split(".")[0], f"run by {lowered} -m"
            if "-jar" in rest and rest.index("-jar") + 1 < len(rest):
                return PurePosixPath(rest[rest.index("-jar") + 1]).name, "run by java"
            skip = False
            for argument in rest:
                if skip:
                    skip = False
                elif argument in ("-cp", "-classpath", "--class-path", "-c", "-e"):
                    skip = argument in ("-cp", "-classpath", "--class-path")
                elif not argument.startswith("-"):
                    if lowered.startswith("java"):
                        return argument.rsplit(".", 1)[-1], "run by java"
                    return PurePosixPath(argument).name, f"run by {lowered}"
            return name, ""
        if word.startswith("/etc/init.d/"):
            return name, "its init script"
        if lowered in ("ovn-ctl", "ovs-ctl"):
            return _ovs_program(lowered, words[position + 1 :]), f"started by {lowered}"
        if lowered in ("redis-server", "valkey-server") and "--sentinel" in words:
            return lowered.replace("server", "sentinel"), "with --sentinel"
        return name, how
    return "", how


def _ovs_program(wrapper: str, words: list[str]) -> str:
    if wrapper == "ovs-ctl":
        return "ovsdb-server" if "--no-ovs-vswitchd" in words else "ovs-vswitchd"
    for word in words:
        for action, program in _OVN_ACTIONS.items():
            if word.endswith(action) and not word.startswith("-"):
                return program
    return wrapper


def _identify(words: list[str], aliases: list[str]) -> tuple[str, Program | None, str]:
    """What the unit runs: its normalized name, what is known of it, and how it was found."""
    name, how = _candidates(words)
    if "$" in name:
        name = ""
    key = _normalized(name) if name else ""
    program = _lookup(name) if name else None
    if program is not None:
        return key, program, how
    if words:
        for directory in reversed(PurePosixPath(words[0]).parts[:-1]):
            found = _lookup(directory, endings_too=False)
            if directory.lower() not in _GENERIC_DIRECTORIES and found is not None:
                return _normalized(directory), found, f"from its path {words[0]}"
    for alias in aliases:
        found = _lookup(alias.split("@", 1)[0], endings_too=False)
        if found is not None:
            return _normalized(alias.split("@", 1)[0]), found, f"from its Alias={alias}.service"
    return key, None, how
