"""The identity graph held in memory by a serving process stays exactly what the tables hold.

Every run with a held copy is checked against a fresh read of the tables
(``assert_held_matches``); the equality of incremental and full runs with a held copy is in
``test_incremental.py`` (the property test draws both paths).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from siyu.config import load_settings
from siyu.identity import tables as t
from siyu.identity.extract import STORED_TUPLE_COLUMNS
from siyu.identity.graph import resolve_new_events, resolve_workspace
from siyu.identity.held import (
    POS,
    HeldGraphs,
    HeldTable,
    KeyIndex,
    aggregate_tuples,
    grouped_tuples,
)
from siyu.identity.hook import resolve_all_pending
from siyu.identity.keys import keys_of
from siyu.identity.versions import current_version, stamp_version
from siyu.runtime import Runtime
from tests.identity.helpers import (
    assert_held_matches,
    customers_of_events,
    identify,
    ingest,
    scalar,
    track,
)


def _resolve(rt: Runtime, held: HeldGraphs, ids: list[str]) -> None:
    ws = rt.workspace().workspace_id
    with rt.db.engine.begin() as conn:
        resolve_new_events(conn, ws, ids, held=held)
    with rt.db.engine.connect() as conn:
        assert_held_matches(conn, held, ws)


def test_another_writer_makes_the_copy_reload(rt: Runtime) -> None:
    """A full rebuild (as another process or a split would write) stamps a new version: the
    next batch reloads the copy instead of resolving from a stale one (both engines)."""
    ws = rt.workspace().workspace_id
    held = HeldGraphs()
    ingest(rt, "shopify", [identify("6100000301", email="ida@mail.co", day=1, message_id="h-1")])
    _resolve(rt, held, ["h-1"])
    first = held.get(ws)
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
    ingest(
        rt, "web", [identify(anonymous_id="b-ida", email="ida@mail.co", day=2, message_id="h-2")]
    )
    _resolve(rt, held, ["h-2"])
    assert held.get(ws) is not first
    assert len(set(customers_of_events(rt).values())) == 1


def test_a_rolled_back_run_makes_the_copy_reload(rt: Runtime) -> None:
    """A run whose transaction rolls back changed the copy but not the tables: the version
    the copy took was never committed, so the next run reloads it, and ends as if the
    rolled-back run never happened (both engines)."""
    ws = rt.workspace().workspace_id
    held = HeldGraphs()
    ingest(rt, "shopify", [identify("6100000302", email="jo@mail.co", day=1, message_id="r-1")])
    _resolve(rt, held, ["r-1"])
    ingest(rt, "web", [identify(anonymous_id="b-jo", email="jo@mail.co", day=2, message_id="r-2")])

    def crash_before_commit() -> None:
        with rt.db.engine.begin() as conn:
            resolve_new_events(conn, ws, ["r-2"], held=held)
            raise RuntimeError("crash after the run, before the commit")

    with pytest.raises(RuntimeError, match="crash"):
        crash_before_commit()
    assert scalar(rt, "SELECT count(*) FROM identity_tuples") == 1
    _resolve(rt, held, ["r-2"])
    assert scalar(rt, "SELECT count(*) FROM identity_tuples") == 2
    assert len(set(customers_of_events(rt).values())) == 1


def test_a_run_that_fails_half_way_makes_the_copy_reload(rt: Runtime) -> None:
    """A run that fails after it changed the copy (here: the audit table it writes last is
    gone) leaves the copy matching no version: the next run reloads it (both engines)."""
    ws = rt.workspace().workspace_id
    held = HeldGraphs()
    ingest(rt, "shopify", [identify("6100000307", email="ola@mail.co", day=1, message_id="f-1")])
    _resolve(rt, held, ["f-1"])
    first = held.get(ws)
    ingest(rt, "instagram", [identify("17841400000000307", email="ola@mail.co", message_id="f-2")])

    def fail_half_way() -> None:
        with rt.db.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE identity_audit"))
            resolve_new_events(conn, ws, ["f-2"], held=held)

    with pytest.raises(sa.exc.DBAPIError):
        fail_half_way()
    assert first is not None
    assert first.version is None
    _resolve(rt, held, ["f-2"])
    assert held.get(ws) is not first
    assert len(set(customers_of_events(rt).values())) == 1


def test_a_version_stamped_meanwhile_drops_the_copy(rt: Runtime) -> None:
    """If another writer's version lands between the check and the end of a run (PostgreSQL's
    concurrent transactions), the run does not claim the copy matches: it is dropped."""
    ws = rt.workspace().workspace_id
    held = HeldGraphs()
    ingest(rt, "shopify", [identify("6100000303", email="kai@mail.co", day=1, message_id="v-1")])
    with rt.db.engine.begin() as conn:
        lookups = held.lookups(conn, ws)
        other = stamp_version(conn, ws)
        lookups.finish()
        assert held.get(ws) is None
        assert current_version(conn, ws) == other


def test_a_delete_by_key_stores_a_colliding_row_again(tmp_path: Path) -> None:
    """On DuckDB (PostgreSQL deletes by primary key) a held run deletes changed rows by their
    integer key; another row with the same key (a collision, planted here) is deleted with
    them and stored again."""
    url = f"duckdb:///{tmp_path / 'c.duckdb'}"
    with Runtime(load_settings(database_url=url, env="test")) as rt:
        rt.init()
        _delete_a_colliding_row(rt)


def _delete_a_colliding_row(rt: Runtime) -> None:
    ws = rt.workspace().workspace_id
    first = [
        identify("6100000304", email="lea@mail.co", day=1, message_id="c-1"),
        identify("6100000305", email="max@mail.co", day=1, message_id="c-2"),
    ]
    ingest(rt, "shopify", first)
    lea = keys_of(pa.array(["email\x1flea@mail.co"], pa.string()))[0].as_py()
    with rt.db.engine.begin() as conn:
        resolve_workspace(conn, ws)
        conn.execute(
            sa.text("UPDATE identities SET node = :k WHERE value = 'max@mail.co'"), {"k": lea}
        )
        stamp_version(conn, ws)
    held = HeldGraphs()
    with rt.db.engine.begin() as conn:
        lookups = held.lookups(conn, ws)
        identities = lookups.held.identities
        found = identities.take(identities.find("node", np.array([lea], dtype=np.int64)))
        assert sorted(found.column("value").to_pylist()) == ["lea@mail.co", "max@mail.co"]
        lea_row = found.filter(pc.equal(found.column("value"), "lea@mail.co"))
        lookups.delete(t.identities, lea_row)
        assert conn.execute(
            sa.text("SELECT value FROM identities WHERE node = :k"), {"k": lea}
        ).all() == [("max@mail.co",)]
        lookups.finish()
        assert_held_matches(conn, held, ws)


def test_the_background_pass_resolves_with_the_graph_held(rt: Runtime) -> None:
    """``siyu serve``'s pass with held graphs ends where one without does (both engines)."""
    held = HeldGraphs()
    ingest(rt, "shopify", [identify("6100000306", email="ned@mail.co", day=1)])
    assert resolve_all_pending(rt, held) == 1
    ingest(rt, "instagram", [identify("17841400000000306", email="ned@mail.co", day=2)])
    ingest(rt, "web", [track("6100000306", anonymous_id="b-ned", day=3)])
    assert resolve_all_pending(rt, held) == 2
    with rt.db.engine.connect() as conn:
        assert_held_matches(conn, held, rt.workspace().workspace_id)
    assert len(set(customers_of_events(rt).values())) == 1


