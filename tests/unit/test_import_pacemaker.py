"""The pacemaker importer's rules, one at a time, on small CIBs (the realistic ones are golden
cases in tests/data/import/pacemaker)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator.api.base import MAX_WINDOW_SECONDS
from haoperator.cli import main
from haoperator.importers import Options, Report, Unreadable, import_pacemaker, parse_image_map
from haoperator.importers.backoff import window_for_restarts
from haoperator.importers.cib import Resource
from haoperator.importers.common import dns_label, duration, is_secret_name
from haoperator.importers.pacemaker import TRANSLATED_META, TRANSLATED_OP_ATTRIBUTES
from haoperator.importers.pacemaker_rules import meta_verdict, promotion
from haoperator.importers.workload import ContainerPlan, Port, declare_once

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


@pytest.mark.parametrize(
    ("agent", "what"),
    [
        ("ocf:openstack:NovaCompute", "not an application"),
        ("ocf:openstack:NovaEvacuate", "not an application"),
        ("lsb::tgtd", "use a PersistentVolumeClaim"),
        ("lsb::iscsi-target", "use a PersistentVolumeClaim"),
        ("ocf:vpools:iscsi_target", "use a PersistentVolumeClaim"),
        ("lsb::nfs-common", "use a PersistentVolumeClaim"),
    ],
)
def test_compute_agents_and_storage_daemons_are_reported_not_imported(
    agent: str, what: str
) -> None:
    text = cib(
        primitive("web", "ocf:heartbeat:apache") + clone("infra-clone", primitive("infra", agent))
    )
    haservice, lines = one(text)
    assert haservice["metadata"]["name"] == "web"
    mine = [
        line
        for line in lines
        if line.startswith("unsupported: clone infra-clone: primitive infra:")
    ]
    assert len(mine) == 1, lines
    assert what in mine[0]
    assert f"({agent.replace('::', ':')})" in mine[0]


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
    [
        ("10", 10), ("10s", 10), ("1min", 60), ("500ms", 0.5), ("PT1M30S", 90), ("1h 5m", 3900),
        ("P10S", 10), ("P40S", 40), ("p40s", 40), ("PT1M", 60), ("P1DT2H", 93600),
        ("P1D", 86400), ("P1W", 604800), ("P1M", 2592000), ("P1H30S", 3630), ("PT0.5S", 0.5),
    ],
)  # fmt: skip
def test_durations_read_pacemaker_and_systemd_spellings(text: str, seconds: float) -> None:
    """ISO 8601 with or without the T, as pacemaker reads it: `M` is months before a T."""
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["often", "10 parsecs", "P", "", "PT", "P10", "PTT1S", "P1X"])
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


# -- durations pacemaker accepts, values it tolerates ----------------------------------------------


def test_iso_intervals_without_the_t_are_imported_like_pacemaker_reads_them() -> None:
    ops = '<op id="m" name="monitor" interval="P10S" timeout="P40S"/>'
    haservice, _ = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops)))
    probe = haservice["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert (probe["periodSeconds"], probe["timeoutSeconds"]) == (10, 40)


def test_a_duration_pacemaker_cannot_read_either_is_warned_about_not_refused() -> None:
    ops = (
        '<op id="m" name="monitor" interval="10s" timeout="bad"/>'
        '<op id="d" name="monitor" interval="often"/>'
    )
    extra = defaults(("failure-timeout", "soon"), ("migration-threshold", "3"))
    haservice, report = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops), extra=extra))
    probe = haservice["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["timeoutSeconds"] == 20  # the default, as pacemaker uses
    assert any("op m of web: timeout 'bad' is not a duration" in line for line in report)
    assert any("op d of web: interval 'often' is not a duration" in line for line in report)
    assert any("failure-timeout 'soon' of web is not a duration" in line for line in report)


# -- promotable clones and bundles --------------------------------------------------------------

PROMOTABLE_BUNDLE = (
    '<bundle id="base-bundle">{meta}<podman image="registry.example/base:1" replicas="3"{runtime}/>'
    '<network><port-mapping id="base-port" port="5432"/></network>'
    '<primitive id="base" class="ocf" provider="pacemaker" type="Stateful"/></bundle>'
)


def bundle(meta_pairs: tuple[tuple[str, str], ...] = (), runtime: str = "") -> str:
    return PROMOTABLE_BUNDLE.format(meta=meta(*meta_pairs) if meta_pairs else "", runtime=runtime)


def role_colocated(rsc: str, with_rsc: str, role: str) -> str:
    return (
        f'<rsc_colocation id="col-{rsc}" rsc="{rsc}" with-rsc="{with_rsc}" score="INFINITY" '
        f'with-rsc-role="{role}"/>'
    )


def test_a_bundle_promotable_by_its_meta_attribute_is_active_passive_with_its_address() -> None:
    resources = bundle((("promotable", "true"),)) + VIP
    haservice, report = one(cib(resources, role_colocated("vip", "base-bundle", "Promoted")))
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("ActivePassive", 3)
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == "10.0.0.5"
    assert any("promotable, 1 of 3 copies promoted" in line for line in report)
    assert any(
        line.startswith("warning: bundle base-bundle: promotable: pacemaker ran the agent's")
        for line in report
    )
    assert any("address 10.0.0.5 followed the promoted copy" in line for line in report)


@pytest.mark.parametrize(
    ("meta_pairs", "runtime", "category"),
    [
        ((("promotable", "true"), ("promoted-max", "3")), "", "Clustered"),
        ((), ' promoted-max="3"', "Clustered"),
        ((), ' promoted-max="1"', "ActivePassive"),
        ((), ' masters="1"', "ActivePassive"),
        ((), ' promoted-max="0"', "LoadBalanced"),
        ((("promotable", "false"),), "", "LoadBalanced"),
    ],
    ids=["meta-all", "runtime-all", "runtime-one", "legacy-masters", "runtime-zero", "not"],
)
def test_a_bundle_is_promotable_by_meta_or_by_its_runtime(
    meta_pairs: tuple[tuple[str, str], ...], runtime: str, category: str
) -> None:
    haservice, _ = one(cib(bundle(meta_pairs, runtime)))
    assert haservice["spec"]["category"] == category


def test_partly_promoted_copies_say_what_promotable_meant_and_warn_about_the_address() -> None:
    resources = bundle((), ' promoted-max="2"') + VIP
    haservice, report = one(cib(resources, role_colocated("vip", "base-bundle", "Master")))
    assert haservice["spec"]["category"] == "Clustered"
    assert any("promotable, 2 of 3 copies promoted has no exact equivalent" in ln for ln in report)
    assert any("pacemaker ran the agent's promote on 2 copies" in line for line in report)
    assert any("address 10.0.0.5 followed only the 2 promoted copies" in ln for ln in report)


def test_an_address_on_the_unpromoted_copies_is_warned_about() -> None:
    inner = primitive("redis", "ocf:heartbeat:redis")
    resources = clone("redis-clone", inner, ("promotable", "true"), ("clone-max", "3")) + VIP
    _, report = one(cib(resources, role_colocated("vip", "redis-clone", "Unpromoted")))
    assert any(
        "address 10.0.0.5 followed the unpromoted copies" in line
        and "haoperator.dev/role: standby" in line
        for line in report
    )


def test_a_colocation_between_roles_names_the_roles() -> None:
    resources = bundle((("promotable", "true"),)) + clone(
        "other", primitive("o", "ocf:heartbeat:redis"), ("promotable", "true")
    )
    constraint = (
        '<rsc_colocation id="roles" rsc="other" rsc-role="Promoted" with-rsc="base-bundle" '
        'with-rsc-role="Promoted" score="INFINITY"/>'
    )
    _, report = import_pacemaker(cib(resources, constraint), Options())
    assert any(
        "colocation other (Promoted) with base-bundle (Promoted)" in line for line in report.lines()
    )


# -- a group's members ---------------------------------------------------------------------------


def member(id_: str, *pairs: tuple[str, str]) -> str:
    return (
        f'<primitive id="{id_}" class="systemd" type="{id_}">'
        f"{meta(*pairs) if pairs else ''}</primitive>"
    )


def test_the_strictest_member_limit_applies_to_the_group_and_the_difference_is_named() -> None:
    group = (
        '<group id="g">'
        + member("first", ("migration-threshold", "5"), ("failure-timeout", "10min"))
        + member("second", ("migration-threshold", "2"), ("failure-timeout", "20min"))
        + "</group>"
    )
    haservice, report = one(cib(group))
    assert haservice["spec"]["recovery"]["restart"] == {
        "maxRestarts": 1,
        "windowSeconds": 1200,
        "onLimit": "Migrate",
    }
    assert any(
        "the members' limits differ (first: migration-threshold 5, failure-timeout 600s; "
        "second: migration-threshold 2, failure-timeout 1200s): the strictest, second's" in line
        for line in report
    )


def test_a_later_member_alone_can_set_the_limit_and_the_stickiness() -> None:
    group = (
        '<group id="g">'
        + member("first")
        + member("second", ("migration-threshold", "3"), ("resource-stickiness", "100"))
        + "</group>"
    )
    haservice, report = one(cib(group))
    assert haservice["spec"]["recovery"]["restart"]["maxRestarts"] == 2
    assert haservice["spec"]["activePassive"]["preempt"] is False
    assert any("resource-stickiness second 100: a group holds on by the sum" in ln for ln in report)


def test_a_later_member_stopped_or_with_other_meta_is_named() -> None:
    group = (
        '<group id="g">'
        + member("first")
        + member("second", ("target-role", "Stopped"), ("allow-migrate", "true"), ("x-y", "1"))
        + "</group>"
    )
    _, report = one(cib(group))
    assert any(
        line.startswith("warning: group g: primitive second was stopped (target-role Stopped)")
        for line in report
    )
    assert any("meta allow-migrate=true of primitive second" in line for line in report)
    assert "unsupported: group g: meta attributes x-y of primitive second: no equivalent" in report


def test_a_group_of_several_services_says_their_order_is_lost() -> None:
    _, report = one(cib('<group id="g">' + member("a") + member("b") + "</group>"))
    assert any("members a, b started one after another" in line for line in report)


# -- infrastructure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "what"),
    [
        ("ocf:heartbeat:Xen", "a virtual machine"),
        ("ocf:heartbeat:VirtualDomain", "a virtual machine"),
        ("ocf:lvm2:clvmd", "cluster lock manager"),
        ("lsb::clvmd", "cluster lock manager"),
        ("ocf:ocfs2:o2cb", "cluster lock manager"),
        ("systemd::dlm", "cluster lock manager"),
        ("ocf:pacemaker:controld", "cluster lock manager"),
        ("ocf:lvm2:cmirrord", "cluster lock manager"),
        ("ocf:heartbeat:azure-lb", "load balancer's health check"),
        ("ocf:heartbeat:MailTo", "sends mail"),
        ("ocf:pacemaker:ClusterMon", "sends mail"),
        ("ocf:heartbeat:symlink", "changes files on the node"),
        ("ocf:pacemaker:diskd", "node's health"),
        ("ocf:pacemaker:ping", "node's health"),
        ("ocf:heartbeat:portblock", "node's network"),
        ("ocf:pacemaker:remote", "remote node"),
    ],
)
def test_infrastructure_is_named_with_its_replacement_not_imported(agent: str, what: str) -> None:
    haservice, report = one(cib(primitive("infra", agent) + primitive("app")))
    assert haservice["metadata"]["name"] == "app"
    line = next(line for line in report if line.startswith("unsupported: primitive infra:"))
    assert what in line
    assert "not an application: not imported; " in line


def test_a_cib_of_only_infrastructure_is_refused_saying_what_it_holds() -> None:
    resources = primitive("vm", "ocf:heartbeat:Xen") + primitive("mail", "ocf:heartbeat:MailTo")
    with pytest.raises(Unreadable, match=r"only notifiers \(1\), virtual machines \(1\)"):
        import_pacemaker(cib(resources), Options())


@pytest.mark.parametrize(
    ("agent", "parameter"),
    [
        ("ocf:heartbeat:gcp-vpc-move-vip", "alias_ip"),
        ("ocf:heartbeat:aws-vpc-move-ip", "ip"),
        ("ocf:heartbeat:awseip", "elastic_ip"),
    ],
)
def test_a_cloud_address_mover_becomes_the_service_of_what_it_follows(
    agent: str, parameter: str
) -> None:
    mover = primitive("vip", agent, nvpair(parameter, "10.0.0.9"))
    haservice, report = one(
        cib(mover + primitive("db", "ocf:heartbeat:mysql"), colocated("vip", "db"))
    )
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == "10.0.0.9"
    assert any("moved a cloud address to the active node" in line for line in report)


# -- restart limits under the kubelet's back-off ---------------------------------------------------


def test_a_short_failure_timeout_is_widened_to_hold_the_restarts() -> None:
    extra = defaults(("migration-threshold", "5"), ("failure-timeout", "60s"))
    haservice, report = one(cib(primitive("app"), extra=extra))
    restart = haservice["spec"]["recovery"]["restart"]
    assert restart == {
        "maxRestarts": 4,
        "windowSeconds": window_for_restarts(5),
        "onLimit": "Migrate",
    }
    assert any(
        f"failure-timeout 60s widened to {window_for_restarts(5)}s: the kubelet waits 10 s" in line
        for line in report
    )


@pytest.mark.parametrize("threshold", [1, 2, 3, 5, 8, 13, 40])
@pytest.mark.parametrize("timeout", ["", "10s", "5min", "1h"])
def test_every_migrate_budget_can_fire_under_the_back_off(threshold: int, timeout: str) -> None:
    pairs = [("migration-threshold", str(threshold))] + (
        [("failure-timeout", timeout)] if timeout else []
    )
    haservice, _ = one(cib(primitive("app"), extra=defaults(*pairs)))
    restart = haservice["spec"]["recovery"]["restart"]
    # the operator acts on more than maxRestarts restarts within the window
    assert restart["windowSeconds"] >= window_for_restarts(restart["maxRestarts"] + 1)
    assert restart["maxRestarts"] == threshold - 1


@pytest.mark.parametrize(
    "pairs",
    [
        (),
        (("migration-threshold", "0"),),
        (("failure-timeout", "60s"),),
        (("migration-threshold", "INFINITY"),),
    ],
    ids=["default", "zero", "timeout-only", "infinity"],
)
def test_without_a_threshold_nothing_migrates_the_operator_only_notifies(
    pairs: tuple[tuple[str, str], ...],
) -> None:
    extra = defaults(*pairs) if pairs else ""
    haservice, report = one(cib(primitive("app"), extra=extra))
    restart = haservice["spec"]["recovery"]["restart"]
    assert restart["onLimit"] == "Notify"
    assert restart["windowSeconds"] >= window_for_restarts(restart["maxRestarts"] + 1)
    assert any("never moved it for failing" in line and "onLimit Notify" in line for line in report)


def test_failures_that_never_expire_keep_the_longest_window() -> None:
    haservice, report = one(cib(primitive("app"), extra=defaults(("migration-threshold", "2"))))
    assert haservice["spec"]["recovery"]["restart"]["windowSeconds"] == MAX_WINDOW_SECONDS
    assert any("failures never expired (no failure-timeout)" in line for line in report)


# -- utilization, start-delay, on-fail, op attributes ----------------------------------------------


def test_utilization_is_reported_with_the_placement_strategy() -> None:
    text = cib(
        '<primitive id="app" class="systemd" type="app"><utilization id="u">'
        + nvpair("cpu", "2")
        + nvpair("memory", "1024")
        + "</utilization></primitive>"
    )
    _, report = one(text)
    assert any(
        "utilization cpu=2, memory=1024 of app: pacemaker ignored it (placement-strategy default)"
        in line
        for line in report
    )


def test_start_delay_suggests_an_initial_delay() -> None:
    ops = '<op id="m" name="monitor" interval="10s" start-delay="PT30S"/>'
    _, report = one(cib(primitive("web", "ocf:heartbeat:apache", ops=ops)))
    assert any("start-delay 30s" in line and "initialDelaySeconds: 30" in line for line in report)


@pytest.mark.parametrize(
    ("on_fail", "kind", "text"),
    [
        ("ignore", "unsupported", "remove the livenessProbe"),
        ("block", "unsupported", "left the failed resource alone"),
        ("stop", "unsupported", "left it stopped"),
        ("standby", "unsupported", "moved every resource off the node"),
        ("demote", "unsupported", "demoted the failed copy"),
        ("fence", "note", "ForceDelete is the closest"),
        ("sometimes", "unsupported", "not an on-fail value pacemaker knows"),
    ],
)
def test_every_on_fail_value_but_restart_is_reported(on_fail: str, kind: str, text: str) -> None:
    ops = f'<op id="m" name="monitor" interval="10s" on-fail="{on_fail}"/>'
    _, report = one(cib(primitive("app", ops=ops)))
    assert any(
        line.startswith(f"{kind}: primitive app: op m of app") and text in line for line in report
    )


def test_on_fail_demote_of_a_promoted_monitor_is_the_standby_the_pod_becomes() -> None:
    ops = '<op id="m" name="monitor" interval="10s" role="Promoted" on-fail="demote"/>'
    inner = primitive("redis", "ocf:heartbeat:redis", ops=ops)
    _, report = one(cib(clone("r", inner, ("promotable", "true"))))
    assert any(line.startswith("note: clone r: op m of redis on-fail=demote") for line in report)


def test_op_attributes_and_nvpairs_and_op_defaults_are_named() -> None:
    ops = (
        '<op id="m" name="monitor" interval="10s" interval-origin="00:00" requires="quorum">'
        '<instance_attributes id="m-ia">'
        + nvpair("OCF_CHECK_LEVEL", "10")
        + "</instance_attributes>"
        "</op>"
        '<op id="p" name="promote" interval="0"/>'
    )
    extra = (
        '<op_defaults><meta_attributes id="od">'
        + nvpair("record-pending", "true")
        + "</meta_attributes></op_defaults>"
    )
    _, report = one(cib(primitive("app", ops=ops), extra=extra))
    assert (
        "unsupported: primitive app: op m of app: interval-origin=00:00, requires=quorum: "
        "no equivalent" in report
    )
    assert any("op m of app: OCF_CHECK_LEVEL=10" in line for line in report)
    assert any("ops promote of app: actions of the agent" in line for line in report)
    assert "unsupported: op_defaults: record-pending: no equivalent for the probes" in report


def test_the_translated_sets_are_frozen_and_exclude_what_is_always_reported() -> None:
    assert isinstance(TRANSLATED_META, frozenset)
    assert isinstance(TRANSLATED_OP_ATTRIBUTES, frozenset)
    assert {
        "migration-threshold",
        "failure-timeout",
        "promotable",
        "allow-migrate",
    } <= TRANSLATED_META
    assert not {"interleave", "clone-min", "remote-node"} & TRANSLATED_META
    assert "start-delay" not in TRANSLATED_OP_ATTRIBUTES
    assert meta_verdict("allow-migrate", "false") is None
    assert meta_verdict("allow-migrate", "TRUE") is not None
    assert meta_verdict("interleave", "false") is not None


@pytest.mark.parametrize(
    ("kind", "pairs", "expected"),
    [
        ("clone", (("promotable", "true"),), (True, 1)),
        ("clone", (("promotable", "yes"), ("promoted-max", "2")), (True, 2)),
        ("master", (), (True, 1)),
        ("clone", (("promoted-max", "2"),), (False, 0)),
        ("group", (("promotable", "true"),), (False, 0)),
    ],
)
def test_promotion(
    kind: str, pairs: tuple[tuple[str, str], ...], expected: tuple[bool, int]
) -> None:
    resource = Resource(kind=kind, id="x", line=1, meta=dict(pairs))
    assert promotion(resource, resource.meta) == expected


# -- values that may be secrets -------------------------------------------------------------------

LEAK = "Leak-Value-9911"
CARRIES_SECRET = f"--requirepass {LEAK}"
"""A value whose name says nothing but which carries a secret itself (has_secret_value)."""


def _printed(text: str) -> str:
    """Everything the import prints: the HAServices and the report (or the refusal)."""
    try:
        haservices, report = import_pacemaker(text, Options())
    except Unreadable as error:
        return str(error)
    return yaml.safe_dump_all(haservices) + "\n".join(report.lines())


def test_op_nvpairs_that_may_be_secrets_are_named_not_shown() -> None:
    ops = (
        '<op id="m" name="monitor" interval="10s">'
        '<meta_attributes id="m-meta">' + nvpair("depth", "0") + "</meta_attributes>"
        '<instance_attributes id="m-ia">'
        + nvpair("OCF_CHECK_LEVEL", "10")
        + nvpair("password", "Op-Pw-1")
        + nvpair("masterauth", "Op-Auth-2")
        + nvpair("statusurl", "http://check:Op-Url-3@localhost/status")
        + "</instance_attributes></op>"
    )
    text = cib(primitive("cache", "ocf:heartbeat:redis", ops=ops))
    printed = _printed(text)
    for secret in ("Op-Pw-1", "Op-Auth-2", "Op-Url-3"):
        assert secret in text
        assert secret not in printed
    _, report = one(text)
    assert (
        "unsupported: primitive cache: op m of cache: OCF_CHECK_LEVEL=10, depth=0, "
        "masterauth=<secret>, password=<secret>, statusurl=<secret>: options of the agent's "
        "check (a deeper check with OCF_CHECK_LEVEL or depth); the probes only check the port"
    ) in report


def _app(inside: str = "", agent: str = "systemd::app", id_: str = "app") -> str:
    """A primitive with `inside` (meta attributes, utilization) added."""
    return primitive(id_, agent).replace("</primitive>", f"{inside}</primitive>")


def _op(attributes: str) -> str:
    return cib(primitive("app", ops=f'<op id="m" name="monitor" {attributes}/>'))


@pytest.mark.parametrize(
    "text",
    [
        # meta attributes printed with their value: the resource's, a clone's, rsc_defaults'
        cib(primitive("app"), extra=defaults(("allow-migrate", CARRIES_SECRET))),
        cib(clone("c", primitive("app"), ("allow-migrate", CARRIES_SECRET))),
        cib(clone("c", primitive("app"), ("ordered", CARRIES_SECRET))),
        *(
            cib(_app(meta((name, CARRIES_SECRET))))
            for name in (
                "target-role", "is-managed", "migration-threshold", "failure-timeout",
                "resource-stickiness",
            )
        ),
        # op attributes and op_defaults
        _op(f'interval="{CARRIES_SECRET}"'),
        _op(f'interval="5s" timeout="{CARRIES_SECRET}"'),
        _op(f'interval="5s" requires="{CARRIES_SECRET}"'),
        _op(f'interval="5s" on-fail="{CARRIES_SECRET}"'),
        _op(f'interval="5s"/><op id="n" name="monitor" interval="9s" role="{CARRIES_SECRET}"'),
        cib(
            primitive("app"),
            extra='<op_defaults><meta_attributes id="od">'
            + nvpair("timeout", CARRIES_SECRET)
            + "</meta_attributes></op_defaults>",
        ),
        # utilization
        cib(_app('<utilization id="u">' + nvpair("memory", CARRIES_SECRET) + "</utilization>")),
        # what is left out, named with a value: an address, storage, a guest node
        cib(primitive("vip", "ocf:heartbeat:IPaddr2", nvpair("ip", f"http://a:{LEAK}@x/"))
            + primitive("app")),
        cib(primitive("fs", "ocf:heartbeat:Filesystem", nvpair("directory", CARRIES_SECRET))
            + primitive("app")),
        cib(_app(meta(("remote-node", CARRIES_SECRET)), "ocf:heartbeat:VirtualDomain", "vm")
            + primitive("app")),
        # images and a bundle's runtime
        cib(primitive("app", "ocf:heartbeat:podman", nvpair("image", f"https://u:{LEAK}@reg/a"))),
        cib(f'<bundle id="b"><podman image="https://u:{LEAK}@reg/app" replicas="2" '
            f'replicas-per-host="{CARRIES_SECRET}" network="{CARRIES_SECRET}"/></bundle>'),
        # a refusal that names the value it could not read
        cib(f'<bundle id="b"><podman image="app" replicas="{CARRIES_SECRET}"/></bundle>'),
    ],
)  # fmt: skip
def test_no_value_that_may_be_a_secret_is_printed_wherever_it_is_read(text: str) -> None:
    assert LEAK in text
    assert LEAK not in _printed(text)


def test_the_placement_strategy_and_a_secret_image_are_reported_without_their_value() -> None:
    resources = primitive("app").replace(
        "</primitive>", '<utilization id="u">' + nvpair("cpu", "2") + "</utilization></primitive>"
    )
    text = cib(resources).replace(
        "<crm_config/>",
        '<crm_config><cluster_property_set id="o">'
        + nvpair("placement-strategy", CARRIES_SECRET)
        + "</cluster_property_set></crm_config>",
    )
    assert LEAK not in _printed(text)
    bundle_text = cib(f'<bundle id="b"><podman image="https://u:{LEAK}@reg/app"/></bundle>')
    haservice, report = one(bundle_text)
    image = haservice["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("replace-me.invalid/")
    assert any("podman image carries credentials: not copied" in line for line in report)


# -- a pod declares each port once ----------------------------------------------------------------


def _apache(id_: str, ops: str = "") -> str:
    return primitive(id_, "ocf:heartbeat:apache", ops=ops)


def test_a_port_several_members_listen_on_is_declared_once_in_the_pod() -> None:
    group = '<group id="web">' + _apache("site_a") + _apache("site_b") + _apache("site_c")
    haservice, report = one(cib(group + "</group>"))
    containers = haservice["spec"]["template"]["spec"]["containers"]
    assert [c.get("ports") for c in containers] == [
        [{"name": "http", "containerPort": 80}],
        None,
        None,
    ]
    assert haservice["spec"]["service"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http"}
    ]
    said = [line for line in report if "already declared" in line]
    assert said == [
        "warning: group web: port 80 of containers site-b, site-c is already declared by "
        "container site-a: the containers of a pod share one network, where only one of them "
        "can listen on a port; declared once, in site-a (and once on the Service); if site-b, "
        "site-c listen on another port, declare that one"
    ]
    assert not any("already on the Service" in line for line in report)
    assert not any("port 80 of site-b" in line for line in report)


def test_the_probe_follows_a_member_that_keeps_its_port() -> None:
    """The second member checks more often, but its port is the first member's: no probe of its
    own, and the first member's monitor moves the active role."""
    group = (
        '<group id="web">'
        + _apache("site_a", '<op id="a-mon" name="monitor" interval="30s"/>')
        + _apache("site_b", '<op id="b-mon" name="monitor" interval="5s"/>')
        + "</group>"
    )
    haservice, report = one(cib(group))
    first, second = haservice["spec"]["template"]["spec"]["containers"]
    assert first["readinessProbe"]["periodSeconds"] == 30
    assert "readinessProbe" not in second
    assert "ports" not in second
    assert any("op a-mon every 30s: a failed check" in line for line in report)
    assert any("op b-mon every 5s has no port to check" in line for line in report)


