"""Importers: store export files -> canonical events, through the ingestion pipeline.

Each importer is registered in ``registry.importers`` under its CLI name (``siyu import NAME
FILE``); ``generic`` is built from a mapping TOML (see :mod:`.generic`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.collect.importers.run import Importer, ImportSummary, run_import

if TYPE_CHECKING:
    from siyu.registry import Registry

__all__ = ["ImportSummary", "Importer", "register", "run_import"]


def register(registry: Registry) -> None:
    """Register the built-in importers."""
    from siyu.collect.importers.builtin import BUILTIN

    for spec in BUILTIN:
        registry.importers.register(spec.name, spec)
