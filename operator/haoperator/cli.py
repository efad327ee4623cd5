"""The `haoperator` command line: one console script for every role the product plays."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from haoperator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haoperator",
        description="High availability for Kubernetes workloads, declared as one HAService.",
    )
    parser.add_argument("--version", action="version", version=f"haoperator {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
