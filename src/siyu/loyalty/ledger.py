"""The points ledger: append-only, double-entry, consumed first in, first out by lot.

Every row moves points between a customer's account and a named system account
(``contra_account``: ``issued:order``, ``redeemed:reward``, ``expired``, ``reversed:refund``);
the system side of each row is implied, so the trial balance of a row is always zero and a
customer's balance is the sum of their rows. Balances are derived, never stored.

Lots: an earn row opens a lot (``lot_id`` = its idempotency key) with an expiry. Redemptions,
expiries and refund reversals are negative rows naming the lot they draw on, and they never take
more than a lot's remainder, so no balance can go negative by construction. Taking from lots is
FIFO by expiry (then age); a refund reversal takes from the refunded order's own lot first.

Concurrency: every consuming transaction locks the customer's ``loyalty_accounts`` row
(``SELECT ... FOR UPDATE`` on PostgreSQL; the database write lock on DuckDB, which has one writer
process). Idempotency keys are the primary key of a row (with its line number), so a retried
request or a concurrent duplicate can never post twice.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from siyu.errors import Conflict, InvalidInput
from siyu.loyalty.tables import loyalty_accounts, points_ledger
from siyu.store.bulk import append_new
from siyu.store.database import Database

L = points_ledger
MAX_POINTS = 10**12


class InsufficientPoints(Conflict):
    """A redemption asks for more points than the customer's available balance."""

    code = "insufficient_points"
    default_hint = "Redeem at most the available balance (siyu loyalty balance CUSTOMER)."


@dataclass(frozen=True)
class Entry:
    """One posting (all lines of one idempotency key), as the customer sees it."""

    idempotency_key: str
    customer_id: str
    kind: str
    points: int  # signed net change of the balance
    shortfall: int  # points a reversal could not claw back (already spent)
    reason: str
    reference: str | None
    created_at: datetime
    created: bool  # False when the key had been posted before


def short_key(value: str) -> str:
    """A fixed-length digest for keys built from other keys (fits the 200-character column)."""
    return hashlib.md5(value.encode()).hexdigest()


