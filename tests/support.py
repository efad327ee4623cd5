"""Helpers shared by the test tiers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def kubeconfig_path() -> Path:
    return Path(os.environ.get("KUBECONFIG", str(REPO / ".testenv" / "kubeconfig")))


def exists(read: Callable[[], object]) -> bool:
    """Whether `read` (a client call that reads one object) finds it: False on 404."""
    from kubernetes import client

    try:
        read()
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wait_until(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until `check` returns something truthy; fail with `what` when time runs out.

    Tests wait on conditions, never on fixed sleeps, and never assert on elapsed time.
    """
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last
