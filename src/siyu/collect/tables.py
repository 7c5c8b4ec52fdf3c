"""Tables owned by the Collect slice (migration branch ``collect``, revision 0003).

- ``source_secrets``: a source's webhook secrets. Shopify and Meta sign webhooks with an HMAC of
  a shared secret, so the secret itself (not a hash) is needed to verify a signature; it is kept
  out of the core ``sources`` table so that listing sources never reads it.
- ``import_checkpoints``: how far an import of one file (by content hash) has got, so that an
  interrupted import resumes where it stopped instead of starting again.
"""

from __future__ import annotations

import sqlalchemy as sa

from siyu.store.schema import metadata

source_secrets = sa.Table(
    "source_secrets",
    metadata,
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("source_id", sa.String(40), primary_key=True),
    sa.Column("webhook_secret", sa.String(200)),
    sa.Column("verify_token", sa.String(200)),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
)

import_checkpoints = sa.Table(
    "import_checkpoints",
    metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("importer", sa.String(60), primary_key=True),
    sa.Column("file_hash", sa.String(64), primary_key=True),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("rows_done", sa.BigInteger(), nullable=False),
    sa.Column("finished", sa.Boolean(), nullable=False),
    sa.Column("stored", sa.BigInteger(), nullable=False),
    sa.Column("duplicates", sa.BigInteger(), nullable=False),
    sa.Column("quarantined", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    # Identify messages of known details (ImportSummary.repeated_details), apart from the
    # duplicates; added by migration 0023.
    sa.Column("repeated_details", sa.BigInteger(), nullable=False, server_default="0"),
)
