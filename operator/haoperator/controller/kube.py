"""The one API layer: every request of the operator and of the elector sidecar goes through it.

Every call goes through `Kube.request` (or, for a watch's stream, `Kube.watch`), which
serialises, authenticates, times out and turns a failure into an `ApiError` carrying the
server's own reason and message, so that callers can report exactly what the API server said
(InvalidSpec) and tell a conflict from an outage. Paths come from `RESOURCES`, never by hand.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client import ApiClient

from haoperator.controller import metrics
from haoperator.core.objects import ObjectRef
from haoperator.core.times import stamp
from haoperator.core.vocabulary import DOMAIN, OPERATOR, Reason

FIELD_MANAGER = OPERATOR
CREATE_ONLY_VERSION = "1"
"""The resourceVersion that makes an apply create-only: etcd starts at revision 1 and its first
write is revision 2, so no object ever has it."""
DETERMINISTIC_500S = ("failed to create typed patch object", "failed to convert new object")
"""How the API server's 500s for an object it cannot take begin (see ApiError.invalid)."""


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)


RESOURCES: dict[str, Resource] = {
    "HAService": Resource("haoperator.dev", "v1alpha1", "haservices"),
    "Deployment": Resource("apps", "v1", "deployments"),
    "StatefulSet": Resource("apps", "v1", "statefulsets"),
    "Service": Resource("", "v1", "services"),
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets"),
    "ServiceAccount": Resource("", "v1", "serviceaccounts"),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "Pod": Resource("", "v1", "pods"),
    "Lease": Resource("coordination.k8s.io", "v1", "leases"),
    "Event": Resource("", "v1", "events"),
    "Node": Resource("", "v1", "nodes", namespaced=False),
    "EndpointSlice": Resource("discovery.k8s.io", "v1", "endpointslices"),
}


