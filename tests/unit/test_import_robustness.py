"""Whatever the input, an importer answers with valid HAServices or with `Unreadable` (exit 2):
never a traceback, never a manifest the models or the renderer refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from haoperator.api import HAService
from haoperator.core.render import desired
from haoperator.importers import (
    Options,
    Report,
    Unreadable,
    import_keepalived,
    import_pacemaker,
    import_systemd,
)

Importer = Callable[[str], tuple[list[dict[str, Any]], Report]]
ODD = st.sampled_from([
    "", "0", "1", "-1", "3", "65536", "99999999999", "INFINITY", "-INFINITY", "often", "10s",
    "PT1M", "1.5", "true", "false", "a b", "p_x", "ha-elector", "tmp",
])  # fmt: skip
FAST = settings(max_examples=60, deadline=None)


def _answers_well(importer: Importer, text: str) -> None:
    try:
        haservices, _ = importer(text)
    except Unreadable:
        return
    for document in haservices:
        desired(HAService.model_validate(document))


def pacemaker(text: str) -> tuple[list[dict[str, Any]], Report]:
    return import_pacemaker(text, Options())


def keepalived(text: str) -> tuple[list[dict[str, Any]], Report]:
    return import_keepalived(text, Options())


def systemd(text: str) -> tuple[list[dict[str, Any]], Report]:
    return import_systemd(text, Options(), "unit.service")


SYNTAX = st.text(alphabet='{}"!#;=[]<>/\\ \nabcdefgpr0123456789.-_:%$@', max_size=300)
"""Text made of the characters the three syntaxes care about, to reach deeper than random text."""


@FAST
@given(st.one_of(st.text(max_size=300), SYNTAX))
def test_any_text_is_imported_or_refused(text: str) -> None:
    for importer in (pacemaker, keepalived, systemd):
        _answers_well(importer, text)


CIB_VALUES = ["3", "1", "3", "60s", "app", "8080", "5000", "10s", "20s", "60s", "3", "1"]
KEEPALIVED_VALUES = ["VI_1", "100", "1", "5", "80", "6", "8080", "3", "3"]
UNIT_VALUES = ["5", "10s", "app", "8080", "8081", "always", "1000"]
KINDS = ["clone", "master", "bundle", "group", "primitive"]
AGENTS = ["ocf:heartbeat:galera", "systemd::httpd", "ocf:heartbeat:docker", "ocf:heartbeat:redis"]


def _odd(base: list[str]) -> st.SearchStrategy[list[str]]:
    """`base` with up to three of its values replaced by odd ones."""
    slots = st.dictionaries(st.integers(0, len(base) - 1), ODD, max_size=3)
    return slots.map(lambda odd: [odd.get(i, value) for i, value in enumerate(base)])


def cib_text(kind: str, values: list[str], agent: str) -> str:
    """A CIB whose counts, durations, ids and ports are `values` (see CIB_VALUES)."""
    v = [quoteattr(value) for value in values]
    cls, provider, type_ = agent.split(":")
    names = ["clone-max", "promoted-max", "migration-threshold", "failure-timeout"]
    meta = "".join(f'<nvpair id="m{i}" name="{n}" value={v[i]}/>' for i, n in enumerate(names))

    def primitive(id_: str) -> str:
        return (
            f'<primitive id={id_} class="{cls}" provider="{provider or "x"}" type="{type_}">'
            f'<instance_attributes id="ia-{len(id_)}"><nvpair id="p1" name="port" value={v[5]}/>'
            f'<nvpair id="p2" name="run_opts" value={quoteattr("-p " + values[6])}/>'
            "</instance_attributes><operations>"
            f'<op id="o1" name="monitor" interval={v[7]} timeout={v[8]}/>'
            f'<op id="o2" name="start" interval="0" timeout={v[9]}/></operations></primitive>'
        )

    if kind == "bundle":
        body = (
            f'<bundle id="b"><podman image="x" replicas={v[10]} promoted-max={v[11]}/>'
            f'<network><port-mapping id="pm" port={v[5]} internal-port={v[6]}/></network>'
            f'<storage><storage-mapping id={v[4]} target-dir="/var/lib/x" options="rw"/>'
            f"</storage>{primitive(v[4])}</bundle>"
        )
    elif kind == "primitive":
        body = primitive(v[4])
    else:
        second = primitive('"second"') if kind == "group" else ""
        body = f'<{kind} id="top">{primitive(v[4])}{second}</{kind}>'
    return (
        f'<cib><configuration><nodes><node id="1" uname="a"/></nodes><resources>{body}'
        f'</resources><rsc_defaults><meta_attributes id="d">{meta}</meta_attributes></rsc_defaults>'
        "</configuration></cib>"
    )


def keepalived_text(values: list[str]) -> str:
    """A VRRP instance and a virtual server whose numbers are `values` (see KEEPALIVED_VALUES)."""
    v = [f'"{value}"' for value in values]
    return (
        f"vrrp_instance {values[0] or 'VI'} {{\n priority {v[1]}\n advert_int {v[2]}\n"
        f" unicast_peer {{\n  10.0.0.2\n }}\n"
        f" virtual_ipaddress {{\n  10.0.0.{values[3] or '1'}\n }}\n}}\n"
        f"virtual_server 10.0.1.1 {v[4]} {{\n delay_loop {v[5]}\n"
        f" real_server 10.0.2.1 {v[6]} {{\n  TCP_CHECK {{\n   connect_timeout {v[7]}\n"
        f"   retry {v[8]}\n  }}\n }}\n}}\n"
    )


def unit_text(values: list[str]) -> str:
    """A unit whose limits, program, ports and user are `values` (see UNIT_VALUES)."""
    return (
        f"[Unit]\nStartLimitBurst={values[0]}\nStartLimitIntervalSec={values[1]}\n"
        f"[Service]\nExecStart=/bin/{values[2] or 'app'} --port {values[3]} --bind :{values[4]}\n"
        f"Restart={values[5] or 'always'}\nUser={values[6]}\nEnvironment=PORT={values[3]}\n"
    )


def test_the_templates_import_with_sensible_values() -> None:
    """Without this, the properties below could pass by refusing every input."""
    for kind in KINDS:
        for agent in AGENTS:
            assert pacemaker(cib_text(kind, CIB_VALUES, agent))[0]
    assert keepalived(keepalived_text(KEEPALIVED_VALUES))[0]
    assert systemd(unit_text(UNIT_VALUES))[0]


@FAST
@given(kind=st.sampled_from(KINDS), values=_odd(CIB_VALUES), agent=st.sampled_from(AGENTS))
def test_odd_values_in_a_cib_are_imported_or_refused(
    kind: str, values: list[str], agent: str
) -> None:
    _answers_well(pacemaker, cib_text(kind, values, agent))


@FAST
@given(values=_odd(KEEPALIVED_VALUES))
def test_odd_values_in_keepalived_are_imported_or_refused(values: list[str]) -> None:
    _answers_well(keepalived, keepalived_text(values))


@FAST
@given(values=_odd(UNIT_VALUES))
def test_odd_values_in_a_unit_are_imported_or_refused(values: list[str]) -> None:
    _answers_well(systemd, unit_text(values))
