"""The keepalived importer's rules on small configurations (the realistic ones are golden cases in
tests/data/import/keepalived)."""

from __future__ import annotations

from typing import Any

import pytest

from haoperator.api.behaviour import ActivePassiveSpec
from haoperator.importers import Options, Unreadable, import_keepalived
from haoperator.importers.keepalived import lease_timing
from haoperator.importers.keepalived_syntax import parse


def instance(body: str = "", name: str = "VI_1") -> str:
    """A vrrp_instance with `body` on line 3 and the address 10.0.0.5 on line 5."""
    addresses = "    virtual_ipaddress {\n        10.0.0.5/24 dev eth0\n    }"
    return f"vrrp_instance {name} {{\n    interface eth0\n{body}\n{addresses}\n}}\n"


def one(text: str, **options: Any) -> tuple[dict[str, Any], list[str]]:
    haservices, report = import_keepalived(text, Options(**options))
    assert len(haservices) == 1
    return haservices[0], report.lines()


def test_a_vrrp_instance_is_active_passive_with_its_address() -> None:
    haservice, _ = one(instance())
    assert haservice["metadata"]["name"] == "vi-1"
    assert haservice["spec"]["category"] == "ActivePassive"
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == "10.0.0.5"


@pytest.mark.parametrize(("body", "preempt"), [("    nopreempt", False), ("", True)])
def test_nopreempt_decides_preempt(body: str, preempt: bool) -> None:
    haservice, _ = one(instance(body))
    assert haservice["spec"]["activePassive"]["preempt"] is preempt


@pytest.mark.parametrize("advert", [0.5, 1, 1.5, 2, 3, 5, 10, 60, 255])
@pytest.mark.parametrize("priority", [1, 100, 254])
def test_lease_timing_is_valid_and_no_slower_than_vrrp(advert: float, priority: int) -> None:
    timing, master_down = lease_timing(advert, priority)
    ActivePassiveSpec.model_validate(timing)
    lease = timing["leaseDurationSeconds"]
    assert timing["retryPeriodSeconds"] < timing["renewDeadlineSeconds"] < lease
    assert lease <= master_down or lease == 3
    assert master_down - lease < 1 or lease == 3


def test_an_advert_int_too_short_for_a_lease_is_a_warning() -> None:
    _, report = one(instance("    advert_int 0.5"))
    assert any("the shortest valid lease fails over slower than VRRP" in line for line in report)


def test_unicast_peers_set_the_replicas() -> None:
    peers = "    unicast_peer {\n        10.0.0.2\n        10.0.0.3\n        10.0.0.4\n    }"
    haservice, _ = one(instance(peers))
    assert haservice["spec"]["replicas"] == 4


def test_a_sync_group_is_one_haservice_with_every_address() -> None:
    text = (
        "vrrp_sync_group lb {\n  group {\n    A\n    B\n  }\n}\n"
        + instance(name="A")
        + instance(name="B").replace("10.0.0.5", "10.0.1.5")
    )
    haservice, _ = one(text)
    assert haservice["metadata"]["name"] == "lb"
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == (
        "10.0.0.5,10.0.1.5"
    )


def test_auth_pass_and_secret_scripts_never_show() -> None:
    text = 'vrrp_script chk {\n    script "check --password=Zq-Script-99"\n}\n' + instance(
        "    authentication {\n        auth_type PASS\n        auth_pass Zq-Vrrp-98\n    }\n"
        "    track_script {\n        chk\n    }"
    )
    haservices, report = import_keepalived(text, Options())
    shown = str(haservices) + "\n".join(report.lines())
    assert "Zq-Script-99" not in shown
    assert "Zq-Vrrp-98" not in shown
    assert "authentication of VI_1 not copied" in shown


LVS = """
virtual_server 10.0.0.5 80 {
    delay_loop 5
    protocol TCP
    real_server 10.1.0.1 8080 {
        TCP_CHECK {
            connect_timeout 2
            nb_get_retry 4
        }
    }
    real_server 10.1.0.2 8080 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
"""


def test_a_virtual_server_is_load_balanced_over_its_real_servers() -> None:
    haservice, _ = one(LVS)
    spec = haservice["spec"]
    assert (spec["category"], spec["replicas"]) == ("LoadBalanced", 2)
    assert spec["service"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    container = spec["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["readinessProbe"] == {
        "tcpSocket": {"port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 4,
    }


def test_the_director_instance_is_left_to_the_services() -> None:
    haservices, report = import_keepalived(instance() + LVS, Options())
    assert [h["spec"]["category"] for h in haservices] == ["LoadBalanced"]
    assert any("only floats virtual_server addresses" in line for line in report.lines())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vrrp_instance VI_1 {\n  state MASTER\n", "line 1: block 'vrrp_instance VI_1' is never"),
        ("global_defs {\n}\n}\n", "line 3: '}' closes no block"),
        ('vrrp_script x {\n  script "unclosed\n}\n', "line 2: a quote is never closed"),
        ("{\n}\n", "line 1: '{' opens a block without a keyword"),
        ("frontend api\n", "line 1: unknown keyword 'frontend'"),
        (instance("    advert_int soon"), "line 3: advert_int needs a number"),
        (instance().replace("10.0.0.5/24", "10.0.0.500"), "line 5: '10.0.0.500' is not an IP"),
        ("virtual_server 10.0.0.5 http {\n}\n", "line 1: virtual_server needs a number"),
        ("global_defs {\n  router_id x\n}\n", "no vrrp_instance with virtual_ipaddress"),
    ],
    ids=[
        "unclosed",
        "extra-brace",
        "unclosed-quote",
        "brace-alone",
        "not-keepalived",
        "bad-advert",
        "bad-address",
        "bad-port",
        "nothing",
    ],
)
def test_unreadable_configurations_name_the_line(text: str, message: str) -> None:
    with pytest.raises(Unreadable) as caught:
        import_keepalived(text, Options())
    assert str(caught.value).startswith(message)


def test_the_tokenizer_keeps_lines_quotes_and_comments_apart() -> None:
    statements = parse(
        '! comment\nvrrp_script chk { # trailing\n  script "/bin/check a b"\n  interval 2\n}\n'
    )
    assert [(s.words, s.line) for s in statements] == [(["vrrp_script", "chk"], 2)]
    block = statements[0].block or []
    assert [(s.words, s.line) for s in block] == [
        (["script", "/bin/check a b"], 3),
        (["interval", "2"], 4),
    ]


def test_a_tracked_script_moves_the_role_after_interval_times_fall() -> None:
    """keepalived moves the address after `fall` failed checks `interval` apart: a readiness
    probe failing once plus unhealthySeconds interval x (fall - 1) moves the role as late."""
    scripts = (
        'vrrp_script quick {\n    script "check-a"\n    interval 2\n    fall 2\n}\n'
        'vrrp_script slow {\n    script "check-b"\n    interval 5\n    fall 3\n}\n'
    )
    text = scripts + instance("    track_script {\n        quick\n        slow\n    }")
    haservices, report = import_keepalived(text, Options())
    (haservice,) = haservices
    assert haservice["spec"]["activePassive"]["unhealthySeconds"] == 10
    lines = "\n".join(report.lines())
    assert "(periodSeconds 5, failureThreshold 1)" in lines
    assert "the address moved after 3 failed checks 5s apart; unhealthySeconds 10" in lines
    untracked, _ = import_keepalived(instance(""), Options())
    assert "unhealthySeconds" not in untracked[0]["spec"]["activePassive"]
