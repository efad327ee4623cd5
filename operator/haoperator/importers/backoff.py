"""How long the kubelet takes to restart a crashing container N times: budgets that can fire.

A source system counts restarts that come quickly (systemd restarts after `RestartSec`, pacemaker
at once). The kubelet does not: after a container exits it waits 10 s before the first restart,
then doubles the wait for each further one, up to 300 s (the wait is forgotten only after the
container has run for 10 minutes). Four restarts therefore take 10 + 20 + 40 + 80 s of waiting
alone, so a budget copied literally ("5 restarts within 60 s") can never be reached and the
service crash-loops on the same node forever.

`window_for_restarts(n)` is the window that holds `n` restarts of a container that fails
`RUN_SECONDS` after it starts; an importer that keeps a source's count widens the window to at
least this (and says so in its report). The operator reaches the limit on more than
`maxRestarts` restarts within `windowSeconds`, so a budget of `maxRestarts: M` needs
`window_for_restarts(M + 1)`.
"""

from __future__ import annotations

from haoperator.api.base import MAX_WINDOW_SECONDS

BACKOFF_INITIAL_SECONDS = 10
"""The kubelet's wait before the first restart of a container that exited."""

BACKOFF_CAP_SECONDS = 300
"""The longest wait: each further restart doubles the wait until this."""

RUN_SECONDS = 10
"""How long a failing container is taken to run before it exits again (start, then fail)."""


def backoff_delays(restarts: int) -> list[int]:
    """The kubelet's wait before each of `restarts` consecutive restarts: 10, 20, 40, ... 300."""
    delays: list[int] = []
    delay = BACKOFF_INITIAL_SECONDS
    for _ in range(max(0, restarts)):
        delays.append(delay)
        delay = min(delay * 2, BACKOFF_CAP_SECONDS)
    return delays


def window_for_restarts(restarts: int, *, run_seconds: int = RUN_SECONDS) -> int:
    """Seconds within which a crash-looping container is restarted `restarts` times under the
    kubelet's back-off (each restart: its wait plus `run_seconds` of running before the next
    failure), counted from the first failure; at least 1, at most MAX_WINDOW_SECONDS (a day)."""
    total = sum(delay + max(0, run_seconds) for delay in backoff_delays(restarts))
    return min(max(1, total), MAX_WINDOW_SECONDS)
