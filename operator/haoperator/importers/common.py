"""What the three importers share: the report, input errors, names, durations, secrets, options.

An importer never decides alone what a user loses in translation: everything it cannot express
goes into the `Report`, one item per thing, so `haoperator import` can print it on stderr. Values
that may be secrets never reach the report or the manifests; only their names do.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
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
_ISO_8601 = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def duration(text: str) -> float:
    """Seconds in a pacemaker interval ("10", "10s", "1min", "500ms", "PT1M") or a systemd time
    span ("1min 30s"). Raises ValueError for anything else."""
    value = text.strip()
    if value.upper().startswith("P"):
        iso = _ISO_8601.fullmatch(value.upper())
        parts = {key: float(part) for key, part in (iso.groupdict() if iso else {}).items() if part}
        if not parts:
            raise ValueError(f"{text!r} is not a duration")
        scale = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        return sum(amount * scale[unit] for unit, amount in parts.items())
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


_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential")
_SECRET_WORDS = {"pass", "pw", "pwd", "key", "psk", "apikey"}
_PATH_WORDS = {"file", "path", "dir", "directory"}
"""`--password-file`, `KEY_PATH`: where a secret is, not the secret."""
_URL_CREDENTIALS = re.compile(r"://[^/\s:@]*:[^/\s@]+@")


def is_secret_name(name: str) -> bool:
    """A setting whose value is probably a secret: `auth_pass`, `MYSQL_PASSWORD`, `--api-key`."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if not words or words[-1] in _PATH_WORDS:
        return False
    lowered = "_".join(words)
    return any(part in lowered for part in _SECRET_PARTS) or any(w in _SECRET_WORDS for w in words)


def has_secret_value(value: str) -> bool:
    """A value that carries credentials itself, such as `mysql://nova:PASSWORD@db/nova`."""
    return _URL_CREDENTIALS.search(value) is not None


def named_port(hint: str, port: int) -> str:
    """The port's well-known name (`http` for 80), else one made of `hint`."""
    named = well_known_port_name(port)
    return named if not named.startswith("tcp-") else port_name(hint)


def well_known_port_name(port: int, protocol: str = "TCP") -> str:
    """`mysql` for 3306, `tcp-1358` for a port nobody named."""
    known = PORT_NAMES.get(port)
    return known if known and protocol == "TCP" else port_name(f"{protocol.lower()}-{port}")
