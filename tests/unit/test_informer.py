"""The informer's list/watch protocol (against scripted responses) and the store's relists."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from haoperator.controller.informer import Informer
from haoperator.controller.kube import Kube
from haoperator.controller.store import Store


class Response:
    def __init__(self, status: int, chunks: list[bytes]) -> None:
        self.status, self.chunks = status, chunks
        self.data = b"".join(chunks)
        self.released = False

    def read(self) -> bytes:
        return self.data

    def stream(self, amt: int, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True


def page(items: list[dict[str, Any]], version: str, more: str = "") -> Response:
    meta = {"resourceVersion": version, **({"continue": more} if more else {})}
    return Response(200, [json.dumps({"items": items, "metadata": meta}).encode()])


def pod(name: str, version: str, service: str = "web") -> dict[str, Any]:
    labels = {"haoperator.dev/service": service}
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels,
                         "resourceVersion": version}}  # fmt: skip


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class ScriptedApi:
    """An ApiClient that answers each request, list page or watch, with the next response of a
    script; the informer's stop is set when the script runs out."""

    def __init__(self, script: list[Response], stop: threading.Event) -> None:
        self.script, self.stop = script, stop
        self.queries: list[dict[str, str]] = []
        self.rest_client = self
        self.pool_manager = self

    def param_serialize(self, method: str, path: str, **parts: Any) -> tuple[Any, ...]:
        self.queries.append(dict(parts.get("query_params") or []))
        return method, path, {}, None, None

    def _next(self) -> Response:
        if not self.script:
            self.stop.set()
            return Response(200, [])
        return self.script.pop(0)

    def call_api(self, *_: Any, **__: Any) -> Response:
        return self._next()

    def request(self, *_: Any, **__: Any) -> Response:
        return self._next()


class Scripted(Informer):
    def __init__(self, script: list[Response], **callbacks: Any) -> None:
        stop = threading.Event()
        self.api = ScriptedApi(script, stop)
        super().__init__(
            Kube(self.api),  # type: ignore[arg-type]
            kind="Pod",
            namespace="ns",
            selector="app.kubernetes.io/managed-by=haoperator",
            stop=stop,
            **callbacks,
        )

    @property
    def queries(self) -> list[dict[str, str]]:
        return self.api.queries


def test_lists_every_page_then_watches_from_the_list_version_across_chunk_boundaries() -> None:
    listed: list[list[str]] = []
    seen: list[tuple[str, str]] = []
    whole = line("ADDED", pod("c", "11")) + line(
        "BOOKMARK", {"metadata": {"resourceVersion": "12"}}
    )
    informer = Scripted(
        [
            page([pod("a", "1")], "10", more="next"),
            page([pod("b", "2")], "10"),
            # One event split across two chunks, and a bookmark that only moves the version.
            Response(200, [whole[:17], whole[17:], line("DELETED", pod("a", "13"))]),
        ],
        on_list=lambda objs: listed.append([o["metadata"]["name"] for o in objs]),
        on_event=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
    )
    informer.run()
    assert listed == [["a", "b"]]
    assert seen == [("ADDED", "c"), ("DELETED", "a")]
    assert informer.queries[1]["continue"] == "next"
    assert informer.queries[2]["resourceVersion"] == "10"
    assert informer.queries[2]["allowWatchBookmarks"] == "true"
    assert informer.queries[3]["resourceVersion"] == "13"  # resumed after the last event
    assert informer.synced


def test_an_expired_version_means_a_fresh_list() -> None:
    lists: list[int] = []
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    informer = Scripted(
        [
            page([pod("a", "1")], "10"),
            Response(200, [json.dumps(gone).encode() + b"\n"]),
            page([pod("b", "2")], "20"),
            Response(410, [b'{"code": 410}']),
            page([], "30"),
        ],
        on_list=lambda objs: lists.append(len(objs)),
        on_event=lambda kind, obj: None,
    )
    informer.run()
    assert lists == [1, 1, 0]
    assert informer.failing_since is None  # expiry is routine, not a failure


def test_a_relist_replaces_only_that_kind_in_that_namespace() -> None:
    store = Store()
    store.put_child({"kind": "Service", **pod("web", "1")})
    store.put_child({"kind": "Deployment", **pod("web", "1")})
    other = {"metadata": {**pod("db", "1", "db")["metadata"], "namespace": "elsewhere"}}
    store.put_child({"kind": "Service", **other})

    affected = store.resync_children("Service", "ns", [])

    assert affected == [("ns", "web")]
    assert set(store.snapshot(("ns", "web")).children) == {("Deployment", "web")}
    assert set(store.snapshot(("elsewhere", "db")).children) == {("Service", "db")}


def test_a_pod_relist_forgets_pods_deleted_while_the_watch_was_down() -> None:
    store = Store()
    store.put_pod(pod("web-1", "1"))
    store.put_pod(pod("web-2", "1"))
    affected = store.resync_pods("ns", [pod("web-2", "5")])
    assert affected == [("ns", "web")]
    assert [p["metadata"]["name"] for p in store.snapshot(("ns", "web")).pods] == ["web-2"]


class WatchApi:
    """Just what Kube.watch uses of an ApiClient: serialise, then the pool manager."""

    def __init__(self, response: Response) -> None:
        self.response = response
        self.urls: list[str] = []
        self.rest_client = self
        self.pool_manager = self

    def param_serialize(self, method: str, path: str, **kwargs: Any) -> tuple[Any, ...]:
        query = "&".join(f"{k}={v}" for k, v in kwargs["query_params"])
        return method, f"{path}?{query}", {}, None, None

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.urls.append(url)
        return self.response


def test_a_watch_yields_parsed_objects_split_across_chunks_and_releases_its_connection() -> None:
    """The ha-elector's watches: plain JSON, never the client's model objects (a V1Pod made
    a fresh sidecar ~80 MB bigger, past its limit, on a real node)."""
    from haoperator.controller.kube import Kube

    events = line("ADDED", pod("a", "1")) + line("MODIFIED", pod("a", "2"))
    response = Response(200, [events[:17], events[17:]])
    api = WatchApi(response)
    seen = list(Kube(api).watch("Pod", "ns", field_selector="metadata.name=a"))  # type: ignore[arg-type]
    assert [(kind, obj["metadata"]["resourceVersion"]) for kind, obj in seen] == [
        ("ADDED", "1"),
        ("MODIFIED", "2"),
    ]
    assert "fieldSelector=metadata.name=a" in api.urls[0]
    assert response.released


def test_a_watch_error_event_is_an_api_error() -> None:
    import pytest

    from haoperator.controller.kube import ApiError, Kube

    gone = line("ERROR", {"code": 410, "message": "too old resource version"})
    with pytest.raises(ApiError) as raised:
        list(Kube(WatchApi(Response(200, [gone]))).watch("Lease", "ns"))  # type: ignore[arg-type]
    assert raised.value.status == 410
