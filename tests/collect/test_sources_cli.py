"""`siyu sources` add/list/rotate/revoke/secret on both engines, and write-key authentication."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from siyu.cli import app
from siyu.collect import tables
from siyu.collect.sources import authenticate_write_key
from siyu.config import load_settings
from siyu.errors import Unauthorized
from siyu.runtime import Runtime
from siyu.store import schema

runner = CliRunner()
KEY = re.compile(r"\bwk_[A-Za-z0-9_-]+")


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def auth(key: str) -> str:
    with Runtime(load_settings()) as rt, rt.db.engine.connect() as conn:
        return authenticate_write_key(conn, key).name


def test_add_list_rotate_revoke(cli_db: str) -> None:
    out = invoke("sources", "add", "site", "--kind", "web")
    key = KEY.search(out)
    assert key, out
    assert auth(key.group(0)) == "site"
    with Runtime(load_settings()) as rt, rt.db.engine.connect() as conn:
        stored = conn.execute(sa.select(schema.sources.c.write_key_hash)).scalar_one()
    assert key.group(0) not in stored
    assert len(stored) == 64
    listed = invoke("sources", "list")
    assert "site" in listed
    assert key.group(0) not in listed
    assert key.group(0)[:10] in listed

    rotated = KEY.search(invoke("sources", "rotate", "site"))
    assert rotated
    assert rotated.group(0) != key.group(0)
    with pytest.raises(Unauthorized):
        auth(key.group(0))
    assert auth(rotated.group(0)) == "site"

    invoke("sources", "revoke", "site")
    with pytest.raises(Unauthorized, match="revoked"):
        auth(rotated.group(0))
    row = next(line for line in invoke("sources", "list").splitlines() if " site " in line)
    assert len(re.findall(r"\d{4}-\d\d-\d\d", row)) == 2  # created and revoked


def test_webhook_sources_get_url_token_and_secret(cli_db: str) -> None:
    out = invoke("sources", "add", "wa", "--kind", "whatsapp", "--webhook-secret", "s3cret")
    assert "/webhooks/whatsapp/src_" in out
    assert "Verify token:" in out
    invoke("sources", "add", "shop", "--kind", "shopify")
    invoke("sources", "secret", "shop", "--webhook-secret", "shpss_x")
    with Runtime(load_settings()) as rt, rt.db.engine.connect() as conn:
        secrets = dict(
            conn.execute(
                sa.select(schema.sources.c.name, tables.source_secrets.c.webhook_secret).join(
                    tables.source_secrets,
                    tables.source_secrets.c.source_id == schema.sources.c.source_id,
                )
            ).all()
        )
    assert secrets == {"wa": "s3cret", "shop": "shpss_x"}
    assert "set" in invoke("sources", "list")


def test_errors_are_clear(cli_db: str) -> None:
    invoke("sources", "add", "site", "--kind", "web")
    runner_result = runner.invoke(app, ["sources", "add", "site", "--kind", "web"])
    assert runner_result.exit_code != 0
    assert runner.invoke(app, ["sources", "add", "x", "--kind", "nope"]).exit_code != 0
    assert runner.invoke(app, ["sources", "rotate", "missing"]).exit_code != 0
    assert runner.invoke(app, ["sources", "secret", "site"]).exit_code != 0
