"""`siyu import` through the CLI on both engines: summary, re-import, errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from siyu.cli import app

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def test_import_prints_a_summary_and_a_second_run_adds_nothing(cli_db: str) -> None:
    path = str(FIXTURES / "shopify_orders.csv")
    first = runner.invoke(app, ["import", "shopify-orders", path, "--source", "shop"])
    assert first.exit_code == 0, first.output
    assert "Read 8 rows" in first.output
    assert "quarantined 2" in first.output
    assert "siyu quarantine list" in first.output
    again = runner.invoke(app, ["import", "shopify-orders", path, "--source", "shop"])
    assert again.exit_code == 0, again.output
    assert "already imported" in again.output
    listed = runner.invoke(app, ["sources", "list"])
    assert "shop" in listed.output
    assert "shopify" in listed.output


def test_import_errors(cli_db: str) -> None:
    csv = str(FIXTURES / "generic_orders.csv")
    assert runner.invoke(app, ["import", "generic", csv]).exit_code != 0  # no --mapping
    assert runner.invoke(app, ["import", "no-such-importer", csv]).exit_code != 0
    missing = runner.invoke(app, ["import", "shopify-orders", "/nonexistent.csv"])
    assert missing.exit_code != 0
    mapped = runner.invoke(
        app, ["import", "generic", csv, "--mapping", str(FIXTURES / "generic_orders.toml")]
    )
    assert mapped.exit_code == 0, mapped.output
    assert "quarantined 1" in mapped.output


def test_a_first_import_shows_repeat_customers_details_apart(cli_db: str, tmp_path: Path) -> None:
    import csv

    from tests.collect.shopify_export import HEADER, order_rows

    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for i in [*range(5), *range(997, 1002)]:  # five customers order twice
            writer.writerows(order_rows(i))
    done = runner.invoke(app, ["import", "shopify-orders", str(path)])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "duplicates 0," in text
    assert "repeated customer details 5 (already known, not stored again)" in text
    plain = runner.invoke(app, ["import", "shopify-orders", str(FIXTURES / "shopify_orders.csv")])
    assert "repeated customer details 0, quarantined" in " ".join(plain.output.split())
