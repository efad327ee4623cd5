"""The bad-input corpus: HAServices the API server and the models must both reject.

Each file starts with `# expect: <text the API server's message contains>` and
`# path: <the field the models blame>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from testenv.harness.cluster import REPO

BAD_DIR = REPO / "tests" / "data" / "bad"


@dataclass(frozen=True)
class BadInput:
    path: Path
    expect: str
    field: str

    @property
    def text(self) -> str:
        return self.path.read_text()


def bad_inputs() -> list[BadInput]:
    corpus = []
    for path in sorted(BAD_DIR.glob("*.yaml")):
        header = dict(re.findall(r"^# (expect|path): (.+)$", path.read_text(), flags=re.MULTILINE))
        corpus.append(BadInput(path, header["expect"], header["path"]))
    return corpus
