"""What the three importers share: the report, input errors, names, durations, secrets, options.

An importer never decides alone what a user loses in translation: everything it cannot express
goes into the `Report`, one item per thing, so `haoperator import` can print it on stderr. Values
that may be secrets never reach the report or the manifests; only their names do.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import yaml

from haoperator.api import MAX_NAME_LENGTH, Category
from haoperator.importers.known import PORT_NAMES

MAX_INPUT_BYTES = 8 * 1024 * 1024
"""Large enough for the CIB of a big cluster (status section included), small enough that a
runaway file cannot exhaust memory while it is parsed."""

CATEGORIES: tuple[str, ...] = get_args(Category)

Kind = Literal["warning", "note", "unsupported"]


class Unreadable(Exception):
    """Input that cannot be read: `where` names the line or element (empty for the input as a
    whole), `problem` says what is wrong. The CLI prints both, prefixed with the file name, and
    exits 2."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Item:
    kind: Kind
    subject: str
    text: str

    def line(self) -> str:
        return f"{self.kind}: {self.subject}: {self.text}"


@dataclass
class Report:
    """What the import could not express, in the order it was found: `warning` (the user must act
    before the output works as the original did), `note` (how something was mapped), `unsupported`
    (configuration with no equivalent, left out)."""

    items: list[Item] = field(default_factory=list)

    def add(self, kind: Kind, subject: str, text: str) -> None:
        item = Item(kind, subject, text)
        if item not in self.items:
            self.items.append(item)

    def insert(self, index: int, kind: Kind, subject: str, text: str) -> None:
        """Add an item before those found since `index`: a conclusion reads before its details."""
        self.items.insert(index, Item(kind, subject, text))

    def warning(self, subject: str, text: str) -> None:
        self.add("warning", subject, text)

    def note(self, subject: str, text: str) -> None:
        self.add("note", subject, text)

    def unsupported(self, subject: str, text: str) -> None:
        self.add("unsupported", subject, text)

    def lines(self) -> list[str]:
        return [item.line() for item in self.items]


@dataclass(frozen=True)
class Options:
    """What the user adds on the command line.

    `images` and `categories` are keyed by an id from the input (a pacemaker resource id, a
    keepalived instance name, a unit name) or by the name of the HAService made from it.
    """

    namespace: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)
    categories: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None


def check_size(text: str) -> None:
    if len(text) > MAX_INPUT_BYTES:
        raise Unreadable("", f"{len(text)} characters is more than the {MAX_INPUT_BYTES} read")


def parse_image_map(text: str, source: str) -> dict[str, str]:
    """The --image-map file: a YAML or JSON mapping of id to image (JSON is YAML)."""
    try:
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}: line {mark.line + 1}" if mark is not None else source
        raise Unreadable(where, "not valid YAML or JSON") from error
    if not isinstance(loaded, dict):
        raise Unreadable(source, "must be a mapping of id to image, e.g. `galera-bundle: IMAGE`")
    images: dict[str, str] = {}
    for key, value in loaded.items():
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise Unreadable(f"{source}: {key}", "the image must be a non-empty string")
        images[str(key)] = value
    return images


def parse_categories(values: list[str]) -> dict[str, str]:
    """`--category NAME=CATEGORY` options; the category is matched case-insensitively."""
    by_lower = {category.lower(): category for category in CATEGORIES}
    categories: dict[str, str] = {}
    for value in values:
        name, sep, wanted = value.partition("=")
        category = by_lower.get(wanted.strip().lower())
        if not sep or not name.strip() or category is None:
            raise Unreadable(
                f"--category {value}",
                f"expected NAME=CATEGORY, CATEGORY one of {', '.join(CATEGORIES)}",
            )
        categories[name.strip()] = category
    return categories


