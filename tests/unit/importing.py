"""The import test cases in tests/data/import/<source>/: how to find them and run them.

A case is an input file (`<case>.xml`, `.conf` or `.service`). Next to it: `<case>.out.yaml` and
`<case>.report.txt`, the golden stdout and stderr of `haoperator import`; for inputs named
`bad-*`, `<case>.error.txt` instead, the golden stderr of the refusal. Optional `<case>.args`
(one command-line word per line) and `<case>.images.yaml` (passed as --image-map) add options.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from haoperator.cli import main
from testenv.harness.cluster import REPO

DATA = REPO / "tests" / "data" / "import"
SOURCES = {"pacemaker": ".xml", "keepalived": ".conf", "systemd": ".service"}


@dataclass(frozen=True)
class Case:
    source: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def id(self) -> str:
        return f"{self.source}/{self.name}"

    @property
    def bad(self) -> bool:
        return self.name.startswith("bad-")

    def sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.name + suffix)

    def args(self) -> list[str]:
        args = ["import", self.source, self.path.name]
        extra = self.sibling(".args")
        if extra.exists():
            args += extra.read_text().splitlines()
        if self.sibling(".images.yaml").exists():
            args += ["--image-map", self.sibling(".images.yaml").name]
        return args


def cases(*, bad: bool) -> list[Case]:
    found = [
        Case(source, path)
        for source, suffix in SOURCES.items()
        for path in sorted((DATA / source).glob(f"*{suffix}"))
    ]
    return [case for case in found if case.bad == bad]


@contextlib.contextmanager
def _inside(directory: Path) -> Iterator[None]:
    """Run from the case's directory, so messages name the file as the golden files do."""
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def run(case: Case, *extra: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `haoperator import` on the case."""
    out, err = io.StringIO(), io.StringIO()
    with _inside(case.path.parent), contextlib.redirect_stderr(err):
        code = main([*case.args(), *extra], out=out)
    return code, out.getvalue(), err.getvalue()
