"""`haoperator import` on realistic configurations: golden output and report, determinism, valid
and renderable HAServices, restricted pods, no secret anywhere, and exit 2 on unreadable input.

Run with UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then review the
diff like any other code change.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

from haoperator.api import HAService
from haoperator.core.render import desired
from tests.unit import pod_security
from tests.unit.importing import DATA, SOURCES, Case, cases, run
from tests.unit.kubernetes_schemas import assert_valid

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
GOOD = cases(bad=False)
BAD = cases(bad=True)

SECRETS = {
    "pacemaker/tripleo-overcloud": [
        "Kq7vR2mXgalera9Lw", "Ipmi-Ctrl0-Secret-77", "Ipmi-Ctrl1-Secret-78", "Ipmi-Ctrl2-Secret-79",
    ],
    "pacemaker/two-node-web": ["Fence-A-pw-4411", "Fence-B-pw-4412"],
    "pacemaker/master-slave-postgres": ["Galera-Chk-5512"],
    "keepalived/openstack-ansible-haproxy": ["Os8812ab", "MonPw3344"],
    "keepalived/kolla-internal-vip": ["Kv2291xy"],
    "keepalived/lvs-web": ["Lv7c1bqq"],
    "keepalived/lvs-checks": ["Ck5521zz"],
    "systemd/inventory-api": ["Inv-Db-Pw-6620", "Inv-Url-Pw-6621", "Inv-Admin-Tok-6622"],
    "systemd/short-flag-secrets": ["Hb-Pre-8101", "Hb-Pass-8102", "Rc-Pass-8103", "Cu-Pass-8104"],
}  # fmt: skip
"""Secret values in the inputs, none of which may show in the output or the report."""


def _check(case: Case, suffix: str, actual: str) -> None:
    golden = case.sibling(suffix)
    if UPDATE:
        golden.write_text(actual)
    assert golden.exists(), f"{golden.name} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert actual == golden.read_text(), f"{golden.name} differs: review, then UPDATE_GOLDEN=1"


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.id)
def test_the_import_matches_the_golden_files(case: Case) -> None:
    code, out, err = run(case)
    assert code == 0, err
    _check(case, ".out.yaml", out)
    _check(case, ".report.txt", err)


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.id)
def test_unreadable_input_exits_2_naming_the_line_or_element(case: Case) -> None:
    code, out, err = run(case)
    assert (code, out) == (2, "")
    assert re.match(rf"{re.escape(case.path.name)}: (line \d+|<\w+>|no )", err), err
    _check(case, ".error.txt", err)


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.id)
def test_importing_twice_gives_the_same_bytes(case: Case) -> None:
    assert run(case) == run(case)


@pytest.mark.parametrize("case", GOOD, ids=lambda case: case.id)
def test_every_haservice_validates_renders_and_meets_the_restricted_standard(case: Case) -> None:
    documents = list(yaml.safe_load_all(case.sibling(".out.yaml").read_text()))
    assert documents
    for document in documents:
        haservice = HAService.model_validate(document)
        children = desired(haservice)
        for child in children:
            assert_valid(child)
        workloads = [c for c in children if c["kind"] in ("Deployment", "StatefulSet")]
        assert len(workloads) == 1
        assert pod_security.violations(workloads[0]["spec"]["template"]["spec"]) == []


@pytest.mark.parametrize("case", [c for c in GOOD if c.id in SECRETS], ids=lambda case: case.id)
def test_no_secret_reaches_the_output_or_the_report(case: Case) -> None:
    text = case.path.read_text()
    _, out, err = run(case)
    for secret in SECRETS[case.id]:
        assert secret in text, f"{secret} is not in {case.path.name}: the test would prove nothing"
        assert secret not in out
        assert secret not in err


def test_the_namespace_option_sets_every_namespace() -> None:
    case = next(c for c in GOOD if c.id == "pacemaker/tripleo-overcloud")
    _, out, _ = run(case, "--namespace", "openstack")
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(out)} == {"openstack"}


def test_the_cases_cover_every_category_and_source() -> None:
    categories = {
        document["spec"]["category"]
        for case in GOOD
        for document in yaml.safe_load_all(case.sibling(".out.yaml").read_text())
    }
    assert categories == {"LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"}
    assert {case.source for case in GOOD} == {case.source for case in BAD} == set(SOURCES)


def test_no_golden_file_is_left_without_its_input() -> None:
    inputs = {case.sibling("").name for case in GOOD + BAD}
    for path in DATA.glob("*/*"):
        if path.suffix not in SOURCES.values():
            stem = path.name.split(".", 1)[0]
            assert stem in inputs, f"{path.relative_to(DATA)} belongs to no input"


@pytest.mark.parametrize("case", GOOD + BAD, ids=lambda case: case.id)
def test_every_input_says_what_it_is_modelled_on(case: Case) -> None:
    head = re.sub(r"[\s!#]+", " ", case.path.read_text()[:1200].lower())
    assert "modelled on" in head
