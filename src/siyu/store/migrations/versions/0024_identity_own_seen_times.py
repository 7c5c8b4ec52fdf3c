"""identity: an identifier's seen times count the customer's own acts

``identities.first_seen_at`` and ``last_seen_at`` were the times of every event that carried
the identifier, including the events siyu and the brand store about a customer (a message sent
or delivered, points credited or expired). A customer's profile already ignores those, so her
profile could say "last seen in March" beside an e-mail "last seen in June", the day a win-back
message went out. The identifier tuples now also keep their times over the customer's own acts
(``own_first_seen``, ``own_last_seen``; null where only such events carried the tuple), and the
graph prefers them.

The stored tuples are rebuilt here from the events, as migration 0016 first filled them (one
row per sender and tuple), so that existing workspaces get exact times without a full run.
The names below are those of ``siyu.collect.ecommerce.SYSTEM_EVENTS`` at this revision.

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYSTEM_EVENTS = (
    "Message Sent",
    "Message Delivered",
    "Message Read",
    "Message Failed",
    "Email Sent",
    "Email Delivered",
    "Email Bounced",
    "Points Earned",
    "Points Expired",
    "Points Reversed",
    "Member Tier Changed",
    "Membership Lapsed",
    "Coupon Issued",
    "Referral Created",
    "Referral Qualified",
    "Referral Flagged",
    "Referral Approved",
    "Referral Rewarded",
    "Referral Rejected",
    "Group Buy Completed",
    "Group Buy Expired",
)


def _text(dialect: str, column: str, *path: str) -> str:
    if dialect == "duckdb":
        return f"json_extract_string({column}, '$.{'.'.join(path)}')"
    head = "".join(f"->'{p}'" for p in path[:-1])
    return f"({column}{head}->>'{path[-1]}')"


def _sender(dialect: str) -> str:
    text = (
        "CASE WHEN e.user_id IS NOT NULL AND e.user_id <> '' THEN "
        "'u|' || coalesce(e.source_id, '') || '|' || e.user_id "
        "ELSE 'a|' || coalesce(e.anonymous_id, '') END"
    )
    if dialect == "duckdb":
        return f"CAST(hash({text}) >> 1 AS BIGINT)"
    return f"hashtextextended({text}, 0)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("identity_tuples", sa.Column("own_first_seen", sa.DateTime(), nullable=True))
    op.add_column("identity_tuples", sa.Column("own_last_seen", sa.DateTime(), nullable=True))
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in SYSTEM_EVENTS)
    own = f"(e.event IS NULL OR e.event NOT IN ({names}))"
    country = (
        f"upper(coalesce({_text(dialect, 'e.traits', 'country')}, "
        f"{_text(dialect, 'e.traits', 'address', 'country')}, "
        f"right({_text(dialect, 'e.context', 'locale')}, 2)))"
    )
    op.execute("DELETE FROM identity_tuples")
    op.execute(
        "INSERT INTO identity_tuples (workspace_id, sender, source_id, user_id, anonymous_id, "
        "previous_id, email, phone, country, first_seen, last_seen, message_id, "
        "own_first_seen, own_last_seen) "
        f"SELECT e.workspace_id, {_sender(dialect)}, e.source_id, e.user_id, e.anonymous_id, "
        "CASE WHEN e.type = 'alias' THEN e.previous_id END, "
        f"{_text(dialect, 'e.traits', 'email')}, {_text(dialect, 'e.traits', 'phone')}, "
        f"{country}, min(e.timestamp), max(e.timestamp), min(e.message_id), "
        f"min(e.timestamp) FILTER (WHERE {own}), max(e.timestamp) FILTER (WHERE {own}) "
        "FROM events e GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
    )


def downgrade() -> None:
    op.drop_column("identity_tuples", "own_last_seen")
    op.drop_column("identity_tuples", "own_first_seen")
