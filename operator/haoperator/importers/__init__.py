"""Translate existing HA configurations into HAServices: pacemaker CIBs, keepalived configurations
and systemd units.

Each importer is pure: the configuration's text in, a list of HAService manifests (plain dicts,
validated with the models) and a `Report` of everything that could not be expressed out. Reading
files, the image map and printing belong to the command line (`haoperator import`). See
docs/import.md for the mapping rules and heuristics.
"""

from __future__ import annotations

from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    parse_categories,
    parse_image_map,
)
from haoperator.importers.keepalived import import_keepalived
from haoperator.importers.pacemaker import import_pacemaker
from haoperator.importers.systemd import import_systemd

__all__ = [
    "Options",
    "Report",
    "Unreadable",
    "import_keepalived",
    "import_pacemaker",
    "import_systemd",
    "parse_categories",
    "parse_image_map",
]
