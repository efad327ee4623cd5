"""A work queue of HAService keys, as controllers use: deduplicated, never two workers on one key,
and per-key exponential backoff for failures.

A burst of watch events (a rollout touches pods many times a second) collapses into one pending
reconcile per HAService; a key that changes while it is being reconciled is done once more after.
Runs on the event loop; workers call `get` / `done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 1.0, max_delay: float = 300.0) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self.base_delay = base_delay
        self.max_delay = max_delay

    def add(self, key: K) -> None:
        if key in self._pending:
            return
        if key in self._active:
            self._dirty.add(key)
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add later; an earlier timer for the same key wins, so a key is never scheduled twice."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        existing = self._timers.get(key)
        if existing is not None and not existing.cancelled() and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def backoff(self, key: K) -> float:
        """The next delay for a key that failed again: base, 2x base, 4x base, ... up to max."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(self.base_delay * 2 ** (failures - 1), self.max_delay))

    def forget(self, key: K) -> None:
        """A success: the next failure starts the backoff again from the base delay."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)
