"""Shared demo runs: generated once per test session, because generation is the slow part."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from siyu.demo import MARKETS, Market, generate, truth

AS_OF = dt.date(2025, 6, 30)
SEED = 11
CUSTOMERS = 6_000

LOCALE_MARKET: dict[str, Market] = {m.language: m for m in MARKETS}


def person_of(record: dict[str, Any]) -> str:
    """The person a demo message belongs to, from its messageId (demo-{seed}-{pid}-{n})."""
    _, _, pid, _ = record["messageId"].split("-")
    return f"person-{pid}"


def market_of(record: dict[str, Any]) -> Market:
    return LOCALE_MARKET[record["context"]["locale"]]


@pytest.fixture(scope="session")
def records() -> list[dict[str, Any]]:
    """Every message of a mid-sized run."""
    return [r for chunk in generate(CUSTOMERS, SEED, AS_OF, chunk_customers=2_500)
            for r in chunk.records]  # fmt: skip


@pytest.fixture(scope="session")
def chunks() -> list[tuple[str, list[dict[str, Any]]]]:
    return [(c.source, c.records) for c in generate(2_000, SEED, AS_OF, chunk_customers=1_000)]


@pytest.fixture(scope="session")
def truth_table() -> pa.Table:
    return pa.concat_tables(truth(2_000, SEED, AS_OF, chunk_customers=1_000))
