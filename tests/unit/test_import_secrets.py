"""Which settings the importers treat as secrets (importers/common.py): by the words of a name,
not by a list of names, and by values that carry credentials themselves."""

from __future__ import annotations

from typing import Any

import pytest

from haoperator.importers import Options, import_keepalived, import_pacemaker, import_systemd
from haoperator.importers.common import (
    flag_secrets,
    has_secret_value,
    is_secret_literal,
    is_secret_name,
)

SECRET_NAMES = [
    # the words themselves
    "password", "PASSWORD", "passwd", "passphrase", "secret", "credential", "credentials",
    "token", "key", "pass", "pw", "pwd", "auth", "cookie", "community", "psk", "private",
    # words at the end of a name, split on _ - . and camelCase
    "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "check_passwd", "auth_pass", "DB_PASS", "DB_PW",
    "--admin-token", "--api-key", "api_key", "apiKey", "APIKey", "dbPassword", "requirePass",
    "OS_PASSWORD", "OS_TOKEN", "REDIS_AUTH", "BASIC_AUTH", "--auth", "RABBITMQ_ERLANG_COOKIE",
    "ERLANG_COOKIE", "snmp_community", "PRIVATE_KEY", "private.key", "SSL_KEY", "wpa_psk",
    "client_secret", "AWS_SECRET_ACCESS_KEY", "SECRET_KEY_BASE", "secret.key", "Password2",
    "--api-key2", "API_KEY_VALUE", "password_hash",
    # joined into one word with a role, or strong words inside one
    "requirepass", "REQUIREPASS", "--requirepass", "masterauth", "--masterauth", "bindpw",
    "BINDPW", "rootpw", "authtoken", "setcookie", "-setcookie", "rocommunity", "apikey",
    "privkey", "passkey", "rpcpassword", "sasl_passwd", "ldap_bindpw",
]  # fmt: skip

NOT_SECRET_NAMES = [
    # a secret word followed by what says where or how the secret is
    "--password-file", "PASSWORD_FILE", "KEY_PATH", "key_file", "SSL_KEY_FILE", "--tls-key-path",
    "auth_type", "AUTH_TYPE", "auth_url", "OS_AUTH_URL", "auth_strategy", "auth_plugin",
    "auth_version", "AUTH_ENABLED", "key_size", "KEY_ID", "AWS_ACCESS_KEY_ID", "token_provider",
    "token_expiration", "TOKEN_TTL", "password_min_length", "SECRET_NAME", "CREDENTIALS_DIRECTORY",
    "cookie_name", "COOKIE_DOMAIN", "session_cookie_secure", "private_network", "PASS_THROUGH",
    "passwordFile", "secretPath",
    # other words that only look alike
    "AUTHOR", "author", "keyboard", "KEYBOARD", "passive", "PASSIVE", "keepalive", "bypass",
    "BYPASS_PROXY", "compass", "monkey", "hotkey", "oauth", "OAUTH", "keystone", "KEYSTONE_HOST",
    "TOKENIZERS_PARALLELISM", "MAX_TOKENS", "authorized_keys", "keyring", "keytab", "pgport",
    "cluster_host_map", "LISTEN_PORT", "LOG_LEVEL", "user", "USERNAME", "login", "HOME", "",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_of_secrets(name: str) -> None:
    assert is_secret_name(name) is True


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_names_that_are_not_secrets(name: str) -> None:
    assert is_secret_name(name) is False


@pytest.mark.parametrize(
    "value",
    [
        "mysql+pymysql://nova:Nv-Pw-1@db/nova",
        "amqp://guest:guest@rabbit:5672/",
        "-p 6379 --requirepass Sv-Pw-2",
        "--masterauth=Sv-Pw-3 --port 6380",
        "DB_PASSWORD=Sv-Pw-4",
        "--api-key 'Sv-Pw-5'",
        "ERLANG_COOKIE=abc",
        # the short flags of programs known to take a secret by them (SECRET_FLAGS)
        "/usr/bin/mysqladmin -uroot -pSv-Pw-10 ping",
        "mysql -h db -p'Sv Pw 11' -e 'SELECT 1'",
        "mariadb-dump -pSv-Pw-12 --all-databases",
        "redis-cli -h cache -a Sv-Pw-13 ping",
        "/bin/sh -c 'redis-cli -a Sv-Pw-14 ping'",
        "sudo -u mysql mysqladmin -pSv-Pw-15 status",
        "timeout 5 mysqladmin -pSv-Pw-16 ping",
        "true && mysql -pSv-Pw-17 db",
        "curl -fsSLu admin:Sv-Pw-18 http://localhost/status",
        "curl --user=admin:Sv-Pw-19 http://localhost/status",
        "ldapsearch -x -D cn=admin -w Sv-Pw-20 -b dc=example",
        "ldapwhoami -xw Sv-Pw-21",
        "snmpget -v2c -c Sv-Pw-22 localhost sysUpTime.0",
        "ipmitool -I lanplus -H bmc -U admin -P Sv-Pw-23 power status",
        "sshpass -p Sv-Pw-24 ssh host",
        "fence_ipmilan -a bmc -l admin -p Sv-Pw-25 -o status",
        "mongosh -u admin -p Sv-Pw-26 --eval 1",
        "smbclient -U bob%Sv-Pw-27 //server/share",
        "pt-heartbeat --check -p Sv-Pw-28",
    ],
)
def test_values_that_carry_secrets(value: str) -> None:
    assert has_secret_value(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "mysql://db/nova",
        "mysql://nova:$(DB_PASSWORD)@db/nova",
        "mysql://nova:${DB_PASSWORD}@db/nova",
        "--requirepass $REDIS_PASSWORD",
        "--password-file /etc/app/password",
        "--tls-key /etc/ssl/private/web.key",
        "--auth --verbose",
        "auth_type=md5 --port 6379",
        "http://0.0.0.0:8080",
        "",
        # short flags: mysql's -P is the port, a bare -p prompts (the next word is the database),
        # a reference or a file is not the secret, and a flag of a program not known to take a
        # secret by it stays what it is
        "mysql -P 3306 -h db",
        "mysql -p mydb",
        "mysql -uphil -Bp mydb",
        "mysql -p$MYSQL_PWD db",
        "redis-cli -p 6379 ping",
        "redis-cli -a $REDIS_PASSWORD ping",
        "curl -u admin http://localhost/",
        "ldapsearch -x -W -b dc=example",
        "ldapsearch -x -y /etc/ldap.secret",
        "/usr/bin/app -p Sv-Not-1 -a Sv-Not-2",
        "docker run --name mysql -p3306:3306 mysql:8",
        "sshpass -f /etc/pw ssh host",
    ],
)
def test_values_that_only_say_where_a_secret_is(value: str) -> None:
    assert has_secret_value(value) is False


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("Sv-Pw-6", True),
        ("'quoted'", True),
        ("$VAR", False),
        ("${VAR}", False),
        ("$(VAR)", False),
        ("%d/db-password", False),
        ("/etc/ssl/private/web.key", False),
        ("", False),
        ("''", False),
    ],
)
def test_a_secret_literal_is_neither_a_reference_nor_a_path(value: str, literal: bool) -> None:
    assert is_secret_literal(value) is literal


