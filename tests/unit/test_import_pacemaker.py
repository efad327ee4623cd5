"""The pacemaker importer's rules, one at a time, on small CIBs (the realistic ones are golden
cases in tests/data/import/pacemaker)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from haoperator.cli import main
from haoperator.importers import Options, Report, Unreadable, import_pacemaker, parse_image_map
from haoperator.importers.common import dns_label, duration, is_secret_name

NODES = '<nodes><node id="1" uname="a"/><node id="2" uname="b"/><node id="3" uname="c"/></nodes>'


def cib(resources: str, constraints: str = "", extra: str = "") -> str:
    return (
        f"<cib><configuration><crm_config/>{NODES}<resources>{resources}</resources>"
        f"<constraints>{constraints}</constraints>{extra}</configuration></cib>"
    )


def primitive(id_: str, agent: str = "systemd::app", params: str = "", ops: str = "") -> str:
    cls, provider, type_ = agent.split(":")
    provider_attr = f' provider="{provider}"' if provider else ""
    attrs = f'<instance_attributes id="{id_}-ia">{params}</instance_attributes>' if params else ""
    operations = f"<operations>{ops}</operations>" if ops else ""
    return (
        f'<primitive id="{id_}" class="{cls}"{provider_attr} type="{type_}">{attrs}{operations}'
        "</primitive>"
    )


def nvpair(name: str, value: str) -> str:
    return f'<nvpair id="nv-{name}-{value}" name="{name}" value="{value}"/>'


def meta(*pairs: tuple[str, str]) -> str:
    nvpairs = "".join(nvpair(*pair) for pair in pairs)
    return f'<meta_attributes id="m-{pairs[0][0]}">{nvpairs}</meta_attributes>'


def defaults(*pairs: tuple[str, str]) -> str:
    return f"<rsc_defaults>{meta(*pairs)}</rsc_defaults>"


def clone(id_: str, inner: str, *pairs: tuple[str, str], tag: str = "clone") -> str:
    return f'<{tag} id="{id_}">{meta(*pairs) if pairs else ""}{inner}</{tag}>'


VIP = primitive("vip", "ocf:heartbeat:IPaddr2", nvpair("ip", "10.0.0.5"))


def colocated(rsc: str, with_rsc: str, score: str = "INFINITY") -> str:
    return f'<rsc_colocation id="col-{rsc}" rsc="{rsc}" with-rsc="{with_rsc}" score="{score}"/>'


def one(text: str, **options: Any) -> tuple[dict[str, Any], list[str]]:
    haservices, report = import_pacemaker(text, Options(**options))
    assert len(haservices) == 1, [h["metadata"]["name"] for h in haservices]
    return haservices[0], report.lines()


def test_a_single_primitive_runs_active_passive_with_two_replicas() -> None:
    haservice, _ = one(cib(primitive("app")))
    assert haservice["spec"]["category"] == "ActivePassive"
    assert haservice["spec"]["replicas"] == 2


def test_a_vip_colocated_with_a_primitive_becomes_its_service() -> None:
    resources = VIP + primitive("db", "ocf:heartbeat:mysql")
    haservice, report = one(cib(resources, colocated("vip", "db")))
    assert haservice["spec"]["service"]["ports"] == [
        {"name": "mysql", "port": 3306, "targetPort": "mysql"}
    ]
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == "10.0.0.5"
    assert not any("col-vip" in line for line in report)


def test_a_vip_colocated_with_nothing_imported_is_a_warning() -> None:
    _, report = one(cib(VIP + primitive("app")))
    assert any(line.startswith("warning: primitive vip: address 10.0.0.5") for line in report)


def test_a_promotable_clone_with_every_copy_promoted_is_clustered_with_majority() -> None:
    inner = primitive("db", "ocf:heartbeat:mysql")
    resources = clone("db-clone", inner, ("promotable", "true"), ("promoted-max", "3"))
    haservice, _ = one(cib(resources))
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"], spec["clustered"]["quorum"]) == (
        "Clustered",
        3,
        "Majority",
    )


def test_an_old_master_with_one_promoted_copy_is_active_passive() -> None:
    inner = primitive("pg", "ocf:heartbeat:pgsql")
    resources = clone("ms-pg", inner, ("master-max", "1"), ("clone-max", "2"), tag="master")
    haservice, _ = one(cib(resources))
    assert (haservice["spec"]["category"], haservice["spec"]["replicas"]) == ("ActivePassive", 2)


def test_a_clustered_agent_is_clustered_even_in_a_plain_clone() -> None:
    resources = clone("rabbit-clone", primitive("rabbit", "ocf:heartbeat:rabbitmq-cluster"))
    haservice, _ = one(cib(resources))
    assert haservice["spec"]["category"] == "Clustered"
    assert [p["name"] for p in haservice["spec"]["clustered"]["peerPorts"]] == ["epmd", "dist"]


@pytest.mark.parametrize(
    ("resources", "constraints", "category"),
    [
        (clone("w-clone", primitive("worker")), "", "QueueWorker"),
        (clone("web-clone", primitive("web", "systemd::httpd")), "", "LoadBalanced"),
        (VIP + clone("w-clone", primitive("worker")), colocated("vip", "w-clone"), "LoadBalanced"),
        (
            clone("h-clone", primitive("haproxy", "systemd::haproxy"))
            + clone("w-clone", primitive("worker")),
            '<rsc_order id="o" first="h-clone" then="w-clone"/>',
            "LoadBalanced",
        ),
    ],
    ids=["no-port", "known-port", "behind-vip", "tied-to-haproxy"],
)
def test_a_stateless_clone_is_load_balanced_only_when_clients_reach_it(
    resources: str, constraints: str, category: str
) -> None:
    haservices, _ = import_pacemaker(cib(resources, constraints), Options())
    worker = next(h for h in haservices if h["metadata"]["name"] in ("worker", "web"))
    assert worker["spec"]["category"] == category
    assert worker["spec"]["replicas"] == 3


def test_the_category_option_overrides_the_guess_and_drops_the_service_it_cannot_have() -> None:
    resources = clone("web-clone", primitive("web", "systemd::httpd"))
    haservice, report = one(cib(resources), categories={"web-clone": "QueueWorker"})
    assert haservice["spec"]["category"] == "QueueWorker"
    assert "service" not in haservice["spec"]
    assert any("QueueWorker takes no Service: port 80" in line for line in report)


def test_a_category_option_that_names_nothing_is_refused() -> None:
    with pytest.raises(Unreadable, match="--category nothing: names no imported service"):
        import_pacemaker(cib(primitive("app")), Options(categories={"nothing": "Clustered"}))


def test_migration_threshold_and_failure_timeout_become_the_restart_limit() -> None:
    extra = defaults(("migration-threshold", "3"), ("failure-timeout", "2min"))
    haservice, _ = one(cib(primitive("app"), extra=extra))
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 2,
        "windowSeconds": 120,
        "onLimit": "Migrate",
    }


def test_stickiness_keeps_the_active_pod() -> None:
    haservice, _ = one(cib(primitive("app"), extra=defaults(("resource-stickiness", "INFINITY"))))
    assert haservice["spec"]["activePassive"] == {"preempt": False}


def test_the_monitor_op_sets_the_probes_on_the_first_port() -> None:
    ops = (
        '<op id="m" name="monitor" interval="10s" timeout="20s"/>'
        '<op id="s" name="start" interval="0" timeout="2min"/>'
    )
    haservice, _ = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops)))
    container = haservice["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"] == {
        "tcpSocket": {"port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 20,
        "failureThreshold": 1,  # pacemaker acts on the first failed monitor
    }
    assert container["livenessProbe"] == container["readinessProbe"]
    assert container["startupProbe"]["failureThreshold"] == 12


def test_a_failed_monitor_moves_the_active_role_when_pacemaker_would_move_the_resource() -> None:
    ops = '<op id="m" name="monitor" interval="10s" timeout="20s"/>'
    extra = defaults(("migration-threshold", "3"))
    haservice, report = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops), extra=extra))
    assert haservice["spec"]["category"] == "ActivePassive"
    assert haservice["spec"]["activePassive"]["unhealthySeconds"] == 20
    assert any("moves after 3 failed checks (unhealthySeconds 20)" in line for line in report)
    alone, report = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops)))
    assert "unhealthySeconds" not in alone["spec"].get("activePassive", {})
    assert any(
        "where pacemaker (no migration-threshold) restarted it in place" in line for line in report
    )


def test_without_a_port_there_is_no_probe_but_a_note() -> None:
    ops = '<op id="m" name="monitor" interval="30s"/>'
    haservice, report = one(cib(primitive("worker", ops=ops)))
    container = haservice["spec"]["template"]["spec"]["containers"][0]
    assert "readinessProbe" not in container
    assert any("every 30s has no port to check: no probe" in line for line in report)


def test_stonith_enabled_suggests_force_delete_without_setting_it() -> None:
    fence = primitive("fence-a", "stonith::fence_ipmilan", nvpair("password", "Hunter2-xyz"))
    haservice, report = one(cib(fence + primitive("app")))
    assert haservice["spec"].get("recovery", {}).get("nodeLoss") is None
    assert any("ForceDelete) is the closest equivalent" in line for line in report)
    assert not any("Hunter2-xyz" in line for line in report)


def test_every_unexpressed_constraint_is_reported_by_id() -> None:
    resources = primitive("a") + primitive("b")
    constraints = (
        '<rsc_order id="ord-1" first="a" then="b"/>'
        + colocated("a", "b")
        + '<rsc_location id="loc-1" rsc="a" node="a" score="100"/>'
        + '<rsc_ticket id="tk-1" rsc="a" ticket="t"/>'
    )
    _, report = import_pacemaker(cib(resources, constraints), Options())
    for constraint in ("ord-1", "col-a", "loc-1", "tk-1"):
        assert any(
            line.startswith(f"unsupported: constraint {constraint}:") for line in report.lines()
        )


def test_names_are_sanitised_deduplicated_and_reported() -> None:
    long_id = "p_" + "very_long_resource_name_" * 3
    resources = primitive("p_app") + primitive("p-app") + primitive(long_id)
    haservices, report = import_pacemaker(cib(resources), Options())
    names = [h["metadata"]["name"] for h in haservices]
    assert names[:2] == ["p-app", "p-app-2"]
    assert len(names[2]) <= 52
    assert any(line.startswith("note: primitive p_app: named p-app: ") for line in report.lines())


def test_the_image_map_sets_images_and_warns_about_unused_entries() -> None:
    images = {"app": "registry.example/app:1.0", "ghost": "registry.example/ghost:1.0"}
    haservice, report = one(cib(primitive("app")), images=images)
    assert haservice["spec"]["template"]["spec"]["containers"][0]["image"] == images["app"]
    assert "warning: --image-map ghost: matches no imported container" in report


def test_without_an_image_the_placeholder_is_clear_and_warned_about() -> None:
    haservice, report = one(cib(primitive("app")))
    image = haservice["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "replace-me.invalid/app:latest"
    assert any(line.startswith("warning: primitive app: no image known") for line in report)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("<cib><configuration><resources>", "line 1, column 32: the XML ends"),
        ("<crm_mon/>", "line 1: <crm_mon>: not a CIB"),
        ("<cib><configuration/></cib>", "line 1: <cib>: has no <configuration><resources>"),
        (
            cib(primitive("x", "ocf::Dummy", ops='<op id="m" name="monitor" interval="often"/>')),
            "line 1: <op id=\"m\">: interval 'often' is not a duration",
        ),
        (cib('<resource id="x"/>'), 'line 1: <resource id="x">: not a resource'),
        (
            cib("<clone id='c'/>"),
            'line 1: <clone id="c">: must hold exactly one primitive or group',
        ),
    ],
    ids=[
        "empty",
        "cut-off",
        "not-a-cib",
        "no-resources",
        "bad-interval",
        "unknown-element",
        "empty-clone",
    ],
)
def test_unreadable_cibs_are_refused_with_the_line_and_element(text: str, message: str) -> None:
    with pytest.raises(Unreadable) as caught:
        import_pacemaker(text, Options())
    assert str(caught.value).startswith(message)


def test_a_cib_of_only_fencing_and_addresses_has_nothing_to_import() -> None:
    fence = primitive("fence-a", "stonith::fence_ipmilan")
    with pytest.raises(Unreadable, match="holds no service to import"):
        import_pacemaker(cib(fence + VIP), Options())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10), ("10s", 10), ("1min", 60), ("500ms", 0.5), ("PT1M30S", 90), ("1h 5m", 3900)],
)
def test_durations_read_pacemaker_and_systemd_spellings(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["often", "10 parsecs", "P", ""])
def test_durations_refuse_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration(text)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True), ("check_passwd", True), ("auth_pass", True), ("MYSQL_PASSWORD", True),
        ("--admin-token", True), ("api_key", True), ("--password-file", False), ("passive", False),
        ("keepalive", False), ("pgport", False), ("cluster_host_map", False),
    ],
)  # fmt: skip
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_dns_labels_start_with_a_letter_and_fit() -> None:
    assert dns_label("ip-192.168.24.10") == "ip-192-168-24-10"
    assert dns_label("1st_service") == "svc-1st-service"
    assert dns_label("Galera_Bundle") == "galera-bundle"


def test_the_cli_reads_stdin_and_reports_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(cib(primitive("app"))))
    assert main(["import", "pacemaker", "-"]) == 0
    captured = capsys.readouterr()
    assert "name: app" in captured.out
    assert all(
        line.split(": ")[0] in ("warning", "note", "unsupported")
        for line in captured.err.splitlines()
    )


def test_the_cli_refuses_a_bad_image_map_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cib.xml"
    source.write_text(cib(primitive("app")))
    images = tmp_path / "images.yaml"
    images.write_text("- just\n- a list\n")
    assert main(["import", "pacemaker", str(source), "--image-map", str(images)]) == 2
    assert "must be a mapping of id to image" in capsys.readouterr().err


def test_the_cli_refuses_a_malformed_category_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cib.xml"
    source.write_text(cib(primitive("app")))
    assert main(["import", "pacemaker", str(source), "--category", "app=Sometimes"]) == 2
    assert "--category app=Sometimes: expected NAME=CATEGORY" in capsys.readouterr().err


def test_image_maps_read_json_too() -> None:
    assert parse_image_map('{"app": "registry.example/app:1.0"}', "map.json") == {
        "app": "registry.example/app:1.0"
    }


def test_the_report_keeps_one_line_per_item() -> None:
    report = Report()
    report.note("x", "said once")
    report.note("x", "said once")
    assert report.lines() == ["note: x: said once"]


def test_a_bundle_with_port_mappings_serves_them_and_reports_ranges() -> None:
    bundle = (
        '<bundle id="httpd-bundle"><podman image="registry.example/httpd:2.4" replicas="3"/>'
        '<network ip-range-start="192.168.122.131"><port-mapping id="httpd-port" port="80" '
        'internal-port="8080"/><port-mapping id="extra" range="9000-9010"/></network>'
        '<storage><storage-mapping id="httpd-root" source-dir="/srv/html" target-dir="/var/www" '
        'options="rw"/></storage></bundle>'
    )
    haservice, report = one(cib(bundle))
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("LoadBalanced", 3)
    assert spec["service"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/httpd:2.4"
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert {"name": "httpd-root", "mountPath": "/var/www"} in container["volumeMounts"]
    assert any("port-mapping extra (a range" in line for line in report)
    assert any("ip-range-start" in line for line in report)