_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def dns_label(raw: str, *, max_length: int = MAX_NAME_LENGTH, letter_first: bool = True) -> str:
    """`raw` made a DNS label: lowercase, `_`/`.`/other characters as `-`, at most `max_length`
    characters (a long name keeps a hash of the whole so two long ids stay apart)."""
    name = _NOT_NAME.sub("-", raw.lower()).strip("-")
    name = re.sub("-{2,}", "-", name) or "service"
    if letter_first and not name[0].isalpha():
        name = f"svc-{name}"
    if len(name) > max_length:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:5]
        name = f"{name[: max_length - 6].rstrip('-')}-{digest}"
    return name


def port_name(raw: str) -> str:
    """A container port name (IANA service name): at most 15 characters, a letter in it, no
    double or edge hyphens."""
    name = dns_label(raw, max_length=15, letter_first=False)
    return name if any(c.isalpha() for c in name) else f"p{name}"[:15].rstrip("-")


class Names:
    """Hands out unique HAService names and reports every rename, so users can find their
    resources again."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._taken: set[str] = set()

    def allocate(self, raw: str, subject: str) -> str:
        base = dns_label(raw)
        name, counter = base, 2
        while name in self._taken:
            suffix = f"-{counter}"
            name = f"{base[: MAX_NAME_LENGTH - len(suffix)].rstrip('-')}{suffix}"
            counter += 1
        self._taken.add(name)
        if name != raw:
            self._report.note(
                subject, f"named {name}: HAService names are DNS-1035 labels of at most 52 chars"
            )
        return name


_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}  # fmt: skip
_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")
_ISO_PART = re.compile(r"T|(\d+(?:\.\d+)?)([YMWDHS])")
_ISO_SCALE = {"Y": 31536000, "W": 604800, "D": 86400, "H": 3600, "S": 1}
"""A year as 365 days, a month (`M` before any `T`) as 30: pacemaker's own arithmetic differs
by the calendar, which no interval or timeout in a real CIB depends on."""


def duration(text: str) -> float:
    """Seconds in a pacemaker interval ("10", "10s", "1min", "500ms", ISO 8601 "PT1M", "P1DT2H",
    or without the `T` as pacemaker also reads it: "P10S"; `M` is months before a `T`, minutes
    after it) or a systemd time span ("1min 30s"). Raises ValueError for anything else."""
    value = text.strip()
    if value.upper().startswith("P"):
        total, position, in_time, parts = 0.0, 1, False, 0
        iso = value.upper()
        while position < len(iso):
            match = _ISO_PART.match(iso, position)
            if match is None or (match.group(0) == "T" and in_time):
                raise ValueError(f"{text!r} is not a duration")
            position = match.end()
            if match.group(0) == "T":
                in_time = True
                continue
            unit = match.group(2)
            scale = (60 if in_time else 2592000) if unit == "M" else _ISO_SCALE[unit]
            total += float(match.group(1)) * scale
            parts += 1
        if not parts:
            raise ValueError(f"{text!r} is not a duration")
        return total
    total, position = 0.0, 0
    while position < len(value):
        match = _SPAN_PART.match(value, position)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{text!r} is not a duration")
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        position = match.end()
        while position < len(value) and value[position].isspace():
            position += 1
    if not value:
        raise ValueError("an empty duration")
    return total


def whole_seconds(seconds: float) -> int:
    """Kubernetes counts in whole seconds: round up, and never below 1."""
    return max(1, math.ceil(seconds - 1e-9))


_STRONG_SECRETS = ("password", "passwd", "passphrase", "secret", "credential")
"""Word parts that name a secret wherever they stand: `rpcpassword`, `client_secret`."""

_WEAK_SECRETS = frozenset({
    "pass", "pw", "pwd", "key", "apikey", "privkey", "auth", "token", "cookie", "community",
    "psk", "private",
})  # fmt: skip
"""Words that name a secret when they end the name (`auth_pass`, `REDIS_AUTH`, `ERLANG_COOKIE`,
`snmp_community`) and usually something about it when more follows (`auth_type`, `key_size`,
`token_provider`, `private_network`)."""

_SECRET_ROLES = frozenset({
    "require", "master", "bind", "root", "admin", "api", "auth", "access", "refresh", "bearer",
    "session", "shared", "preshared", "pre", "private", "priv", "secret", "user", "db", "rpc",
    "sasl", "client", "app", "web", "mail", "smtp", "ldap", "sign", "signing", "enc",
    "encryption", "hmac", "login", "node", "cluster", "repl", "replication", "sudo", "vnc",
    "spice", "erlang", "snmp", "ro", "rw", "set", "ssl", "tls", "ssh", "gpg", "pgp", "sql",
    "redis", "mysql", "pg", "amqp", "rabbit", "vault", "jwt", "csrf", "xsrf", "my", "default",
    "service", "server",
})  # fmt: skip
"""What may stand before a weak word inside one word and keep it a secret: `requirepass`,
`masterauth`, `bindpw`, `rootpw`, `setcookie`, `authtoken`, `rocommunity`; other prefixes make
another word (`bypass`, `compass`, `monkey`, `oauth`)."""

_ABOUT_SECRET = frozenset({
    "file", "files", "path", "paths", "dir", "directory", "folder", "location", "url", "uri",
    "endpoint", "host", "hostname", "port", "type", "kind", "length", "len", "min", "max", "size",
    "bits", "policy", "algorithm", "algo", "method", "mode", "format", "fmt", "expiry",
    "expiration", "expire", "expires", "ttl", "lifetime", "timeout", "interval", "age",
    "rotation", "enabled", "enable", "disable", "disabled", "required", "command", "cmd",
    "program", "helper", "prompt", "name", "names", "id", "ids", "user", "username", "login",
    "provider", "backend", "store", "strategy", "plugin", "section", "version", "protocol",
    "proto", "header", "field", "param", "count", "limit", "retries", "reset", "check",
    "complexity", "strength", "hint", "source", "env", "var", "usage", "server", "service",
})  # fmt: skip
"""Words after a secret word that make the name about the secret, not the secret:
`--password-file`, `KEY_PATH`, `password_min_length`, `SECRET_NAME`, `token_expiration`."""

_VALUE_WORDS = frozenset({
    "value", "val", "data", "string", "str", "text", "hex", "b64", "base64", "raw", "plain",
    "plaintext", "bytes", "hash", "hashed", "encrypted",
})  # fmt: skip
"""Words after a weak secret word that still name the secret itself: `API_KEY_VALUE`."""

_WORD_BREAK = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_URL_CREDENTIALS = re.compile(r"://[^/\s:@]*:([^/\s@]+)@")
_REFERENCE = re.compile(r"\$[({]?\w|%d/")
"""`$VAR`, `${VAR}`, `$(VAR)`, systemd's `%d/` (the credentials directory): a value that says where
the secret comes from, not the secret."""


def _name_words(name: str) -> list[str]:
    """`dbPassword` -> db, password; `MYSQL_ROOT_PASSWORD` -> mysql, root, password; `--api-key2`
    -> api, key (trailing digits dropped)."""
    return [w for w in (part.lower().rstrip("0123456789") for part in _WORD_BREAK.split(name)) if w]


def _secret_word(word: str) -> str | None:
    """ "strong" or "weak" for a word that names a secret (see the tables above), else None."""
    if any(part in word for part in _STRONG_SECRETS):
        return "strong"
    if word in _WEAK_SECRETS:
        return "weak"
    for weak in _WEAK_SECRETS:
        prefix = word.removesuffix(weak)
        if prefix != word and (prefix in _SECRET_ROLES or prefix in _WEAK_SECRETS):
            return "weak"
    return None


def is_secret_name(name: str) -> bool:
    """A setting whose value is probably a secret: `auth_pass`, `MYSQL_PASSWORD`, `--api-key`,
    `--requirepass`, `masterauth`, `BINDPW`, `RABBITMQ_ERLANG_COOKIE`, `snmp_community`.

    The name is split into words on `_`, `-`, `.` and camelCase. A strong word (password, passwd,
    passphrase, secret, credential, also inside a word) names a secret unless a word after it
    says the name is about the secret (`--password-file`, `password_min_length`). A weak word
    (pass, pw, key, auth, token, cookie, community, psk, private; also joined to a role such as
    require-, master-, bind-, root-) names a secret only at the end of the name (`auth_type`,
    `KEY_PATH`, `keyboard`, `AUTHOR`, `passive` do not)."""
    words = _name_words(name)
    for position, word in enumerate(words):
        kind = _secret_word(word)
        after = words[position + 1 :]
        if kind == "strong" and not any(w in _ABOUT_SECRET for w in after):
            return True
        if kind == "weak" and all(w in _VALUE_WORDS for w in after):
            return True
    return False


def is_secret_literal(value: str) -> bool:
    """Whether a secret-named setting's value may be the secret itself: not empty, not a
    reference to where it is (`$REDIS_PASSWORD`, `%d/db-password`) and not a file's path
    (`--tls-key /etc/ssl/private/web.key` says where the key is, not what it is)."""
    value = value.strip().strip("'\"")
    return bool(value) and not value.startswith("/") and _REFERENCE.match(value) is None


_GLUED, _ANY = "glued", "any"
"""How a short flag takes its secret: only glued to it (`-pSECRET`: mysql's `-p` alone prompts, and
the word after it is the database), or glued or as the next word (`-a SECRET`, `-aSECRET`)."""

_MYSQL = {"-p": ("password", _GLUED, "")}
_ANY_PASSWORD = {
    flag: {flag: ("password", _ANY, "")} for flag in ("-a", "-p", "-P", "-w")
}  # one program's password flag
_SNMP = {
    "-c": ("community", _ANY, ""),
    "-A": ("auth-password", _ANY, ""),
    "-X": ("privacy-password", _ANY, ""),
}

SECRET_FLAGS: dict[str, dict[str, tuple[str, str, str]]] = {
    **dict.fromkeys((
        "mysql", "mysqladmin", "mysqldump", "mysqlcheck", "mysqlimport", "mysqlshow",
        "mysqlslap", "mysqlpump", "mysqlbinlog", "mysql_upgrade", "mariadb", "mariadb-admin",
        "mariadb-dump", "mariadb-check", "mariadb-import", "mariadb-show", "mariadb-slap",
        "mariadb-binlog", "mariadb-upgrade",
    ), _MYSQL),
    **dict.fromkeys((
        "redis-cli", "redis-benchmark", "valkey-cli", "valkey-benchmark", "keydb-cli",
    ), _ANY_PASSWORD["-a"]),
    **dict.fromkeys((
        "sshpass", "mongo", "mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport",
        "mongostat", "mongotop", "mongofiles", "rabbitmqadmin", "check_mysql",
        "check_mysql_query", "check_pgsql",
    ), _ANY_PASSWORD["-p"]),
    **dict.fromkeys((
        "ldapsearch", "ldapmodify", "ldapadd", "ldapdelete", "ldapwhoami", "ldappasswd",
        "ldapcompare", "ldapmodrdn", "ldapexop", "ldapurl",
    ), _ANY_PASSWORD["-w"]),
    **dict.fromkeys((
        "ipmitool", "mosquitto_pub", "mosquitto_sub", "mosquitto_rr", "sqlcmd", "check_ldap",
    ), _ANY_PASSWORD["-P"]),
    **dict.fromkeys((
        "snmpget", "snmpgetnext", "snmpwalk", "snmpbulkwalk", "snmpbulkget", "snmpset",
        "snmptable", "snmpstatus", "snmpdf", "snmptrap", "snmpinform", "snmpdelta", "snmpnetstat",
    ), _SNMP),
    "check_snmp": {
        "-C": ("community", _ANY, ""),
        "-A": ("auth-password", _ANY, ""),
        "-X": ("privacy-password", _ANY, ""),
    },
    "curl": {"-u": ("password", _ANY, ":"), "--user": ("password", _ANY, ":")},
    "check_http": {"-a": ("password", _ANY, ":"), "--authorization": ("password", _ANY, ":")},
    "check_curl": {"-a": ("password", _ANY, ":"), "--authorization": ("password", _ANY, ":")},
    "smbclient": {"-U": ("password", _ANY, "%"), "--user": ("password", _ANY, "%")},
}  # fmt: skip
"""Programs whose short (or otherwise unnamed) flags carry a secret, by the program's file name:
flag -> (what the secret is, how it is given, and the separator after which it starts when the
value is `user:password` (curl -u) or `user%password` (smbclient -U); then only a value with the
separator holds a secret). A flag of a program not listed here (`-p` is a port as often as a
password) is not taken for a secret; long flags that name one (`--password`) are, everywhere."""

SECRET_FLAG_PREFIXES = {"fence_": _ANY_PASSWORD["-p"], "pt-": _ANY_PASSWORD["-p"]}
"""Families named by a prefix: the fence agents (`fence_ipmilan -p SECRET`) and the Percona
Toolkit (`pt-heartbeat -p SECRET`, its `-P` is the port)."""

_BUNDLE = re.compile(r"-[A-Za-z]{2,}")
"""One-letter flags given together, the last one taking the next word: curl's `-fsSLu`."""
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", "{", "}", "then", "do", "else"})


