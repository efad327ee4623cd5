"""Lean list-and-watch of the high-volume kinds (pods and the children), feeding the Store.

kopf handles the HAServices themselves. For pods, workloads, EndpointSlices and the other
children, a burst of a few thousand events a minute went through kopf's per-event machinery
(per-object memories, loggers, cause detection, handler invocation) at ~2 ms of CPU each, on the
same two cores as the control plane: measured, merely watching 500 HAServices' children made the
control plane's own work 1.45x slower. Here an event costs a JSON decode and a store update.

Each Informer is one thread: list (the store replaces what it held of that kind), then watch
from the list's resourceVersion with bookmarks; a watch that ends is resumed from the last
version seen, an expired version (410 Gone) or an error means a fresh list after a backoff.
Both go through the API layer (kube.py) on a connection pool of their own: a watch holds its
connection for minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from haoperator.controller.kube import ApiError, Kube

log = structlog.get_logger("haoperator.informer")
WATCH_SECONDS = 270
"""Server-side watch timeout."""
WATCH_GRACE = 60.0
"""The client gives up on a silent stream a minute after the server should have ended it."""
MAX_BACKOFF = 30.0


class Gone(Exception):
    """The resourceVersion to resume from is too old: list again."""


class Informer:
    def __init__(
        self,
        kube: Kube,
        *,
        kind: str,
        namespace: str | None,
        selector: str | None,
        field_selector: str | None = None,
        on_list: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        self.kube, self.kind, self.namespace, self.selector = kube, kind, namespace, selector
        self.field_selector = field_selector
        self.on_list, self.on_event, self.stop = on_list, on_event, stop
        self.synced = False
        self.listed = threading.Event()
        """Set after the first complete list: the store holds what existed then."""
        self.failing_since: float | None = None
        self.log = log.bind(kind=kind, namespace=namespace or "(all)")
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"informer-{kind}")

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                version = self._list()
                self.synced, self.failing_since, backoff = True, None, 1.0
                self.listed.set()
                while not self.stop.is_set():
                    version = self._watch(version)
            except Gone:
                continue  # list again at once: normal after a long disconnection
            except Exception as exc:  # the API server restarting, a network blip, a bug
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.log.warning("list/watch failed; retrying", error=str(exc), retry_in=backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _query(self, **extra: str) -> dict[str, str]:
        query = dict(extra)
        if self.selector:
            query["labelSelector"] = self.selector
        if self.field_selector:
            query["fieldSelector"] = self.field_selector
        return query

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        page_query = {"limit": "500"}
        while True:
            page = self.kube.list_page(self.kind, self.namespace, self._query(**page_query))
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                self.on_list(items)
                return str(meta.get("resourceVersion", ""))
            page_query = {"limit": "500", "continue": meta["continue"]}

    def _watch(self, version: str) -> str:
        """Follow changes from `version` until the server ends the watch; the last version."""
        events = self.kube.watch(
            self.kind,
            self.namespace,
            seconds=WATCH_SECONDS,
            label_selector=self.selector or "",
            field_selector=self.field_selector or "",
            version=version,
            bookmarks=True,
            grace=WATCH_GRACE,
        )
        try:
            for kind, obj in events:
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, obj)  # BOOKMARK: only the version moves on
                if self.stop.is_set():
                    break
        except ApiError as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        finally:
            events.close()
        return version
