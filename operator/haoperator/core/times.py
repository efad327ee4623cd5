"""Kubernetes timestamps (RFC 3339, UTC) to and from epoch seconds: the one place they are
parsed and written, by the operator and the elector alike."""

from __future__ import annotations

from datetime import UTC, datetime


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of a timestamp as the API server writes them (`...Z`, with or without
    fractions); None for none or one that does not parse."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def stamp(at: float) -> str:
    """A Time (seconds): what conditions, events and node bans carry."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_stamp(at: float) -> str:
    """A MicroTime: what a Lease's acquireTime and renewTime carry."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