def test_a_held_table_finds_its_rows_through_appends_deletes_and_compaction() -> None:
    """Look-ups by key equal a scan of the live rows, through appended tails, deleted rows and
    compactions (positions are only valid until the next compaction)."""
    rng = np.random.default_rng(7)

    def rows(n: int) -> pa.Table:
        return pa.table(
            {
                "node_a": pa.array(rng.integers(0, 50, n), pa.int64()),
                "node_b": pa.array(rng.integers(0, 50, n), pa.int64()),
                "tag": pa.array([f"r{i}" for i in rng.integers(0, 10**9, n)], pa.string()),
            }
        )

    table = HeldTable("identity_links", rows(200), compact_at=30)
    for _ in range(12):
        live = table.live
        probes = rng.integers(0, 60, 8)
        found = table.take(table.find("node_a", probes))
        expected = live.filter(pc.is_in(live.column("node_a"), pa.array(probes)))
        assert sorted(found.drop_columns([POS]).to_pylist(), key=str) == sorted(
            expected.to_pylist(), key=str
        )
        table.delete(table.find("node_b", rng.integers(0, 50, 3)))
        table.append(rows(int(rng.integers(1, 25))))
    assert table.live.num_rows < 200 + 12 * 25


@pytest.mark.parametrize("spread", ["hashes", "signed", "repeated", "crowded", "empty", "one"])
def test_an_index_finds_exactly_the_rows_a_scan_finds(spread: str) -> None:
    """The directory look-up equals a scan for every spread of keys: even hashes (as stored),
    negative keys, keys repeated many times (components), keys crowded into few directory slots
    (the binary-search fallback), no rows, and probes outside the keys' range."""
    rng = np.random.default_rng(11)
    n = {"empty": 0, "one": 1}.get(spread, 5000)
    if spread == "hashes":
        keys = rng.integers(0, 2**60, n)
    elif spread == "signed":
        keys = rng.integers(-(2**63), 2**63 - 1, n)
    elif spread == "repeated":
        keys = rng.integers(0, 2**60, 40)[rng.integers(0, 40, n)]
    elif spread == "crowded":  # most keys in one slot, a few far away
        keys = np.concatenate([rng.integers(0, 1000, n - 5), rng.integers(2**61, 2**62, 5)])
    else:
        keys = rng.integers(0, 2**60, n)
    index = KeyIndex(keys.astype(np.int64))
    for _ in range(5):
        probes = np.concatenate(
            [
                keys[rng.integers(0, n, 50)] if n else np.zeros(0, dtype=np.int64),
                rng.integers(-(2**63), 2**63 - 1, 50),
            ]
        )
        probes = np.unique(probes.astype(np.int64))
        found = np.sort(index.positions(probes))
        assert found.tolist() == np.flatnonzero(np.isin(keys, probes)).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_tuples_aggregated_by_hash_equal_the_sql_aggregation(seed: int) -> None:
    """A held run's tuple aggregation (rows alone on their hash pass as they are) gives the
    rows the SQL aggregation gives: repeated tuples across stored and batch rows, nulls in
    any column, a source without a kind."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))

    def pick(values: list[str | None]) -> list[str | None]:
        return [values[i] for i in rng.integers(0, len(values), n)]

    times = pa.array(
        [datetime(2025, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 99, n)],
        pa.timestamp("us"),
    )
    rows = pa.table(
        {
            "source_id": pa.array(pick(["src_a", "src_b", "src_x", None]), pa.string()),
            "user_id": pa.array(pick(["u1", "u2", None]), pa.string()),
            "anonymous_id": pa.array(pick(["a1", None]), pa.string()),
            "previous_id": pa.array(pick([None, None, "p1"]), pa.string()),
            "email": pa.array(pick(["x@y.co", "", None]), pa.string()),
            "phone": pa.array(pick([None, "+6281311110001"]), pa.string()),
            "country": pa.array(pick(["ID", None]), pa.string()),
            "first_seen": times,
            "last_seen": times,
            "message_id": pa.array([f"m{i:03d}" for i in rng.permutation(n)], pa.string()),
            "sender": pa.array(rng.integers(1, 4, n), pa.int64()),
            "own_first_seen": pc.if_else(
                pa.array(rng.integers(0, 2, n).astype(bool)), times, pa.nulls(n, times.type)
            ),
            "own_last_seen": times,
            "stored": pa.array(rng.integers(0, 2, n), pa.int32()),
        }
    )
    rows = rows.select([*STORED_TUPLE_COLUMNS, "stored"])  # as the held copy orders them
    sources = pa.table({"source_id": ["src_a", "src_b"], "kind": ["shopify", "segment"]})
    expected = grouped_tuples(rows, sources)  # every row through the SQL aggregation
    got = aggregate_tuples(rows, sources)
    assert got.column_names == expected.column_names
    assert got.column("message_id") == expected.column("message_id")
    assert got.to_pylist() == expected.cast(got.schema).to_pylist()
