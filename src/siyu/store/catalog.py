"""Every table of every slice on the one ``MetaData``.

Core tables live in :mod:`siyu.store.schema`; a slice that owns tables defines them in its own
``tables`` module on the same metadata and is listed here, so that migrations, tests and
``siyu status`` see the whole schema.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa

from siyu.store.schema import metadata

TABLE_MODULES: tuple[str, ...] = (
    "siyu.collect.tables",
    "siyu.identity.tables",
    "siyu.segments.tables",
    "siyu.predict.tables",
    "siyu.loyalty.tables",
    "siyu.fission.tables",
    "siyu.journeys.tables",
    "siyu.messaging.tables",
)


def load_all_tables() -> sa.MetaData:
    """Import every slice's table module; return the shared metadata."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata
