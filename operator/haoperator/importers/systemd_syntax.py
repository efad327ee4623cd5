"""systemd unit files' syntax, read by a parser of its own.

configparser does not fit: it refuses repeated keys (`Environment=` twice is normal), knows nothing
of backslash continuations, and treats `;` and `#` differently from systemd. Every entry keeps its
line, so errors can point at it; values are never echoed in errors, as they may hold secrets.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from haoperator.importers.common import Unreadable, check_size


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int


def parse_unit(text: str) -> dict[str, list[Entry]]:
    """Sections of `KEY=VALUE` entries, repeated keys kept in order."""
    check_size(text)
    sections: dict[str, list[Entry]] = {}
    current: list[Entry] | None = None
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith(("#", ";")):
            continue
        while line.endswith("\\") and index < len(lines):
            following = lines[index].strip()
            index += 1
            if not following.startswith(("#", ";")):
                line = f"{line[:-1].rstrip()} {following}"
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise Unreadable(f"line {number}", "a section header must be [Name]")
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        if not sep or re.fullmatch(r"[A-Za-z0-9_.-]+", key.strip()) is None:
            raise Unreadable(f"line {number}", "expected KEY=VALUE or [Section]")
        if current is None:
            raise Unreadable(f"line {number}", f"{key.strip()}= comes before any [Section]")
        current.append(Entry(key.strip(), value.strip(), number))
    return sections


def last(entries: list[Entry], key: str) -> Entry | None:
    found = [entry for entry in entries if entry.key == key]
    return found[-1] if found else None


def list_value(entries: list[Entry], key: str) -> list[Entry]:
    """A list-valued key: every assignment adds, an empty one clears."""
    values: list[Entry] = []
    for entry in entries:
        if entry.key == key:
            values = [*values, entry] if entry.value else []
    return values


def split_words(entry: Entry) -> list[str]:
    try:
        return shlex.split(entry.value)
    except ValueError:
        raise Unreadable(f"line {entry.line}", f"{entry.key}= has an unclosed quote") from None
