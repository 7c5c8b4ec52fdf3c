"""The siyu command line against real databases (a DuckDB file, a PostgreSQL schema).

Most commands run in-process with Typer's CliRunner; error paths run through ``siyu.cli.main``
(the console-script entry point, which turns a SiyuError into message + hint and exit 2), and
once as a real ``siyu`` process.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from siyu.access import authenticate
from siyu.cli import app, main
from siyu.collect import IngestReport
from siyu.config import load_settings
from siyu.errors import Unauthorized
from siyu.runtime import Runtime

runner = CliRunner()

KEY = re.compile(r"\bsk_[0-9a-f]{8}_[A-Za-z0-9_-]+")
COUNT_ROW = re.compile(r"│\s*(\w+)\s*│\s*([\d,]+)\s*│")


# -- helpers ------------------------------------------------------------------------------------


def invoke(*args: str, code: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    if code == 0:
        assert result.exception is None
    return result


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the console-script entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["siyu", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def ingest(records: list[dict[str, Any]]) -> IngestReport:
    with Runtime(load_settings()) as rt:
        return rt.pipeline().ingest(records, origin="test")


def query(sql: str, **params: Any) -> list[Any]:
    with Runtime(load_settings()) as rt, rt.db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def counts(output: str) -> dict[str, int]:
    return {name: int(n.replace(",", "")) for name, n in COUNT_ROW.findall(output)}


def order(order_id: str, total: float, currency: str, mid: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "messageId": mid,
        "timestamp": "2025-03-01T10:00:00Z",
        "properties": {"order_id": order_id, "total": total, "currency": currency},
    }


def refund(order_id: str, total: float, currency: str, mid: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Refunded",
        "userId": "u1",
        "messageId": mid,
        "timestamp": "2025-03-05T10:00:00Z",
        "properties": {"order_id": order_id, "total": total, "currency": currency},
    }


# -- init, config, status -----------------------------------------------------------------------


def test_init_twice(cli_env: str) -> None:
    first = invoke("init")
    assert "Schema upgraded: empty ->" in first.output
    assert "Created workspace 'default' (base currency USD, region US)" in first.output
    [secret] = KEY.findall(first.output)

    second = invoke("init")
    assert "Schema is up to date" in second.output
    assert "Workspace 'default' exists." in second.output
    assert not KEY.findall(second.output), "a second init must not print a new key"
    assert "sk_" not in second.output

    assert query("SELECT count(*) FROM api_keys")[0][0] == 1
    assert query("SELECT count(*) FROM workspaces")[0][0] == 1
    # The printed key is the working admin key.
    with Runtime(load_settings()) as rt:
        assert authenticate(rt.db.engine, secret).scopes == frozenset({"admin"})


def test_init_another_workspace(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("init")
    monkeypatch.setenv("SIYU_BASE_CURRENCY", "eur")
    monkeypatch.setenv("SIYU_DEFAULT_REGION", "de")
    result = invoke("init", "--workspace", "brand-b", "--name", "Brand B")
    assert "Created workspace 'brand-b' (base currency EUR, region DE)" in result.output
    assert len(KEY.findall(result.output)) == 1
    assert query("SELECT name FROM workspaces WHERE slug = 'brand-b'") == [("Brand B",)]


def test_config_masks_the_secret(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_SECRET_KEY", "my-production-secret-0123456789")
    result = invoke("config")
    assert "my-production-secret-0123456789" not in result.output
    assert "****" in result.output
    for name in ("secret_key", "database_url", "port", "ingest_chunk_size"):
        assert name in result.output
    markdown = invoke("config", "--markdown")
    assert "my-production-secret-0123456789" not in markdown.output
    assert "`SIYU_SECRET_KEY`" in markdown.output


def test_config_masks_a_postgres_password(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 'siyu config' does not connect: the server need not exist.
    monkeypatch.setenv("SIYU_DATABASE_URL", "postgresql://siyu:Pa55-w0rd-xyz@db.invalid:5432/siyu")
    result = invoke("config")
    assert "Pa55-w0rd-xyz" not in result.output
    assert "postgresql://siyu:****@db.invalid:5432/siyu" in result.output


def test_status_lists_counts(cli_env: str) -> None:
    invoke("init")
    empty = invoke("status")
    assert "workspace default" in empty.output
    table = counts(empty.output)
    assert table["events"] == 0
    assert table["api_keys"] == 1
    assert "No data-quality problems." in empty.output

    report = ingest(
        [
            order("o-1", 40, "USD", "m-1"),
            order("o-2", 60, "USD", "m-2"),
            {
                "type": "track",
                "userId": "u2",
                "event": "Product Viewed",
                "messageId": "m-3",
                "timestamp": "2025-03-02T10:00:00Z",
                "properties": {"product_id": "p1"},
            },
            {"type": "nonsense", "messageId": "m-4"},
        ]
    )
    assert (report.stored, report.quarantined) == (3, 1)
    status = invoke("status")
    table = counts(status.output)
    assert table["events"] == 3
    assert table["orders"] == 2
    assert table["customers"] == 2
    assert table["quarantine"] == 1
    assert set(table) >= {"sources", "products", "order_lines", "refunds", "consents", "fx_rates"}
    assert "1 records quarantined (invalid)" in status.output
    assert "siyu quarantine list" in status.output


# -- FX -----------------------------------------------------------------------------------------


def test_fx_import_reports_stored_and_rejected_rows(cli_env: str, tmp_path: Path) -> None:
    invoke("init")
    rates = tmp_path / "rates.csv"
    rates.write_text(
        "date,currency,rate\n"
        "2025-03-01,EUR,1.08\n"
        "2025-03-01,gbp,1.27\n"
        "2025-13-01,EUR,1.09\n"  # bad date
        "2025-03-02,EURO,1.09\n"  # bad currency
        "2025-03-02,JPY,-0.0067\n",  # negative rate
        encoding="utf-8",
    )
    result = invoke("fx", "import", str(rates), code=1)
    assert "Read 5 rows: stored 2, rejected 3" in result.output
    assert "row 4: date '2025-13-01' is not YYYY-MM-DD" in result.output
    assert "row 5:" in result.output
    assert "'EURO'" in result.output
    assert "row 6: rate must be a positive number" in result.output
    stored = query("SELECT currency, base_currency, rate FROM fx_rates ORDER BY currency")
    assert [(c, b, Decimal(r)) for c, b, r in stored] == [
        ("EUR", "USD", Decimal("1.08")),
        ("GBP", "USD", Decimal("1.27")),
    ]


def test_fx_import_of_good_rows_exits_zero_and_replaces_rates(cli_env: str, tmp_path: Path) -> None:
    invoke("init")
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2025-03-01,EUR,1.08\n", encoding="utf-8")
    assert "stored 1, rejected 0" in invoke("fx", "import", str(rates)).output
    rates.write_text("date,currency,rate\n2025-03-01,EUR,1.10\n", encoding="utf-8")
    invoke("fx", "import", str(rates))
    assert [Decimal(r) for (r,) in query("SELECT rate FROM fx_rates")] == [Decimal("1.10")]


def test_order_without_rate_is_a_problem_until_fx_import(cli_env: str, tmp_path: Path) -> None:
    invoke("init")
    report = ingest([order("eu-1", 50, "EUR", "m-eu-1"), order("us-1", 20, "USD", "m-us-1")])
    assert report.orders == 2
    assert query("SELECT order_id, total_base FROM orders ORDER BY order_id") == [
        ("eu-1", None),
        ("us-1", Decimal("20.0000")),
    ]
    status = invoke("status")
    assert "1 EUR orders have no base-currency value" in status.output
    assert "siyu fx import" in status.output
    with Runtime(load_settings()) as rt:
        problems = rt.status(rt.workspace())["problems"]
    assert [(p["code"], p["count"]) for p in problems] == [("missing_fx_rate", 1)]

    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2025-02-27,EUR,1.1\n", encoding="utf-8")
    imported = invoke("fx", "import", str(rates))
    assert "1 orders now have a USD value" in imported.output
    [(fx_rate, total_base)] = query(
        "SELECT fx_rate, total_base FROM orders WHERE order_id = 'eu-1'"
    )
    assert Decimal(fx_rate) == Decimal("1.1")
    assert Decimal(total_base) == Decimal("55.0000")
    after = invoke("status")
    assert "base-currency value" not in after.output
    assert "No data-quality problems." in after.output


def test_fx_import_of_a_file_without_the_columns_is_an_error(
    cli_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    invoke("init")
    bad = tmp_path / "bad.csv"
    bad.write_text("day,ccy\n2025-03-01,EUR\n", encoding="utf-8")
    code, _out, err = run_main(monkeypatch, capsys, "fx", "import", str(bad))
    assert code == 2
    assert "date,currency,rate" in err
    assert "Traceback" not in err


# -- quarantine ---------------------------------------------------------------------------------


def test_quarantine_list_show_replay(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("init")
    first = ingest([refund("o-9", 10, "USD", "refund-o-9")])
    assert (first.stored, first.quarantined) == (0, 1)
    [qid] = first.quarantine_ids

    listed = invoke("quarantine", "list")
    assert qid in listed.output
    assert "refund for order o-9, which is not stored" in listed.output
    assert qid in invoke("quarantine", "list", "--reason", "refund_unknown_order").output
    assert "No quarantined records." in invoke("quarantine", "list", "--reason", "x").output

    shown = invoke("quarantine", "show", qid)
    assert "reason_code: refund_unknown_order" in shown.output
    assert "field: properties.order_id" in shown.output
    assert "status: open" in shown.output
    payload_line = next(line for line in shown.output.splitlines() if "refund-o-9" in line)
    assert orjson.loads(payload_line)["properties"]["order_id"] == "o-9"

    # Replayed before its order exists: quarantined again, under a new id, nothing lost.
    early = invoke("quarantine", "replay")
    assert "Replayed 1: stored 0, already stored 0, quarantined again 1." in early.output
    [(qid2, reason)] = query(
        "SELECT quarantine_id, reason_code FROM quarantine WHERE status = 'open'"
    )
    assert qid2 != qid
    assert reason == "refund_unknown_order"

    # Once the order is in, the replay stores the refund exactly once.
    assert ingest([order("o-9", 30, "USD", "order-o-9")]).orders == 1
    replayed = invoke("quarantine", "replay")
    assert "Replayed 1: stored 1, already stored 0, quarantined again 0." in replayed.output
    assert query("SELECT count(*) FROM events WHERE message_id = 'refund-o-9'") == [(1,)]
    assert query("SELECT count(*) FROM refunds") == [(1,)]
    [(refunded, status)] = query("SELECT refunded, status FROM orders WHERE order_id = 'o-9'")
    assert (Decimal(refunded), status) == (Decimal(10), "partially_refunded")

    again = invoke("quarantine", "replay")
    assert "Replayed 0: stored 0" in again.output
    assert query("SELECT count(*) FROM events WHERE message_id = 'refund-o-9'") == [(1,)]
    assert query("SELECT count(*) FROM refunds") == [(1,)]

    # Naming an already replayed record is an error with a hint, not a second store.
    code, _out, err = run_main(monkeypatch, capsys, "quarantine", "replay", qid)
    assert code == 2
    assert qid in err
    assert "siyu quarantine list" in err
    assert query("SELECT count(*) FROM refunds") == [(1,)]

    assert "No quarantined records." in invoke("quarantine", "list").output
    everything = invoke("quarantine", "list", "--all")
    assert qid in everything.output
    assert qid2 in everything.output
    assert "replayed" in everything.output
    assert "status: replayed" in invoke("quarantine", "show", qid).output


def test_quarantine_replay_with_a_corrected_payload(cli_env: str, tmp_path: Path) -> None:
    invoke("init")
    bad = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m-fix",
        "timestamp": "2025-03-01T10:00:00",
    }  # no user, naive time
    [qid] = ingest([bad]).quarantine_ids
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps({**bad, "userId": "u1", "timestamp": "2025-03-01T10:00:00Z"}))
    result = invoke("quarantine", "replay", qid, "--payload", str(fixed))
    assert "stored 1" in result.output
    assert query("SELECT count(*) FROM events WHERE message_id = 'm-fix'") == [(1,)]


def test_quarantine_show_unknown_id(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("init")
    code, _out, err = run_main(monkeypatch, capsys, "quarantine", "show", "q_missing")
    assert code == 2
    assert "q_missing" in err
    assert "Traceback" not in err


# -- keys ---------------------------------------------------------------------------------------


def test_keys_create_list_revoke(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("init")
    created = invoke("keys", "create", "shop-webhook", "--scope", "write", "--scope", "read")
    [secret] = KEY.findall(created.output)
    [key_id] = re.findall(r"key_[0-9a-f]{16}", created.output)
    assert "(read,write)" in created.output
    prefix = secret.split("_")[1]

    listed = invoke("keys", "list")
    assert key_id in listed.output
    assert "shop-webhook" in listed.output
    assert prefix in listed.output
    assert "read,write" in listed.output
    assert secret not in listed.output
    assert not KEY.findall(listed.output)

    with Runtime(load_settings()) as rt:
        assert authenticate(rt.db.engine, secret).key_id == key_id
    revoked = invoke("keys", "revoke", prefix)
    assert f"Revoked {key_id} ({prefix})" in revoked.output
    with Runtime(load_settings()) as rt, pytest.raises(Unauthorized):
        authenticate(rt.db.engine, secret)
    [(revoked_at,)] = query("SELECT revoked_at FROM api_keys WHERE key_id = :k", k=key_id)
    assert revoked_at is not None

    code, _out, err = run_main(monkeypatch, capsys, "keys", "revoke", "key_nope")
    assert code == 2
    assert "No API key 'key_nope'" in err
    code, _out, err = run_main(monkeypatch, capsys, "keys", "create", "x", "--scope", "root")
    assert code == 2
    assert "root" in err
    assert "admin, write, read" in err
    assert query("SELECT count(*) FROM api_keys") == [(2,)]


# -- errors: message and hint, exit 2, never a traceback ----------------------------------------


def test_serve_refuses_the_default_secret_in_production(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    def must_not_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("siyu serve started with the default secret in production")

    monkeypatch.setattr(uvicorn, "run", must_not_start)
    monkeypatch.setenv("SIYU_ENV", "production")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code != 0
    assert "SIYU_SECRET_KEY" in str(result.exception)

    code, out, err = run_main(monkeypatch, capsys, "serve")
    assert code == 2
    assert "SIYU_SECRET_KEY" in err
    assert "SIYU_ENV=production" in err
    assert "What to do:" in err
    assert "Traceback" not in out + err
    assert "serving at" not in out


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("SIYU_PORT", "abc", ["Setting 'port' is invalid", "SIYU_PORT"]),
        ("SIYU_ENV", "staging", ["Setting 'env' is invalid", "SIYU_ENV"]),
        ("SIYU_DATABASE_URL", "mysql://db/x", ["Unsupported database URL", "duckdb:///"]),
    ],
)
def test_invalid_setting_is_a_clear_error(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    value: str,
    expected: list[str],
) -> None:
    monkeypatch.setenv(env, value)
    code, out, err = run_main(monkeypatch, capsys, "status")
    assert code == 2
    for text in expected:
        assert text in err
    assert "Traceback" not in out + err


def test_unknown_setting_in_siyu_toml(
    clean_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "siyu.toml").write_text("prot = 8001\n", encoding="utf-8")
    code, _out, err = run_main(monkeypatch, capsys, "config")
    assert code == 2
    assert "'prot'" in err
    assert "no such setting" in err


def test_status_before_init_says_run_init(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "status")
    assert code == 2
    assert "siyu init" in err
    assert "Traceback" not in out + err


def test_missing_postgres_server_is_database_unavailable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", "postgresql://postgres:pw-42@127.0.0.1:1/x")
    code, out, err = run_main(monkeypatch, capsys, "status")
    assert code == 2
    assert "Cannot connect to PostgreSQL at 127.0.0.1:1/x" in err
    assert "SIYU_DATABASE_URL" in err
    assert "pw-42" not in err
    assert "Traceback" not in out + err


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    return name


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        pytest.param(
            ["quarantine", "replay", "q_x", "--payload", "fixed.json"],
            {"fixed.json": b"{not json"},
            "fixed.json",
            id="replay-payload-not-json",
        ),
        pytest.param(
            ["quarantine", "replay", "q_x", "--payload", "missing.json"],
            {},
            "missing.json",
            id="replay-payload-missing",
        ),
        pytest.param(
            ["fx", "import", "rates.csv"],
            {"rates.csv": b"date,currency,rate\n2025-03-01,EUR,1.08\xff\n"},
            "UTF-8",
            id="fx-file-not-utf8",
        ),
        pytest.param(
            ["demo", "--as-of", "2025-13-01", "--no-serve"],
            {},
            "--as-of",
            id="demo-bad-as-of",
        ),
    ],
)
def test_bad_input_is_a_clear_error_not_a_traceback(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    files: dict[str, bytes],
    expected: str,
) -> None:
    invoke("init")
    for name, data in files.items():
        _file(clean_env, name, data)
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert expected in err
    assert "Traceback" not in out + err


# -- the real console script --------------------------------------------------------------------


def _siyu_script() -> str:
    found = shutil.which("siyu", path=str(Path(sys.executable).parent))
    found = found or shutil.which("siyu")
    assert found, "the siyu console script is not installed"
    return found


def test_console_script_prints_no_traceback_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["SIYU_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/x"
    proc = subprocess.run(
        [_siyu_script(), "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Error: Cannot connect to PostgreSQL" in proc.stderr
    assert "What to do:" in proc.stderr
    assert "SIYU_DATABASE_URL" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_over_real_http(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["SIYU_DATABASE_URL"] = f"duckdb:///{tmp_path}/serve.duckdb"
    env["SIYU_ENV"] = "production"
    env["SIYU_SECRET_KEY"] = "a-real-production-secret-0123456789abcdef"
    subprocess.run([_siyu_script(), "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen(
        [_siyu_script(), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # blocks until uvicorn says it listens, or the process ends
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("siyu serve exited before listening:\n" + "".join(seen))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as response:
            health = orjson.loads(response.read())
        assert health["database"] == "duckdb"
        assert health["schema_current"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=30)
