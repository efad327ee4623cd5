"""The keepalived importer's rules on small configurations (the realistic ones are golden cases in
tests/data/import/keepalived)."""

from __future__ import annotations

from pathlib import Path
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
    assert "authentication (auth_pass, auth_type) of VI_1 not copied" in shown


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
    # nb_get_retry 4 x the default delay_before_retry 1s: out 4s after a first failure; checks
    # 5s apart must fail twice (out after 5s) not to take a pod out sooner.
    assert container["readinessProbe"] == {
        "tcpSocket": {"port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
    }
    assert "livenessProbe" not in container


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
        ("global_defs {\n  router_id x\n}\n", "no vrrp_instance and no virtual_server"),
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


def lvs(checks: str, server: str = "", real: str = "", head: str = "10.0.0.5 80") -> str:
    """A virtual server with two real servers on 8080 carrying `checks` (indented freely)."""
    reals = "".join(f"    real_server 10.1.0.{n} 8080 {{\n{real}{checks}\n    }}\n" for n in (1, 2))
    return f"virtual_server {head} {{\n    protocol TCP\n{server}{reals}}}\n"


def container_of(haservice: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = haservice["spec"]["template"]["spec"]["containers"]
    return containers[0]


def joined(report: list[str]) -> str:
    return "\n".join(report)


# Class 7: real-server checks are readiness probes, with what a probe cannot express reported.


@pytest.mark.parametrize(
    "check",
    [
        "TCP_CHECK {\n}",
        "HTTP_GET {\nurl {\npath /\n}\n}",
        "SSL_GET {\nurl {\npath /\n}\n}",
        "SMTP_CHECK {\n}",
    ],
)
def test_real_server_checks_are_readiness_probes_never_liveness(check: str) -> None:
    """keepalived takes a failing real server out of the pool and back; it never restarts it."""
    haservice, _ = one(lvs(check))
    container = container_of(haservice)
    assert "readinessProbe" in container
    assert "livenessProbe" not in container
    assert "startupProbe" not in container


@pytest.mark.parametrize(
    ("delay_loop", "retry", "delay_before_retry", "threshold"),
    [
        (6, 3, 3, 3),  # out 9s after a first failure: 2 more checks 6s apart
        (3, 3, 3, 4),  # 9s: 3 more checks 3s apart
        (10, 0, 3, 1),  # no retry: out at the first failure, as keepalived
        (2, 1, 5, 4),  # 5s: 3 more checks 2s apart (6s, never sooner)
    ],
)
def test_the_failure_threshold_takes_a_pod_out_no_sooner_than_keepalived(
    delay_loop: int, retry: int, delay_before_retry: int, threshold: int
) -> None:
    check = f"TCP_CHECK {{\nretry {retry}\ndelay_before_retry {delay_before_retry}\n}}"
    haservice, report = one(lvs(check, server=f"    delay_loop {delay_loop}\n"))
    probe = container_of(haservice)["readinessProbe"]
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (delay_loop, threshold)
    assert (threshold - 1) * delay_loop >= retry * delay_before_retry
    assert (threshold - 2) * delay_loop < retry * delay_before_retry or threshold == 1
    assert f"took a server out {retry * delay_before_retry}s after its first failed" in joined(
        report
    )


def test_check_timing_is_inherited_from_the_virtual_and_the_real_server() -> None:
    text = lvs(
        "HTTP_GET {\nurl {\npath /ok\n}\n}",
        server="    delay_loop 4\n    connect_timeout 7\n",
        real="        retry 2\n        delay_before_retry 4\n",
    )
    haservice, _ = one(text)
    probe = container_of(haservice)["readinessProbe"]
    assert probe["httpGet"] == {"path": "/ok", "port": "http"}
    assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"]) == (
        4,
        7,
        3,
    )


def test_a_status_code_a_probe_cannot_accept_gives_a_connection_check_and_a_warning() -> None:
    check = "HTTP_GET {\nurl {\npath /auth\nstatus_code 401\n}\n}"
    haservice, report = one(lvs(check))
    assert container_of(haservice)["readinessProbe"]["tcpSocket"] == {"port": "http"}
    warning = [line for line in report if line.startswith("warning:") and "status_code" in line]
    assert warning
    assert "url /auth status_code 401" in warning[0]
    assert "only 200-399" in warning[0]


def test_the_first_url_a_probe_can_express_is_probed_and_the_others_are_named() -> None:
    check = (
        "HTTP_GET {\n"
        "url {\npath /maintenance\nstatus_code 503\n}\n"
        "url {\npath /health\nstatus_code 200-299 301\ndigest 640205b7b0fc66c1ea91c463fac6334d\n}\n"
        "url {\npath /other\n}\n"
        "}"
    )
    haservice, report = one(lvs(check))
    assert container_of(haservice)["readinessProbe"]["httpGet"]["path"] == "/health"
    text = joined(report)
    assert "url /maintenance (status_code 503), url /other: keepalived required every url" in text
    assert "url /health digest: a probe does not compare" in text
    assert "keepalived wanted status_code 200-299 301; the probe counts every status" in text
    assert "640205b7b0fc66c1ea91c463fac6334d" not in text


def test_every_url_keyword_a_probe_cannot_express_is_named() -> None:
    check = (
        "SSL_GET {\nurl {\npath /\nregex ok\nregex_no_match\n}\n"
        "http_protocol 1.0C\nenable_sni\nbindto 10.0.0.9\nbind_port 4000\nfwmark 3\n}"
    )
    _, report = one(lvs(check))
    text = joined(report)
    for keyword in (
        "regex",
        "regex_no_match",
        "http_protocol",
        "enable_sni",
        "bindto",
        "bind_port",
        "fwmark",
    ):
        assert f" {keyword}" in text, keyword


def test_virtualhost_becomes_the_host_header_from_the_nearest_level() -> None:
    check = "HTTP_GET {\nurl {\npath /\n}\n}"
    haservice, _ = one(lvs(check, server="    virtualhost www.example.org\n"))
    assert container_of(haservice)["readinessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "Host", "value": "www.example.org"}
    ]
    check = "HTTP_GET {\nvirtualhost api.example.org\nurl {\npath /\n}\n}"
    haservice, _ = one(lvs(check, server="    virtualhost www.example.org\n"))
    assert container_of(haservice)["readinessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "Host", "value": "api.example.org"}
    ]


def test_connect_port_is_probed_and_another_address_is_reported() -> None:
    check = "TCP_CHECK {\nconnect_port 9000\nconnect_ip 10.9.9.9\n}"
    haservice, report = one(lvs(check))
    assert container_of(haservice)["readinessProbe"]["tcpSocket"] == {"port": 9000}
    assert "TCP_CHECK connect_ip 10.9.9.9: keepalived checked another address" in joined(report)


def test_a_url_query_that_looks_like_a_secret_is_not_copied() -> None:
    check = 'HTTP_GET {\nurl {\npath "/health?token=Zq-Url-97"\n}\n}'
    haservices, report = import_keepalived(lvs(check), Options())
    probe = container_of(haservices[0])["readinessProbe"]
    assert probe["httpGet"]["path"] == "/health"
    assert "Zq-Url-97" not in str(haservices) + joined(report.lines())


@pytest.mark.parametrize(
    ("check", "said"),
    [
        ('MISC_CHECK {\nmisc_path "/bin/check 10.1.0.1"\nmisc_timeout 5\n}', "MISC_CHECK (misc"),
        ("DNS_CHECK {\ntype A\nname example.org\n}", "DNS_CHECK (name, type)"),
        ("UDP_CHECK {\nrequire_reply\n}", "UDP_CHECK (require_reply)"),
        ("PING_CHECK {\n}", "PING_CHECK: ICMP echo"),
        ("FILE_CHECK {\ntrack_file f\n}", "FILE_CHECK (track_file)"),
        ("BFD_CHECK {\nname b\n}", "BFD_CHECK (name)"),
    ],
)
def test_checks_no_probe_can_make_are_reported_with_their_keywords(check: str, said: str) -> None:
    haservice, report = one(lvs(check, server="    delay_loop 5\n"))
    assert "readinessProbe" not in container_of(haservice)
    text = joined(report)
    assert f"unsupported: virtual_server 10.0.0.5 80: {said}" in text
    assert "delay_loop: set for checks that gave no probe" in text


def test_a_misc_check_script_that_may_hold_a_secret_is_not_shown() -> None:
    check = 'MISC_CHECK {\nmisc_path "/bin/check --password=Zq-Misc-96"\n}'
    haservices, report = import_keepalived(lvs(check), Options())
    assert "Zq-Misc-96" not in str(haservices) + joined(report.lines())


def test_an_smtp_check_is_a_connection_check_and_its_dialogue_is_reported() -> None:
    check = (
        "SMTP_CHECK {\nhelo_name mx.example.org\nhost {\nconnect_ip 10.7.7.7\nbindto 10.0.0.2\n}\n}"
    )
    haservice, report = one(lvs(check))
    assert container_of(haservice)["readinessProbe"]["tcpSocket"] == {"port": "http"}
    text = joined(report)
    assert "the SMTP dialogue (220 banner, HELO with helo_name, 250, QUIT) is not checked" in text
    assert "SMTP_CHECK host (bindto, connect_ip): keepalived checked each of these hosts" in text


def test_several_checks_give_one_probe_and_the_others_are_reported() -> None:
    check = "TCP_CHECK {\n}\nHTTP_GET {\nurl {\npath /\n}\n}\nMISC_CHECK {\nmisc_path /bin/x\n}"
    haservice, report = one(lvs(check))
    assert "tcpSocket" in container_of(haservice)["readinessProbe"]
    text = joined(report)
    assert "HTTP_GET (url (path)): keepalived also required this check" in text
    assert "keepalived required all of TCP_CHECK, HTTP_GET, MISC_CHECK to pass" in text


def test_real_servers_whose_checks_differ_are_named() -> None:
    text = lvs("TCP_CHECK {\n}").replace(
        "real_server 10.1.0.2 8080 {\n", "real_server 10.1.0.2 8080 {\nHTTP_GET {\n}\n", 1
    )
    _, report = one(text)
    assert "real_server 10.1.0.2 8080 (HTTP_GET): checks differ from those of the first" in (
        joined(report)
    )


def test_real_server_settings_without_equivalent_are_named() -> None:
    real = "        inhibit_on_failure\n        notify_down /bin/x\n        uthreshold 10\n"
    _, report = one(lvs("TCP_CHECK {\n}", real=real))
    text = joined(report)
    for keyword in ("inhibit_on_failure", "notify_down", "uthreshold"):
        assert f"{keyword}" in text


@pytest.mark.parametrize("codes", ["99", "200-x", "600", ""])
def test_a_malformed_status_code_is_refused_with_its_line(codes: str) -> None:
    with pytest.raises(Unreadable) as caught:
        import_keepalived(
            lvs(f"HTTP_GET {{\nurl {{\npath /\nstatus_code {codes}\n}}\n}}"), Options()
        )
    assert str(caught.value).startswith("line ")


# Class 10: firewall marks and virtual_server_group: translated, and a refusal says why.

GROUP = """
virtual_server_group web {
    10.0.0.1 80
    10.0.0.1 443
    10.0.0.20-23 80
    fwmark 4
}
virtual_server group web {
    protocol TCP
    real_server 10.1.0.1 8080 {
        TCP_CHECK {
        }
    }
    real_server 10.1.0.2 8080 {
        TCP_CHECK {
        }
    }
}
"""


def test_a_virtual_server_group_is_one_haservice_with_every_port() -> None:
    haservice, report = one(GROUP)
    spec = haservice["spec"]
    assert (haservice["metadata"]["name"], spec["category"], spec["replicas"]) == (
        "web",
        "LoadBalanced",
        2,
    )
    container = container_of(haservice)
    assert container["ports"] == [{"name": "http-alt", "containerPort": 8080}]
    assert spec["service"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http-alt"},
        {"name": "https", "port": 443, "targetPort": "http-alt"},
    ]
    assert haservice["metadata"]["annotations"]["haoperator.dev/imported-addresses"] == (
        "10.0.0.1,10.0.0.20-10.0.0.23"
    )
    text = joined(report)
    assert "virtual_server_group web fwmark 4: firewall rules outside keepalived" in text
    assert "no virtual_server" not in text


def test_a_director_floating_group_addresses_is_left_to_the_service() -> None:
    director = instance().replace("10.0.0.5/24", "10.0.0.22/24")
    haservices, report = import_keepalived(director + GROUP, Options())
    assert [h["metadata"]["name"] for h in haservices] == ["web"]
    assert any("only floats virtual_server addresses" in line for line in report.lines())


def test_a_fwmark_virtual_server_translates_its_real_servers_and_reports_the_mark() -> None:
    text = lvs("TCP_CHECK {\n}", head="fwmark 12")
    haservice, report = one(text)
    assert haservice["metadata"]["name"] == "fwmark-12"
    assert haservice["spec"]["service"]["ports"] == [
        {"name": "http-alt", "port": 8080, "targetPort": "http-alt"}
    ]
    assert "livenessProbe" not in container_of(haservice)
    lines = joined(report)
    assert "fwmark 12: firewall rules outside keepalived marked the traffic" in lines
    assert "warning: virtual_server fwmark 12: fwmark: the Service gets the real servers' port" in (
        lines
    )


def test_a_virtual_server_without_port_gets_the_real_port_with_a_warning() -> None:
    haservice, report = one(lvs("TCP_CHECK {\n}", head="10.0.0.5"))
    assert haservice["spec"]["service"]["ports"][0]["port"] == 8080
    assert any("no virtual port (every port is forwarded)" in line for line in report)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "virtual_server fwmark 3 {\n    lb_kind DR\n}\n",
            "virtual_server fwmark 3 (line 1) has no real_server",
        ),
        (
            lvs("TCP_CHECK {\n}", head="group missing"),
            "virtual_server group missing (line 1) uses virtual_server_group missing, which is "
            "not defined",
        ),
        (
            "virtual_server_group e {\n}\n" + lvs("TCP_CHECK {\n}", head="group e"),
            "virtual_server group e (line 3) virtual_server_group e has no member",
        ),
    ],
    ids=["fwmark-without-real-servers", "undefined-group", "empty-group"],
)
def test_a_refusal_names_the_true_reason(text: str, reason: str) -> None:
    with pytest.raises(Unreadable) as caught:
        import_keepalived(text, Options())
    message = str(caught.value)
    assert message.startswith("no HAService to import: ")
    assert reason in message
    assert "no virtual_server" not in message


