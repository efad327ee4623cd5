"""The systemd importer's rules on small units (the realistic ones are golden cases in
tests/data/import/systemd)."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from haoperator.cli import main
from haoperator.importers import Options, Unreadable, import_systemd
from haoperator.importers.backoff import window_for_restarts
from haoperator.importers.common import duration, whole_seconds
from haoperator.importers.systemd import TRANSLATED
from haoperator.importers.systemd_syntax import parse_unit
from testenv.harness.cluster import REPO


def unit(service: str, head: str = "") -> str:
    return f"[Unit]\nDescription=test\n{head}\n[Service]\n{service}\n"


def one(
    text: str, unit_file: str | None = "app.service", **options: Any
) -> tuple[dict[str, Any], list[str]]:
    haservices, report = import_systemd(text, Options(**options), unit_file)
    assert len(haservices) == 1
    return haservices[0], report.lines()


def container(haservice: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = haservice["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_the_parser_joins_continuations_keeps_repeats_and_skips_comments() -> None:
    sections = parse_unit(
        "# head\n[Service]\nEnvironment=A=1\n; note\nEnvironment=B=2\nExecStart=/bin/app \\\n"
        "  # inside\n  --flag\n"
    )
    assert [(e.key, e.value, e.line) for e in sections["Service"]] == [
        ("Environment", "A=1", 3),
        ("Environment", "B=2", 5),
        ("ExecStart", "/bin/app --flag", 6),
    ]


def test_exec_start_becomes_the_command_without_prefixes_and_with_kubernetes_variables() -> None:
    haservice, report = one(unit("ExecStart=-/usr/bin/app --conf ${CONF} $MODE 100%%"))
    assert container(haservice)["command"] == [
        "/usr/bin/app",
        "--conf",
        "$(CONF)",
        "$(MODE)",
        "100%",
    ]
    assert any("ExecStart=- (failure ignored)" in line for line in report)


def test_at_prefix_drops_argv0() -> None:
    haservice, _ = one(unit("ExecStart=@/usr/bin/app app-name --flag"))
    assert container(haservice)["command"] == ["/usr/bin/app", "--flag"]


def test_restart_and_start_limits_become_the_restart_limit() -> None:
    text = unit(
        "ExecStart=/bin/app\nRestart=on-failure\nRestartSec=3",
        "StartLimitIntervalSec=1h\nStartLimitBurst=7",
    )
    haservice, report = one(text)
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 7,
        "windowSeconds": 3600,
        "onLimit": "Migrate",
    }
    assert not any("windowSeconds" in line for line in report)


def test_the_old_start_limit_spelling_in_service_is_read() -> None:
    text = unit("ExecStart=/bin/app\nRestart=always\nStartLimitInterval=300\nStartLimitBurst=3")
    haservice, report = one(text)
    assert haservice["spec"]["recovery"]["restart"]["windowSeconds"] == 300
    assert haservice["spec"]["recovery"]["restart"]["maxRestarts"] == 3
    assert any("old spelling" in line for line in report)


def test_systemd_defaults_apply_when_only_restart_is_set() -> None:
    haservice, report = one(unit("ExecStart=/bin/app\nRestart=always"))
    # 5 restarts allowed, the limit reached on the 6th: 10+20+40+80+160+300 s of back-off
    # and 6 x 10 s of running
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 5,
        "windowSeconds": 670,
        "onLimit": "Migrate",
    }
    assert any("windowSeconds 670, not 10 s (the default)" in line for line in report)


def test_restart_no_gives_the_default_limit_in_a_window_that_can_hold_it() -> None:
    haservice, report = one(unit("ExecStart=/bin/app"))
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 5,
        "windowSeconds": window_for_restarts(6),
        "onLimit": "Migrate",
    }
    assert any("Restart=no" in line for line in report)
    assert any("no restart limit in the source" in line for line in report)


@pytest.mark.parametrize(
    ("exec_start", "environment", "port"),
    [
        ("/bin/app --port 9000", "", 9000),
        ("/bin/app --metrics-port=9100", "", 9100),
        ("/bin/app --bind 0.0.0.0:8443", "", 8443),
        ("/bin/app", "Environment=HTTP_PORT=7000", 7000),
    ],
)
def test_a_named_port_makes_it_load_balanced(exec_start: str, environment: str, port: int) -> None:
    haservice, _ = one(unit(f"ExecStart={exec_start}\n{environment}"))
    assert haservice["spec"]["category"] == "LoadBalanced"
    assert haservice["spec"]["service"]["ports"][0]["port"] == port


def test_without_a_port_it_is_a_queue_worker_unless_overridden() -> None:
    haservice, _ = one(unit("ExecStart=/bin/worker"))
    assert haservice["spec"]["category"] == "QueueWorker"
    haservice, _ = one(unit("ExecStart=/bin/worker"), categories={"app": "ActivePassive"})
    assert (haservice["spec"]["category"], haservice["spec"]["replicas"]) == ("ActivePassive", 2)


def secret_ref(name: str, secret: str = "app-secrets") -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}


def test_secrets_in_environment_and_arguments_come_from_a_secret() -> None:
    text = unit(
        'Environment="DB_PASSWORD=Sd-Pw-1" "URL=mysql://u:Sd-Pw-2@db/x" KEEP=1\n'
        "ExecStart=/bin/app --api-key Sd-Pw-3 --token=Sd-Pw-4 --verbose\n"
        "ExecStart=\nExecStart=/bin/app --api-key Sd-Pw-3 --token=Sd-Pw-4 --verbose"
    )
    haservice, report = one(text)
    shown = str(haservice) + "\n".join(report)
    for secret in ("Sd-Pw-1", "Sd-Pw-2", "Sd-Pw-3", "Sd-Pw-4"):
        assert secret not in shown
    assert container(haservice)["env"] == [
        secret_ref("DB_PASSWORD"),
        secret_ref("URL"),
        secret_ref("API_KEY"),
        secret_ref("TOKEN"),
        {"name": "KEEP", "value": "1"},
    ]
    assert container(haservice)["command"] == [
        "/bin/app",
        "--api-key",
        "$(API_KEY)",
        "--token=$(TOKEN)",
        "--verbose",
    ]
    warning = next(line for line in report if "create Secret" in line)
    assert warning.startswith(
        "warning: unit app: create Secret app-secrets with keys DB_PASSWORD, URL, API_KEY, TOKEN"
    )
    assert "Environment DB_PASSWORD, Environment URL, ExecStart --api-key" in warning


def test_numeric_users_run_the_pod() -> None:
    haservice, _ = one(unit("ExecStart=/bin/app\nUser=1001\nGroup=1002"))
    security = haservice["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (1001, 1002)


def test_the_name_comes_from_the_option_the_file_or_the_program() -> None:
    named, _ = one(unit("ExecStart=/bin/app"), unit_file="x.service", name="given")
    assert named["metadata"]["name"] == "given"
    from_program, _ = one(unit("ExecStart=/usr/sbin/my_daemon -f"), unit_file=None)
    assert from_program["metadata"]["name"] == "my-daemon"
    template, _ = one(unit("ExecStart=/bin/app"), unit_file="worker@.service")
    assert template["metadata"]["name"] == "worker"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Timer]\nOnCalendar=daily\n", "no [Service] section"),
        ("ExecStart=/bin/app\n", "line 1: ExecStart= comes before any [Section]"),
        ("[Service\nExecStart=/bin/app\n", "line 1: a section header must be [Name]"),
        ("[Service]\nExecStart /bin/app\n", "line 2: expected KEY=VALUE"),
        ("[Service]\nType=simple\n", "[Service]: has no ExecStart="),
        ("[Service]\nExecStart=/bin/app 'unclosed\n", "line 2: ExecStart= has an unclosed quote"),
        ("[Service]\nExecStart=/bin/a\nEnvironment=JUSTNAME\n", "line 3: Environment= takes"),
        ("[Unit]\nStartLimitBurst=many\n[Service]\nExecStart=/bin/a\nRestart=always\n", "line 2:"),
    ],
)
def test_unreadable_units_name_the_line(text: str, message: str) -> None:
    with pytest.raises(Unreadable) as caught:
        import_systemd(text, Options(), "x.service")
    assert str(caught.value).startswith(message)


def test_the_cli_takes_a_name_for_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(unit("ExecStart=/bin/app")))
    assert main(["import", "systemd", "-", "--name", "billing", "-n", "apps"]) == 0
    out = capsys.readouterr().out
    assert "name: billing" in out
    assert "namespace: apps" in out


def test_the_cli_reports_an_unreadable_unit_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("[Service]\nExecStart /bin/app\n"))
    assert main(["import", "systemd", "-"]) == 2
    assert capsys.readouterr().err == "(stdin): line 2: expected KEY=VALUE or [Section]\n"


def test_import_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["import"])
    assert exited.value.code == 2


# --- category: from what the unit runs, never from its name --------------------------------------


def category(text: str, unit_file: str | None = "app.service") -> str:
    haservice, _ = one(text, unit_file)
    return str(haservice["spec"]["category"])


DATABASES = [
    "/usr/sbin/mariadbd $MYSQLD_OPTS",
    "/usr/sbin/mysqld",
    "/usr/bin/mysqld_safe --defaults-file=/etc/mysql/my.cnf",
    "/usr/bin/pg_ctlcluster --skip-systemctl-redirect 15-main start",
    "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
    "/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd",
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/bin/mongod --config /etc/mongod.conf",
]


@pytest.mark.parametrize("exec_start", DATABASES)
def test_a_single_instance_stateful_server_is_active_passive_with_its_data_warned_about(
    exec_start: str,
) -> None:
    haservice, report = one(unit(f"ExecStart={exec_start}\nRestart=on-failure"))
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("ActivePassive", 2)
    assert spec["service"]["ports"], "a server that listens gets a Service"
    assert any(
        line.startswith("note: unit app: ActivePassive, not LoadBalanced") for line in report
    )
    assert any("the standby does not have the active pod's data" in line for line in report)
    assert any("was kept on the host" in line for line in report)
    mounts = [m["mountPath"] for m in container(haservice)["volumeMounts"]]
    assert any(path.startswith("/var/lib/") for path in mounts)


@pytest.mark.parametrize(
    ("exec_start", "peer"),
    [
        ("/usr/sbin/mariadbd --wsrep-on=ON --wsrep_cluster_address=gcomm://a,b,c", 4567),
        ("/usr/bin/redis-server /etc/redis/redis.conf --cluster-enabled yes", 16379),
        ("/usr/bin/mongod --replSet rs0 --bind_ip_all", None),
    ],
)
def test_clustering_on_the_command_line_makes_a_stateful_server_clustered(
    exec_start: str, peer: int | None
) -> None:
    haservice, report = one(unit(f"ExecStart={exec_start}"))
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("Clustered", 3)
    peers = [p["port"] for p in spec["clustered"].get("peerPorts", [])]
    assert peers[:1] == ([peer] if peer else [])
    assert spec["clustered"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert any("it runs clustered" in line for line in report)


def test_clustering_switched_off_stays_active_passive() -> None:
    text = unit("ExecStart=/usr/bin/redis-server --cluster-enabled no")
    assert category(text) == "ActivePassive"


def test_etcd_is_clustered_with_its_peer_port_and_the_members_it_lists() -> None:
    members = ",".join(f"m{i}=http://10.0.0.{i}:2380" for i in range(5))
    haservice, report = one(
        unit(
            "ExecStart=/usr/bin/etcd --listen-client-urls http://0.0.0.0:2379 "
            f"--listen-peer-urls http://0.0.0.0:2380 --initial-cluster {members}"
        )
    )
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("Clustered", 5)
    assert spec["service"]["ports"] == [{"name": "client", "port": 2379, "targetPort": "client"}]
    assert spec["clustered"]["peerPorts"] == [{"name": "peer", "port": 2380}]
    assert any("--initial-cluster" in line for line in report if line.startswith("warning"))


def test_etcd_without_options_is_still_clustered() -> None:
    haservice, _ = one(unit("ExecStart=/usr/bin/etcd $DAEMON_ARGS\nType=notify"))
    assert (haservice["spec"]["category"], haservice["spec"]["replicas"]) == ("Clustered", 3)
    assert haservice["spec"]["clustered"]["peerPorts"] == [{"name": "peer", "port": 2380}]


@pytest.mark.parametrize(
    ("exec_start", "port"),
    [
        ("/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid", 80),
        ("/usr/sbin/nginx -g 'daemon off;'", 80),
        ("/usr/share/memcached/scripts/systemd-memcached-wrapper /etc/memcached.conf", 11211),
        ("/etc/init.d/aodh-api systemd-start", 8042),
        ("/etc/init.d/manila-api systemd-start", 8786),
        ("/usr/bin/python3 -m gunicorn --bind 0.0.0.0:8000 app:wsgi", 8000),
        ("/bin/sh -c 'exec /usr/sbin/nginx -g \"daemon off;\"'", 80),
        ("/usr/bin/env LANG=C /usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg", 80),
        ("/opt/shop/bin/shop --listen :9000", 9000),
    ],
)
def test_a_server_that_listens_is_load_balanced_with_a_service(exec_start: str, port: int) -> None:
    haservice, _ = one(unit(f"ExecStart={exec_start}"))
    assert haservice["spec"]["category"] == "LoadBalanced"
    assert haservice["spec"]["service"]["ports"][0]["port"] == port


def test_haproxy_is_warned_about_its_ports_and_its_role() -> None:
    _, report = one(unit("ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg"))
    assert any(
        line.startswith("warning:") and "bind lines of haproxy.cfg" in line for line in report
    )
    assert any("port 80 (http) assumed" in line for line in report)


def test_an_api_without_a_known_port_is_load_balanced_and_asks_for_its_ports() -> None:
    haservice, report = one(unit("ExecStart=/etc/init.d/frobnicate-api systemd-start"))
    assert haservice["spec"]["category"] == "LoadBalanced"
    assert "service" not in haservice["spec"]
    assert any("names no port: add spec.service" in line for line in report)


@pytest.mark.parametrize(
    "exec_start",
    [
        "/etc/init.d/heat-engine systemd-start",
        "/usr/bin/nova-conductor --config-file /etc/nova/nova.conf",
        "/usr/bin/celery -A proj worker",
        "/usr/bin/sync-worker --db-port 5432 --redis-host cache:6379",
    ],
)
def test_workers_and_ports_they_connect_to_make_queue_workers(exec_start: str) -> None:
    haservice, report = one(unit(f"ExecStart={exec_start}"))
    assert haservice["spec"]["category"] == "QueueWorker"
    assert not any("listens on port" in line for line in report)


@pytest.mark.parametrize(
    ("exec_start", "says"),
    [
        ("/usr/sbin/corosync -f", "cluster stack haoperator replaces"),
        ("/usr/sbin/pacemakerd", "cluster stack haoperator replaces"),
        ("/usr/sbin/keepalived --dont-fork", "haoperator import keepalived"),
        ("/etc/init.d/nova-compute systemd-start", "run it on every node"),
        ("/etc/init.d/neutron-l3-agent systemd-start", "run it on every node"),
        ("/bin/true", "only groups or orders other units"),
    ],
)
def test_plumbing_is_a_queue_worker_with_a_warning_saying_why(exec_start: str, says: str) -> None:
    haservice, report = one(unit(f"ExecStart={exec_start}"))
    assert haservice["spec"]["category"] == "QueueWorker"
    assert any(line.startswith("warning:") and says in line for line in report)


def test_an_unknown_program_without_a_port_says_the_unit_cannot_tell() -> None:
    _, report = one(unit("ExecStart=/opt/acme/bin/acmed --foreground\nType=notify"))
    assert any("Type=notify is common for servers" in line for line in report)
    assert any(
        line.startswith("warning: unit app: the unit alone cannot tell whether acmed serves")
        for line in report
    )


def test_the_category_note_comes_first() -> None:
    _, report = one(unit("ExecStart=/etc/init.d/glance-api systemd-start"))
    assert report[0].startswith("note: unit app: LoadBalanced: glance-api is an OpenStack API")


SAME_UNIT = [
    unit("ExecStart=/usr/sbin/mariadbd\nType=notify")
    + "[Install]\nAlias=mysql.service\nAlias=mysqld.service\n",
    unit("ExecStart=/usr/bin/etcd $DAEMON_ARGS") + "[Install]\nAlias=etcd2.service\n",
    unit("ExecStart=/usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg"),
    unit("ExecStart=/etc/init.d/nova-api systemd-start"),
    unit("ExecStart=/usr/bin/redis-sentinel /etc/redis/sentinel.conf")
    + "[Install]\nAlias=sentinel.service\n",
    unit("ExecStart=/usr/local/bin/run-it") + "[Install]\nAlias=mysql.service\n",
]


@pytest.mark.parametrize("text", SAME_UNIT)
@pytest.mark.parametrize(
    "names",
    [
        ("mariadb.service", "mysql.service", "mysqld.service", None),
        ("nova-api.service", "worker.service", "x@.service", "x@a.service"),
        ("haproxy.service", "redis.service", "heat-engine.service", "nova-api.service"),
    ],
)
def test_two_names_of_one_unit_get_the_same_category(
    text: str, names: tuple[str | None, ...]
) -> None:
    assert len({category(text, name) for name in names}) == 1


def test_an_alias_recognizes_a_program_the_unit_does_not_name() -> None:
    text = unit("ExecStart=/usr/local/bin/run-it") + "[Install]\nAlias=mysql.service\n"
    haservice, report = one(text, "mysql.service")
    assert haservice["spec"]["category"] == "ActivePassive"
    assert any("from its Alias=mysql.service" in line for line in report)
    assert any("mysql is one of them: import the unit once" in line for line in report)


def test_aliases_are_names_for_the_category_and_image_options() -> None:
    text = unit("ExecStart=/usr/sbin/mariadbd") + "[Install]\nAlias=mysql.service\n"
    haservice, _ = one(
        text, "mariadb.service", categories={"mysql": "Clustered"}, images={"mysql": "db:1"}
    )
    assert haservice["spec"]["category"] == "Clustered"
    assert container(haservice)["image"] == "db:1"


def test_the_file_name_does_not_decide() -> None:
    assert category(unit("ExecStart=/usr/bin/celery -A x worker"), "nova-api.service") == (
        "QueueWorker"
    )
    assert category(unit("ExecStart=/usr/sbin/mysqld"), "worker.service") == "ActivePassive"


# --- restart limits that can fire under the kubelet's back-off ----------------------------------


@pytest.mark.parametrize(
    ("burst", "interval"),
    [("1", "1"), ("3", "10"), ("5", "10"), ("5", "25s"), ("7", "2min"), ("10", "1h"), ("20", "5")],
)
def test_the_restart_window_holds_the_restarts_that_reach_the_limit(
    burst: str, interval: str
) -> None:
    text = unit(
        "ExecStart=/bin/app\nRestart=on-failure",
        f"StartLimitBurst={burst}\nStartLimitIntervalSec={interval}",
    )
    haservice, report = one(text)
    restart = haservice["spec"]["recovery"]["restart"]
    assert restart["maxRestarts"] == int(burst)
    # the operator acts on more than maxRestarts restarts within the window
    assert restart["windowSeconds"] >= window_for_restarts(restart["maxRestarts"] + 1)
    assert restart["windowSeconds"] >= whole_seconds(duration(interval))
    widened = restart["windowSeconds"] > whole_seconds(duration(interval))
    assert widened == any("a shorter window could never see them" in line for line in report)


def test_a_burst_no_day_can_hold_is_lowered_with_a_note() -> None:
    text = unit("ExecStart=/bin/app\nRestart=always", "StartLimitBurst=1000")
    haservice, report = one(text)
    restart = haservice["spec"]["recovery"]["restart"]
    assert restart["maxRestarts"] < 1000
    assert window_for_restarts(restart["maxRestarts"] + 1) <= restart["windowSeconds"]
    assert restart["windowSeconds"] <= 86400
    assert any("not StartLimitBurst=1000" in line for line in report)


def test_a_disabled_limit_only_notifies_within_a_window_that_can_see_restarts() -> None:
    text = unit("ExecStart=/bin/app\nRestart=always", "StartLimitIntervalSec=0")
    haservice, report = one(text)
    restart = haservice["spec"]["recovery"]["restart"]
    assert restart["onLimit"] == "Notify"
    assert restart["windowSeconds"] == window_for_restarts(6)
    assert any("disables the limit" in line for line in report)


# --- every directive translated or reported -----------------------------------------------------


_NAMED = re.compile(r"(?<![\w.])([A-Za-z][\w.-]*)=")


TRANSLATED_ONLY_FOR: dict[str, Callable[[str], bool]] = {
    "Service.WorkingDirectory": lambda value: value.removeprefix("-").startswith(("/", "%")),
    "Service.User": lambda value: value.isdigit() and value != "0",
    "Service.Group": lambda value: value.isdigit() and value != "0",
    "Service.Type": lambda value: value in ("", "simple", "exec", "idle"),
    "Service.Restart": lambda value: value == "always",
}
"""Translated directives that carry over only some values: any other must be named in the
report (`WorkingDirectory=~` may not vanish)."""


def unreported(text: str, report: list[str]) -> list[str]:
    """Directives of the unit (`Section.Key`) neither translated nor named (`Key=`) in the
    report."""
    named = {match.group(1) for line in report for match in _NAMED.finditer(line)}
    missing: set[str] = set()
    for section, entries in parse_unit(text).items():
        for entry in entries:
            qualified = f"{section}.{entry.key}"
            carries = TRANSLATED_ONLY_FOR.get(qualified)
            carried = qualified in TRANSLATED and (carries is None or carries(entry.value))
            if not carried and entry.key not in named:
                missing.add(qualified)
    return sorted(missing)


def test_translated_directives_are_section_qualified() -> None:
    assert isinstance(TRANSLATED, frozenset)
    assert {"Service.ExecStart", "Service.Restart", "Unit.StartLimitBurst"} <= TRANSLATED
    assert all(name.split(".")[0] in ("Unit", "Service", "Install") for name in TRANSLATED)


def test_every_directive_is_translated_or_named_in_the_report() -> None:
    text = (
        "[Unit]\nDescription=x\nDocumentation=man:x\nAfter=a.service\nRequires=a.service\n"
        "ConditionPathExists=/etc/x\nStartLimitBurst=3\nStartLimitAction=reboot\n"
        "FailureAction=none\nOnFailure=page.service\n"
        "[Service]\nType=notify\nExecStart=/usr/bin/x\nExecStart=\nExecStart=/usr/bin/x -v\n"
        "ExecStartPre=/bin/true\nExecReload=/bin/kill -HUP $MAINPID\nRestart=always\n"
        "RestartSec=1\nWorkingDirectory=~\nUser=x\nDynamicUser=yes\nEnvironmentFile=-/etc/x\n"
        "RuntimeDirectory=x\nStateDirectory=x\nLogsDirectory=x\nConfigurationDirectory=x\n"
        "AmbientCapabilities=CAP_NET_ADMIN\nProtectSystem=strict\nLimitNOFILE=1024\n"
        "TimeoutStopSec=5\nKillMode=mixed\nStandardOutput=journal\nPIDFile=/run/x.pid\n"
        "LoadCredential=db:/etc/x/db\nSetCredential=token:Sc-Tok-1\nWatchdogSec=30\n"
        "FrobnicateHarder=yes\n"
        "[Install]\nWantedBy=multi-user.target\nAlias=y.service\nAlso=z.service\n"
        "[X-Vendor]\nTweak=1\n"
    )
    haservice, report = one(text, "x.service")
    assert unreported(text, report) == []
    assert "Sc-Tok-1" not in str(haservice) + "\n".join(report)
    assert any(line.startswith("warning:") and "AmbientCapabilities=" in line for line in report)
    assert any("(credentials)" in line for line in report)
    assert any("FrobnicateHarder=: no equivalent" in line for line in report)
    assert any("section [X-Vendor] (Tweak=)" in line for line in report)


@pytest.mark.parametrize(
    ("value", "working_dir", "says"),
    [
        ("/srv/app", "/srv/app", None),
        ("-/srv/app", "/srv/app", None),
        ("%S/app", "/var/lib/app", None),
        ("~", None, "WorkingDirectory=~ (the home directory of User=svc)"),
        ("relative/dir", None, "WorkingDirectory=relative/dir: not an absolute path"),
    ],
)
def test_working_directory_is_translated_or_reported(
    value: str, working_dir: str | None, says: str | None
) -> None:
    haservice, report = one(unit(f"ExecStart=/bin/app\nUser=svc\nWorkingDirectory={value}"))
    assert container(haservice).get("workingDir") == working_dir
    if says:
        assert any(says in line for line in report)


def test_directories_systemd_makes_become_volumes() -> None:
    haservice, report = one(
        unit(
            "ExecStart=/bin/app\nRuntimeDirectory=app lock/app\nStateDirectory=app\n"
            "CacheDirectory=app\nLogsDirectory=app"
        )
    )
    mounts = {m["mountPath"] for m in container(haservice)["volumeMounts"]}
    assert {"/run/app", "/run/lock/app", "/var/lib/app", "/var/cache/app", "/var/log/app"} <= (
        mounts
    )
    assert any("/var/lib/app was kept on the host" in line for line in report)


def test_specifiers_with_a_fixed_meaning_are_expanded_the_others_reported() -> None:
    haservice, report = one(
        unit("ExecStart=/bin/app --pid %t/%N.pid --data %S/%p --host %H --home %h"),
        "app@blue.service",
    )
    assert container(haservice)["command"] == [
        "/bin/app", "--pid", "/run/app@blue.pid", "--data", "/var/lib/app", "--host", "%H",
        "--home", "%h",
    ]  # fmt: skip
    assert any(
        "specifiers %H (the host's name), %h (the user's home) are not expanded" in line
        for line in report
    )


def test_a_template_instance_specifier_asks_for_an_instance() -> None:
    _, report = one(unit("ExecStart=/bin/app %i"), "app@.service")
    assert any("%i (the instance: import an instance's name" in line for line in report)


def test_repeated_exec_start_is_reported() -> None:
    _, report = one(unit("Type=oneshot\nExecStart=/bin/a\nExecStart=/bin/b"))
    assert any("ExecStart= given 2 times" in line for line in report)


def test_a_drop_in_is_refused_with_a_hint() -> None:
    with pytest.raises(Unreadable, match="a drop-in\\? import the unit merged with it"):
        import_systemd("[Service]\nLoadCredential=x:/etc/x\n", Options(), "x.conf")


def test_build_placeholders_are_warned_about() -> None:
    _, report = one(unit("ExecStart=@sbindir@/keepalived --dont-fork\nType=@SERVICE_TYPE@"))
    assert any("build-time placeholders @SERVICE_TYPE@, @sbindir@" in line for line in report)
    assert any("Type=@SERVICE_TYPE@ is not a service type" in line for line in report)


# --- secrets ------------------------------------------------------------------------------------


def test_secret_flags_are_passed_from_a_secret_through_the_environment() -> None:
    text = unit(
        "Environment=REDIS_AUTH=Sf-1 AUTH_TYPE=md5 KEY_PATH=/etc/k\n"
        "ExecStart=/usr/bin/redis-server --requirepass Sf-2 --masterauth=Sf-3 --port 6379"
    )
    haservice, report = one(text, "cache.service")
    shown = str(haservice) + "\n".join(report)
    for secret in ("Sf-1", "Sf-2", "Sf-3"):
        assert secret not in shown
    assert container(haservice)["command"] == [
        "/usr/bin/redis-server", "--requirepass", "$(REQUIREPASS)", "--masterauth=$(MASTERAUTH)",
        "--port", "6379",
    ]  # fmt: skip
    assert container(haservice)["env"] == [
        secret_ref("REDIS_AUTH", "cache-secrets"),
        secret_ref("REQUIREPASS", "cache-secrets"),
        secret_ref("MASTERAUTH", "cache-secrets"),
        {"name": "AUTH_TYPE", "value": "md5"},
        {"name": "KEY_PATH", "value": "/etc/k"},
    ]
    assert any(
        line.startswith(
            "warning: unit cache: create Secret cache-secrets with keys REDIS_AUTH, "
            "REQUIREPASS, MASTERAUTH"
        )
        for line in report
    )


def test_a_value_holding_secret_options_goes_to_the_secret_whole() -> None:
    text = unit('Environment="OPTS=--port 1 --requirepass Sf-4"\nExecStart=/bin/app $OPTS')
    haservice, report = one(text)
    assert "Sf-4" not in str(haservice) + "\n".join(report)
    assert container(haservice)["env"] == [secret_ref("OPTS")]


def test_references_and_paths_are_not_secrets() -> None:
    text = unit(
        "ExecStart=/bin/app --requirepass $REDIS_PASSWORD --tls-key /etc/ssl/private/k.pem "
        "--password-file /etc/app/pw --auth --verbose"
    )
    haservice, report = one(text)
    assert container(haservice)["command"] == [
        "/bin/app", "--requirepass", "$(REDIS_PASSWORD)", "--tls-key", "/etc/ssl/private/k.pem",
        "--password-file", "/etc/app/pw", "--auth", "--verbose",
    ]  # fmt: skip
    assert "env" not in container(haservice)
    assert not any("create Secret" in line for line in report)


def test_secrets_in_a_shell_script_are_read_by_the_shell_from_the_environment() -> None:
    text = unit(
        "ExecStart=/bin/sh -c 'exec /usr/bin/redis-server --requirepass Sf-5 "
        "--masterauth=Sf-6 --port 6379'"
    )
    haservice, report = one(text)
    assert "Sf-5" not in str(haservice) + "\n".join(report)
    assert container(haservice)["command"][2] == (
        'exec /usr/bin/redis-server --requirepass "${REQUIREPASS}" '
        '--masterauth="${MASTERAUTH}" --port 6379'
    )
    assert [e["name"] for e in container(haservice)["env"]] == ["REQUIREPASS", "MASTERAUTH"]


def test_a_secret_in_quotes_inside_a_script_drops_the_command() -> None:
    text = unit("ExecStart=/bin/sh -c 'exec app --password \"Sf 7\"'")
    haservice, report = one(text)
    assert "Sf" not in str(container(haservice))
    assert "command" not in container(haservice)
    assert any("could not be separated" in line for line in report)


def test_credentials_in_a_url_argument_come_from_the_secret() -> None:
    text = unit("ExecStart=/bin/app --db mysql://u:Sf-8@db/x amqp://g:Sf-9@mq//")
    haservice, report = one(text)
    assert "Sf-8" not in str(haservice) + "\n".join(report)
    assert "Sf-9" not in str(haservice) + "\n".join(report)
    assert container(haservice)["command"] == ["/bin/app", "--db", "$(DB)", "$(ARGUMENT_3)"]


def test_a_secret_variable_never_shadows_a_plain_one() -> None:
    text = unit("Environment=TOKEN=plain-file-name.txt.not\nExecStart=/bin/app --token Sf-10")
    haservice, _ = one(text)
    names = [e["name"] for e in container(haservice)["env"]]
    assert len(names) == len(set(names))


def test_a_stateful_server_made_clustered_by_option_gets_members_and_peer_ports() -> None:
    text = unit("ExecStart=/usr/sbin/mariadbd")
    haservice, report = one(text, "galera.service", categories={"galera": "Clustered"})
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("Clustered", 3)
    assert [p["port"] for p in spec["clustered"]["peerPorts"]] == [4567, 4568, 4444]
    assert spec["clustered"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert any("peer ports 4567, 4568, 4444 then added" in line for line in report)


GOLDEN_SECRETS = {
    "redis-auth": ["Rd-Auth-7301", "Rd-Master-7302", "Rd-Pass-7303", "Rd-Master-7304"],
    "inventory-api": ["Inv-Db-Pw-6620", "Inv-Url-Pw-6621", "Inv-Admin-Tok-6622"],
}


@pytest.mark.parametrize("case", sorted(GOLDEN_SECRETS))
def test_the_golden_units_secrets_are_in_no_golden_file(case: str) -> None:
    data = REPO / "tests" / "data" / "import" / "systemd"
    text = (data / f"{case}.service").read_text()
    haservices, report = import_systemd(text, Options(), f"{case}.service")
    shown = [
        (data / f"{case}.out.yaml").read_text(),
        (data / f"{case}.report.txt").read_text(),
        str(haservices),
        "\n".join(report.lines()),
    ]
    for secret in GOLDEN_SECRETS[case]:
        assert secret in text, f"{secret} is not in {case}.service: the test would prove nothing"
        assert not any(secret in part for part in shown)
