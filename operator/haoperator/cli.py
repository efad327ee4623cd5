"""The `haoperator` command line: one console script for every role the product plays."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from haoperator import __version__, switchover_cli
from haoperator.api import GROUP, HAService
from haoperator.api.base import DNS_1123_LABEL, PATTERN_MEANINGS
from haoperator.api.crd import crd_yaml
from haoperator.api.messages import describe
from haoperator.controller import run
from haoperator.core.render import desired
from haoperator.core.vocabulary import DEFAULT_IMAGE
from haoperator.sidecar import command as elect
from haoperator.yamlout import dump_all

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input the user must fix; each argument is one line to show them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haoperator",
        description="High availability for Kubernetes workloads, declared as one HAService.",
    )
    parser.add_argument("--version", action="version", version=f"haoperator {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    render = commands.add_parser(
        "render",
        help="print the objects an HAService creates, as YAML (no cluster needed)",
        description="Validate HAServices as the API server would and print their children as "
        "multi-document YAML. Exits 2, with one line per problem, when the input is not valid.",
    )
    render.add_argument(
        "-f", "--filename", required=True, help="a YAML file of HAServices, or - for stdin"
    )
    render.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace for HAServices whose metadata names none (default: %(default)s)",
    )
    render.add_argument(
        "--elector-image",
        default=DEFAULT_IMAGE,
        help="image of the ha-elector sidecar (default: %(default)s)",
    )
    render.set_defaults(handler=_render)

    crd = commands.add_parser("crd", help="print the HAService CustomResourceDefinition")
    crd.set_defaults(handler=_crd)

    run.add_parser(commands)
    elect.add_parser(commands)
    switchover_cli.add_parser(commands)
    _add_import_parser(commands)
    return parser


_IMPORT_SOURCES = {
    "pacemaker": (
        "a pacemaker/corosync CIB",
        "CIB",
        "the XML of `cibadmin --query` or `pcs cluster cib`, or - for stdin",
    ),
    "keepalived": ("a keepalived configuration", "CONF", "keepalived.conf, or - for stdin"),
    "systemd": ("a systemd service unit", "UNIT", "a .service unit file, or - for stdin"),
}


def _add_import_parser(commands: Any) -> None:
    importer = commands.add_parser(
        "import",
        help="translate pacemaker, keepalived or systemd HA configurations into HAServices",
        description="Print HAServices for an existing HA configuration, and on stderr one line "
        "per thing it could not express (warning:, note:, unsupported:). Secrets are never "
        "copied. Exits 2, naming the line or element, when the input cannot be read. The mapping "
        "rules are in docs/import.md.",
    )
    sources = importer.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for source, (what, metavar, file_help) in _IMPORT_SOURCES.items():
        command = sources.add_parser(source, help=f"import {what}")
        command.add_argument("file", metavar=metavar, help=file_help)
        command.add_argument(
            "-n", "--namespace", help="namespace for the HAServices (default: none, kubectl's)"
        )
        command.add_argument(
            "--image-map",
            metavar="FILE",
            help="YAML or JSON mapping of resource id (or HAService name) to container image",
        )
        command.add_argument(
            "--category",
            action="append",
            default=[],
            metavar="NAME=CATEGORY",
            help="use this category for NAME instead of the guess (repeatable)",
        )
        if source == "systemd":
            command.add_argument("--name", help="name of the HAService (default: the unit's)")
        command.set_defaults(handler=_import)


def _import(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: `haoperator run` and `elect` (a sidecar in every ActivePassive pod) need none
    # of the importers, so they neither load them nor depend on them to start.
    from haoperator.importers import (
        Options,
        Unreadable,
        import_keepalived,
        import_pacemaker,
        import_systemd,
        parse_categories,
        parse_image_map,
    )

    if args.namespace is not None and re.fullmatch(DNS_1123_LABEL, args.namespace) is None:
        raise BadInput(f"--namespace {args.namespace}: must be {PATTERN_MEANINGS[DNS_1123_LABEL]}")
    text = _read(args.file)
    shown = "(stdin)" if args.file == "-" else args.file
    try:
        images = parse_image_map(_read(args.image_map), args.image_map) if args.image_map else {}
        options = Options(
            namespace=args.namespace,
            images=images,
            categories=parse_categories(args.category),
            name=getattr(args, "name", None),
        )
    except Unreadable as error:
        raise BadInput(str(error)) from error
    try:
        if args.source == "pacemaker":
            haservices, report = import_pacemaker(text, options)
        elif args.source == "keepalived":
            haservices, report = import_keepalived(text, options)
        else:
            unit = None if args.file == "-" else Path(args.file).name
            haservices, report = import_systemd(text, options, unit)
    except Unreadable as error:
        raise BadInput(f"{shown}: {error}") from error
    out.write(dump_all(haservices))
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0


def _crd(args: argparse.Namespace, out: TextIO) -> int:
    out.write(crd_yaml())
    return 0


def _read(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    try:
        return Path(filename).read_text()
    except OSError as error:
        raise BadInput(f"{filename}: cannot read it: {error.strerror}") from error


def _documents(filename: str, text: str) -> list[Any]:
    try:
        return [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BadInput(f"{filename}: not valid YAML{line}: {problem}") from error


def _is_ours(document: Any) -> bool:
    """Documents of other API groups (a ConfigMap next to the HAService) are not ours to render."""
    if not isinstance(document, dict):
        return True
    api_version = document.get("apiVersion")
    return not isinstance(api_version, str) or api_version.split("/")[0] == GROUP


def _label(document: Any, index: int) -> str:
    metadata = document.get("metadata") if isinstance(document, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"document {index} ({name})" if isinstance(name, str) else f"document {index}"


def _haservices(filename: str, namespace: str) -> list[HAService]:
    documents = [
        document for document in _documents(filename, _read(filename)) if _is_ours(document)
    ]
    if not documents:
        raise BadInput(f"{filename}: no HAService in it")
    haservices: list[HAService] = []
    problems: list[str] = []
    for index, document in enumerate(documents, start=1):
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
            document["metadata"].setdefault("namespace", namespace)
        try:
            haservices.append(HAService.model_validate(document))
        except ValidationError as error:
            prefix = f"{_label(document, index)}: " if len(documents) > 1 else ""
            problems.extend(prefix + line for line in describe(error))
    if problems:
        raise BadInput(*problems)
    return haservices


def _render(args: argparse.Namespace, out: TextIO) -> int:
    children = [
        child
        for haservice in _haservices(args.filename, args.namespace)
        for child in desired(haservice, elector_image=args.elector_image)
    ]
    out.write(dump_all(children))
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, TextIO], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return handler(args, out or sys.stdout)
    except BadInput as bad:
        for line in bad.args:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