@dataclass(frozen=True)
class FlagSecret:
    """A secret given to a known program by a flag: `words[index]` holds it after `prefix` (`-p`
    when glued to the flag, `admin:` before curl's password, else empty), up to `suffix` (a shell
    separator glued to it, `;`)."""

    index: int
    prefix: str
    suffix: str
    program: str
    flag: str
    what: str

    @property
    def hint(self) -> str:
        """The name to give the secret: `mysqladmin-password`."""
        return f"{self.program}-{self.what}"


def _secret_flags(word: str) -> dict[str, tuple[str, str, str]] | None:
    name = word.rsplit("/", 1)[-1]
    if name in SECRET_FLAGS:
        return SECRET_FLAGS[name]
    return next((f for p, f in SECRET_FLAG_PREFIXES.items() if name.startswith(p)), None)


def _command_position(words: Sequence[str], position: int, raw: Sequence[str]) -> bool:
    """Whether `words[position]` may be a program run: the first word, after a shell separator,
    the start of a quoted script, a path, or after a word that is not an option (`timeout 5 X`,
    `sudo -u mysql X`; not `--user mysql`, `-o mysql`)."""
    if position == 0 or "/" in words[position] or raw[position][:1] in ("'", '"'):
        return True
    before = words[position - 1]
    return (
        before in _SEPARATORS
        or before[-1:] in (";", "|", "&")
        or before == "-c"
        or not before.startswith("-")
        or "=" in before
    )


