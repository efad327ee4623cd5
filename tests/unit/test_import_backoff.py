"""The kubelet back-off schedule behind restart budgets that importers widen."""

from __future__ import annotations

import pytest

from haoperator.api.base import MAX_WINDOW_SECONDS
from haoperator.importers.backoff import (
    BACKOFF_CAP_SECONDS,
    RUN_SECONDS,
    backoff_delays,
    window_for_restarts,
)


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
