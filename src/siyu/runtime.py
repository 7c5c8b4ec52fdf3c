"""The running context of a command or server: settings plus the open database.

Nothing here happens at import time; callers build a Runtime from settings and close it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from siyu.access import Workspace, create_key, create_workspace, get_workspace
from siyu.collect import Pipeline
from siyu.collect.quarantine import count_open
from siyu.config import Settings
from siyu.errors import NotFound, NotInitialised
from siyu.money.fx import orders_missing_rates
from siyu.store import Database, current_revision, head_revision, upgrade
from siyu.store.catalog import load_all_tables

COUNTED_TABLES = (
    "sources",
    "events",
    "customers",
    "products",
    "orders",
    "order_lines",
    "refunds",
    "consents",
    "fx_rates",
    "quarantine",
    "api_keys",
    "identities",
    "customer_segments",
    "customer_tags",
    "customer_scores",
)


@dataclass
class InitResult:
    revision_before: str | None
    revision_after: str
    workspace: Workspace
    created: bool
    admin_key: str | None


class Runtime:
    """Settings and database of one process; a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database.open(
            settings.database_url,
            duckdb_memory_limit=settings.duckdb_memory_limit,
            duckdb_checkpoint_threshold=settings.duckdb_checkpoint_threshold,
        )
        self._schema_checked = False

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def workspace(self, slug: str | None = None) -> Workspace:
        """The named workspace (default: SIYU_WORKSPACE); the schema must be current."""
        self.require_current_schema()
        return get_workspace(self.db.engine, slug or self.settings.workspace)

    def require_current_schema(self) -> None:
        """Refuse to work on a database whose schema is older than this siyu (checked once)."""
        if self._schema_checked:
            return
        current, head = current_revision(self.db), head_revision()
        if current is None:
            raise NotInitialised("The database has no siyu schema yet.")
        if current != head:
            raise NotInitialised(
                f"The database schema is at revision {current}; this siyu needs {head}.",
                hint="Run 'siyu init' to upgrade the schema (your data is kept).",
            )
        self._schema_checked = True

    def pipeline(self, workspace: Workspace | None = None) -> Pipeline:
        return Pipeline(self.db, workspace or self.workspace(), self.settings)

    def init(self, slug: str | None = None, *, name: str | None = None) -> InitResult:
        """Create or upgrade the schema; create the workspace and its first admin key once."""
        before, after = upgrade(self.db)
        self._schema_checked = True
        slug = slug or self.settings.workspace
        try:
            return InitResult(before, after, self.workspace(slug), False, None)
        except NotFound:
            pass
        with self.db.engine.begin() as conn:
            ws = create_workspace(
                conn,
                slug,
                name=name,
                base_currency=self.settings.base_currency,
                default_region=self.settings.default_region,
            )
            _, secret = create_key(conn, ws.workspace_id, "first admin key", frozenset({"admin"}))
        return InitResult(before, after, ws, True, secret)

    def status(self, workspace: Workspace) -> dict[str, Any]:
        """Row counts and data-quality problems of a workspace."""
        counts: dict[str, int] = {}
        with self.db.engine.connect() as conn:
            for name in COUNTED_TABLES:
                table = load_all_tables().tables[name]
                counts[name] = int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            table.c.workspace_id == workspace.workspace_id
                        )
                    ).scalar_one()
                )
        problems: list[dict[str, Any]] = []
        for currency, n in orders_missing_rates(self.db.engine, workspace.workspace_id):
            problems.append(
                {
                    "code": "missing_fx_rate",
                    "count": n,
                    "message": f"{n} {currency} orders have no base-currency value: no "
                    f"{currency}->{workspace.base_currency} rate on or before their day",
                    "hint": "Import rates with 'siyu fx import rates.csv'.",
                }
            )
        for reason, n in count_open(self.db.engine, workspace.workspace_id).items():
            problems.append(
                {
                    "code": f"quarantined_{reason}",
                    "count": n,
                    "message": f"{n} records quarantined ({reason})",
                    "hint": "Inspect with 'siyu quarantine list', fix, then "
                    "'siyu quarantine replay'.",
                }
            )
        return {"workspace": workspace.slug, "counts": counts, "problems": problems}