def flag_secrets(words: Sequence[str], shell: bool = False) -> list[FlagSecret]:
    """Where `words` (a command line, or a shell script split on blanks) give a known program (see
    SECRET_FLAGS) a secret by a flag: `mysqladmin -pSECRET`, `redis-cli -a SECRET`, `curl -u
    admin:SECRET`. Quotes around a word are ignored; in a shell script (`shell`) a separator glued
    to a word ends the program's arguments, and is no part of a value (`-pSECRET;`)."""
    clean = [word.strip("'\"") for word in words]
    found: list[FlagSecret] = []
    position = 0
    while position < len(words):
        flags = _secret_flags(clean[position])
        if flags is None or not _command_position(clean, position, words):
            position += 1
            continue
        program = clean[position].rsplit("/", 1)[-1]
        position += 1
        while position < len(words) and clean[position] not in _SEPARATORS:
            secret = _flag_secret(words, position, program, flags, shell)
            if secret is not None:
                found.append(secret)
                position = secret.index
            position += 1
            if shell and words[position - 1].rstrip(")")[-1:] in (";", "|", "&"):
                break
    return found


def _flag_secret(
    words: Sequence[str],
    position: int,
    program: str,
    flags: Mapping[str, tuple[str, str, str]],
    shell: bool,
) -> FlagSecret | None:
    """The secret that `words[position]` gives by one of `flags`: glued to it (`-pX`), or in the
    next word after it (`-a X`), also after other one-letter flags bundled before it (`-fsu X`)."""
    word = words[position]
    quote = len(word) - len(word.lstrip("'\""))
    bare = word[quote:].rstrip("'\"")
    for flag, (what, how, separator) in flags.items():
        bundled = (
            how == _ANY
            and len(flag) == 2
            and _BUNDLE.fullmatch(bare) is not None
            and bare.find(flag[1]) == len(bare) - 1
        )
        if bare == flag or bundled:
            if how != _ANY or position + 1 >= len(words):
                continue
            at, prefix = position + 1, ""
            if words[at].strip("'\"").startswith("-") or words[at] in _SEPARATORS:
                continue
        elif word.startswith(flag, quote) and len(word) > quote + len(flag):
            equals = word[quote + len(flag)] == "="
            if flag.startswith("--") and not equals:
                continue
            at, prefix = position, word[: quote + len(flag) + (equals and how == _ANY)]
        else:
            continue
        text = words[at]
        suffix = text[len(text.rstrip(";|&)")) :] if shell else ""
        value = text[len(prefix) : len(text) - len(suffix)]
        if separator:
            user, found, value = value.partition(separator)
            if not found:
                return None
            prefix += user + separator
        if not is_secret_literal(value):
            return None
        return FlagSecret(at, prefix, suffix, program, flag, what)
    return None


