"""The plan's first input: what the operator sees of one HAService, as plain data.

A World is built from the watch cache (and, within one reconcile, from what the executor found
on the API server that the cache did not have yet). It holds no client and reads no clock, so a
plan can be computed from a World written by hand in a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from haoperator.api import HAService
from haoperator.api.base import MAX_REPLICAS
from haoperator.api.messages import describe
from haoperator.core.objects import Object
from haoperator.core.ownership import ChildKey
from haoperator.core.vocabulary import DEFAULT_IMAGE, Annotation

Key = tuple[str, str]
"""(namespace, name) of an HAService."""


@dataclass(frozen=True)
class Operator:
    """What a plan needs to know of the operator that runs it."""

    elector_image: str = DEFAULT_IMAGE
    max_replicas: int = MAX_REPLICAS
    started_at: float = 0.0
    """When this operator started (epoch seconds): a container that failed before then was
    reported by whoever ran then, or by nobody; either way it is not news now."""


@dataclass(frozen=True)
class Refused:
    """A child the API server would not take, as the executor met it this reconcile."""

    applied_hash: str
    reason: str
    """InvalidSpec (the object is wrong) or Forbidden (a policy refuses it)."""
    message: str


@dataclass(frozen=True)
class World:
    key: Key
    haservice: Object | None
    """The HAService as cached; None once it is gone."""
    spec: HAService | None = None
    """The HAService validated; None when it is gone or invalid."""
    invalid: str | None = None
    """Why the HAService does not validate (a CRD older than this operator would admit it)."""
    deleted: bool = False
    """It was seen deleted (the store's tombstone): this is the one reconcile that cleans up."""
    children: Mapping[ChildKey, Object] = field(default_factory=dict)
    """Its children as cached, with the electors' Lease and the ActivePassive EndpointSlices."""
    pods: Sequence[Object] = ()
    nodes: Mapping[str, Object] = field(default_factory=dict)
    """Every node: bans are lifted whoever they were for."""
    failed_create: tuple[str, float] | None = None
    """Its StatefulSet's last FailedCreate event: (message, epoch seconds)."""
    operator: Operator = field(default_factory=Operator)
    discovered: Mapping[ChildKey, Object | None] = field(default_factory=dict)
    """What the executor read or wrote this reconcile, newer than the cache: an object a
    create-only apply met (or None: it vanished again), a child just applied or deleted."""
    refused: Mapping[ChildKey, Refused] = field(default_factory=dict)
    """Children the API server refused this reconcile."""

    @classmethod
    def of(
        cls,
        key: Key,
        haservice: Object | None,
        *,
        children: Mapping[ChildKey, Object] | None = None,
        pods: Sequence[Object] = (),
        nodes: Mapping[str, Object] | None = None,
        failed_create: tuple[str, float] | None = None,
        operator: Operator | None = None,
        deleted: bool = False,
    ) -> World:
        """The world of `haservice`, validated: the spec, or why it is not valid."""
        spec, invalid = None, None
        if haservice is not None:
            try:
                spec = HAService.model_validate(haservice)
            except ValidationError as exc:
                invalid = "; ".join(describe(exc))
        return cls(
            key=key,
            haservice=haservice,
            spec=spec,
            invalid=invalid,
            deleted=deleted,
            children=children or {},
            pods=pods,
            nodes=nodes or {},
            failed_create=failed_create,
            operator=operator or Operator(),
        )

    def observed(self, key: ChildKey) -> Object | None:
        """A child as last seen: what the executor found this reconcile, else the cache."""
        if key in self.discovered:
            return self.discovered[key]
        return self.children.get(key)

    def existing(self) -> dict[ChildKey, Object]:
        """Every child known to exist now."""
        found = {**self.children, **self.discovered}
        return {key: obj for key, obj in found.items() if obj is not None}

    def with_findings(
        self, discovered: Mapping[ChildKey, Object | None], refused: Mapping[ChildKey, Refused]
    ) -> World:
        """This world with what the executor has just found: the next plan judges it."""
        return replace(
            self,
            discovered={**self.discovered, **discovered},
            refused={**self.refused, **refused},
        )

    @property
    def generation(self) -> int:
        return int(((self.haservice or {}).get("metadata") or {}).get("generation", 0))

    @property
    def paused(self) -> bool:
        """A user paused the operator for this HAService (maintenance): `"true"`, any case."""
        annotations = ((self.haservice or {}).get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(Annotation.PAUSED, "")).strip().lower() == "true"

    @property
    def status(self) -> dict[str, Any]:
        return dict((self.haservice or {}).get("status") or {})
