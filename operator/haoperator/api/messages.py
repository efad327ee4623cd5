"""Turn pydantic's validation errors into one line per problem that a user can act on.

A line names the field by its path on the wire (`spec.activePassive.renewDeadlineSeconds`) and says
what is wrong in words, the way the API server's own messages do; no pydantic jargon, no traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from haoperator.api.base import PATTERN_MEANINGS, RuleViolations

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def field_path(location: Sequence[int | str]) -> str:
    """`("spec", "service", "ports", 0, "name")` -> `spec.service.ports[0].name`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{part}]"
    return path or "(document)"


def _shown(value: Any) -> str:
    return (
        json.dumps(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    )


def _characters(count: int) -> str:
    return "character" if count == 1 else "characters"


def _items(count: int) -> str:
    return "item" if count == 1 else "items"


def _too_short_string(ctx: dict[str, Any]) -> str:
    minimum = ctx["min_length"]
    return (
        "must not be empty"
        if minimum == 1
        else f"must be at least {minimum} {_characters(minimum)}"
    )


def _pattern(ctx: dict[str, Any]) -> str:
    pattern = str(ctx["pattern"])
    return (
        f"must be {PATTERN_MEANINGS[pattern]}"
        if pattern in PATTERN_MEANINGS
        else f"must match {pattern}"
    )


_REASONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: (
        "is not a field of this object (check the spelling and the nesting)"
    ),
    "literal_error": lambda ctx: f"must be {ctx['expected']}",
    "int_type": lambda ctx: "must be an integer",
    "int_from_float": lambda ctx: "must be an integer",
    "float_type": lambda ctx: "must be a number",
    "string_type": lambda ctx: "must be a string",
    "bool_type": lambda ctx: "must be true or false",
    "dict_type": lambda ctx: "must be a mapping (key: value)",
    "model_type": lambda ctx: "must be a mapping (key: value)",
    "model_attributes_type": lambda ctx: "must be a mapping (key: value)",
    "list_type": lambda ctx: "must be a list",
    "greater_than_equal": lambda ctx: f"must be at least {ctx['ge']}",
    "less_than_equal": lambda ctx: f"must be at most {ctx['le']}",
    "string_too_short": _too_short_string,
    "string_too_long": lambda ctx: (
        f"must be at most {ctx['max_length']} {_characters(ctx['max_length'])}"
    ),
    "string_pattern_mismatch": _pattern,
    "too_short": lambda ctx: f"must have at least {ctx['min_length']} {_items(ctx['min_length'])}",
    "too_long": lambda ctx: f"must have at most {ctx['max_length']} {_items(ctx['max_length'])}",
}

_SHOW_INPUT = {"literal_error", "int_type", "string_type", "bool_type", "float_type"}


def _lines(error: ErrorDetails) -> list[str]:
    location = tuple(error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    cause = ctx.get("error")
    if error["type"] == "value_error" and isinstance(cause, RuleViolations):
        return [
            f"{field_path(location + tuple(relative.split('.')))}: {reason}"
            for relative, reason in cause.problems
        ]
    if error["type"] == "value_error" and cause is not None:
        return [f"{field_path(location)}: {cause}"]
    explain = _REASONS.get(error["type"])
    reason = explain(ctx) if explain else error["msg"][:1].lower() + error["msg"][1:]
    if error["type"] in _SHOW_INPUT:
        reason += f" (got {_shown(error['input'])})"
    return [f"{field_path(location)}: {reason}"]


def describe(error: ValidationError) -> list[str]:
    """One line per problem: `<field path>: <what is wrong>`, in the order pydantic found them."""
    lines: list[str] = []
    for detail in error.errors():
        for line in _lines(detail):
            if line not in lines:
                lines.append(line)
    return lines