_OPTION = re.compile(r"--?[A-Za-z0-9][\w.-]*")


def is_option_name(word: str) -> bool:
    """`--requirepass`, `-setcookie`: an option's name alone, not a flag with its value glued on
    (`-p$MYSQL_PWD` is mysql's -p and a reference, not an option named after MYSQL_PWD)."""
    return _OPTION.fullmatch(word) is not None


def has_secret_value(value: str) -> bool:
    """A value that carries credentials itself: a URL with a password
    (`mysql://nova:PASSWORD@db/nova`), or options and assignments inside it that give a secret
    (`--requirepass X`, `--masterauth=X`, `DB_PASSWORD=X`), as in `EXTRA_OPTS="-p 6379
    --requirepass X"`, or the short flags of known programs that do (`mysqladmin -pX ping`,
    `redis-cli -a X`: see SECRET_FLAGS)."""
    if any(is_secret_literal(m.group(1)) for m in _URL_CREDENTIALS.finditer(value)):
        return True
    if flag_secrets(value.split(), shell=True):
        return True
    words = [word.strip("'\"") for word in value.split()]
    for position, word in enumerate(words):
        name, equals, given = word.partition("=")
        if equals:
            if name and is_secret_name(name) and is_secret_literal(given):
                return True
        elif is_option_name(word) and is_secret_name(word) and position + 1 < len(words):
            following = words[position + 1]
            if not following.startswith("-") and is_secret_literal(following):
                return True
    return False


def named_port(hint: str, port: int) -> str:
    """The port's well-known name (`http` for 80), else one made of `hint`."""
    named = well_known_port_name(port)
    return named if not named.startswith("tcp-") else port_name(hint)


def well_known_port_name(port: int, protocol: str = "TCP") -> str:
    """`mysql` for 3306, `tcp-1358` for a port nobody named."""
    known = PORT_NAMES.get(port)
    return known if known and protocol == "TCP" else port_name(f"{protocol.lower()}-{port}")
