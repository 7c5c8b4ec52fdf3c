"""Every setting, CLI command and option, event name, extension point, API route and error code
is documented (after datasette's tests/test_docs.py): adding one without docs fails here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from siyu.api import create_app
from siyu.cli import app
from siyu.collect.ecommerce import SEGMENT_ECOMMERCE, SIYU_EVENTS
from siyu.config import Settings
from siyu.errors import ALL_ERRORS
from siyu.registry import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"


def doc(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    return path.read_text(encoding="utf-8")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_setting_is_documented(name: str) -> None:
    text = doc("settings.md")
    assert f"`{name}`" in text, f"setting {name} is not in docs/settings.md"
    assert f"`SIYU_{name.upper()}`" in text


def test_settings_reference_is_up_to_date(clean_env: None) -> None:
    """docs/settings.md contains exactly what 'siyu config --markdown' generates."""
    result = CliRunner().invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    generated = result.output.strip()
    assert generated.count("\n") >= len(Settings.model_fields)
    assert generated in doc("settings.md"), "regenerate with: siyu config --markdown"


# -- CLI ----------------------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ("siyu",)) -> Iterator[tuple[str, Any]]:
    """Every command and sub-command of the CLI, as ('siyu keys create', command).

    Duck-typed: Typer may build its commands on a vendored copy of Click.
    """
    yield " ".join(path), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def test_cli_has_the_expected_commands() -> None:
    # Guards the walk itself: the groups and their sub-commands are found.
    assert {"siyu init", "siyu serve", "siyu keys create", "siyu quarantine replay"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", [p for p in COMMANDS if p != "siyu"])
def test_cli_command_is_documented(path: str) -> None:
    assert f"`{path}" in doc("cli.md"), f"'{path}' is not in docs/cli.md"


def _options() -> Iterator[Any]:
    """One param per option of every command: its --names (a flag's --x/--no-x both count)."""
    for path, command in COMMANDS.items():
        for param in command.params:
            if param.param_type_name == "option" and "--help" not in param.opts:
                names = tuple(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
                yield pytest.param(names, id=f"{path} {names[0]}")


@pytest.mark.parametrize("names", list(_options()))
def test_cli_option_is_documented(names: tuple[str, ...]) -> None:
    text = doc("cli.md")
    assert any(re.search(re.escape(n) + r"(?![\w-])", text) for n in names), (
        f"option {'/'.join(names)} is not in docs/cli.md"
    )


# -- events and extension points ----------------------------------------------------------------


@pytest.mark.parametrize("event", [*SEGMENT_ECOMMERCE, *SIYU_EVENTS])
def test_event_is_documented(event: str) -> None:
    # A table row of its own ("| Order Completed | ..."), or the name in backticks.
    text = doc("events.md")
    as_row = re.search(rf"^\|\s*`?{re.escape(event)}`?\s*\|", text, re.MULTILINE)
    assert as_row or f"`{event}`" in text, f"event '{event}' is not in docs/events.md"


@pytest.mark.parametrize("point", list(registry.points()))
def test_extension_point_is_documented(point: str) -> None:
    assert f"`{point}`" in doc("ARCHITECTURE.md"), (
        f"extension point registry.{point} is not in docs/ARCHITECTURE.md"
    )


# -- HTTP API -----------------------------------------------------------------------------------


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every public route, from the app's OpenAPI schema."""
    api = create_app(Settings.model_construct())  # routes only: no env read, no database
    paths = api.openapi()["paths"]
    return sorted((m.upper(), p) for p, ops in paths.items() for m in ops)


@pytest.mark.parametrize(("method", "path"), _routes())
def test_api_route_is_documented(method: str, path: str) -> None:
    # "`GET /api/keys/{id}`": path parameters may be named differently in the docs.
    literal = [re.escape(part) for part in re.split(r"\{[^}]+\}", path)]
    pattern = rf"`{method} " + r"\{[^}]+\}".join(literal) + r"(?![\w/{])"
    assert re.search(pattern, doc("api.md")), f"{method} {path} is not in docs/api.md"


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_error_code_is_documented_with_its_status(cls: type) -> None:
    text = doc("api.md")
    rows = [line for line in text.splitlines() if f"`{cls.code}`" in line]
    assert rows, f"error code '{cls.code}' is not in docs/api.md"
    assert any(str(cls.status) in row for row in rows), (
        f"docs/api.md does not give status {cls.status} for '{cls.code}'"
    )
