"""Tables of the identity graph (One-ID), on the shared metadata.

The graph is stored rather than recomputed so that ``explain`` can show the evidence behind a
customer, an incremental run can load only the components it touches, and a split can be undone
by re-resolving from the same links.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import JSONDoc, metadata


def _ws() -> sa.Column[str]:
    return sa.Column("workspace_id", sa.String(40), nullable=False)


identities = sa.Table(
    "identities",
    metadata,
    _ws(),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("customer_id", sa.String(40)),
    sa.Column("component_id", sa.String(40)),
    sa.Column("source_id", sa.String(40)),
    sa.Column("account_source_id", sa.String(40)),
    sa.Column("first_seen_at", sa.DateTime(), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    sa.Column("node", sa.BigInteger()),
    sa.Column("component", sa.BigInteger()),
    sa.PrimaryKeyConstraint("workspace_id", "kind", "value"),
    sa.Index(None, "workspace_id", "customer_id"),
    sa.Index(None, "workspace_id", "node"),
    sa.Index(None, "workspace_id", "component"),
)
"""One node per normalised identifier. ``account_source_id`` is set when the value is a source's
userId (one account per source and person); ``component_id`` names the raw connected component
(ignoring rules) so an incremental run loads only what a new link can change. ``node`` and
``component`` are the integer keys (:mod:`siyu.identity.keys`) of the node's text and of
``component_id``, which an incremental run looks up instead of the strings."""

identity_links = sa.Table(
    "identity_links",
    metadata,
    _ws(),
    sa.Column("kind_a", sa.String(40), nullable=False),
    sa.Column("value_a", sa.String(320), nullable=False),
    sa.Column("kind_b", sa.String(40), nullable=False),
    sa.Column("value_b", sa.String(320), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("seen_at", sa.DateTime(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("node_a", sa.BigInteger()),
    sa.Column("node_b", sa.BigInteger()),
    sa.PrimaryKeyConstraint("workspace_id", "kind_a", "value_a", "kind_b", "value_b"),
    sa.Index(None, "workspace_id", "node_a"),
    sa.Index(None, "workspace_id", "node_b"),
)
"""The evidence: two identifiers seen together, first in ``message_id`` (a <= b); ``node_a``
and ``node_b`` are their integer keys."""

identity_anchors = sa.Table(
    "identity_anchors",
    metadata,
    _ws(),
    sa.Column("anchor_id", sa.String(500), nullable=False),
    sa.Column("source_id", sa.String(40)),
    sa.Column("user_id", sa.String(200)),
    sa.Column("anonymous_id", sa.String(200)),
    sa.Column("kind", sa.String(40)),
    sa.Column("value", sa.String(320)),
    sa.Column("provisional_id", sa.String(40), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("first_seen_at", sa.DateTime(), nullable=False),
    sa.Column("node", sa.BigInteger()),
    sa.Column("sender", sa.BigInteger()),
    sa.PrimaryKeyConstraint("workspace_id", "anchor_id"),
    sa.Index(None, "workspace_id", "customer_id"),
    sa.Index(None, "workspace_id", "node"),
    sa.Index(None, "workspace_id", "sender"),
)
"""How raw event senders map to customers: (source, userId) or anonymousId -> its identity node,
its provisional customer id (what the pipeline assigned) and the resolved customer id. Events,
orders and consents are re-pointed by joining on these raw columns. ``node`` is the integer key
of the identity node (null without one) and ``sender`` the sender's hash as ``identity_tuples``
keys it (:func:`siyu.identity.extract.sender_sql`)."""

identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    _ws(),
    sa.Column("conflict_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("other_kind", sa.String(40)),
    sa.Column("other_value", sa.String(320)),
    sa.Column("message_id", sa.String(200)),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "conflict_id"),
)
"""A value refused (invalid, blocked) or a link not merged because a rule refused it; for review."""

identity_overrides = sa.Table(
    "identity_overrides",
    metadata,
    _ws(),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("value", sa.String(320), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("note", sa.Text()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "kind", "value"),
)
"""Operator decisions: ``detach`` keeps an identifier out of every merge (a split)."""

identity_audit = sa.Table(
    "identity_audit",
    metadata,
    _ws(),
    sa.Column("audit_id", sa.String(40), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("customers", JSONDoc),
    sa.Column("identifiers", JSONDoc),
    sa.Column("evidence", JSONDoc),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "audit_id"),
)
"""Every merge and split: the surviving customer, the merged customers, identifiers, evidence."""

identity_customer_archive = sa.Table(
    "identity_customer_archive",
    metadata,
    _ws(),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("merged_into", sa.String(40), nullable=False),
    sa.Column("record", JSONDoc, nullable=False),
    sa.Column("archived_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_id"),
)
"""Customer rows merged away, kept so that a split can bring them back."""


identity_state = sa.Table(
    "identity_state",
    metadata,
    _ws(),
    sa.Column("resolved_until", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id"),
)
"""Background resolution's watermark: events received up to ``resolved_until`` are resolved."""