class ApiError(Exception):
    """A request the API server refused or could not answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def invalid(self) -> bool:
        """The server judged the object itself wrong: retrying the same object cannot help.

        Server-side apply answers some of these with 500 rather than 422: a field the schema
        does not declare, two list entries with the same key (container names, Service ports),
        a value that does not convert (a quantity such as `cpu: lots`). Those 500s say so in
        their message and are as final as a 422."""
        if self.status in (400, 422):
            return True
        return self.status == 500 and self.message.lstrip().startswith(DETERMINISTIC_500S)

    @property
    def refusal(self) -> str | None:
        """The reason to report for an object the API server would not take, or None when
        retrying may help (an outage, a conflict): InvalidSpec when the object itself is wrong,
        Forbidden when a policy refuses it (RBAC, a quota, an admission webhook)."""
        if self.invalid:
            return Reason.INVALID_SPEC
        if self.status == 403:
            return Reason.FORBIDDEN
        return None


def now_iso() -> str:
    return stamp(time.time())


class Kube:
    """Thin, synchronous access to the API server; safe to share between worker threads."""

    def __init__(
        self,
        api: ApiClient,
        *,
        timeout: float = 30.0,
        instance: str = "",
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        """`field_manager`: who our patches say wrote what (the operator, or an elector)."""
        self.api = api
        self.timeout = timeout
        self.instance = instance or OPERATOR
        self.field_manager = field_manager

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call; the parsed JSON answer, or ApiError with the server's words. `timeout`
        overrides the client's for this call."""
        m, url, headers, data, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        metrics.API_REQUESTS.labels(method).inc()
        try:
            response = self.api.call_api(
                m, url, header_params=headers, body=data,
                _request_timeout=self.timeout if timeout is None else timeout,
            )  # fmt: skip
            raw = response.read()
        except Exception as exc:  # connection refused, timeouts, TLS: all mean "not answered"
            raise ApiError(0, "Unavailable", str(exc)) from exc
        parsed: dict[str, Any] = json.loads(raw) if raw else {}
        if not 200 <= response.status < 300:
            raise ApiError(
                response.status,
                str(parsed.get("reason", "")),
                str(parsed.get("message", raw[:500])),
            )
        return parsed

    def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        seconds: int = 60,
        label_selector: str = "",
        field_selector: str = "",
        version: str = "",
        bookmarks: bool = False,
        grace: float = 15.0,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """Watch events (type, object) as parsed JSON until the server ends the watch after
        `seconds`; a connection silent for `grace` seconds longer is given up. From `version`
        when given, with BOOKMARK events (only the version moves) if `bookmarks`. An ERROR event
        or a refused watch is an ApiError (410: the version to resume from is too old). Not
        counted as a request: it lasts minutes. Closing the iterator releases the connection.
        No client models: turning one Pod into the `kubernetes` client's model objects grew a
        fresh ha-elector by ~80 MB, past its 128 MiB limit (OOMKilled on a real node)."""
        query = [("watch", "true"), ("timeoutSeconds", str(seconds))]
        for key, value in (
            ("labelSelector", label_selector),
            ("fieldSelector", field_selector),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true" if bookmarks else ""),
        ):
            if value:
                query.append((key, value))
        method, url, headers, body, _ = self.api.param_serialize(
            "GET",
            RESOURCES[kind].path(namespace),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.rest_client.pool_manager.request(
                method,
                url,
                headers=headers,
                body=body,
                preload_content=False,
                timeout=urllib3.Timeout(connect=10, read=seconds + grace),
            )
        except Exception as exc:  # as `request`: not answered
            raise ApiError(0, "Unavailable", str(exc)) from exc
        try:
            if response.status != 200:
                raise ApiError(response.status, "", response.data[:500].decode(errors="replace"))
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise ApiError(int(obj.get("code") or 0), "", str(obj.get("message")))
                    yield str(event.get("type")), obj
        finally:
            response.release_conn()

    # -- objects -------------------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST: create the object, or ApiError 409 when one of its name exists."""
        return self.request(
            "POST",
            RESOURCES[obj["kind"]].path(obj["metadata"].get("namespace")),
            obj,
            query={"fieldManager": self.field_manager},
        )

    def replace(self, obj: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """PUT: the whole object, conditional on its resourceVersion (409 when it is stale)."""
        meta = obj["metadata"]
        return self.request(
            "PUT",
            RESOURCES[obj["kind"]].path(meta.get("namespace"), meta["name"]),
            obj,
            query={"fieldManager": self.field_manager},
            timeout=timeout,
        )

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as field manager `haoperator`, taking back fields others changed."""
        resource = RESOURCES[obj["kind"]]
        meta = obj["metadata"]
        return self.request(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            obj,
            content_type="application/apply-patch+yaml",
            query={"fieldManager": self.field_manager, "force": "true"},
        )

    def create_only(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Server-side apply that only creates: None when an object of that name exists already
        (ours or not), which is left untouched. One request where a GET then an apply took two.

        An apply carrying a resourceVersion is a conditional update: it must match the live
        object's, or the server answers 409. No object can carry CREATE_ONLY_VERSION (etcd's
        first write is revision 2), and when there is no object the apply creates it, owning
        its fields as field manager `haoperator`, exactly as a plain apply would.
        """
        body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": CREATE_ONLY_VERSION}}
        try:
            return self.apply(body)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    def get(
        self, kind: str, namespace: str | None, name: str, *, timeout: float | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.request("GET", RESOURCES[kind].path(namespace, name), timeout=timeout)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict[str, Any]]:
        query = {"labelSelector": selector} if selector else None
        items: list[dict[str, Any]] = self.request(
            "GET", RESOURCES[kind].path(namespace), query=query
        ).get("items", [])
        for item in items:  # list items carry no kind
            item.setdefault("kind", kind)
        return items

    def list_page(self, kind: str, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        """One page of a list, as the server sends it (items without kind; metadata with the
        resourceVersion to watch from and the `continue` token of the next page)."""
        return self.request("GET", RESOURCES[kind].path(namespace), query=query)

    def delete(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        grace: int | None = None,
    ) -> bool:
        """Delete, only if it is still the object we mean (uid); False when it was already gone."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            self.request("DELETE", RESOURCES[kind].path(namespace, name), body)
        except ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        sub: str | None = None,
    ) -> dict[str, Any]:
        return self.request(
            "PATCH",
            RESOURCES[kind].path(namespace, name, sub),
            patch,
            content_type="application/merge-patch+json",
            query={"fieldManager": self.field_manager},
        )

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.patch("HAService", namespace, name, {"status": status}, sub="status")

    # -- events --------------------------------------------------------------------------------

    @staticmethod
    def event_name(about: ObjectRef, type_: str, reason: str, message: str) -> str:
        """One Event per object, type, reason and message: recording it again bumps its count
        instead of adding another (as the kubelet's recorder does)."""
        digest = hashlib.sha256(f"{about.uid}|{type_}|{reason}|{message}".encode()).hexdigest()[:16]
        return f"{about.name}.{digest}"

    def record_event(
        self, about: ObjectRef, type_: str, reason: str, message: str, *, count: int | None = None
    ) -> int:
        """Record an event, aggregated; its count now. `count`, the count it had when we last
        recorded it, saves reading it first (None: create it, or read the one that exists)."""
        name = self.event_name(about, type_, reason, message)
        when = now_iso()
        if count is None:
            try:
                self.request(
                    "POST",
                    RESOURCES["Event"].path(about.namespace),
                    self._event(about, name, type_, reason, message, when),
                )
                return 1
            except ApiError as exc:
                if exc.status != 409:
                    raise
            existing = self.get("Event", about.namespace, name)
            count = int((existing or {}).get("count", 1))
        try:
            self.patch("Event", about.namespace, name, {"count": count + 1, "lastTimestamp": when})
        except ApiError as exc:
            if exc.status != 404:  # expired meanwhile (events live an hour): start anew
                raise
            return self.record_event(about, type_, reason, message)
        return count + 1

    def _event(
        self, about: ObjectRef, name: str, type_: str, reason: str, message: str, when: str
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version or RESOURCES[about.kind].api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace,
                "uid": about.uid,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "source": {"component": OPERATOR},
            "reportingComponent": f"{DOMAIN}/{OPERATOR}",
            "reportingInstance": self.instance,
        }
