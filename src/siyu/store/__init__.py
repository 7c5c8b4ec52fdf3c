"""Storage: the one database, its schema, migrations and bulk paths."""

from siyu.store import schema
from siyu.store.database import Database, DatabaseURL
from siyu.store.migrate import current_revision, head_revision, upgrade

__all__ = ["Database", "DatabaseURL", "current_revision", "head_revision", "schema", "upgrade"]
