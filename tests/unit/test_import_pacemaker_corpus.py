"""The pacemaker importer on every CIB of the shared corpus (real configurations nobody here wrote):
each is imported or refused with `Unreadable`, never a traceback, and nothing the importer reads
is dropped silently: every meta attribute and op attribute of an imported resource (and every
rsc_defaults and op_defaults name, a bundle's runtime and network attributes, utilization) is
either one the importer translates (the TRANSLATED_* sets of pacemaker.py and
pacemaker_bundle.py) or named in the report, on a line about that resource.

The whole corpus is imported once, in this process (about a second for its ~790 files).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from haoperator.importers import Options, Report, Unreadable, import_pacemaker
from haoperator.importers.cib import Cib, Resource, parse
from haoperator.importers.pacemaker import (
    TRANSLATED_META,
    TRANSLATED_OP_ATTRIBUTES,
    TRANSLATED_OP_DEFAULTS,
)
from haoperator.importers.pacemaker_bundle import TRANSLATED_RUNTIME
from haoperator.importers.pacemaker_rules import ips, kind_of, read_topology
from haoperator.importers.workload import ANNOTATION_SOURCE

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpora/import"
PACEMAKER = CORPUS / "pacemaker"


@dataclass
class Walk:
    imported: int = 0
    refused: int = 0
    folded: int = 0
    """Address resources folded into an imported service's Service, checked as well."""
    crashes: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    """`file: resource: name` for every name neither translated nor reported."""


def _named(name: str, lines: list[str]) -> bool:
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    return any(pattern.search(line) for line in lines)


def _about(lines: list[str], subject: str) -> list[str]:
    return [line for line in lines if line.split(": ", 2)[1:2] == [subject]]


def _check_resource(top: Resource, lines: list[str], where: str, walk: Walk) -> None:
    about = _about(lines, f"{top.kind} {top.id}")
    for resource in top.walk():
        if resource.kind == "primitive" and kind_of(resource) != "service":
            # left out whole (storage, fencing, infrastructure) and named by id, or an address
            # folded into the Service and named by its address
            names = [resource.id, *ips(resource)]
            if not any(_named(name, about) for name in names):
                walk.silent.append(f"{where}: {resource.id}: left out without a word")
            continue
        for name in resource.meta:
            if name not in TRANSLATED_META and not _named(name, about):
                walk.silent.append(f"{where}: {resource.id}: meta {name}")
        for op in resource.ops:
            for name in op.attrs:
                if name not in TRANSLATED_OP_ATTRIBUTES and not _named(name, about):
                    walk.silent.append(f"{where}: {resource.id}: op {op.label}: {name}")
            for name in op.nvpairs:
                if not _named(name, about):
                    walk.silent.append(f"{where}: {resource.id}: op {op.label}: nvpair {name}")
        if resource.utilization and not _named("utilization", about):
            walk.silent.append(f"{where}: {resource.id}: utilization")
    if top.bundle is not None:
        for name in top.bundle.runtime_attrs:
            if name not in TRANSLATED_RUNTIME and not _named(name, about):
                walk.silent.append(f"{where}: {top.id}: {top.bundle.runtime} {name}")
        for name in set(top.bundle.network) - {"id"}:
            if not _named(name, about):
                walk.silent.append(f"{where}: {top.id}: network {name}")


_DEFAULT_META = {"target-role": ("started",), "is-managed": ("true", "yes", "on", "1", "y")}
"""Meta attributes of a folded resource that say nothing when they hold these values."""