def _among(
    conn: sa.Connection, column: sa.ColumnElement[str], values: Sequence[str]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL a long list is one array parameter (``= ANY``), not
    one parameter per value (slow to bind, and capped at 65,535 per statement)."""
    wanted = sorted(set(values))
    if conn.dialect.name == "postgresql" and len(wanted) > SMALL_BATCH:
        return column == sa.any_(sa.literal(wanted, ARRAY(sa.String())))
    return column.in_(wanted)


def _frame(rows: Sequence[Sequence[object]], columns: list[str]) -> pd.DataFrame:
    """Result rows as a DataFrame, built column-wise (much faster than from Row objects)."""
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(dict(zip(columns, zip(*rows, strict=True), strict=True)))


def require_points(points: object, field: str = "points") -> int:
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise InvalidInput(
            f"{field} must be a positive whole number of points, got {points!r}.", field=field
        )
    return points


def require_key(key: object) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= 200:
        raise InvalidInput(
            "idempotency_key must be a string of 1 to 200 characters.",
            hint="Use a key that names the business action, e.g. 'checkout:ORDER-123'.",
            field="idempotency_key",
        )
    return key


@contextmanager
def locked(db: Database, workspace_id: str, customer_ids: Sequence[str]) -> Iterator[sa.Connection]:
    """A transaction holding the accounts of ``customer_ids`` (created when missing)."""
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        ensure_accounts(conn, workspace_id, customer_ids)
        if db.kind == "postgres":
            conn.execute(
                sa.select(loyalty_accounts.c.customer_id)
                .where(
                    loyalty_accounts.c.workspace_id == workspace_id,
                    _among(conn, loyalty_accounts.c.customer_id, customer_ids),
                )
                .order_by(loyalty_accounts.c.customer_id)
                .with_for_update()
            ).all()
        yield conn


def ensure_accounts(conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str]) -> None:
    ids = sorted(set(customer_ids))
    if not ids:
        return
    now = datetime.now().replace(microsecond=0)
    if len(ids) > SMALL_BATCH:  # one Arrow append (a VALUES list has a parameter limit)
        accounts = pa.table(
            {
                "workspace_id": pa.array([workspace_id] * len(ids), pa.string()),
                "customer_id": pa.array(ids, pa.string()),
                "created_at": pa.array([now] * len(ids), pa.timestamp("us")),
            }
        )
        append_new(conn, loyalty_accounts, accounts)
        return
    conn.execute(
        pg_insert(loyalty_accounts)
        .values([{"workspace_id": workspace_id, "customer_id": c, "created_at": now} for c in ids])
        .on_conflict_do_nothing()
    )


def _entry(conn: sa.Connection, workspace_id: str, key: str) -> Entry | None:
    row = conn.execute(
        sa.select(
            sa.func.min(L.c.customer_id),
            sa.func.min(L.c.kind),
            sa.func.sum(L.c.amount),
            sa.func.sum(L.c.shortfall),
            sa.func.min(L.c.reason),
            sa.func.min(L.c.reference),
            sa.func.min(L.c.created_at),
        ).where(L.c.workspace_id == workspace_id, L.c.idempotency_key == key)
    ).one()
    if row[0] is None:
        return None
    return Entry(key, row[0], row[1], int(row[2]), int(row[3]), row[4], row[5], row[6], False)


def _rows(
    workspace_id: str,
    *,
    keys: Sequence[str],
    lines: Sequence[int],
    customers: Sequence[str],
    kind: str,
    amounts: Sequence[int],
    contra: str,
    lots: Sequence[str | None],
    expires: Sequence[datetime | None],
    reason: str,
    reference: Sequence[str | None],
    shortfall: Sequence[int],
    now: datetime,
) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "workspace_id": pa.array([workspace_id] * n, pa.string()),
            "idempotency_key": pa.array(keys, pa.string()),
            "line_no": pa.array(lines, pa.int32()),
            "customer_id": pa.array(customers, pa.string()),
            "kind": pa.array([kind] * n, pa.string()),
            "amount": pa.array(amounts, pa.int64()),
            "contra_account": pa.array([contra] * n, pa.string()),
            "lot_id": pa.array(lots, pa.string()),
            "expires_at": pa.array(expires, pa.timestamp("us")),
            "reason": pa.array([reason] * n, pa.string()),
            "reference": pa.array(reference, pa.string()),
            "shortfall": pa.array(shortfall, pa.int64()),
            "created_at": pa.array([now] * n, pa.timestamp("us")),
        }
    )


SMALL_BATCH = 200
"""Up to this many rows go in as one parameterised INSERT: staging an Arrow table (a temporary
table and COPY on PostgreSQL) costs a dozen statements, which a single request cannot amortise."""


def _append(conn: sa.Connection, table: pa.Table) -> None:
    """Insert ledger rows, skipping keys already posted (``ON CONFLICT DO NOTHING``)."""
    if table.num_rows == 0:
        return
    if table.num_rows > SMALL_BATCH:
        append_new(conn, points_ledger, table)
        return
    conn.execute(pg_insert(points_ledger).on_conflict_do_nothing(), table.to_pylist())


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it has fewer days)."""
    import calendar

    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def earn(
    db: Database,
    workspace_id: str,
    customer_id: str,
    points: int,
    *,
    key: str,
    reason: str,
    now: datetime,
    reference: str | None = None,
    expires_at: datetime | None = None,
    expiry_months: int = 12,
) -> Entry:
    """Credit ``points`` as a new lot; a repeated key returns the first posting unchanged."""
    require_points(points)
    require_key(key)
    guard = db.write_lock if db.kind == "duckdb" else nullcontext()
    with guard, db.engine.begin() as conn:
        existing = _entry(conn, workspace_id, key)
        if existing is not None:
            return _same(existing, customer_id, points, "earn")
        ensure_accounts(conn, workspace_id, [customer_id])
        earn_many(
            conn,
            workspace_id,
            pd.DataFrame(
                {
                    "customer_id": [customer_id],
                    "points": [points],
                    "key": [key],
                    "reference": [reference],
                    "expires_at": [expires_at or add_months(now, expiry_months)],
                }
            ),
            reason=reason,
            now=now,
        )
        entry = _entry(conn, workspace_id, key)
    assert entry is not None
    return Entry(**{**entry.__dict__, "created": True})


def _same(existing: Entry, customer_id: str, points: int, kind: str) -> Entry:
    """A replayed key must describe the same posting; anything else is a conflict."""
    if existing.customer_id != customer_id or existing.kind != kind:
        raise Conflict(
            f"Idempotency key {existing.idempotency_key!r} was used for another posting "
            f"({existing.kind} for customer {existing.customer_id}).",
            hint="Use a new idempotency key for a new posting.",
            field="idempotency_key",
        )
    requested = points if kind == "earn" else -points
    if existing.points + (existing.shortfall if kind != "earn" else 0) != requested:
        raise Conflict(
            f"Idempotency key {existing.idempotency_key!r} was used for {abs(existing.points)} "
            f"points, not {points}.",
            hint="Use a new idempotency key for a new posting.",
            field="idempotency_key",
        )
    return existing


def earn_many(
    conn: sa.Connection, workspace_id: str, rows: pd.DataFrame, *, reason: str, now: datetime
) -> None:
    """Bulk-credit lots (columns customer_id, points, key, reference, expires_at).

    One Arrow append with ``ON CONFLICT DO NOTHING``: keys already posted are skipped.
    """
    if rows.empty:
        return
    keys = rows["key"].tolist()
    table = _rows(
        workspace_id,
        keys=keys,
        lines=[0] * len(keys),
        customers=rows["customer_id"].tolist(),
        kind="earn",
        amounts=rows["points"].astype("int64").tolist(),
        contra=f"issued:{reason}",
        lots=keys,
        expires=rows["expires_at"].tolist(),
        reason=reason,
        reference=rows["reference"].tolist(),
        shortfall=[0] * len(keys),
        now=now,
    )
    _append(conn, table)


def open_lots(
    conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str], now: datetime
) -> pd.DataFrame:
    """Lots with points left (customer_id, lot_id, expires_at, created_at, remaining)."""
    q = (
        sa.select(
            L.c.customer_id,
            L.c.lot_id,
            sa.func.max(L.c.expires_at).label("expires_at"),
            sa.func.min(L.c.created_at).label("created_at"),
            sa.func.sum(L.c.amount).label("remaining"),
        )
        .where(
            L.c.workspace_id == workspace_id,
            _among(conn, L.c.customer_id, customer_ids),
            L.c.lot_id.is_not(None),
        )
        .group_by(L.c.customer_id, L.c.lot_id)
        .having(sa.func.sum(L.c.amount) > 0)
    )
    lots = _frame(conn.execute(q).all(), list(q.selected_columns.keys()))
    lots["remaining"] = lots["remaining"].astype("int64")
    live = lots["expires_at"].isna() | (pd.to_datetime(lots["expires_at"]) > pd.Timestamp(now))
    return lots[live]


