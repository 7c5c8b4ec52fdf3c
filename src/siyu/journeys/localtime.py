"""Customers' local time, computed once per distinct time zone (not once per customer).

A customer's zone is ``customers.timezone``, else the usual zone of their country, else that of
the workspace's default region. Local-time logic (birthdays, schedules, "Wednesday 20:00") asks
for the distinct zones of a set of customers, computes each zone's answer in Python, stages that
small table and joins it in SQL.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from siyu.store.schema import customers

# The most populous zone of each country siyu's markets cover; anything else falls back to UTC.
COUNTRY_ZONES: dict[str, str] = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "DE": "Europe/Berlin",
    "FR": "Europe/Paris",
    "ES": "Europe/Madrid",
    "IT": "Europe/Rome",
    "NL": "Europe/Amsterdam",
    "SE": "Europe/Stockholm",
    "PL": "Europe/Warsaw",
    "CN": "Asia/Shanghai",
    "HK": "Asia/Hong_Kong",
    "TW": "Asia/Taipei",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "SG": "Asia/Singapore",
    "MY": "Asia/Kuala_Lumpur",
    "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh",
    "ID": "Asia/Jakarta",
    "PH": "Asia/Manila",
    "IN": "Asia/Kolkata",
    "AE": "Asia/Dubai",
    "SA": "Asia/Riyadh",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
}
WEEKDAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@lru_cache(maxsize=1024)
def zone_of(name: str | None) -> ZoneInfo:
    """The zone named, or UTC when the name is unknown (a bad value must not stop a journey).

    Cached: ZoneInfo keeps only 8 zones strongly, so a batch spanning a dozen markets re-read
    zone files for every customer (a tenth of the dispatch time in the journeys benchmark).
    """
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def zone_expr(default_region: str) -> sa.ColumnElement[str]:
    """SQL: the customer's effective zone name."""
    fallback = COUNTRY_ZONES.get(default_region.upper(), "UTC")
    by_country = sa.case(
        *((customers.c.country == code, zone) for code, zone in COUNTRY_ZONES.items()),
        else_=sa.literal(fallback),
    )
    return sa.func.coalesce(customers.c.timezone, by_country)


def local_now(now_utc: datetime, zone: str) -> datetime:
    """Naive local wall-clock time in ``zone`` for a naive UTC moment."""
    return now_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone_of(zone)).replace(tzinfo=None)


def next_local(after_utc: datetime, zone: str, at: str, weekdays: list[str]) -> datetime:
    """The first UTC moment after ``after_utc`` that is ``at`` local time on an allowed weekday.

    Gaps and folds of daylight saving resolve the way zoneinfo does (the earlier offset).
    """
    tz = zone_of(zone)
    hour, minute = (int(x) for x in at.split(":"))
    allowed = {WEEKDAY_INDEX[d] for d in weekdays} or set(range(7))
    local = after_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    day = local.date()
    for _ in range(15):
        if day.weekday() in allowed:
            candidate = datetime.combine(day, time(hour, minute), tzinfo=tz)
            as_utc = candidate.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
            if as_utc > after_utc:
                return as_utc
        day += timedelta(days=1)
    raise AssertionError(
        "no matching weekday within two weeks"
    )  # unreachable: allowed is non-empty
