"""Tables of the journeys slice: definitions, immutable versions, enrollments and step runs.

The constraints carry the guarantees, so no code path can break them:
- ``journey_enrollments`` is unique on (journey, customer, entry_key): the same trigger
  occurrence (or, for "once" journeys, the customer) can never enroll twice; and unique on
  (journey, active_key), where active_key is the customer id while the enrollment runs and NULL
  after: a customer is never in two running copies of one journey.
- ``journey_step_runs`` is unique on (enrollment, step): each step of an enrollment runs at most
  once (definitions cannot loop), whatever retries, crashes and concurrent workers do.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import JSONDoc, metadata

journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("journey_id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | paused
    sa.Column("version", sa.Integer(), nullable=False),  # the version new entries get
    sa.Column("trigger_cursor", sa.DateTime()),  # events/history read up to here
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "journey_id"),
)

journey_versions = sa.Table(
    "journey_versions",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("journey_id", sa.String(80), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("definition", JSONDoc, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("published_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "journey_id", "version"),
)
"""Published versions never change: running enrollments keep the version they entered."""

journey_enrollments = sa.Table(
    "journey_enrollments",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("enrollment_id", sa.String(64), nullable=False),
    sa.Column("journey_id", sa.String(80), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("entry_key", sa.String(240), nullable=False),
    sa.Column("active_key", sa.String(40)),
    sa.Column("state", sa.String(16), nullable=False),  # active|completed|goal|exited|failed
    sa.Column("variant", sa.String(40)),  # the random split's group (incl. "holdout")
    sa.Column("triggered_at", sa.DateTime(), nullable=False),  # the trigger occurrence
    sa.Column("entered_at", sa.DateTime(), nullable=False),
    sa.Column("finished_at", sa.DateTime()),
    sa.Column("goal_at", sa.DateTime()),
    sa.Column("exit_reason", sa.String(200)),
    sa.PrimaryKeyConstraint("workspace_id", "enrollment_id"),
    sa.UniqueConstraint("workspace_id", "journey_id", "customer_id", "entry_key"),
    sa.UniqueConstraint("workspace_id", "journey_id", "active_key"),
)

journey_step_runs = sa.Table(
    "journey_step_runs",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("enrollment_id", sa.String(64), nullable=False),
    sa.Column("step_id", sa.String(80), nullable=False),
    sa.Column("journey_id", sa.String(80), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column(
        "state", sa.String(16), nullable=False
    ),  # due|running|waiting|done|skipped|dead|cancelled
    sa.Column("due_at", sa.DateTime(), nullable=False),
    sa.Column("started_at", sa.DateTime()),  # first execution (wait_for counts events from here)
    sa.Column("lease_until", sa.DateTime()),
    sa.Column("worker", sa.String(80)),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("outcome", sa.String(16)),  # sent|duplicate|skipped|deferred|retry|failed|...
    sa.Column("reason_code", sa.String(80)),
    sa.Column("reason", sa.Text()),
    sa.Column("message_id", sa.String(200)),
    sa.Column("branch", sa.String(80)),  # the path taken (branch, split, wait_for)
    sa.Column("result", JSONDoc),  # what the step produced (e.g. the coupon code granted)
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("finished_at", sa.DateTime()),
    sa.PrimaryKeyConstraint("workspace_id", "enrollment_id", "step_id"),
)
sa.Index("ix_journey_step_runs_due", journey_step_runs.c.state, journey_step_runs.c.due_at)
