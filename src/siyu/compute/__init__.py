"""Analytics on Ibis: one expression, every engine.

Use :func:`tables` to get workspace-scoped Ibis tables; build expressions on them; execute on the
database in use. Python only does the mathematics on aggregates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siyu.store.database import Database


class WorkspaceTables:
    """Ibis tables of one workspace: ``t.orders``, ``t.events`` ... already filtered."""

    def __init__(self, db: Database, workspace_id: str) -> None:
        self._backend = db.ibis()
        self.workspace_id = workspace_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        table = self._backend.table(name)
        return table.filter(table.workspace_id == self.workspace_id)

    def execute(self, expr: Any) -> Any:
        return self._backend.execute(expr)


def tables(db: Database, workspace_id: str) -> WorkspaceTables:
    return WorkspaceTables(db, workspace_id)


__all__ = ["WorkspaceTables", "tables"]
