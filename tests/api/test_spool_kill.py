"""Kill ``siyu serve`` (SIGKILL) while clients send to it; start it again: every acknowledged
event is stored exactly once, and every acknowledged invalid message is quarantined once.

The tracking API answers once records are durable in its spool and stores them afterwards, so
the kill lands with records acknowledged but not stored (and usually a batch half-committed).
The restarted server replays the spool at start-up, before any new request: the database is
read after a second SIGKILL, so a graceful shutdown's drain cannot be what stored them.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from siyu.config import load_settings
from siyu.runtime import Runtime
from siyu.store import schema
from tests.subprocesses import free_port, siyu_script


class Server:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [siyu_script(), "serve", "--port", str(self.port)],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        seen = []
        for line in self.proc.stderr:
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise AssertionError("siyu serve exited before listening:\n" + "".join(seen))
        self.log = seen
        threading.Thread(target=self._drain_log, daemon=True).start()

    def _drain_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL


class Load:
    """Client threads sending batches (with and without messageId, some invalid) and single
    calls; each remembers what was acknowledged with 200."""

    def __init__(self, port: int, auth: str, threads: int = 4) -> None:
        self.port, self.auth = port, auth
        self.acked_ids: list[str] = []  # messageIds
        self.acked_users: list[str] = []  # messages sent without messageId, by unique userId
        self.acked_bad: list[str] = []  # invalid messages (quarantined), by unique tag
        self.batches = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        while True:
            n += 1
            tag = f"w{worker}-{n}"
            good = [
                {
                    "type": "track",
                    "userId": f"u{k}",
                    "event": "Page Viewed",
                    "messageId": f"{tag}-{k}",
                }
                for k in range(45)
            ]
            nomid = [
                {"type": "track", "userId": f"nomid-{tag}-{k}", "event": "Page Viewed"}
                for k in range(3)
            ]
            bad = [
                {"type": "track", "event": "No Sender", "properties": {"tag": f"bad-{tag}-{k}"}}
                for k in range(2)
            ]
            single = {"userId": "s", "event": "Single", "messageId": f"single-{tag}"}
            try:
                if self._post(conn, "/v1/batch", {"batch": good + nomid + bad}):
                    with self._lock:
                        self.acked_ids += [m["messageId"] for m in good]
                        self.acked_users += [m["userId"] for m in nomid]
                        self.acked_bad += [m["properties"]["tag"] for m in bad]
                        self.batches += 1
                if self._post(conn, "/v1/track", single):
                    with self._lock:
                        self.acked_ids.append(single["messageId"])
            except (OSError, http.client.HTTPException):
                return  # the server is gone: what was not answered 200 was not acknowledged

    def _post(self, conn: http.client.HTTPConnection, path: str, body: object) -> bool:
        conn.request("POST", path, json.dumps(body),
                     {"Authorization": self.auth, "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        response.read()
        return response.status == 200

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=60)


def _spool_status(port: int, api_key: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/tracking/spool", headers={"Authorization": f"Bearer {api_key}"})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return dict(json.loads(body))


def test_sigkill_under_load_then_restart_stores_every_acknowledged_event_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_DATABASE_URL=f"duckdb:///{db}", SIYU_ENV="test", COLUMNS="250",
               SIYU_TRACKING_RATE_LIMIT="0", SIYU_IDENTITY_RESOLVE="manual",
               SIYU_JOURNEYS_EVERY_SECONDS="0", SIYU_SEGMENTS_EVERY_DAYS="0",
               SIYU_FISSION_EVERY_SECONDS="0", SIYU_LOG_LEVEL="INFO")  # fmt: skip

    def run(*args: str) -> str:
        return subprocess.run([siyu_script(), *args], cwd=tmp_path, env=env, check=True,
                              capture_output=True, text=True).stdout  # fmt: skip

    run("init")
    key = re.search(r"\bwk_[A-Za-z0-9_-]+", run("sources", "add", "site", "--kind", "web"))
    api_key = re.search(r"\bsk_[A-Za-z0-9_-]+", run("keys", "create", "ops", "--scope", "admin"))
    assert key
    assert api_key
    auth = "Basic " + base64.b64encode(f"{key.group(0)}:".encode()).decode()

    server = Server(tmp_path, env)
    load = Load(server.port, auth)
    deadline = time.monotonic() + 120
    while load.batches < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # mid-load: requests in flight, records acknowledged but not yet stored
    load.join()
    assert load.batches >= 40
    settings = load_settings(config_file=tmp_path / "none.toml", database_url=f"duckdb:///{db}")
    with Runtime(settings) as rt, rt.db.engine.connect() as conn:
        before = {r[0] for r in conn.execute(sa.select(schema.events.c.message_id))}
    missing = set(load.acked_ids) - before
    assert missing, "the kill should leave acknowledged records in the spool only"

    server = Server(tmp_path, env)  # replays the spool at start-up, with no new request
    deadline = time.monotonic() + 120
    while (status := _spool_status(server.port, api_key.group(0)))["pending_records"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["drain_error"] is None
    server.kill()  # no graceful drain: what is stored was stored by the start-up replay

    with Runtime(settings) as rt, rt.db.engine.connect() as conn:
        e, q = schema.events, schema.quarantine
        ids = [r[0] for r in conn.execute(sa.select(e.c.message_id))]
        users = [
            r[0] for r in conn.execute(sa.select(e.c.user_id).where(e.c.user_id.like("nomid-%")))
        ]
        invalid = sa.select(q.c.payload).where(q.c.reason_code == "invalid")
        payloads = [r[0] for r in conn.execute(invalid)]
    bad_tags = [json.loads(p)["properties"]["tag"] for p in payloads]
    # Every acknowledged record is stored; nothing is stored twice (unacknowledged requests in
    # flight at the kill may or may not be, but once at most).
    assert set(load.acked_ids) <= set(ids)
    assert set(load.acked_users) <= set(users)
    assert len(users) == len(set(users))
    assert set(load.acked_bad) <= set(bad_tags)
    assert len(bad_tags) == len(set(bad_tags))
    assert len(load.acked_ids) == len(set(load.acked_ids))