def test_a_group_of_firewall_marks_only_still_translates_its_real_servers() -> None:
    text = "virtual_server_group g {\n    fwmark 1\n}\n" + lvs("TCP_CHECK {\n}", head="group g")
    haservice, report = one(text)
    assert haservice["spec"]["replicas"] == 2
    assert any("virtual_server_group g fwmark 1: firewall rules" in line for line in report)


def test_an_address_range_covers_its_addresses() -> None:
    from ipaddress import ip_address

    from haoperator.importers.keepalived_syntax import Statement, address_range

    where = Statement(["x"], 1)
    assert address_range(where, "10.0.0.3-10") == (ip_address("10.0.0.3"), ip_address("10.0.0.10"))
    assert address_range(where, "ae00::2-9") == (ip_address("ae00::2"), ip_address("ae00::9"))
    assert address_range(where, "10.0.2.8/29") == (ip_address("10.0.2.8"), ip_address("10.0.2.15"))
    for bad in ("10.0.0.9-3", "10.0.0.1-ae00::1", "x-1"):
        with pytest.raises(Unreadable):
            address_range(where, bad)


# Coverage: every keyword read is translated or named; secrets never shown.


def test_the_translated_keywords_are_exposed() -> None:
    from haoperator.importers.keepalived import TRANSLATED_KEYWORDS

    assert isinstance(TRANSLATED_KEYWORDS, frozenset)
    assert {"virtual_ipaddress", "real_server", "HTTP_GET", "path"} <= TRANSLATED_KEYWORDS
    assert not {"digest", "auth_pass", "global_defs", "lb_kind"} & TRANSLATED_KEYWORDS


