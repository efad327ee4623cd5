"""Reading a pacemaker CIB (`cibadmin --query`, `pcs cluster cib`) into plain data.

Only the standard library reads the XML, through expat directly rather than ElementTree's parser,
for two reasons: every element keeps its line number, so an error can point at it; and a
document type declaration is refused outright. A CIB never has one, and refusing it closes the
door on entity tricks (external entities, exponential expansion) whatever the expat version.

Values read here may be secrets (a `passwd` parameter, a `masterauth` op attribute, a URL with a
password): whatever prints one in a report line, a refusal or a manifest passes it through
`shown` (or `assignment`), which keeps the name and hides the value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat

from haoperator.importers.common import (
    Report,
    Unreadable,
    check_size,
    duration,
    has_secret_value,
    is_secret_name,
)

HIDDEN = "<secret>"
"""What a report prints instead of a value that may be a secret."""


def is_secret(name: str, value: str) -> bool:
    """Whether the setting `name` (empty when the value has none) may hold a secret: by its name
    (`passwd`, `masterauth`, `auth`) or by what the value carries itself (`--requirepass X`, a URL
    with a password)."""
    return bool(name and is_secret_name(name)) or has_secret_value(value)


def shown(value: str, name: str = "") -> str:
    """`value` as a report may print it: HIDDEN when it may be a secret (see `is_secret`)."""
    return HIDDEN if is_secret(name, value) else value


def assignment(name: str, value: str) -> str:
    """`name=value` for a report, the value HIDDEN when it may be a secret: `password=<secret>`."""
    return f"{name}={shown(value, name)}"


@dataclass
class Op:
    id: str
    name: str
    interval: float
    timeout: float | None
    role: str | None
    on_fail: str | None
    start_delay: float | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    """Every attribute of the `<op>` element as written."""
    nvpairs: dict[str, str] = field(default_factory=dict)
    """The op's own meta and instance attributes (OCF_CHECK_LEVEL, depth, requires...)."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(attribute, value) pairs pacemaker tolerates but that are not durations: the importer
    reports them and goes on as pacemaker does, with the default."""

    @property
    def label(self) -> str:
        return self.id or self.name


@dataclass
class StorageMapping:
    id: str
    target: str
    writable: bool


@dataclass
class PortMapping:
    id: str
    port: int | None
    internal_port: int | None
    range: str | None


@dataclass
class Bundle:
    runtime: str
    image: str
    replicas: int | None
    promoted_max: int | None
    run_command: str | None
    options: str | None
    network: dict[str, str]
    ports: list[PortMapping]
    storage: list[StorageMapping]
    runtime_attrs: dict[str, str] = field(default_factory=dict)
    """Every attribute of the docker, podman or rkt element as written."""


@dataclass
class Resource:
    kind: str
    """primitive, group, clone, master or bundle."""
    id: str
    line: int
    meta: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    cls: str = ""
    provider: str = ""
    type: str = ""
    children: list[Resource] = field(default_factory=list)
    bundle: Bundle | None = None
    utilization: dict[str, str] = field(default_factory=dict)

    @property
    def agent(self) -> str:
        return ":".join(part for part in (self.cls, self.provider, self.type) if part)

    def walk(self) -> list[Resource]:
        return [self, *(r for child in self.children for r in child.walk())]


@dataclass
class Constraint:
    kind: str
    id: str
    line: int
    attrs: dict[str, str]
    sets: list[list[str]]
    has_rule: bool

    def resources(self) -> list[str]:
        named = [
            self.attrs[key] for key in ("rsc", "with-rsc", "first", "then") if key in self.attrs
        ]
        return named + [ref for refs in self.sets for ref in refs]


@dataclass
class Cib:
    resources: list[Resource]
    constraints: list[Constraint]
    properties: dict[str, str]
    rsc_defaults: dict[str, str]
    op_defaults: dict[str, str]
    nodes: list[str]


class _Tree:
    """An ElementTree built by expat, with the line of every element and no DTD."""

    def __init__(self) -> None:
        self.lines: dict[ET.Element, int] = {}
        self.ids: dict[str, ET.Element] = {}
        self._stack: list[ET.Element] = []
        self.root: ET.Element | None = None
        self._parser = expat.ParserCreate()
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser.StartDoctypeDeclHandler = self._refuse
        self._parser.EntityDeclHandler = self._refuse
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end

    def parse(self, text: str) -> ET.Element:
        try:
            self._parser.Parse(text, True)
        except expat.ExpatError as error:
            where = f"line {error.lineno}, column {error.offset + 1}"
            if error.code == expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]:
                raise Unreadable(
                    where, "the XML ends before its elements close: cut off?"
                ) from None
            raise Unreadable(where, f"not XML: {expat.ErrorString(error.code)}") from None
        assert self.root is not None
        return self.root

    def _refuse(self, *_: object) -> None:
        raise Unreadable(
            f"line {self._parser.CurrentLineNumber}",
            "a document type or entity declaration: a CIB has none, and none is read",
        )

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        element = ET.Element(tag, attrs)
        self.lines[element] = self._parser.CurrentLineNumber
        if "id" in attrs:
            self.ids.setdefault(attrs["id"], element)
        if self._stack:
            self._stack[-1].append(element)
        else:
            self.root = element
        self._stack.append(element)

    def _end(self, tag: str) -> None:
        self._stack.pop()


class _Reader:
    def __init__(self, tree: _Tree, report: Report) -> None:
        self.tree = tree
        self.report = report

    def where(self, element: ET.Element) -> str:
        name = f' id="{element.get("id")}"' if element.get("id") else ""
        return f"line {self.tree.lines.get(element, 0)}: <{element.tag}{name}>"

    def need(self, element: ET.Element, attribute: str) -> str:
        value = element.get(attribute)
        if not value:
            raise Unreadable(self.where(element), f"has no {attribute}")
        return value

    def number(self, element: ET.Element, attribute: str) -> int | None:
        value = element.get(attribute)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise Unreadable(
                self.where(element), f"{attribute} {shown(value, attribute)!r} is not a number"
            ) from None

    def nvpairs(self, element: ET.Element, tag: str, *, meta: bool) -> dict[str, str]:
        """The name/value pairs of `element`'s `tag` sets; the first set to name a value wins,
        as pacemaker reads them. `meta` names are spelled with dashes."""
        values: dict[str, str] = {}
        for block in element.findall(tag):
            ref = block.get("id-ref")
            if ref is not None:
                block = self.tree.ids.get(ref, block)
            if block.find("rule") is not None:
                self.report.note(
                    f"{tag} {block.get('id', '')}".strip(),
                    "applies under a rule; read as if the rule always held",
                )
            for pair in block.findall("nvpair"):
                name, value = pair.get("name"), pair.get("value")
                if name is None or value is None:
                    continue
                values.setdefault(name.replace("_", "-") if meta else name, value)
        return values

    def ops(self, element: ET.Element) -> list[Op]:
        """The enabled operations; a duration pacemaker would not read either is kept as a
        problem for the report rather than refused, as pacemaker logs it and goes on."""
        found = []
        for op in element.findall("operations/op"):
            if op.get("enabled", "true").lower() in ("false", "0", "no", "off", "n"):
                continue
            problems: list[tuple[str, str]] = []
            seconds = {
                name: self._tolerant_seconds(op, name, problems)
                for name in ("interval", "timeout", "start-delay")
            }
            nvpairs = self.nvpairs(op, "meta_attributes", meta=True)
            for name, value in self.nvpairs(op, "instance_attributes", meta=False).items():
                nvpairs.setdefault(name, value)
            found.append(
                Op(
                    id=op.get("id", ""),
                    name=self.need(op, "name"),
                    interval=seconds["interval"] or 0.0,
                    timeout=seconds["timeout"],
                    role=op.get("role"),
                    on_fail=op.get("on-fail"),
                    start_delay=seconds["start-delay"],
                    attrs=dict(op.attrib),
                    nvpairs=nvpairs,
                    problems=problems,
                )
            )
        return found

    def _tolerant_seconds(
        self, element: ET.Element, attribute: str, problems: list[tuple[str, str]]
    ) -> float | None:
        value = element.get(attribute)
        if value is None:
            return None
        try:
            return duration(value)
        except ValueError:
            problems.append((attribute, value))
            return None

    def resource(self, element: ET.Element, templates: dict[str, ET.Element]) -> Resource:
        tag = element.tag
        if tag not in ("primitive", "group", "clone", "master", "bundle"):
            raise Unreadable(
                self.where(element),
                "not a resource: expected primitive, group, clone, master, bundle or template",
            )
        resource = Resource(
            kind=tag,
            id=self.need(element, "id"),
            line=self.tree.lines.get(element, 0),
            meta=self.nvpairs(element, "meta_attributes", meta=True),
        )
        if tag == "primitive":
            self._primitive(resource, element, templates)
        elif tag == "group":
            members = [child for child in element if child.tag == "primitive"]
            if not members:
                raise Unreadable(self.where(element), "holds no primitive")
            resource.children = [self.resource(child, templates) for child in members]
        elif tag in ("clone", "master"):
            inner = [child for child in element if child.tag in ("primitive", "group")]
            if len(inner) != 1:
                raise Unreadable(self.where(element), "must hold exactly one primitive or group")
            resource.children = [self.resource(inner[0], templates)]
        else:
            self._bundle(resource, element, templates)
        return resource

    def _primitive(
        self, resource: Resource, element: ET.Element, templates: dict[str, ET.Element]
    ) -> None:
        sources = [element]
        template_id = element.get("template")
        if template_id is not None:
            if template_id not in templates:
                raise Unreadable(
                    self.where(element), f"names template {template_id!r}, not defined"
                )
            sources.append(templates[template_id])
        resource.cls = next((s.get("class", "") for s in sources if s.get("class")), "")
        resource.provider = next((s.get("provider", "") for s in sources if s.get("provider")), "")
        resource.type = next((s.get("type", "") for s in sources if s.get("type")), "")
        if not resource.cls or not resource.type:
            raise Unreadable(self.where(element), "has no class or no type")
        for source in sources:
            for name, value in self.nvpairs(source, "instance_attributes", meta=False).items():
                resource.params.setdefault(name, value)
            resource.ops.extend(self.ops(source))
            for name, value in self.nvpairs(source, "utilization", meta=False).items():
                resource.utilization.setdefault(name, value)
            if source is not element:
                for name, value in self.nvpairs(source, "meta_attributes", meta=True).items():
                    resource.meta.setdefault(name, value)

    def _bundle(
        self, resource: Resource, element: ET.Element, templates: dict[str, ET.Element]
    ) -> None:
        runtime = next((c for c in element if c.tag in ("docker", "podman", "rkt")), None)
        if runtime is None:
            raise Unreadable(self.where(element), "has no docker, podman or rkt element")
        network = element.find("network")
        ports = [
            PortMapping(
                id=mapping.get("id", ""),
                port=self.number(mapping, "port"),
                internal_port=self.number(mapping, "internal-port"),
                range=mapping.get("range"),
            )
            for mapping in (network.findall("port-mapping") if network is not None else [])
        ]
        storage = [
            StorageMapping(
                id=self.need(mapping, "id"),
                target=self.need(mapping, "target-dir"),
                writable="rw" in (mapping.get("options") or "").split(","),
            )
            for mapping in element.findall("storage/storage-mapping")
        ]
        promoted = self.number(runtime, "promoted-max")
        resource.bundle = Bundle(
            runtime=runtime.tag,
            image=self.need(runtime, "image"),
            replicas=self.number(runtime, "replicas"),
            promoted_max=promoted if promoted is not None else self.number(runtime, "masters"),
            run_command=runtime.get("run-command"),
            options=runtime.get("options"),
            network=dict(network.attrib) if network is not None else {},
            ports=ports,
            storage=storage,
            runtime_attrs=dict(runtime.attrib),
        )
        inner = element.find("primitive")
        if inner is not None:
            resource.children = [self.resource(inner, templates)]

    def constraint(self, element: ET.Element) -> Constraint:
        sets = [
            [ref.get("id", "") for ref in resource_set.findall("resource_ref")]
            for resource_set in element.findall("resource_set")
        ]
        return Constraint(
            kind=element.tag,
            id=element.get("id", "(no id)"),
            line=self.tree.lines.get(element, 0),
            attrs=dict(element.attrib),
            sets=sets,
            has_rule=element.find("rule") is not None,
        )


def parse(text: str, report: Report) -> Cib:
    """The CIB's configuration; raises Unreadable, naming the line, for anything else."""
    check_size(text)
    if not text.strip():
        raise Unreadable("", "is empty: expected the XML of `cibadmin --query`")
    tree = _Tree()
    root = tree.parse(text)
    reader = _Reader(tree, report)
    if root.tag != "cib":
        raise Unreadable(
            reader.where(root), "not a CIB: expected <cib>, as `cibadmin --query` prints it"
        )
    resources = root.find("configuration/resources")
    if resources is None:
        raise Unreadable(reader.where(root), "has no <configuration><resources>")
    templates = {t.get("id", ""): t for t in resources if t.tag == "template"}
    parsed = [reader.resource(child, templates) for child in resources if child.tag != "template"]
    if not parsed:
        raise Unreadable(reader.where(resources), "is empty: there is nothing to import")
    configuration = root.find("configuration")
    assert configuration is not None
    properties: dict[str, str] = {}
    for block in configuration.findall("crm_config/cluster_property_set"):
        for pair in block.findall("nvpair"):
            if pair.get("name") and pair.get("value") is not None:
                properties.setdefault(pair.get("name", "").replace("_", "-"), pair.get("value", ""))
    defaults = configuration.find("rsc_defaults")
    op_defaults = configuration.find("op_defaults")
    nodes = [
        node.get("uname", "") or node.get("id", "")
        for node in configuration.findall("nodes/node")
        if node.get("type", "member") not in ("remote", "guest")
    ]
    return Cib(
        resources=parsed,
        constraints=[reader.constraint(c) for c in configuration.findall("constraints/*")],
        properties=properties,
        rsc_defaults={}
        if defaults is None
        else reader.nvpairs(defaults, "meta_attributes", meta=True),
        op_defaults={}
        if op_defaults is None
        else reader.nvpairs(op_defaults, "meta_attributes", meta=True),
        nodes=nodes,
    )
