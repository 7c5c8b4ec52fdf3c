"""Consents follow each region's regime; FX rates are daily, realistic and reproducible."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa
import pytest

from siyu.demo import MARKETS, fx_rates
from siyu.errors import InvalidInput

from .conftest import AS_OF, market_of, person_of

Decision = tuple[str, str, str]  # (region, purpose, channel)


def _first_decisions(records: list[dict[str, Any]]) -> dict[Decision, Counter[str]]:
    """For each region and consent, how people first decided (granted or denied)."""
    first: dict[tuple[str, str, str], tuple[str, str]] = {}
    for r in sorted(records, key=lambda r: r["timestamp"]):
        if r.get("event") != "Consent Updated":
            continue
        p = r["properties"]
        key = (person_of(r), p["purpose"], p["channel"])
        if key not in first:
            first[key] = (market_of(r).region, p["status"])
    out: dict[Decision, Counter[str]] = defaultdict(Counter)
    for (_, purpose, channel), (region, status) in first.items():
        out[(region, purpose, channel)][status] += 1
    return out


def _granted(counts: Counter[str]) -> float:
    return counts["granted"] / sum(counts.values())


def test_email_marketing_is_opt_in_in_europe_and_opt_out_in_the_us(
    records: list[dict[str, Any]],
) -> None:
    decisions = _first_decisions(records)
    for region in ("EU", "UK"):
        counts = decisions[(region, "marketing", "email")]
        assert counts["denied"] > 0, "Europeans say no explicitly"
        assert _granted(counts) < 0.6
    us = decisions[("US", "marketing", "email")]
    assert us["denied"] == 0
    assert us["granted"] > 0
    sms = decisions[("US", "marketing", "sms")]
    assert sum(sms.values()) < us["granted"] / 2, "SMS needs its own explicit opt-in"


def test_whatsapp_consent_is_common_where_whatsapp_is(records: list[dict[str, Any]]) -> None:
    decisions = _first_decisions(records)
    for region in ("SEA", "LATAM", "MENA"):
        assert _granted(decisions[(region, "marketing", "whatsapp")]) > 0.8
    for region in ("EU", "UK"):
        assert _granted(decisions[(region, "marketing", "whatsapp")]) < 0.7


def test_consents_carry_evidence(records: list[dict[str, Any]]) -> None:
    consents = [r["properties"] for r in records if r.get("event") == "Consent Updated"]
    assert {c["status"] for c in consents} == {"granted", "withdrawn", "denied"}
    assert {c["purpose"] for c in consents} == {"marketing", "transactional"}
    assert {c["channel"] for c in consents} == {"email", "whatsapp", "sms"}
    for c in consents:
        assert c["evidence"]["form"]
        assert c["evidence"]["text"]


def test_marketing_email_reaches_only_consented_people(records: list[dict[str, Any]]) -> None:
    granted: dict[str, str] = {}
    for r in records:
        p = r.get("properties", {})
        if r.get("event") == "Consent Updated" and (p["channel"], p["status"]) == (
            "email",
            "granted",
        ):
            granted[person_of(r)] = r["timestamp"]
    opens = [r for r in records if r.get("event") in {"Email Opened", "Email Clicked"}]
    assert opens
    for r in opens:
        assert person_of(r) in granted
        assert r["timestamp"] >= granted[person_of(r)]


def test_fx_rates_shape_and_levels() -> None:
    table = fx_rates(AS_OF, 7, 800)
    assert table.schema.names == ["day", "currency", "base_currency", "rate"]
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("rate").type == pa.float64()
    currencies = {m.currency for m in MARKETS} - {"USD"}
    assert set(table.column("currency").to_pylist()) == currencies
    assert table.num_rows == 800 * len(currencies)
    assert set(table.column("base_currency").to_pylist()) == {"USD"}
    days = table.column("day").to_pylist()
    assert max(days) == AS_OF
    assert min(days) == AS_OF - dt.timedelta(days=799)
    levels = {"EUR": 1.08, "GBP": 1.27, "IDR": 0.000063, "THB": 0.028, "PHP": 0.018,
              "MYR": 0.22, "BRL": 0.19, "MXN": 0.055, "SAR": 0.2667}  # fmt: skip
    by_currency: dict[str, list[float]] = defaultdict(list)
    for row in table.to_pylist():
        by_currency[row["currency"]].append(row["rate"])
    for code, rates in by_currency.items():
        assert all(0.7 * levels[code] < rate < 1.3 * levels[code] for rate in rates), code
        assert len(set(rates)) > 1, "a walk, not a constant"
    assert all(abs(rate - 0.2667) < 0.001 for rate in by_currency["SAR"]), "pegged"


def test_fx_rates_are_deterministic_and_extend_into_the_past() -> None:
    long = fx_rates(AS_OF, 7, 60)
    assert long.equals(fx_rates(AS_OF, 7, 60))
    short = fx_rates(AS_OF, 7, 10)
    assert short.equals(long.slice(long.num_rows - short.num_rows))
    assert not long.equals(fx_rates(AS_OF, 8, 60))


def test_fx_rates_refuse_an_empty_window() -> None:
    with pytest.raises(InvalidInput):
        fx_rates(AS_OF, 7, 0)