def test_global_defs_settings_are_named_one_by_one() -> None:
    text = (
        "global_defs {\n  router_id lb1\n  notification_email {\n    ops@example.org\n  }\n"
        "  vrrp_strict\n  enable_script_security\n  lvs_flush\n}\n" + instance()
    )
    _, report = one(text)
    lines = joined(report)
    for keyword in ("router_id", "notification_email", "vrrp_strict", "enable_script_security"):
        assert keyword in lines
    assert "lvs_flush" in lines
    assert "ops@example.org" not in lines


def test_conditional_and_parameter_lines_are_named_without_their_values() -> None:
    text = "$SECRET_PASS=Zq-Param-95\n@main $IF=eth0\n" + instance(
        "    @main priority 200\n    @backup priority 100"
    )
    haservices, report = import_keepalived(text, Options())
    lines = joined(report.lines())
    assert "$SECRET_PASS (line 1)" in lines
    assert "@main $IF (line 2)" in lines
    assert "@main priority (line 5), @backup priority (line 6)" in lines
    assert "Zq-Param-95" not in lines + str(haservices)


def test_the_ssl_block_is_reported_without_its_password() -> None:
    text = "SSL {\n    password Zq-Ssl-94\n    ca /etc/ca.pem\n}\n" + instance()
    haservices, report = import_keepalived(text, Options())
    lines = joined(report.lines())
    assert "SSL (ca, password)" in lines
    assert "Zq-Ssl-94" not in lines + str(haservices)


