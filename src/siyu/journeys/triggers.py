"""Trigger evaluation: who enters a journey now, in set-based SQL.

Each trigger kind is a SELECT of candidates (customer, entry key, when the trigger happened)
over what changed since the journey's cursor (events by ``received_at``, tier and tag history,
scores) or, for local-time triggers, over the customers whose local date or time matches (the
distinct time zones are computed in Python and joined as a small staged table). One INSERT ...
SELECT then enrolls them: the entry policy is a NOT EXISTS on recent enrollments, and the unique
keys on (journey, customer, entry_key) and (journey, active_key) make a double enrollment
impossible even if two evaluations overlap. The first step run is inserted by the same
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.journeys.definition import Definition, Scalar
from siyu.journeys.localtime import WEEKDAY_INDEX, local_now, zone_expr
from siyu.journeys.tables import journey_enrollments, journey_step_runs, journeys
from siyu.store import bulk
from siyu.store.schema import customers, events, orders

# Events and history rows are re-read this far behind the cursor, so that a row committed late
# by a slow writer (with an earlier received_at) is still seen; the unique keys absorb re-reads.
OVERLAP = timedelta(minutes=10)
# "At most every N days" tolerates this much, so a daily schedule does not drift past its day.
EVERY_TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True)
class Candidates:
    """A SELECT with columns customer_id, entry_key, triggered_at (one row per customer)."""

    query: sa.Select[Any]
    cleanup: list[str]


def property_filter(
    column: sa.ColumnElement[Any], where: dict[str, Scalar | list[Scalar]]
) -> list[sa.ColumnElement[bool]]:
    """JSON property equality (a list: any of), compared as text on both engines."""
    clauses: list[sa.ColumnElement[bool]] = []
    for key, value in where.items():
        name = f"{column.table.name}.{column.name}"
        text: sa.ColumnElement[Any] = sa.literal_column(
            f"({name} ->> '{key.replace(chr(39), '')}')"
        )
        values = value if isinstance(value, list) else [value]
        as_text = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        clauses.append(text.in_(as_text))
    return clauses


def _once_or(definition: Definition, key: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.literal("once") if definition.entry.policy == "once" else key


def event_candidates(ws: str, d: Definition, since: datetime, now: datetime) -> sa.Select[Any]:
    t = d.trigger.event
    assert t is not None
    e = events
    inner = sa.select(
        e.c.customer_id,
        _once_or(d, e.c.message_id).label("entry_key"),
        e.c.timestamp.label("triggered_at"),
    ).where(
        e.c.workspace_id == ws,
        e.c.type == "track",
        e.c.event == t.name,
        e.c.customer_id.is_not(None),
        e.c.received_at > since,
        e.c.received_at <= now,
        *property_filter(e.c.properties, t.where),
    )
    return _first_per_customer(inner.subquery())


def _first_per_customer(sub: sa.Subquery) -> sa.Select[Any]:
    return sa.select(
        sub.c.customer_id,
        sa.func.min(sub.c.entry_key).label("entry_key"),
        sa.func.min(sub.c.triggered_at).label("triggered_at"),
    ).group_by(sub.c.customer_id)


def tier_candidates(ws: str, d: Definition, since: datetime, now: datetime) -> sa.Select[Any]:
    from siyu.segments.tables import tier_history as h

    t = d.trigger.tier
    assert t is not None
    if t.enter is not None:
        change = h.c.to_tier == t.enter
    else:
        change = sa.and_(h.c.from_tier == t.leave, h.c.to_tier != t.leave)
    inner = sa.select(
        h.c.customer_id,
        _once_or(d, h.c.run_id).label("entry_key"),
        h.c.changed_at.label("triggered_at"),
    ).where(
        h.c.workspace_id == ws,
        h.c.model == t.model,
        change,
        h.c.changed_at > since,
        h.c.changed_at <= now,
    )
    return _first_per_customer(inner.subquery())


def tag_candidates(ws: str, d: Definition, since: datetime, now: datetime) -> sa.Select[Any]:
    from siyu.segments.tables import tag_history as h

    t = d.trigger.tag
    assert t is not None
    inner = sa.select(
        h.c.customer_id,
        _once_or(d, h.c.run_id).label("entry_key"),
        h.c.changed_at.label("triggered_at"),
    ).where(
        h.c.workspace_id == ws,
        h.c.tag_id == t.tag,
        h.c.change == t.change,
        h.c.changed_at > since,
        h.c.changed_at <= now,
    )
    return _first_per_customer(inner.subquery())


def segment_candidates(ws: str, d: Definition, since: datetime, now: datetime) -> sa.Select[Any]:
    from siyu.segments.tables import segment_history as h

    t = d.trigger.segment
    assert t is not None
    inner = sa.select(
        h.c.customer_id,
        _once_or(d, h.c.run_id).label("entry_key"),
        h.c.changed_at.label("triggered_at"),
    ).where(
        h.c.workspace_id == ws,
        h.c.segment_id == t.id,
        h.c.change == t.change,
        h.c.changed_at > since,
        h.c.changed_at <= now,
    )
    return _first_per_customer(inner.subquery())


def churn_candidates(ws: str, d: Definition, since: datetime, now: datetime) -> sa.Select[Any]:
    from siyu.predict.tables import customer_scores as s

    t = d.trigger.churn_risk
    assert t is not None
    return sa.select(
        s.c.customer_id,
        _once_or(d, s.c.churn_model_version).label("entry_key"),
        s.c.churn_scored_at.label("triggered_at"),
    ).where(
        s.c.workspace_id == ws,
        s.c.churn_risk > t.above,
        s.c.churn_scored_at > since,
        s.c.churn_scored_at <= now,
    )


HISTORY_TRIGGERS = {
    "event": event_candidates,
    "tier": tier_candidates,
    "tag": tag_candidates,
    "segment": segment_candidates,
    "churn_risk": churn_candidates,
}


def _zones(conn: sa.Connection, ws: str, region: str) -> list[str]:
    zone = zone_expr(region)
    rows = conn.execute(sa.select(zone).where(customers.c.workspace_id == ws).distinct()).scalars()
    return [z for z in rows if z is not None]


def local_candidates(
    conn: sa.Connection, ws: str, region: str, d: Definition, now: datetime
) -> Candidates | None:
    """Birthday, days-since-first-order and schedule triggers: per zone, then one join."""
    zones = _zones(conn, ws, region)
    if not zones:
        return None
    local = {z: local_now(now, z) for z in zones}
    c = customers
    if d.trigger.schedule is not None:
        sched = d.trigger.schedule
        allowed = {WEEKDAY_INDEX[w] for w in sched.weekdays} or set(range(7))
        hh, mm = (int(x) for x in sched.at.split(":"))
        rows = [
            (z, t.date().isoformat())
            for z, t in local.items()
            if t.weekday() in allowed and (t.hour, t.minute) >= (hh, mm)
        ]
        if not rows:
            return None
        data = pa.table({"zone": [r[0] for r in rows], "occurrence": [r[1] for r in rows]})
        name = _stage_small(conn, data)
        staged = sa.table(name.strip('"'), sa.column("zone"), sa.column("occurrence"))
        query = sa.select(
            c.c.customer_id,
            _once_or(d, sa.literal("schedule:") + staged.c.occurrence).label("entry_key"),
            sa.literal(now).label("triggered_at"),
        ).select_from(c.join(staged, zone_expr(region) == staged.c.zone))
        query = query.where(c.c.workspace_id == ws)
        if sched.tag is not None:
            from siyu.segments.tables import customer_tags as ct

            query = query.where(
                sa.exists().where(
                    ct.c.workspace_id == ws,
                    ct.c.customer_id == c.c.customer_id,
                    ct.c.tag_id == sched.tag,
                )
            )
        if sched.tier is not None:
            from siyu.segments.tables import customer_segments as cs

            query = query.where(
                sa.exists().where(
                    cs.c.workspace_id == ws,
                    cs.c.customer_id == c.c.customer_id,
                    cs.c.model == "default",
                    cs.c.tier == sched.tier,
                )
            )
        return Candidates(query, [name])
    t = d.trigger.date
    assert t is not None
    targets = [(z, (local[z] - timedelta(days=t.days)).date()) for z in zones]
    data = pa.table(
        {
            "zone": [z for z, _ in targets],
            "month": pa.array([day.month for _, day in targets], pa.int32()),
            "day": pa.array([day.day for _, day in targets], pa.int32()),
            "target": pa.array([day for _, day in targets], pa.date32()),
            "year": [str(local[z].year) for z, _ in targets],
        }
    )
    name = _stage_small(conn, data)
    s = sa.table(
        name.strip('"'),
        sa.column("zone"),
        sa.column("month"),
        sa.column("day"),
        sa.column("target", sa.Date()),
        sa.column("year"),
    )
    if t.attribute == "birthday":
        query = (
            sa.select(
                c.c.customer_id,
                _once_or(d, sa.literal("birthday:") + s.c.year).label("entry_key"),
                sa.literal(now).label("triggered_at"),
            )
            .select_from(c.join(s, zone_expr(region) == s.c.zone))
            .where(
                c.c.workspace_id == ws,
                sa.extract("month", c.c.birthday) == s.c.month,
                sa.extract("day", c.c.birthday) == s.c.day,
            )
        )
        return Candidates(query, [name])
    o = orders
    first = (
        sa.select(o.c.customer_id, sa.func.min(o.c.placed_at).label("first_at"))
        .where(o.c.workspace_id == ws, o.c.customer_id.is_not(None))
        .group_by(o.c.customer_id)
        .subquery()
    )
    query = (
        sa.select(
            c.c.customer_id,
            sa.literal("first_order").label("entry_key"),
            sa.literal(now).label("triggered_at"),
        )
        .select_from(
            c.join(first, first.c.customer_id == c.c.customer_id).join(
                s, zone_expr(region) == s.c.zone
            )
        )
        .where(c.c.workspace_id == ws, sa.cast(first.c.first_at, sa.Date) == s.c.target)
    )
    return Candidates(query, [name])


def _stage_small(conn: sa.Connection, data: pa.Table) -> str:
    """Stage a small helper table (per-zone answers) for one transaction."""
    if conn.dialect.name == "duckdb":
        return bulk.stage(conn, journeys, data)
    # PostgreSQL: bulk.stage copies the shape of a stored table; this one has its own columns.
    name = f"__siyu_jz_{next(_ids)}"
    types = {pa.string(): "TEXT", pa.int32(): "INTEGER", pa.date32(): "DATE"}
    cols = ", ".join(f'"{f.name}" {types[f.type]}' for f in data.schema)
    conn.exec_driver_sql(f'CREATE TEMP TABLE "{name}" ({cols}) ON COMMIT DROP')
    rows = data.to_pylist()
    if rows:
        conn.execute(
            sa.text(
                f'INSERT INTO "{name}" VALUES ('
                + ", ".join(f":{f.name}" for f in data.schema)
                + ")"
            ),
            rows,
        )
    return f'"{name}"'


_ids = iter(range(1, 1 << 62))


def enroll(
    conn: sa.Connection,
    ws: str,
    journey_id: str,
    version: int,
    definition: Definition,
    candidates: sa.Select[Any],
    now: datetime,
) -> int:
    """Insert enrollments and their first step runs; return how many customers entered."""
    cand = candidates.subquery("cand")
    en = journey_enrollments
    prior = sa.select(sa.literal(1)).where(
        en.c.workspace_id == ws,
        en.c.journey_id == journey_id,
        en.c.customer_id == cand.c.customer_id,
    )
    blocked: sa.ColumnElement[bool]
    if definition.entry.policy == "once":
        blocked = sa.exists(prior)
    else:
        assert definition.entry.days is not None
        recent = now - timedelta(days=definition.entry.days) + EVERY_TOLERANCE
        blocked = sa.or_(
            sa.exists(prior.where(en.c.active_key.is_not(None))),
            sa.exists(prior.where(en.c.entered_at > recent)),
        )
    enrollment_id = sa.literal("en_") + sa.func.substr(
        sa.func.md5(
            sa.literal(journey_id + "|")
            + cand.c.customer_id
            + sa.literal("|")
            + cast_text(cand.c.entry_key)
        ),
        1,
        24,
    )
    select = sa.select(
        sa.literal(ws),
        enrollment_id,
        sa.literal(journey_id),
        sa.literal(version),
        cand.c.customer_id,
        cand.c.entry_key,
        cand.c.customer_id,
        sa.literal("active"),
        cand.c.triggered_at,
        sa.literal(now),
    ).where(sa.not_(blocked))
    insert = (
        pg_insert(en)
        .from_select(
            [
                "workspace_id",
                "enrollment_id",
                "journey_id",
                "version",
                "customer_id",
                "entry_key",
                "active_key",
                "state",
                "triggered_at",
                "entered_at",
            ],
            select,
        )
        .on_conflict_do_nothing()
        .returning(en.c.enrollment_id)
    )
    entered = len(conn.execute(insert).all())
    if entered:
        first = definition.steps[0].id
        r = journey_step_runs
        conn.execute(
            r.insert().from_select(
                [
                    "workspace_id",
                    "enrollment_id",
                    "step_id",
                    "journey_id",
                    "version",
                    "customer_id",
                    "state",
                    "due_at",
                    "attempts",
                    "created_at",
                ],
                sa.select(
                    en.c.workspace_id,
                    en.c.enrollment_id,
                    sa.literal(first),
                    en.c.journey_id,
                    en.c.version,
                    en.c.customer_id,
                    sa.literal("due"),
                    sa.literal(now),
                    sa.literal(0),
                    sa.literal(now),
                ).where(
                    en.c.workspace_id == ws,
                    en.c.journey_id == journey_id,
                    en.c.entered_at == now,
                    en.c.state == "active",
                    ~sa.exists().where(
                        r.c.workspace_id == ws, r.c.enrollment_id == en.c.enrollment_id
                    ),
                ),
            )
        )
    return entered


def cast_text(col: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    return sa.cast(col, sa.String)


def evaluate(
    conn: sa.Connection,
    ws: str,
    region: str,
    journey_id: str,
    version: int,
    definition: Definition,
    cursor: datetime | None,
    now: datetime,
) -> int:
    """Enroll everyone the trigger selects between the cursor and now; advance the cursor."""
    since = (cursor or now) - OVERLAP
    kind = definition.trigger.kind
    staged: list[str] = []
    query: sa.Select[Any] | None
    if kind in HISTORY_TRIGGERS:
        query = HISTORY_TRIGGERS[kind](ws, definition, since, now)
    else:
        found = local_candidates(conn, ws, region, definition, now)
        query = found.query if found else None
        staged = found.cleanup if found else []
    entered = 0
    if query is not None:
        entered = enroll(conn, ws, journey_id, version, definition, query, now)
    if conn.dialect.name == "duckdb":  # PostgreSQL drops its temp tables at commit
        for name in staged:
            bulk.unstage(conn, name)
    conn.execute(
        journeys.update()
        .where(journeys.c.workspace_id == ws, journeys.c.journey_id == journey_id)
        .values(trigger_cursor=now)
    )
    return entered