def test_keepalived_still_hides_auth_pass_and_secret_scripts() -> None:
    text = (
        'vrrp_script chk {\n    script "/usr/bin/check --requirepass Kp-Script-31"\n}\n'
        "vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n"
        "    priority 100\n    authentication {\n        auth_type PASS\n"
        "        auth_pass Kp-Vrrp-32\n    }\n    virtual_ipaddress {\n        10.0.0.5\n    }\n"
        "    track_script {\n        chk\n    }\n}\n"
    )
    haservices, report = import_keepalived(text, Options())
    shown = str(haservices) + "\n".join(report.lines())
    assert "Kp-Script-31" not in shown
    assert "Kp-Vrrp-32" not in shown


def test_pacemaker_still_drops_secret_parameters() -> None:
    text = (
        '<cib><configuration><crm_config/><nodes/><resources><primitive id="cache" '
        'class="ocf" provider="heartbeat" type="redis"><instance_attributes id="cache-ia">'
        '<nvpair id="cache-a" name="requirepass" value="Pm-Pass-41"/>'
        '<nvpair id="cache-b" name="options" value="--masterauth Pm-Pass-42"/>'
        '<nvpair id="cache-c" name="auth_type" value="md5"/>'
        "</instance_attributes></primitive></resources><constraints/></configuration>"
        "<status/></cib>"
    )
    haservices, report = import_pacemaker(text, Options())
    shown = str(haservices) + "\n".join(report.lines())
    assert "Pm-Pass-41" not in shown
    assert "Pm-Pass-42" not in shown
    assert any("requirepass" in line and "secret" in line for line in report.lines())


@pytest.mark.parametrize(
    ("command", "found"),
    [
        ("mysqladmin -uroot -pX1 ping", [(2, "-p", "", "mysqladmin-password")]),
        ("redis-cli -a X2 -p 6379", [(2, "", "", "redis-cli-password")]),
        ("mongo -p=X3", [(1, "-p=", "", "mongo-password")]),
        ("mysql -p=X4", [(1, "-p", "", "mysql-password")]),
        ("curl -su ops:X5 http://x", [(2, "ops:", "", "curl-password")]),
        ("mysql -pX6; redis-cli -p 1", [(1, "-p", ";", "mysql-password")]),
        ("snmpwalk -v3 -A X7 -X X8 h", [(3, "", "", "snmpwalk-auth-password"),
                                         (5, "", "", "snmpwalk-privacy-password")]),
    ],
)  # fmt: skip
def test_where_a_short_flag_gives_the_secret(command: str, found: list[tuple[Any, ...]]) -> None:
    """The word, what stays before the value (`-p` glued; mysql's `-p=X` is the password `=X`),
    what stays after it in a shell script (`;`), and the name the Secret key is made of."""
    secrets = flag_secrets(command.split(), shell=True)
    assert [(s.index, s.prefix, s.suffix, s.hint) for s in secrets] == found