def test_unused_scripts_and_groups_and_loose_sync_members_are_reported() -> None:
    text = (
        'vrrp_script idle {\n    script "/bin/true"\n    interval 3\n}\n'
        "vrrp_sync_group old {\n    VI_1\n}\n"
        "virtual_server_group spare {\n    10.0.9.1 80\n}\n" + instance()
    )
    _, report = one(text)
    lines = joined(report)
    assert "vrrp_script idle (line 1): interval, script: tracked by no vrrp_instance" in lines
    assert "VI_1 outside a group { } block" in lines
    assert "virtual_server_group spare: used by no virtual_server" in lines


def test_vrrp_script_settings_go_into_the_suggested_probe_or_the_report() -> None:
    scripts = (
        'vrrp_script chk {\n    script "check"\n    interval 2\n    timeout 4\n    rise 3\n'
        "    fall 2\n    user nobody\n    init_fail\n}\n"
    )
    _, report = one(scripts + instance("    track_script {\n        chk weight -20\n    }"))
    lines = joined(report)
    assert "(periodSeconds 2, timeoutSeconds 4 (timeout), successThreshold 3 (rise)" in lines
    assert "track_script chk has weight -20" in lines
    assert "unsupported: vrrp_script chk: user: a probe runs as the container's user" in lines
    assert "note: vrrp_script chk: init_fail: a readiness probe starts failed too" in lines


def test_vrrp_mechanics_are_named_in_a_note() -> None:
    _, report = one(instance("    state MASTER\n    virtual_router_id 51\n    use_vmac"))
    lines = joined(report)
    assert "interface, state, virtual_router_id: VRRP's own settings" in lines
    assert "unsupported: vrrp_instance VI_1: use_vmac: no equivalent" in lines


GOLDEN_SECRETS = {"lvs-checks": ["Ck5521zz"]}
"""Secret values in this file's golden cases (test_import_golden.py checks the older ones)."""


@pytest.mark.parametrize("case", sorted(GOLDEN_SECRETS))
def test_no_secret_of_the_lvs_golden_cases_shows(case: str) -> None:
    folder = Path(__file__).resolve().parents[1] / "data" / "import" / "keepalived"
    text = (folder / f"{case}.conf").read_text()
    shown = (folder / f"{case}.out.yaml").read_text() + (folder / f"{case}.report.txt").read_text()
    for secret in GOLDEN_SECRETS[case]:
        assert secret in text, f"{secret} is not in {case}.conf: the test would prove nothing"
        assert secret not in shown
