"""The systemd importer's rules on small units (the realistic ones are golden cases in
tests/data/import/systemd)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from haoperator.cli import main
from haoperator.importers import Options, Unreadable, import_systemd
from haoperator.importers.systemd_syntax import parse_unit


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
        "StartLimitIntervalSec=2min\nStartLimitBurst=7",
    )
    haservice, _ = one(text)
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 7,
        "windowSeconds": 120,
        "onLimit": "Migrate",
    }


def test_the_old_start_limit_spelling_in_service_is_read() -> None:
    text = unit("ExecStart=/bin/app\nRestart=always\nStartLimitInterval=30\nStartLimitBurst=3")
    haservice, report = one(text)
    assert haservice["spec"]["recovery"]["restart"]["windowSeconds"] == 30
    assert haservice["spec"]["recovery"]["restart"]["maxRestarts"] == 3
    assert any("old spelling" in line for line in report)


def test_systemd_defaults_apply_when_only_restart_is_set() -> None:
    haservice, _ = one(unit("ExecStart=/bin/app\nRestart=always"))
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 5,
        "windowSeconds": 10,
        "onLimit": "Migrate",
    }


def test_restart_no_gives_no_restart_limit() -> None:
    haservice, report = one(unit("ExecStart=/bin/app"))
    assert "recovery" not in haservice["spec"]
    assert any("Restart=no" in line for line in report)


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


def test_secrets_in_environment_and_arguments_are_dropped_by_name() -> None:
    text = unit(
        'Environment="DB_PASSWORD=Sd-Pw-1" "URL=mysql://u:Sd-Pw-2@db/x" KEEP=1\n'
        "ExecStart=/bin/app --api-key Sd-Pw-3 --token=Sd-Pw-4 --verbose\n"
        "ExecStart=\nExecStart=/bin/app --api-key Sd-Pw-3 --token=Sd-Pw-4 --verbose"
    )
    haservice, report = one(text)
    shown = str(haservice) + "\n".join(report)
    for secret in ("Sd-Pw-1", "Sd-Pw-2", "Sd-Pw-3", "Sd-Pw-4"):
        assert secret not in shown
    assert container(haservice)["env"] == [{"name": "KEEP", "value": "1"}]
    assert container(haservice)["command"] == ["/bin/app", "--verbose"]
    assert any("Environment DB_PASSWORD, URL not copied" in line for line in report)


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