def _systemd(service: str) -> tuple[dict[str, Any], list[str]]:
    haservices, report = import_systemd(f"[Service]\n{service}\n", Options(), "app.service")
    assert len(haservices) == 1
    return haservices[0], report.lines()


def test_systemd_short_flags_of_known_programs_come_from_a_secret() -> None:
    haservice, report = _systemd(
        "ExecStart=/usr/bin/mysql -h db -P 3306 -uapp -pSf-Pw-51 -e 'SELECT 1' app"
    )
    main = haservice["spec"]["template"]["spec"]["containers"][0]
    shown = str(haservice) + "\n".join(report)
    assert "Sf-Pw-51" not in shown
    assert main["command"][3:7] == ["-P", "3306", "-uapp", "-p$(MYSQL_PASSWORD)"]
    assert {"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "app-secrets", "key": "MYSQL_PASSWORD"}}} in main["env"]  # fmt: skip
    warning = next(line for line in report if "create Secret" in line)
    assert "key MYSQL_PASSWORD" in warning
    assert "ExecStart mysql -p (now $(MYSQL_PASSWORD))" in warning


def test_systemd_short_flags_in_a_shell_script_are_read_from_the_environment() -> None:
    haservice, report = _systemd(
        "ExecStart=/bin/sh -c 'while mysqladmin -pSf-Pw-52 ping; do redis-cli -a Sf-Pw-53 "
        "set hb 1; sleep 5; done'"
    )
    main = haservice["spec"]["template"]["spec"]["containers"][0]
    assert "Sf-Pw-52" not in str(haservice) + "\n".join(report)
    assert "Sf-Pw-53" not in str(haservice) + "\n".join(report)
    assert main["command"][2] == (
        'while mysqladmin -p"${MYSQLADMIN_PASSWORD}" ping; do redis-cli -a '
        '"${REDIS_CLI_PASSWORD}" set hb 1; sleep 5; done'
    )


def test_systemd_ambiguous_short_flags_stay_and_hooks_name_their_secrets() -> None:
    haservice, report = _systemd(
        "ExecStartPre=/usr/bin/mysqladmin -uroot -pSf-Pw-54 ping\n"
        "ExecStop=/usr/bin/redis-cli -a Sf-Pw-55 shutdown\n"
        "ExecStart=/usr/bin/app -p Sf-Not-56 -a Sf-Not-57"
    )
    main = haservice["spec"]["template"]["spec"]["containers"][0]
    shown = str(haservice) + "\n".join(report)
    assert "Sf-Pw-54" not in shown
    assert "Sf-Pw-55" not in shown
    assert main["command"] == ["/usr/bin/app", "-p", "Sf-Not-56", "-a", "Sf-Not-57"]
    assert "env" not in main or not any("valueFrom" in e for e in main["env"])
    assert any(
        "ExecStartPre= is not run" in line and "holds secrets (mysqladmin -p)" in line
        for line in report
    )
    assert any(
        "ExecStop= is not run" in line and "holds secrets (redis-cli -a)" in line for line in report
    )


def test_keepalived_and_pacemaker_hide_short_flag_secrets_in_scripts() -> None:
    text = (
        'vrrp_script chk_db {\n    script "/usr/bin/mysqladmin -uchk -pKs-Short-61 ping"\n}\n'
        "vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n"
        "    priority 100\n    virtual_ipaddress {\n        10.0.0.5\n    }\n"
        "    track_script {\n        chk_db\n    }\n}\n"
    )
    haservices, report = import_keepalived(text, Options())
    assert "Ks-Short-61" not in str(haservices) + "\n".join(report.lines())
    assert any("chk_db" in line and "not shown" in line for line in report.lines())
    cib = (
        '<cib><configuration><crm_config/><nodes/><resources><primitive id="cache" '
        'class="ocf" provider="heartbeat" type="redis"><instance_attributes id="cache-ia">'
        '<nvpair id="cache-a" name="monitor_cmd" value="redis-cli -a Pm-Short-62 ping"/>'
        "</instance_attributes></primitive></resources><constraints/></configuration>"
        "<status/></cib>"
    )
    haservices, report = import_pacemaker(cib, Options())
    assert "Pm-Short-62" not in str(haservices) + "\n".join(report.lines())
