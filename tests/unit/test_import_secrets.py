"""Which settings the importers treat as secrets (importers/common.py): by the words of a name,
not by a list of names, and by values that carry credentials themselves."""

from __future__ import annotations

import pytest

from haoperator.importers import Options, import_keepalived, import_pacemaker
from haoperator.importers.common import has_secret_value, is_secret_literal, is_secret_name

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
