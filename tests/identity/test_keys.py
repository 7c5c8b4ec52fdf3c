"""Integer node keys (siyu.identity.keys): one definition in Python and in each engine's SQL,
filled for stored rows by migration 0021 exactly as a run writes them, and a key collision
cannot change what an incremental run resolves."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic import command

from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.identity.held import HeldGraphs
from siyu.identity.keys import key_sql, keys_of
from siyu.identity.versions import stamp_version
from siyu.runtime import Runtime
from siyu.store import upgrade
from siyu.store.migrate import alembic_config
from tests.identity.helpers import assert_held_matches, identify, ingest

TEXTS = ["email\x1fann@mail.co", "phone\x1f+6281311110001", "", "名字\x1f王小明", "x" * 300]


def _md5_key(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:15], 16)


def test_keys_are_the_first_60_bits_of_the_md5_in_order() -> None:
    texts: list[str | None] = [f"email\x1fperson.{i}@mail.co" for i in range(150_000)]
    texts += [*TEXTS, None]
    found = keys_of(pa.array(texts, pa.string())).to_pylist()
    assert found[-1] is None
    assert found[:-1] == [_md5_key(t) for t in texts[:-1] if t is not None]
    assert all(0 <= k < 2**60 for k in found[:-1])


def test_each_engine_computes_the_keys_python_computes(rt: Runtime) -> None:
    dialect = rt.db.engine.dialect.name
    with rt.db.engine.connect() as conn:
        found = [
            conn.execute(
                sa.text(f"SELECT {key_sql(dialect, 'CAST(:t AS TEXT)')}"), {"t": t}
            ).scalar_one()
            for t in TEXTS
        ]
    assert found == keys_of(pa.array(TEXTS, pa.string())).to_pylist()


def _key_columns(conn: sa.Connection) -> tuple[list[tuple[object, ...]], ...]:
    queries = (
        "SELECT kind, value, node, component FROM identities ORDER BY 1, 2",
        "SELECT kind_a, value_a, kind_b, value_b, node_a, node_b FROM identity_links "
        "ORDER BY 1, 2, 3, 4",
        "SELECT anchor_id, node, sender FROM identity_anchors ORDER BY 1",
    )
    return tuple([tuple(r) for r in conn.execute(sa.text(q))] for q in queries)


def test_migration_0021_fills_the_keys_a_run_writes(rt: Runtime) -> None:
    """Downgraded past 0021 and upgraded again, the stored rows get the keys (and sender
    hashes) a run wrote for them (both engines)."""
    ingest(
        rt,
        "shopify",
        [
            identify("6100000101", email="ann@mail.co", phone="+6281311110001", day=1),
            identify("6100000102", email="bo@mail.co", day=2),
        ],
    )
    ingest(rt, "web", [identify(anonymous_id="b-ann", email="ann@mail.co", day=3)])
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, rt.workspace().workspace_id)
        written = _key_columns(conn)
        joined = "SELECT count(*) FROM identity_anchors a JOIN identity_tuples x USING (sender)"
        assert conn.execute(sa.text(joined)).scalar()  # the anchors carry the tuples' hash
    assert all(len(rows) > 1 for rows in written)
    assert all(None not in row for rows in written for row in rows)
    with rt.db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0020")
    upgrade(rt.db)
    with rt.db.engine.connect() as conn:
        assert _key_columns(conn) == written


def _snapshot(conn: sa.Connection) -> tuple[object, ...]:
    queries = (
        "SELECT kind, value, customer_id, component_id FROM identities ORDER BY 1, 2",
        "SELECT kind_a, value_a, kind_b, value_b, message_id FROM identity_links "
        "ORDER BY 1, 2, 3, 4",
        "SELECT anchor_id, kind, value, customer_id FROM identity_anchors ORDER BY 1",
        "SELECT message_id, customer_id FROM events ORDER BY 1",
    )
    return tuple(tuple(tuple(r) for r in conn.execute(sa.text(q))) for q in queries)


@pytest.mark.parametrize("hold", [False, True], ids=["tables", "held"])
@pytest.mark.parametrize("collides", ["anchor", "link", "identity"])
def test_a_key_collision_changes_nothing_an_incremental_run_resolves(
    rt: Runtime, collides: str, hold: bool
) -> None:
    """An unrelated person's anchor, link or identity made to carry the key of a node the
    next batch touches (a collision, as it would look): the batch reads it through the key,
    but neither resolves that person's sender again nor replaces the link, and ends where a
    full rebuild does (both engines). With the graph held in memory, the rows deleted by key
    take the colliding row with them in the database, which stores it again: the held copy
    and the tables still agree."""
    ws = rt.workspace().workspace_id
    first = [
        identify("6100000101", email="ann@mail.co", day=1, message_id="k-1"),
        identify("6100000199", email="zed@mail.co", day=1, message_id="k-2"),
    ]
    ingest(rt, "shopify", first)
    with rt.db.engine.begin() as conn:
        resolve_new_events(conn, ws, ["k-1", "k-2"])
        ann = keys_of(pa.array(["email\x1fann@mail.co"], pa.string()))[0].as_py()
        corrupt = {
            "anchor": "UPDATE identity_anchors SET node = :k WHERE value = '6100000199'",
            "link": "UPDATE identity_links SET node_a = :k, node_b = :k "
            "WHERE value_a = 'zed@mail.co' OR value_b = 'zed@mail.co'",
            "identity": "UPDATE identities SET node = :k WHERE value = 'zed@mail.co'",
        }[collides]
        assert conn.execute(sa.text(corrupt), {"k": ann}).rowcount == 1
        stamp_version(conn, ws)  # the rows were changed behind One-ID's back
    browser = identify(anonymous_id="b-ann", email="ann@mail.co", day=2, message_id="k-3")
    ingest(rt, "web", [browser])
    held = HeldGraphs() if hold else None
    with rt.db.engine.begin() as conn:
        report = resolve_new_events(conn, ws, ["k-3"], held=held)
        if held is not None:
            assert_held_matches(conn, held, ws)
        incremental = _snapshot(conn)
        resolve_workspace(conn, ws)
        assert _snapshot(conn) == incremental
    assert report.identifiers == (5 if collides == "identity" else 3)  # not zed's, unless
    # the colliding row is an identity: its component is then read and resolved again whole
    assert len({c for _, c in incremental[3]}) == 2  # ann (store and browser) and zed