def allocate(lots: pd.DataFrame, wants: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FIFO allocation of ``wants`` (customer_id, want, preferred_lot) over ``lots``.

    Vectorised: within each customer, lots sorted (preferred lot first, then earliest expiry,
    then oldest); each lot gives min(remainder, what is still wanted after the earlier lots).
    Returns (takes: customer_id, lot_id, take) and (per customer: taken, shortfall).
    """
    if len(wants) == 1:
        return _allocate_one(lots, wants)
    merged = lots.merge(wants, on="customer_id", how="inner")
    if merged.empty:
        summary = wants.assign(taken=0, shortfall=wants["want"])
        return pd.DataFrame(columns=["customer_id", "lot_id", "take"]), summary
    merged["pref"] = np.where(merged["lot_id"] == merged["preferred_lot"], 0, 1)
    merged["expiry_key"] = pd.to_datetime(merged["expires_at"]).fillna(pd.Timestamp.max)
    merged = merged.sort_values(
        ["customer_id", "pref", "expiry_key", "created_at", "lot_id"], kind="stable"
    )
    cum = merged.groupby("customer_id", sort=False)["remaining"].cumsum().to_numpy()
    remaining = merged["remaining"].to_numpy()
    before = cum - remaining
    take = np.clip(merged["want"].to_numpy() - before, 0, remaining)
    merged["take"] = take.astype("int64")
    takes = merged.loc[merged["take"] > 0, ["customer_id", "lot_id", "take"]]
    taken = takes.groupby("customer_id")["take"].sum()
    summary = wants.set_index("customer_id")
    summary["taken"] = taken.reindex(summary.index).fillna(0).astype("int64")
    summary["shortfall"] = summary["want"] - summary["taken"]
    return takes.reset_index(drop=True), summary.reset_index()


def _allocate_one(lots: pd.DataFrame, wants: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`allocate` for one customer (a single request): the same order over the few lots
    of one member, without the grouped pandas machinery that dominates a request's time."""
    customer, want, preferred = (wants.iloc[0][c] for c in ("customer_id", "want", "preferred_lot"))
    mine = lots[lots["customer_id"] == customer]
    never = pd.Timestamp.max
    order = sorted(
        zip(
            mine["lot_id"].tolist(),
            mine["remaining"].tolist(),
            pd.to_datetime(mine["expires_at"]).fillna(never).tolist(),
            mine["created_at"].tolist(),
            strict=True,
        ),
        key=lambda lot: (0 if lot[0] == preferred else 1, lot[2], lot[3], lot[0]),
    )
    still, lot_ids, taken = int(want), [], []
    for lot_id, remaining, _, _ in order:
        if still <= 0:
            break
        take = min(int(remaining), still)
        lot_ids.append(lot_id)
        taken.append(take)
        still -= take
    takes = pd.DataFrame(
        {"customer_id": [customer] * len(lot_ids), "lot_id": lot_ids, "take": taken}
    ).astype({"take": "int64"})
    summary = wants.assign(taken=int(want) - still, shortfall=still)
    return takes, summary.reset_index(drop=True)


def expire(
    conn: sa.Connection,
    workspace_id: str,
    now: datetime,
    customer_ids: Sequence[str] | None = None,
) -> int:
    """Post one expiry row per lot past its expiry with points left (set-based, idempotent)."""
    key = sa.literal("expire:") + sa.func.md5(L.c.lot_id)
    where = [L.c.workspace_id == workspace_id, L.c.lot_id.is_not(None)]
    if customer_ids is not None:
        where.append(_among(conn, L.c.customer_id, customer_ids))
    select = (
        sa.select(
            L.c.workspace_id,
            key.label("idempotency_key"),
            sa.literal(0).label("line_no"),
            L.c.customer_id,
            sa.literal("expire").label("kind"),
            (-sa.func.sum(L.c.amount)).label("amount"),
            sa.literal("expired").label("contra_account"),
            L.c.lot_id,
            sa.null().label("expires_at"),
            sa.literal("expiry").label("reason"),
            L.c.lot_id.label("reference"),
            sa.literal(0).label("shortfall"),
            sa.literal(now, sa.DateTime()).label("created_at"),
        )
        .where(*where)
        .group_by(L.c.workspace_id, L.c.customer_id, L.c.lot_id)
        .having(sa.func.sum(L.c.amount) > 0, sa.func.max(L.c.expires_at) <= now)
    )
    cols = [c.name for c in L.columns]
    stmt = (
        pg_insert(L)
        .from_select(cols, select)
        .on_conflict_do_nothing()
        .returning(L.c.idempotency_key)
    )
    return len(conn.execute(stmt).all())


def redeem(
    db: Database,
    workspace_id: str,
    customer_id: str,
    points: int,
    *,
    key: str,
    now: datetime,
    reason: str = "reward",
    reference: str | None = None,
) -> Entry:
    """Debit ``points`` FIFO by lot; refuse (InsufficientPoints) rather than overspend."""
    require_points(points)
    require_key(key)
    with locked(db, workspace_id, [customer_id]) as conn:
        existing = _entry(conn, workspace_id, key)
        if existing is not None:
            return _same(existing, customer_id, points, "redeem")
        expire(conn, workspace_id, now, [customer_id])
        lots = open_lots(conn, workspace_id, [customer_id], now)
        available = int(lots["remaining"].sum())
        if available < points:
            raise InsufficientPoints(
                f"Customer {customer_id} has {available} points available; "
                f"{points} were asked for.",
                details={"available": available, "requested": points},
            )
        wants = pd.DataFrame(
            {"customer_id": [customer_id], "want": [points], "preferred_lot": [""]}
        )
        takes, _ = allocate(lots, wants)
        _post_takes(
            conn, workspace_id, takes, key, "redeem", f"redeemed:{reason}", reason, reference, now
        )
        entry = _entry(conn, workspace_id, key)
    assert entry is not None
    return Entry(**{**entry.__dict__, "created": True})


def _post_takes(
    conn: sa.Connection,
    workspace_id: str,
    takes: pd.DataFrame,
    key: str,
    kind: str,
    contra: str,
    reason: str,
    reference: str | None,
    now: datetime,
    shortfall: int = 0,
) -> None:
    n = len(takes)
    lots: list[str | None] = takes["lot_id"].tolist()
    amounts = (-takes["take"]).astype("int64").tolist()
    shortfalls = [0] * n
    if shortfall > 0:
        lots.append(None)
        amounts.append(0)
        shortfalls.append(shortfall)
    m = len(lots)
    customer = str(takes["customer_id"].iloc[0]) if n else None
    table = _rows(
        workspace_id,
        keys=[key] * m,
        lines=list(range(m)),
        customers=[customer] * m if customer else [],
        kind=kind,
        amounts=amounts,
        contra=contra,
        lots=lots,
        expires=[None] * m,
        reason=reason,
        reference=[reference] * m,
        shortfall=shortfalls,
        now=now,
    )
    _append(conn, table)


def reverse(db: Database, workspace_id: str, demands: pd.DataFrame, *, now: datetime) -> int:
    """Claw back points (columns customer_id, key, want, preferred_lot, reference).

    Takes from the preferred lot (the refunded order's) first, then FIFO, up to what the customer
    still has; what was already spent is recorded as ``shortfall`` on a zero-amount line, so the
    balance never goes negative and the loss stays visible. Customers with several demands are
    served in rounds so that each round allocates one demand per customer.
    """
    if demands.empty:
        return 0
    posted = 0
    customers = demands["customer_id"].unique().tolist()
    with locked(db, workspace_id, customers) as conn:
        done = {
            str(k)
            for (k,) in conn.execute(
                sa.select(L.c.idempotency_key).where(
                    L.c.workspace_id == workspace_id,
                    _among(conn, L.c.idempotency_key, demands["key"].tolist()),
                )
            )
        }
        todo = demands[~demands["key"].isin(done)].copy()
        todo["round"] = todo.groupby("customer_id").cumcount()
        for _, batch in todo.groupby("round", sort=True):
            if len(batch) > SMALL_BATCH:
                posted += _reverse_in_database(conn, workspace_id, batch, now)
                continue
            lots = open_lots(conn, workspace_id, batch["customer_id"].tolist(), now)
            takes, summary = allocate(lots, batch[["customer_id", "want", "preferred_lot"]])
            posted += _post_batch(conn, workspace_id, batch, takes, summary, now)
    return posted


_stage_names = itertools.count()

# FIFO claw-back of one round (one demand per customer) as one INSERT ... SELECT: the lots of
# the staged customers, ordered like :func:`allocate` (preferred lot, expiry, age, id), a running
# sum per customer, each lot giving min(remainder, what is still wanted); a shortfall line per
# demand not met in full; line numbers per key in that order.
_REVERSE_SQL = """
INSERT INTO points_ledger (workspace_id, idempotency_key, line_no, customer_id, kind, amount,
                           contra_account, lot_id, expires_at, reason, reference, shortfall,
                           created_at)
WITH lots AS (
    SELECT l.customer_id, l.lot_id, MAX(l.expires_at) AS expires_at,
           MIN(l.created_at) AS created_at, SUM(l.amount) AS remaining
    FROM points_ledger l
    WHERE l.workspace_id = :ws AND l.lot_id IS NOT NULL
      AND l.customer_id IN (SELECT customer_id FROM {stage})
    GROUP BY l.customer_id, l.lot_id
    HAVING SUM(l.amount) > 0 AND (MAX(l.expires_at) IS NULL OR MAX(l.expires_at) > :now)),
ordered AS (
    SELECT d.customer_id, d.idempotency_key, d.want, d.reference, o.lot_id, o.remaining,
           SUM(o.remaining) OVER (
               PARTITION BY d.customer_id
               ORDER BY CASE WHEN o.lot_id = d.preferred_lot THEN 0 ELSE 1 END,
                        o.expires_at NULLS LAST, o.created_at, o.lot_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM lots o JOIN {stage} d ON d.customer_id = o.customer_id),
takes AS (
    SELECT customer_id, idempotency_key, reference, lot_id, cum,
           LEAST(remaining, want - (cum - remaining)) AS take
    FROM ordered WHERE want - (cum - remaining) > 0),
short AS (
    SELECT d.customer_id, d.idempotency_key, d.reference,
           d.want - COALESCE(t.taken, 0) AS shortfall
    FROM {stage} d
    LEFT JOIN (SELECT idempotency_key, SUM(take) AS taken FROM takes
               GROUP BY idempotency_key) t ON t.idempotency_key = d.idempotency_key
    WHERE d.want - COALESCE(t.taken, 0) > 0),
lines AS (
    SELECT customer_id, idempotency_key, reference, lot_id, -take AS amount,
           CAST(0 AS BIGINT) AS shortfall, 0 AS grp, cum FROM takes
    UNION ALL
    SELECT customer_id, idempotency_key, reference, NULL, CAST(0 AS BIGINT), shortfall, 1, 0
    FROM short)
SELECT :ws, idempotency_key,
       CAST(ROW_NUMBER() OVER (PARTITION BY idempotency_key ORDER BY grp, cum) - 1 AS INTEGER),
       customer_id, 'reverse', amount, 'reversed:refund', lot_id, CAST(NULL AS TIMESTAMP),
       'refund', reference, shortfall, :now
FROM lines
ON CONFLICT DO NOTHING
RETURNING idempotency_key
"""


def _reverse_in_database(
    conn: sa.Connection, workspace_id: str, batch: pd.DataFrame, now: datetime
) -> int:
    """One round of :func:`reverse` for many customers, allocated inside the database."""
    data = pa.table(
        {
            "customer_id": pa.array(batch["customer_id"].astype(str).tolist(), pa.string()),
            "idempotency_key": pa.array(batch["key"].astype(str).tolist(), pa.string()),
            "want": pa.array(batch["want"].astype("int64").to_numpy(), pa.int64()),
            "preferred_lot": pa.array(
                [None if pd.isna(x) or x == "" else str(x) for x in batch["preferred_lot"]],
                pa.string(),
            ),
            "reference": pa.array(
                [None if pd.isna(x) else str(x) for x in batch["reference"]], pa.string()
            ),
        }
    )
    name = f"loyalty_demands_{next(_stage_names)}"
    if conn.dialect.name == "duckdb":
        raw = conn.connection.driver_connection
        raw.register(name, data)  # type: ignore[union-attr]
    else:
        # The running sums sort every lot of the round: keep the sorts in memory (transaction
        # only), and give the planner the demands' real size.
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {name} (customer_id VARCHAR(40), idempotency_key VARCHAR(200), "
            "want BIGINT, preferred_lot VARCHAR(200), reference VARCHAR(200)) ON COMMIT DROP"
        )
        buffer = io.BytesIO()
        pacsv.write_csv(
            data.combine_chunks(),
            buffer,
            write_options=pacsv.WriteOptions(include_header=False, quoting_style="all_valid"),
        )
        raw_pg = conn.connection.driver_connection
        with (
            raw_pg.cursor() as cur,  # type: ignore[union-attr]
            cur.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy,
        ):
            copy.write(buffer.getvalue())
        conn.exec_driver_sql(f"ANALYZE {name}")
    try:
        keys = conn.execute(
            sa.text(_REVERSE_SQL.format(stage=name)), {"ws": workspace_id, "now": now}
        ).all()
    finally:
        if conn.dialect.name == "duckdb":
            conn.connection.driver_connection.unregister(name)  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql(f"DROP TABLE {name}")
    return len({k for (k,) in keys})


def _post_batch(
    conn: sa.Connection,
    workspace_id: str,
    batch: pd.DataFrame,
    takes: pd.DataFrame,
    summary: pd.DataFrame,
    now: datetime,
) -> int:
    info = batch.set_index("customer_id")[["key", "reference"]]
    takes = takes.join(info, on="customer_id")
    short = summary[summary["shortfall"] > 0].join(info, on="customer_id")
    parts = pd.concat(
        [
            takes.assign(amount=-takes["take"], shortfall=0),
            pd.DataFrame(
                {
                    "customer_id": short["customer_id"],
                    "lot_id": None,
                    "amount": 0,
                    "shortfall": short["shortfall"],
                    "key": short["key"],
                    "reference": short["reference"],
                }
            ),
        ],
        ignore_index=True,
    )
    if parts.empty:
        return 0
    parts["line_no"] = parts.groupby("key").cumcount()
    table = _rows(
        workspace_id,
        keys=parts["key"].tolist(),
        lines=parts["line_no"].tolist(),
        customers=parts["customer_id"].tolist(),
        kind="reverse",
        amounts=parts["amount"].astype("int64").tolist(),
        contra="reversed:refund",
        lots=[None if pd.isna(x) else x for x in parts["lot_id"]],
        expires=[None] * len(parts),
        reason="refund",
        reference=parts["reference"].tolist(),
        shortfall=parts["shortfall"].astype("int64").tolist(),
        now=now,
    )
    _append(conn, table)
    return int(parts["key"].nunique())


def balances(conn: sa.Connection, workspace_id: str, customer_ids: Sequence[str]) -> dict[str, int]:
    """Derived balances (sum of the ledger rows) of the named customers."""
    rows = conn.execute(
        sa.select(L.c.customer_id, sa.func.sum(L.c.amount))
        .where(L.c.workspace_id == workspace_id, _among(conn, L.c.customer_id, customer_ids))
        .group_by(L.c.customer_id)
    ).all()
    found = {str(c): int(b) for c, b in rows}
    return {c: found.get(c, 0) for c in customer_ids}


def history(
    conn: sa.Connection, workspace_id: str, customer_id: str, limit: int = 100
) -> list[dict[str, object]]:
    """The customer's postings, newest first, one line per idempotency key."""
    q = (
        sa.select(
            L.c.idempotency_key,
            sa.func.min(L.c.kind).label("kind"),
            sa.func.sum(L.c.amount).label("points"),
            sa.func.sum(L.c.shortfall).label("shortfall"),
            sa.func.min(L.c.reason).label("reason"),
            sa.func.min(L.c.reference).label("reference"),
            sa.func.max(L.c.expires_at).label("expires_at"),
            sa.func.min(L.c.created_at).label("created_at"),
        )
        .where(L.c.workspace_id == workspace_id, L.c.customer_id == customer_id)
        .group_by(L.c.idempotency_key)
        .order_by(sa.desc("created_at"), L.c.idempotency_key)
        .limit(limit)
    )
    return [
        {**r._asdict(), "points": int(r.points), "shortfall": int(r.shortfall)}
        for r in conn.execute(q)
    ]
