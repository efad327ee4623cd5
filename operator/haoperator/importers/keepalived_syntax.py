"""keepalived.conf's syntax: statements of words, blocks in braces, `!` and `#` comments, double
quotes around words with spaces.

Written by hand rather than borrowed (configparser and shlex know neither the braces nor the
comments) so that every statement keeps its line, and an unbalanced brace or quote is reported at
the line where it happens.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from haoperator.importers.common import Unreadable, check_size


@dataclass
class Statement:
    words: list[str]
    line: int
    block: list[Statement] | None = None
    """The statements in braces after the words; None for a plain statement."""

    @property
    def keyword(self) -> str:
        return self.words[0]

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    def all(self, keyword: str) -> list[Statement]:
        return [s for s in self.block or [] if s.keyword == keyword]

    def first(self, keyword: str) -> Statement | None:
        found = self.all(keyword)
        return found[0] if found else None

    def arg(self, keyword: str) -> str | None:
        """The first argument of the first `keyword` statement in the block."""
        found = self.first(keyword)
        return found.args[0] if found is not None and found.args else None

    def has(self, keyword: str) -> bool:
        return self.first(keyword) is not None


def _words(text: str, line: int) -> list[str]:
    words: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char in "!#":
            break
        elif char in "{}":
            words.append(char)
            position += 1
        elif char == '"':
            end = text.find('"', position + 1)
            if end < 0:
                raise Unreadable(f"line {line}", "a quote is never closed")
            words.append(text[position + 1 : end])
            position = end + 1
        else:
            end = position
            while end < len(text) and not text[end].isspace() and text[end] not in '{}"':
                end += 1
            words.append(text[position:end])
            position = end
    return words


def parse(text: str) -> list[Statement]:
    """The top-level statements; raises Unreadable at the line of an unbalanced brace or quote."""
    check_size(text)
    top: list[Statement] = []
    open_blocks: list[Statement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        pending: list[str] = []
        for word in _words(raw, number):
            current = open_blocks[-1].block if open_blocks else top
            assert current is not None
            if word == "{":
                if not pending:
                    raise Unreadable(f"line {number}", "'{' opens a block without a keyword")
                statement = Statement(pending, number, [])
                current.append(statement)
                open_blocks.append(statement)
                pending = []
            elif word == "}":
                if pending:
                    current.append(Statement(pending, number))
                    pending = []
                if not open_blocks:
                    raise Unreadable(f"line {number}", "'}' closes no block")
                open_blocks.pop()
            else:
                pending.append(word)
        if pending:
            current = open_blocks[-1].block if open_blocks else top
            assert current is not None
            current.append(Statement(pending, number))
    if open_blocks:
        innermost = open_blocks[-1]
        raise Unreadable(
            f"line {innermost.line}", f"block {' '.join(innermost.words)!r} is never closed"
        )
    return top


def number(statement: Statement, value: str | None, low: float, high: float) -> float:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        number = math.nan
    if not low <= number <= high:
        raise Unreadable(
            f"line {statement.line}", f"{statement.keyword} needs a number from {low:g} to {high:g}"
        )
    return number


def value(block: Statement, keyword: str, low: float, high: float) -> float | None:
    found = block.first(keyword)
    return (
        None if found is None else number(found, found.args[0] if found.args else None, low, high)
    )


CONDITIONAL_PREFIXES = ("@", "$", "~")
"""Lines keepalived expands before it reads them: `@ID` conditional lines (kept when keepalived
runs with `-i ID`), `$NAME=VALUE` parameters and `~SEQ(...)`/`~LST(...)` generators."""


def is_conditional(statement: Statement) -> bool:
    return statement.keyword.startswith(CONDITIONAL_PREFIXES)


def _parameter_name(word: str) -> str:
    """`$NAME` of `$NAME=VALUE`, `~SEQ` of `~SEQ(...)`: the value may be a secret."""
    return word.split("=", 1)[0].split("(", 1)[0]


def conditional_name(statement: Statement) -> str:
    """How a report names a conditional or parameter line, never with its value: `@high priority`,
    `$PRIORITY`, `~SEQ`."""
    first = _parameter_name(statement.keyword)
    if statement.keyword.startswith("@") and statement.args:
        return f"{first} {_parameter_name(statement.args[0])}"
    return first


def address(statement: Statement, word: str) -> str:
    try:
        return str(ipaddress.ip_interface(word).ip)
    except ValueError:
        raise Unreadable(f"line {statement.line}", _not_an_address(word)) from None


def _not_an_address(word: str) -> str:
    if "$" in word:
        return (
            f"{word!r} uses a $parameter, which is not expanded: import the expanded configuration"
        )
    return f"{word!r} is not an IP address"


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_range(statement: Statement, word: str) -> tuple[Address, Address]:
    """The first and last address of a virtual_server_group member: `10.0.0.1`, `10.0.0.3-10`
    (the last byte), `10.0.0.250-10.0.1.10`, `ae00::2-9` (the last group, in hex) or a network
    `10.0.2.8/29`."""
    try:
        if "/" in word:
            network = ipaddress.ip_network(word, strict=False)
            return network[0], network[-1]
        start_text, dash, end_text = word.partition("-")
        start = ipaddress.ip_address(start_text)
        if not dash:
            return start, start
        if "." in end_text or ":" in end_text:
            end = ipaddress.ip_address(end_text)
        elif start.version == 4:
            end = ipaddress.ip_address(f"{start_text.rsplit('.', 1)[0]}.{int(end_text)}")
        else:
            end = ipaddress.ip_address(f"{start_text.rsplit(':', 1)[0]}:{end_text}")
    except ValueError:
        raise Unreadable(
            f"line {statement.line}", f"{_not_an_address(word)} or address range"
        ) from None
    if end.version != start.version or int(end) < int(start):
        raise Unreadable(f"line {statement.line}", f"{word!r} is not an address range")
    return start, end
