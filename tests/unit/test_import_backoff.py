"""The kubelet back-off schedule behind restart budgets that importers widen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from haoperator.api.base import MAX_WINDOW_SECONDS
from haoperator.api.behaviour import RestartPolicy
from haoperator.importers import (
    Options,
    Unreadable,
    import_keepalived,
    import_pacemaker,
    import_systemd,
)
from haoperator.importers.backoff import (
    BACKOFF_CAP_SECONDS,
    RUN_SECONDS,
    backoff_delays,
    window_for_restarts,
)
from tests.unit.importing import SOURCES, cases

CORPUS = Path(__file__).resolve().parents[3] / "shared/corpora/import"


def test_delays_double_from_ten_seconds_up_to_the_cap() -> None:
    assert backoff_delays(8) == [10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff_delays(0) == []


@pytest.mark.parametrize(
    ("restarts", "window"),
    [(1, 10 + RUN_SECONDS), (3, 70 + 3 * RUN_SECONDS), (4, 150 + 4 * RUN_SECONDS)],
)
def test_window_holds_the_waits_and_the_runs(restarts: int, window: int) -> None:
    assert window_for_restarts(restarts) == window


def test_window_without_run_time_is_the_waits_alone() -> None:
    assert window_for_restarts(6, run_seconds=0) == 10 + 20 + 40 + 80 + 160 + 300


def test_window_grows_with_the_restarts_and_stays_within_a_day() -> None:
    windows = [window_for_restarts(n) for n in range(0, 400)]
    assert windows == sorted(windows)
    assert windows[0] == 1
    assert max(windows) == MAX_WINDOW_SECONDS
    # past the cap each restart adds one capped wait and one run
    assert window_for_restarts(11) - window_for_restarts(10) == BACKOFF_CAP_SECONDS + RUN_SECONDS


# -- every imported restart limit can fire ------------------------------------------------------


def _imported(source: str, text: str, name: str) -> list[dict[str, Any]]:
    try:
        if source == "pacemaker":
            haservices, _ = import_pacemaker(text, Options())
        elif source == "keepalived":
            haservices, _ = import_keepalived(text, Options())
        else:
            haservices, _ = import_systemd(text, Options(), name)
    except Unreadable:
        return []
    return haservices


def _unfireable(haservices: list[dict[str, Any]], where: str) -> list[str]:
    """`where: name: limit` for each HAService whose restart limit (written, or the API's default
    when none is written) is Migrate with a window too short to hold its restarts."""
    found = []
    for haservice in haservices:
        written = haservice["spec"].get("recovery", {}).get("restart", {})
        policy = RestartPolicy.model_validate(written)
        needed = window_for_restarts(policy.max_restarts + 1)
        if policy.on_limit == "Migrate" and policy.window_seconds < needed:
            found.append(
                f"{where}: {haservice['metadata']['name']}: maxRestarts {policy.max_restarts} "
                f"within {policy.window_seconds}s ({'written' if written else 'the default'}), "
                f"needs {needed}s"
            )
    return found


def test_the_default_limit_could_never_fire_so_the_importers_write_one_out() -> None:
    default = RestartPolicy()
    assert default.window_seconds < window_for_restarts(default.max_restarts + 1)


def test_every_restart_limit_the_importers_write_can_fire() -> None:
    """Goldens and the whole shared corpus: a Migrate limit always has a window that holds its
    restarts under the kubelet's back-off; no HAService is left with the API's default (5
    restarts within 600 s), which cannot see 6 restarts (670 s)."""
    inputs = [(c.source, c.path) for c in cases(bad=False)]
    inputs += [
        (source, path)
        for source in SOURCES
        for path in sorted((CORPUS / source).rglob("*"))
        if path.is_file()
    ]
    assert len(inputs) > 800, "the shared corpus is missing (../shared/corpora/import)"
    unfireable: list[str] = []
    for source, path in inputs:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        unfireable += _unfireable(_imported(source, text, path.name), str(path))
    assert not unfireable, "\n".join(unfireable[:30])
