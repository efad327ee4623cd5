"""Golden files: what `haoperator render` prints for each case in tests/data/render.

Run with UPDATE_GOLDEN=1 to rewrite the .out.yaml files after an intended change, then review the
diff like any other code change.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml

from haoperator.cli import main
from testenv.harness.cluster import REPO
from tests.unit.kubernetes_schemas import assert_valid

CASES = sorted((REPO / "tests" / "data" / "render").glob("*.in.yaml"))
ELECTOR_IMAGE = "ghcr.io/haoperator/haoperator:golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _case_id(case: Path) -> str:
    return case.name.removesuffix(".in.yaml")


def _golden(case: Path) -> Path:
    return case.with_name(f"{_case_id(case)}.out.yaml")


def _render(case: Path) -> str:
    out = io.StringIO()
    args = ["render", "-f", str(case), "-n", "golden", "--elector-image", ELECTOR_IMAGE]
    assert main(args, out=out) == 0
    return out.getvalue()


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rendering_matches_the_golden_file(case: Path) -> None:
    rendered = _render(case)
    golden = _golden(case)
    if UPDATE:
        golden.write_text(rendered)
    assert golden.exists(), f"{golden.name} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == golden.read_text(), f"{golden.name} differs: review, then UPDATE_GOLDEN=1"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_golden_output_is_valid_kubernetes(case: Path) -> None:
    for manifest in yaml.safe_load_all(_golden(case).read_text()):
        assert_valid(manifest)


def test_every_category_has_a_golden_case() -> None:
    categories = {yaml.safe_load(case.read_text())["spec"]["category"] for case in CASES}
    assert categories == {"LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"}


def test_no_golden_file_is_left_without_its_input() -> None:
    outputs = sorted((REPO / "tests" / "data" / "render").glob("*.out.yaml"))
    assert [path.name for path in outputs] == [_golden(case).name for case in CASES]