identity_graph_versions = sa.Table(
    "identity_graph_versions",
    metadata,
    _ws(),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("changed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id"),
)
"""A random version per workspace, new whenever a run writes its graph tables: a process that
holds the graph in memory (:mod:`siyu.identity.held`) knows by it whether its copy is current."""

identity_resolved = sa.Table(
    "identity_resolved",
    metadata,
    _ws(),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("received_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "message_id"),
)
"""Events the background resolver resolved that were received within its look-back window
before the watermark: the window is re-read on every pass (late commits), and these are skipped,
so each event is resolved once. Older rows are pruned as the watermark moves."""

identity_row_archive = sa.Table(
    "identity_row_archive",
    metadata,
    _ws(),
    sa.Column("table_name", sa.String(80), nullable=False),
    sa.Column("customer_id", sa.String(40), nullable=False),
    sa.Column("row_key", sa.String(600), nullable=False),
    sa.Column("merged_into", sa.String(40), nullable=False),
    sa.Column("collided", sa.Boolean(), nullable=False),
    sa.Column("record", JSONDoc, nullable=False),
    sa.Column("archived_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "table_name", "customer_id", "row_key"),
)
"""Per-customer rows of other slices as they were before a merge re-keyed them (``collided``:
the survivor already had a row with the same key, so this one was dropped), so that a split puts
back exactly the earlier rows."""

identity_decisions = sa.Table(
    "identity_decisions",
    metadata,
    _ws(),
    sa.Column("kind_a", sa.String(40), nullable=False),
    sa.Column("value_a", sa.String(320), nullable=False),
    sa.Column("kind_b", sa.String(40), nullable=False),
    sa.Column("value_b", sa.String(320), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("score", sa.Float()),
    sa.Column("evidence", JSONDoc),
    sa.Column("note", sa.Text()),
    sa.Column("decided_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "kind_a", "value_a", "kind_b", "value_b"),
)
"""Operator decisions on duplicate suggestions, keyed by one identity node of each customer
(a <= b): ``confirm`` is a manual link the graph keeps on every rebuild, ``reject`` means the pair
is never suggested again."""

identity_suggestions = sa.Table(
    "identity_suggestions",
    metadata,
    _ws(),
    sa.Column("customer_a", sa.String(40), nullable=False),
    sa.Column("customer_b", sa.String(40), nullable=False),
    sa.Column("probability", sa.Double(), nullable=False),
    sa.Column("weight", sa.Double(), nullable=False),
    sa.Column("agreement", JSONDoc, nullable=False),
    sa.Column("blocks", JSONDoc, nullable=False),
    sa.Column("computed_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "customer_a", "customer_b"),
)
"""Duplicate suggestions of the last refresh (customer_a < customer_b), down to
``suggest.STORED_FLOOR``: read page by page without recomputing the model."""

identity_tuples = sa.Table(
    "identity_tuples",
    metadata,
    _ws(),
    sa.Column("sender", sa.BigInteger(), nullable=False),
    sa.Column("source_id", sa.String(40)),
    sa.Column("user_id", sa.String(200)),
    sa.Column("anonymous_id", sa.String(200)),
    sa.Column("previous_id", sa.String(200)),
    sa.Column("email", sa.Text()),
    sa.Column("phone", sa.Text()),
    sa.Column("country", sa.Text()),
    sa.Column("first_seen", sa.DateTime(), nullable=False),
    sa.Column("last_seen", sa.DateTime(), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    # The same times over the customer's own acts only (migration 0024): null where every event
    # of the tuple is one siyu or the brand stored about her (a message status, points).
    sa.Column("own_first_seen", sa.DateTime()),
    sa.Column("own_last_seen", sa.DateTime()),
    sa.Index("ix_identity_tuples_sender", "workspace_id", "sender"),
)
"""The distinct identifier tuples of the resolved events, per sender (``sender``: the engine's
64-bit hash of the sender, see :func:`siyu.identity.extract.sender_sql`), so that an incremental
run reads the history of the senders it touches with one join on an integer column instead of
scanning the events (which grow with the workspace and carry no index on their senders). A full
run rewrites a workspace's rows; an incremental run appends its batch's tuples, so a tuple can
have several rows (first/last seen and the first message are aggregated on reading). The index
is created on PostgreSQL only (DuckDB does not use an index for a join, and it slows appends)."""

IDENTITY_TABLES = (
    identities,
    identity_links,
    identity_anchors,
    identity_conflicts,
    identity_overrides,
    identity_audit,
    identity_customer_archive,
    identity_state,
    identity_graph_versions,
    identity_resolved,
    identity_row_archive,
    identity_decisions,
    identity_tuples,
)
