"""Pure: which of the fields we manage on a child differ from what the API server holds.

Server-side apply owns exactly the fields we render, so drift is a field of our rendering whose
value on the server is different or gone. Fields the server or other controllers add (defaults,
status, the Deployment's revision annotation, a Service's clusterIP) are not in our rendering and
so are never drift: we do not fight over them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES: dict[str, Decimal | int] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def quantity(value: object) -> Decimal | None:
    """A Kubernetes resource quantity as a number (the server rewrites "0.5" as "500m")."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value)
    for suffix, factor in _SUFFIXES.items():
        if text.endswith(suffix):
            text, multiplier = text[: -len(suffix)], Decimal(factor)
            break
    else:
        multiplier = Decimal(1)
    try:
        return Decimal(text) * multiplier
    except InvalidOperation:
        return None


def _same_scalar(want: object, have: object) -> bool:
    if want == have:
        return True
    if isinstance(want, str) or isinstance(have, str):
        a, b = quantity(want), quantity(have)
        return a is not None and a == b
    return False


IDENTITY = ("apiVersion", "kind")
"""What names an object rather than being a field of it: nobody can edit them, and the API
server leaves them out of the items of a list."""


def differences(want: Any, have: Any, path: str = "", limit: int = 5) -> list[str]:
    """Paths (with the values) where `have` does not contain `want`; at most `limit` of them.
    Top-level identity (apiVersion, kind) is not compared: it is not a field that can drift."""
    found: list[str] = []
    if not path and isinstance(want, dict):
        want = {key: value for key, value in want.items() if key not in IDENTITY}
    _walk(want, have, path, found, limit)
    return found


def _walk(want: Any, have: Any, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if isinstance(want, dict):
        if not isinstance(have, dict):
            found.append(f"{path or '.'}: missing")
            return
        for key, value in want.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in have:
                if value not in (None, {}, []):
                    found.append(f"{child}: missing")
                continue
            _walk(value, have[key], child, found, limit)
    elif isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            count = len(have) if isinstance(have, list) else "no"
            found.append(f"{path}: {count} items, want {len(want)}")
            return
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            _walk(w, h, f"{path}[{index}]", found, limit)
    elif not _same_scalar(want, have):
        found.append(f"{path}: {_short(have)} (want {_short(want)})")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
