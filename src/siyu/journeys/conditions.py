"""Branch conditions compiled to SQL over an enrollment and its customer.

A small expression model (see :class:`siyu.journeys.definition.Condition`) rather than the full
tag language: a branch asks about *this* customer at *this* moment (a trait, a tag or tier held
now, an event since entering the journey), which one boolean SQL expression per condition
answers for a whole batch of enrollments at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from siyu.journeys.definition import Condition, Scalar
from siyu.journeys.tables import journey_enrollments as en
from siyu.store.schema import customers as c
from siyu.store.schema import events

COLUMNS = (
    "country",
    "language",
    "timezone",
    "currency",
    "email",
    "phone",
    "first_name",
    "last_name",
)


def json_text(
    column: sa.ColumnElement[Any], path: list[str], dialect: str
) -> sa.ColumnElement[str]:
    """The text at ``path`` inside a JSON column, on PostgreSQL or DuckDB."""
    safe = [p.replace("'", "").replace('"', "") for p in path]
    col = f"{column.table.name}.{column.name}"
    if dialect == "postgresql":
        return sa.literal_column(f"({col} #>> '{{{','.join(safe)}}}')")
    return sa.literal_column(f"({col} ->> '$.{'.'.join(safe)}')")


def _as_text(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _attribute(cond: Condition, dialect: str) -> sa.ColumnElement[bool]:
    name = cond.attribute or ""
    if name.startswith("traits."):
        target: sa.ColumnElement[Any] = json_text(c.c.traits, name.split(".")[1:], dialect)
    elif name in COLUMNS:
        target = c.c[name]
    else:
        raise ValueError(name)  # refused at publish by attribute_problems
    value = cond.value
    if cond.op == "exists":
        return target.is_not(None)
    if cond.op in ("gt", "lt"):
        number = sa.cast(target, sa.Float)
        assert isinstance(value, int | float)
        return number > value if cond.op == "gt" else number < value
    assert value is not None
    values = [_as_text(v) for v in (value if isinstance(value, list) else [value])]
    if cond.op in ("eq", "in"):
        return target.in_(values)
    return sa.or_(target.is_(None), target.not_in(values))


def compile_condition(
    cond: Condition,
    ws: str,
    dialect: str,
    customer: sa.ColumnElement[str] | None = None,
    since: sa.ColumnElement[Any] | None = None,
) -> sa.ColumnElement[bool]:
    """SQL truth of ``cond`` for the row's ``customer`` (default: the enrollment's), counting
    events from ``since`` (default: the enrollment's trigger time)."""
    customer = en.c.customer_id if customer is None else customer
    since = en.c.triggered_at if since is None else since
    if cond.attribute is not None:
        return _attribute(cond, dialect)
    if cond.tag is not None:
        from siyu.segments.tables import customer_tags as ct

        return sa.exists().where(
            ct.c.workspace_id == ws, ct.c.customer_id == customer, ct.c.tag_id == cond.tag
        )
    if cond.tier is not None:
        from siyu.segments.tables import customer_segments as cs

        return sa.exists().where(
            cs.c.workspace_id == ws,
            cs.c.customer_id == customer,
            cs.c.model == cond.tier_model,
            cs.c.tier == cond.tier,
        )
    if cond.event is not None:
        count = (
            sa.select(sa.func.count())
            .where(
                events.c.workspace_id == ws,
                events.c.customer_id == customer,
                events.c.type == "track",
                events.c.event == cond.event,
                events.c.timestamp >= since,
            )
            .scalar_subquery()
        )
        return count >= cond.min_count
    if cond.all is not None:
        return sa.and_(*(compile_condition(x, ws, dialect, customer, since) for x in cond.all))
    if cond.any is not None:
        return sa.or_(*(compile_condition(x, ws, dialect, customer, since) for x in cond.any))
    assert cond.not_ is not None
    return sa.not_(compile_condition(cond.not_, ws, dialect, customer, since))


def attribute_problems(cond: Condition, path: str) -> list[str]:
    """Unknown attributes, found at publish time with the path of the condition."""
    problems: list[str] = []
    if cond.attribute is not None:
        name = cond.attribute
        if not (name.startswith("traits.") and len(name) > 7) and name not in COLUMNS:
            problems.append(
                f"{path}.attribute: unknown attribute '{name}' (use traits.<name> or one of "
                f"{', '.join(COLUMNS)})"
            )
        if cond.op in ("gt", "lt") and not isinstance(cond.value, int | float):
            problems.append(f"{path}.value: op '{cond.op}' needs a number")
    for key in ("all", "any"):
        for i, sub in enumerate(getattr(cond, key) or []):
            problems.extend(attribute_problems(sub, f"{path}.{key}[{i}]"))
    if cond.not_ is not None:
        problems.extend(attribute_problems(cond.not_, f"{path}.not"))
    return problems


def evaluate(conn: sa.Connection, ws: str, cond: Condition, enrollment_ids: list[str]) -> set[str]:
    """The enrollments (of ``enrollment_ids``) whose customer meets ``cond`` now."""
    expr = compile_condition(cond, ws, conn.dialect.name)
    rows = conn.execute(
        sa.select(en.c.enrollment_id)
        .select_from(
            en.outerjoin(
                c,
                sa.and_(c.c.workspace_id == en.c.workspace_id, c.c.customer_id == en.c.customer_id),
            )
        )
        .where(en.c.workspace_id == ws, en.c.enrollment_id.in_(enrollment_ids), expr)
    ).scalars()
    return set(rows)


def event_counts(
    conn: sa.Connection,
    ws: str,
    event: str,
    where: dict[str, Scalar | list[Scalar]],
    enrollment_ids: list[str],
) -> dict[str, int]:
    """How many ``event``s each enrollment's customer sent since the trigger (one query)."""
    from siyu.journeys.triggers import property_filter

    rows = conn.execute(
        sa.select(en.c.enrollment_id, sa.func.count())
        .select_from(
            en.join(
                events,
                sa.and_(
                    events.c.workspace_id == en.c.workspace_id,
                    events.c.customer_id == en.c.customer_id,
                    events.c.timestamp >= en.c.triggered_at,
                ),
            )
        )
        .where(
            en.c.workspace_id == ws,
            en.c.enrollment_id.in_(enrollment_ids),
            events.c.type == "track",
            events.c.event == event,
            *property_filter(events.c.properties, where),
        )
        .group_by(en.c.enrollment_id)
    ).all()
    return {r[0]: int(r[1]) for r in rows}
