"""The keepalived importer on real configurations nobody here wrote (keepalived's own samples, in
the shared corpus): each is imported or refused with a true reason, never with another exception,
and every keyword in it is either translated or named in the report. Nothing is lost silently.

The corpus lives outside the project (CI has it at ../shared/corpora/import): see its README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from haoperator.api import HAService
from haoperator.importers import Options, Report, Unreadable, import_keepalived
from haoperator.importers.common import is_secret_name
from haoperator.importers.keepalived import TRANSLATED_KEYWORDS
from haoperator.importers.keepalived_syntax import Statement, parse

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpora/import"
KEEPALIVED = CORPUS / "keepalived"
CORPUS_FILES = (
    sorted(p for p in KEEPALIVED.rglob("*") if p.is_file()) if KEEPALIVED.is_dir() else []
)
LOCAL = Path(__file__).resolve().parents[1] / "data" / "import" / "keepalived"
FILES = CORPUS_FILES + sorted(LOCAL.glob("*.conf"))
"""The corpus, and this project's own cases (tests/data/import/keepalived) held to the same rule."""

VALUE_BLOCKS = {
    "virtual_ipaddress": "its lines are addresses (the Service's), not keywords",
    "virtual_ipaddress_excluded": "its lines are addresses, as virtual_ipaddress",
    "virtual_routes": "its lines are routes; the block itself is reported",
    "virtual_rules": "its lines are routing rules; the block itself is reported",
    "static_ipaddress": "its lines are addresses; the block itself is reported",
    "static_routes": "its lines are routes; the block itself is reported",
    "static_rules": "its lines are routing rules; the block itself is reported",
    "unicast_peer": "its lines are peer addresses (the replicas)",
    "track_interface": "its lines are interface names; the block itself is reported",
    "track_script": "its lines name vrrp_scripts, each reported with its script",
    "track_file": "in an instance, its lines name track_files; the block itself is reported",
    "track_process": "in an instance, its lines name processes; the block itself is reported",
    "track_bfd": "its lines name bfd_instances; the block itself is reported",
    "notification_email": "its lines are email addresses; the block itself is reported",
    "group": "its lines are vrrp_instance names (the sync group's members)",
    "virtual_server_group": "its lines are addresses and ports (or fwmarks, reported) of the "
    "virtual servers using it",
    "linkbeat_interfaces": "its lines are interface names; the block itself is reported",
    "interface_up_down_delays": "its lines are interface names; the block itself is reported",
    "interfaces": "its lines are interface names; the block itself is reported",
}
"""Blocks whose lines are values, not keywords: their contents are not asked to be named (the
block is, or is translated). In a top-level definition (`track_file NAME {...}`), the lines of
track_file and track_process are keywords."""

REFUSALS = {
    "no virtual_server": "virtual_server",
    "no vrrp_instance": "vrrp_instance",
}
"""A refusal saying there is no X must be true: the configuration has no X."""


def _keywords(statements: list[Statement], top: bool = True) -> Iterator[Statement]:
    for statement in statements:
        yield statement
        values = statement.keyword in VALUE_BLOCKS and not (
            top and statement.keyword in ("track_file", "track_process")
        )
        if statement.block and not values:
            yield from _keywords(statement.block, top=False)


def _as_named(keyword: str) -> str:
    """How the report may name a keyword: `$NAME=VALUE` by its name only (the value could be a
    secret), `~SEQ(...)` as `~SEQ`."""
    return keyword.split("=", 1)[0].split("(", 1)[0]


def _named(keyword: str, report: str) -> bool:
    pattern = rf"(?<![\w@$~-]){re.escape(_as_named(keyword))}(?![\w-])"
    return re.search(pattern, report) is not None


def _import(path: Path) -> tuple[list[dict[str, Any]], Report] | Unreadable:
    try:
        return import_keepalived(path.read_text(errors="replace"), Options())
    except Unreadable as refusal:
        return refusal


def test_the_corpus_is_there() -> None:
    assert KEEPALIVED.is_dir(), (
        f"the shared corpus is missing: expected keepalived configurations in {KEEPALIVED} "
        "(CI has it at ../shared/corpora/import)"
    )
    assert CORPUS_FILES, f"{KEEPALIVED} holds no file"


@pytest.mark.parametrize(
    "path", FILES, ids=lambda p: f"{'local' if LOCAL in p.parents else 'corpus'}/{p.name}"
)
def test_every_keyword_is_translated_or_reported(path: Path) -> None:
    result = _import(path)
    if isinstance(result, Unreadable):
        return
    haservices, report = result
    assert haservices
    text = "\n".join(report.lines())
    lost = [
        f"line {s.line}: {_as_named(s.keyword)}"
        for s in _keywords(parse(path.read_text(errors="replace")))
        if s.keyword not in TRANSLATED_KEYWORDS and not _named(s.keyword, text)
    ]
    assert not lost, f"{path.name}: neither translated nor reported: {', '.join(lost)}"


@pytest.mark.parametrize(
    "path", FILES, ids=lambda p: f"{'local' if LOCAL in p.parents else 'corpus'}/{p.name}"
)
def test_a_refusal_says_the_true_reason(path: Path) -> None:
    result = _import(path)
    if not isinstance(result, Unreadable):
        return
    message = str(result)
    assert message
    try:
        statements = parse(path.read_text(errors="replace"))
    except Unreadable:
        return
    keywords = {s.keyword for s in statements}
    for claim, keyword in REFUSALS.items():
        assert not (claim in message and keyword in keywords), (
            f"{path.name} is refused with {message!r}, but it has a {keyword}"
        )


@pytest.mark.parametrize(
    "path", FILES, ids=lambda p: f"{'local' if LOCAL in p.parents else 'corpus'}/{p.name}"
)
def test_imports_are_valid_deterministic_and_keep_secrets(path: Path) -> None:
    first, second = _import(path), _import(path)
    if isinstance(first, Unreadable):
        assert isinstance(second, Unreadable)
        assert str(first) == str(second)
        return
    assert not isinstance(second, Unreadable)
    assert first[0] == second[0]
    assert first[1].lines() == second[1].lines()
    haservices, report = first
    for document in haservices:
        HAService.model_validate(
            {**document, "metadata": {"namespace": "x", **document["metadata"]}}
        )
    shown = f"{haservices}\n" + "\n".join(report.lines())
    secrets = [
        word
        for s in _keywords(parse(path.read_text(errors="replace")))
        if is_secret_name(s.keyword)
        for word in s.args
    ]
    for secret in secrets:
        assert re.search(rf"(?<![\w.]){re.escape(secret)}(?![\w.])", shown) is None, (
            f"{path.name}: a secret value reached the output or the report"
        )


@pytest.mark.parametrize(
    "path", FILES, ids=lambda p: f"{'local' if LOCAL in p.parents else 'corpus'}/{p.name}"
)
def test_lvs_checks_are_readiness_probes_only(path: Path) -> None:
    """keepalived takes a failing real server out of the pool, it never restarts it."""
    result = _import(path)
    if isinstance(result, Unreadable):
        return
    for document in result[0]:
        if document["spec"]["category"] == "LoadBalanced":
            for container in document["spec"]["template"]["spec"]["containers"]:
                assert "livenessProbe" not in container
                assert "startupProbe" not in container
