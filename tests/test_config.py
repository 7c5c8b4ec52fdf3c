"""Settings: one typed table; SIYU_* beats siyu.toml beats the default; errors name the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from siyu.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_SECRET,
    Settings,
    describe,
    load_settings,
    mask_url,
)
from siyu.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No SIYU_* variable and no siyu.toml leak in from the surroundings."""
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_setting_has_a_description() -> None:
    assert Settings.model_fields
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
        assert len(field.description.strip()) >= 10, f"setting {name}: {field.description!r}"


def test_defaults() -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET
    assert settings.port == 8000
    assert settings.base_currency == "USD"


def test_env_beats_toml_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(tmp_path / "siyu.toml", 'port = 9001\nbase_currency = "eur"\nworkspace = "toml"\n')
    monkeypatch.setenv("SIYU_PORT", "9002")
    settings = load_settings()
    assert settings.port == 9002  # env
    assert settings.base_currency == "EUR"  # toml (normalised)
    assert settings.workspace == "toml"  # toml
    assert settings.host == "127.0.0.1"  # default


def test_toml_siyu_section_and_siyu_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write_toml(tmp_path / "deploy.toml", '[siyu]\ndefault_region = "de"\nport = 8123\n')
    write_toml(tmp_path / "siyu.toml", "port = 1111\n")  # ignored: SIYU_CONFIG names another
    monkeypatch.setenv("SIYU_CONFIG", str(other))
    settings = load_settings()
    assert (settings.default_region, settings.port) == ("DE", 8123)


def test_explicit_config_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "x.toml", 'log_level = "DEBUG"\n')
    assert load_settings(path).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "value", "setting"),
    [
        ("SIYU_PORT", "abc", "port"),
        ("SIYU_PORT", "70000", "port"),
        ("SIYU_ENV", "staging", "env"),
        ("SIYU_LOG_LEVEL", "verbose", "log_level"),
        ("SIYU_BASE_CURRENCY", "EURO", "base_currency"),
        ("SIYU_DEFAULT_REGION", "USA", "default_region"),
        ("SIYU_INGEST_CHUNK_SIZE", "5", "ingest_chunk_size"),
        ("SIYU_MAX_EVENT_BYTES", "-1", "max_event_bytes"),
    ],
)
def test_invalid_env_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, setting: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    error = info.value
    assert error.field == setting
    assert f"'{setting}'" in error.message
    assert env in error.hint
    assert error.status == 500
    assert error.code == "config"


def test_invalid_toml_value_names_the_setting(tmp_path: Path) -> None:
    write_toml(tmp_path / "siyu.toml", 'port = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "port"
    assert "siyu.toml" in info.value.hint


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    write_toml(tmp_path / "siyu.toml", 'port = 8000\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "colour"
    assert "no such setting" in info.value.message


def test_toml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    write_toml(tmp_path / "siyu.toml", "port = \n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "siyu.toml" in info.value.message
    assert "not valid TOML" in info.value.message


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("env", ["development", "test"])
def test_default_secret_is_allowed_in_development(env: str) -> None:
    settings = Settings(env=env)
    assert settings.is_development
    settings.require_safe_secrets()  # no error


def test_default_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_ENV", "production")
    settings = load_settings()
    assert not settings.is_development
    with pytest.raises(ConfigError) as info:
        settings.require_safe_secrets()
    assert "SIYU_SECRET_KEY" in info.value.message
    assert "production" in info.value.message
    assert info.value.hint != ConfigError.default_hint


def test_own_secret_is_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_ENV", "production")
    monkeypatch.setenv("SIYU_SECRET_KEY", "a-long-random-production-secret-0123456789")
    load_settings().require_safe_secrets()  # no error


def test_secret_is_not_in_repr() -> None:
    settings = Settings(secret_key=SecretStr("hunter2-very-secret"))
    assert "hunter2-very-secret" not in repr(settings)
    assert "hunter2-very-secret" not in str(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://siyu:s3cr3t@db.example:5432/siyu",
            "postgresql://siyu:****@db.example:5432/siyu",
        ),
        ("postgresql://siyu@db.example/siyu", "postgresql://siyu@db.example/siyu"),
        ("duckdb:///./siyu-data/siyu.duckdb", "duckdb:///./siyu-data/siyu.duckdb"),
    ],
)
def test_mask_url_hides_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_url_hides_a_password_in_the_query() -> None:
    assert "s3cr3t" not in mask_url("postgresql://siyu@db.example/siyu?password=s3cr3t")


def test_describe_lists_every_setting_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIYU_SECRET_KEY", "my-own-secret-value-123")
    monkeypatch.setenv("SIYU_DATABASE_URL", "postgresql://siyu:pw-987@db.example/siyu")
    rows = describe(load_settings())
    assert [r[0] for r in rows] == list(Settings.model_fields)
    text = repr(rows)
    assert "my-own-secret-value-123" not in text
    assert "pw-987" not in text
    assert DEFAULT_SECRET not in text
    shown = {name: value for name, value, _default, _help in rows}
    assert shown["secret_key"] == "****"
    assert shown["database_url"] == "postgresql://siyu:****@db.example/siyu"
    assert all(help_ for *_, help_ in rows)