def _check_folded(
    folded: Resource, owner: Resource, lines: list[str], where: str, walk: Walk
) -> None:
    """An address resource folded into `owner`'s Service: named, and every meta attribute (none
    is translated on an address: the Service's cluster IP replaces it), op attribute beyond the
    usual ones, op nvpair and utilization of it reported on a line about the owner that names the
    resource."""
    about = _about(lines, f"{owner.kind} {owner.id}")
    if not any(_named(name, about) for name in [folded.id, *ips(folded)]):
        walk.silent.append(f"{where}: {folded.id}: folded into {owner.id} without a word")
    for resource in folded.walk():
        # on a line that names the resource: the service's own lines name the same attributes
        about = [
            line
            for line in _about(lines, f"{owner.kind} {owner.id}")
            if _named(resource.id, [line])
        ]
        for name, value in resource.meta.items():
            quiet = name == "description" or value.strip().lower() in _DEFAULT_META.get(name, ())
            if not quiet and not _named(name, about):
                walk.silent.append(f"{where}: {resource.id} (folded): meta {name}")
        for op in resource.ops:
            for name in op.attrs:
                if name not in TRANSLATED_OP_ATTRIBUTES and not _named(name, about):
                    walk.silent.append(f"{where}: {resource.id} (folded): op {op.label}: {name}")
            if (op.on_fail or "restart").lower() not in ("restart", "restart-container") and not (
                _named("on-fail", about)
            ):
                walk.silent.append(f"{where}: {resource.id} (folded): op {op.label}: on-fail")
            for name in op.nvpairs:
                if not _named(name, about):
                    walk.silent.append(
                        f"{where}: {resource.id} (folded): op {op.label}: nvpair {name}"
                    )
        if resource.utilization and not _named("utilization", about):
            walk.silent.append(f"{where}: {resource.id} (folded): utilization")


def _check_defaults(cib: Cib, lines: list[str], where: str, walk: Walk) -> None:
    for name in cib.rsc_defaults:
        if name not in TRANSLATED_META and not _named(name, _about(lines, "rsc_defaults")):
            walk.silent.append(f"{where}: rsc_defaults {name}")
    for name in cib.op_defaults:
        if name not in TRANSLATED_OP_DEFAULTS and not _named(name, _about(lines, "op_defaults")):
            walk.silent.append(f"{where}: op_defaults {name}")


def _check(
    text: str, haservices: list[dict[str, object]], report: Report, where: str, walk: Walk
) -> None:
    cib = parse(text, Report())
    tops = {top.id: top for top in cib.resources}
    owners = read_topology(cib).owner
    lines = report.lines()
    for haservice in haservices:
        metadata = haservice["metadata"]
        assert isinstance(metadata, dict)
        source = metadata["annotations"][ANNOTATION_SOURCE]
        top_id = source.split(" ", 2)[2]
        _check_resource(tops[top_id], lines, where, walk)
        for folded, owner in owners.items():
            if owner == top_id:
                _check_folded(tops[folded], tops[top_id], lines, where, walk)
        walk.folded += sum(owner == top_id for owner in owners.values())
    _check_defaults(cib, lines, where, walk)


@functools.cache
def walk() -> Walk:
    if not PACEMAKER.is_dir():
        pytest.fail(
            f"the shared corpus is missing: {PACEMAKER} (CI has it at ../shared/corpora/import "
            "beside the clone)"
        )
    result = Walk()
    for path in sorted(PACEMAKER.rglob("*.xml")):
        where = str(path.relative_to(PACEMAKER))
        text = path.read_text(errors="replace")
        try:
            haservices, report = import_pacemaker(text, Options())
        except Unreadable:
            result.refused += 1
            continue
        except Exception as error:  # the point of the test: none may escape
            result.crashes.append(f"{where}: {type(error).__name__}: {error}")
            continue
        result.imported += 1
        _check(text, haservices, report, where, result)
    return result


def test_the_corpus_is_there_and_mostly_imports() -> None:
    result = walk()
    assert result.imported + result.refused + len(result.crashes) > 700
    assert result.imported > 3 * result.refused, (result.imported, result.refused)


def test_every_cib_is_imported_or_refused_never_a_traceback() -> None:
    crashes = walk().crashes
    assert not crashes, "\n".join(crashes[:30])


def test_the_walk_covers_addresses_folded_into_a_service() -> None:
    assert walk().folded > 50, walk().folded


def test_every_meta_and_op_attribute_is_translated_or_reported() -> None:
    silent = walk().silent
    assert not silent, f"{len(silent)} names dropped silently:\n" + "\n".join(silent[:40])