def test_members_on_different_ports_keep_them() -> None:
    group = (
        '<group id="g">'
        + primitive("one", "ocf:heartbeat:nginx", nvpair("port", "8080"))
        + primitive("two", "ocf:heartbeat:nginx", nvpair("port", "8081"))
        + "</group>"
    )
    haservice, report = one(cib(group))
    ports = [p["containerPort"] for c in haservice["spec"]["template"]["spec"]["containers"]
             for p in c["ports"]]  # fmt: skip
    assert ports == [8080, 8081]
    assert not any("already declared" in line for line in report)


def test_a_bundle_maps_two_outside_ports_to_its_container_port_once() -> None:
    bundle = (
        '<bundle id="proxy"><podman image="registry.example/haproxy:2.8" replicas="2"/>'
        '<network><port-mapping id="http" port="80" internal-port="8080"/>'
        '<port-mapping id="alt" port="8080" internal-port="8080"/></network></bundle>'
    )
    haservice, report = one(cib(bundle))
    container = haservice["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert haservice["spec"]["service"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http"}
    ]
    assert (
        "unsupported: bundle proxy: port-mapping alt: port 8080 in the container is already "
        "declared by port-mapping http, and a pod declares a port once: add port 8080 to "
        "spec.service with targetPort 8080"
    ) in report


def test_declaring_ports_once_is_idempotent_and_keeps_the_service_port() -> None:
    first = ContainerPlan("a", ports=[Port("peer", 9000, None, peer=True), Port("web", 80)])
    second = ContainerPlan("b", ports=[Port("web-2", 80, 80), Port("peer-2", 9000, 9000)])
    report = Report()
    declare_once("group g", [first, second], report)
    assert [(p.container_port, p.service_port) for p in first.ports] == [(9000, None), (80, 80)]
    assert second.ports == []
    assert len(report.lines()) == 2
    declare_once("group g", [first, second], report)
    assert len(report.lines()) == 2
