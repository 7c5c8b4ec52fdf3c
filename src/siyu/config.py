"""Settings: one typed table.

Every setting has a name, a type, a default and a help text (the field description). Values come,
highest priority first, from ``SIYU_*`` environment variables, then an optional TOML file
(``siyu.toml`` in the working directory, or the file named by ``SIYU_CONFIG``), then the default.
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from siyu.errors import ConfigError

DEFAULT_SECRET = "siyu-development-secret-change-me"
DEFAULT_DATABASE_URL = "duckdb:///./siyu-data/siyu.duckdb"


class Settings(BaseSettings):
    """The effective configuration of one siyu process."""

    model_config = SettingsConfigDict(env_prefix="SIYU_", extra="forbid", frozen=True)

    env: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment environment. Outside 'development' and 'test' the server refuses "
        "default secrets.",
    )
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="The one database: 'duckdb:///path/to/file.duckdb' (embedded, default) or "
        "'postgresql://user:pass@host:5432/db'.",
    )
    duckdb_memory_limit: str = Field(
        "",
        description="Cap on DuckDB's memory (e.g. '4GB', '50%'); empty keeps DuckDB's default "
        "of 80% of RAM. Set it when siyu shares the machine: DuckDB spills to disk instead.",
    )
    duckdb_checkpoint_threshold: str = Field(
        "256MB",
        description="Write-ahead log size at which DuckDB checkpoints. DuckDB's 16MB default "
        "checkpoints on nearly every bulk commit, rewriting the growing key indexes each time; "
        "a larger log means fewer rewrites, but DuckDB keeps the changes in memory until the "
        "checkpoint (1GB: 5M streamed events peaked at 1.9 GB, 256MB: 1.3 GB) and replays a "
        "longer log after a crash. Empty: DuckDB's.",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEFAULT_SECRET),
        description="Secret used to sign tokens and unsubscribe links. Must be changed outside "
        "development.",
    )
    workspace: str = Field(
        "default",
        description="Slug of the workspace the CLI works on when --workspace is not given.",
    )
    base_currency: str = Field(
        "USD",
        description="ISO 4217 base currency of a workspace created by 'siyu init'.",
    )
    default_region: str = Field(
        "US",
        description="ISO 3166 country used for a workspace created by 'siyu init' (phone numbers, "
        "privacy region) when a customer has none.",
    )
    host: str = Field("127.0.0.1", description="Address 'siyu serve' listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port 'siyu serve' listens on.")
    ingest_chunk_size: int = Field(
        20_000,
        ge=100,
        le=1_000_000,
        description="Records validated and written per chunk by the ingestion pipeline; memory "
        "use grows with it, not with input size.",
    )
    max_event_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest accepted single event, in bytes (Segment: 32 KB)."
    )
    max_batch_bytes: int = Field(
        500 * 1024,
        ge=1024,
        description="Largest accepted batch request, in bytes (Segment: 500 KB).",
    )
    max_future_skew_seconds: int = Field(
        300,
        ge=0,
        description="How far in the future an event timestamp may lie before it is quarantined.",
    )
    max_json_depth: int = Field(
        32,
        ge=4,
        le=512,
        description="Deepest JSON nesting accepted by the tracking API and webhooks (a batch "
        "counts from its outer object); deeper bodies get 400 before they reach the pipeline.",
    )
    tracking_rate_limit: float = Field(
        200.0,
        ge=0,
        description="Tracking API requests per second allowed per source (token bucket in each "
        "server process); over it the API answers 429 with Retry-After. 0 disables the limit.",
    )
    tracking_rate_burst: int = Field(
        400,
        ge=1,
        description="Requests a source may send at once above tracking_rate_limit before 429.",
    )
    tracking_spool_dir: str = Field(
        "",
        description="Directory of the tracking API's durable spool (requests are answered once "
        "their records are fsynced there, and stored from it in batches). Empty: beside the "
        "DuckDB file ('<file>.spool'), or siyu-data/spool-<hash of the URL> for PostgreSQL. "
        "One server process per directory.",
    )
    tracking_spool_max_mb: int = Field(
        1024,
        ge=1,
        description="Most not-yet-stored data the tracking spool may hold, in MB; beyond it the "
        "tracking API answers 503 with Retry-After until the database catches up.",
    )
    segments_every_days: int = Field(
        7,
        ge=0,
        le=365,
        description="'siyu serve' recomputes RFM and tiers when the last run is this many days "
        "old (0: only on demand with 'siyu run segments').",
    )
    profile_trait_priority: dict[str, list[str]] = Field(
        {},
        description="Golden record survivorship: per trait, sources (name or kind) in priority "
        'order, e.g. {"address": ["shopify", "woocommerce"]}; other traits keep the most recent '
        "non-empty value.",
    )
    profile_recent: int = Field(
        20, ge=1, le=1000, description="Recent orders and events a customer profile lists."
    )
    identity_resolve: Literal["ingest", "background", "manual"] = Field(
        "background",
        description="When new events are resolved into customers (One-ID, incrementally): "
        "'ingest' in each pipeline chunk's transaction (ingest about twice as slow), "
        "'background' by 'siyu serve' every identity_resolve_seconds, 'manual' only by "
        "'siyu identity resolve'.",
    )
    identity_resolve_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often 'siyu serve' resolves newly received events when "
        "identity_resolve is 'background'.",
    )
    identity_hold_graph: bool = Field(
        True,
        description="Whether 'siyu serve' holds each workspace's One-ID graph in memory for its "
        "background resolution: a batch then looks the graph up in memory instead of scanning "
        "the tables (at 1M customers about 2.7 GB, loaded in 6-15 s on the first pass; "
        "a batch of 10,000 events about 40% faster). Off: every batch reads the tables.",
    )
    identity_limit_windows: dict[str, int] = Field(
        {},
        description="One-ID per-kind limits counted per time window: kind -> days, e.g. "
        '{"email": 30} allows at most max_per_customer (5) emails first seen within any 30 '
        "days instead of 5 ever; 0 removes a kind's own window.",
    )
    predict_min_buyers: int = Field(
        500,
        ge=1,
        description="CLV and its evaluation refuse (not_enough_data) below this many buyers.",
    )
    predict_min_history_days: int = Field(
        180,
        ge=1,
        description="CLV and its evaluation refuse below this many days of purchase history.",
    )
    predict_min_repeat_buyers: int = Field(
        50,
        ge=1,
        description="CLV refuses below this many repeat buyers (the spend model needs them).",
    )
    journeys_every_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How often 'siyu serve' runs the journeys worker (triggers, exits, due steps) "
        "on the default workspace (0: only 'siyu journeys run').",
    )
    fission_every_seconds: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="How often 'siyu serve' runs the fission work (referral rules, group-buy "
        "settlement, assist reward repair, events) on the default workspace (0: only "
        "'siyu fission process').",
    )
    journeys_batch_size: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Step runs a journeys worker claims and executes per batch.",
    )
    journeys_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        description="Attempts of a journey step (errors, transient send failures) before it is "
        "dead-lettered ('siyu journeys failures').",
    )
    journeys_lease_seconds: int = Field(
        300,
        ge=5,
        le=86_400,
        description="How long a claimed step run belongs to its worker; after that (the worker "
        "died) another worker claims it again, and idempotency keys prevent double sends.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of this siyu server, used in links sent to customers "
        "(unsubscribe). Use https in production.",
    )
    referral_landing_url: str = Field(
        "",
        description="Store page that invite links (/r/CODE) lead to; siyu appends ref=CODE "
        "(empty: invite links answer 404 until it is set).",
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server the email channel sends through.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field(
        "siyu <noreply@example.com>", description="From header of emails (name and address)."
    )
    smtp_username: str = Field("", description="SMTP login (empty: no authentication).")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_unsubscribe_mailto: str = Field(
        "",
        description="Address of the mailto: List-Unsubscribe entry (empty: unsubscribe@ the "
        "domain of smtp_from).",
    )
    whatsapp_base_url: str = Field(
        "https://graph.facebook.com", description="Base URL of the WhatsApp Cloud API (Graph API)."
    )
    whatsapp_api_version: str = Field("v21.0", description="Graph API version, e.g. 'v21.0'.")
    whatsapp_token: SecretStr = Field(
        SecretStr(""), description="WhatsApp Cloud API access token (sent as a Bearer token)."
    )
    whatsapp_phone_number_id: str = Field(
        "", description="The business phone number id messages are sent from."
    )
    whatsapp_rate_per_second: float = Field(
        80.0,
        gt=0,
        description="Messages per second siyu sends from the one WhatsApp business number "
        "(Cloud API default throughput: 80).",
    )
    sms_base_url: str = Field(
        "https://api.twilio.com", description="Base URL of the Twilio-style SMS API."
    )
    sms_account_sid: str = Field("", description="SMS provider account SID (basic auth user).")
    sms_auth_token: SecretStr = Field(
        SecretStr(""), description="SMS provider auth token (basic auth password)."
    )
    sms_from: str = Field("", description="Sender number (E.164) or messaging service id for SMS.")
    webhook_url: str = Field(
        "", description="URL the webhook channel POSTs rendered messages to (signed)."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Key of the webhook channel's X-Siyu-Signature (HMAC-SHA256 of "
        "timestamp + '.' + body).",
    )
    messaging_outbox_file: str = Field(
        "",
        description="JSONL file the outbox channel also appends to (empty: the outbox table only).",
    )
    messaging_outbox_as: Literal["email", "sms", "whatsapp"] = Field(
        "email",
        description="Whose consent and suppression rules the outbox channel applies (dry runs "
        "behave like this channel).",
    )
    messaging_default_locale: str = Field(
        "en", description="Locale a template falls back to when it has no default locale."
    )
    messaging_quiet_start: str = Field(
        "21:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Start of quiet hours in the customer's local time (HH:MM); marketing "
        "messages due then wait until messaging_quiet_end.",
    )
    messaging_quiet_end: str = Field(
        "09:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="End of quiet hours in the customer's local time (HH:MM).",
    )
    messaging_cap_per_day: int = Field(
        2,
        ge=0,
        description="Marketing messages per customer per channel per local calendar day "
        "(0: no daily cap); more wait for the next day.",
    )
    messaging_cap_per_window: int = Field(
        5,
        ge=0,
        description="Marketing messages per customer per channel within messaging_cap_window_hours "
        "(0: no cap); more are skipped.",
    )
    messaging_cap_window_hours: int = Field(
        168, ge=1, description="The rolling window of messaging_cap_per_window, in hours."
    )
    messaging_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        description="Provider attempts of one message before it fails (dead letter).",
    )
    messaging_retry_base_seconds: float = Field(
        30.0,
        gt=0,
        description="First retry delay after a transient provider error; doubles each attempt, "
        "with jitter.",
    )
    messaging_email_tracking: bool = Field(
        True,
        description="Rewrite links of HTML emails through /t/c and add an open pixel (/t/o), "
        "recording Email Clicked / Email Opened for journey measurement. Turn off where opens "
        "may not be tracked without consent.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level of the CLI and server."
    )
    access_log: bool = Field(
        False,
        description="Log one line per HTTP request (uvicorn's access log). Off by default: the "
        "tracking API takes thousands of requests per second and the line costs CPU on each.",
    )

    @field_validator("base_currency")
    @classmethod
    def _currency_upper(cls, value: str) -> str:
        from siyu.money import require_currency

        return require_currency(value)

    @field_validator("default_region")
    @classmethod
    def _region_upper(cls, value: str) -> str:
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise ValueError("must be a two-letter ISO 3166 country code such as 'US' or 'DE'")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the TOML file, which load_settings passes as init values.
        return (env_settings, init_settings)

    @property
    def is_development(self) -> bool:
        return self.env in ("development", "test")

    def require_safe_secrets(self) -> None:
        """Refuse to serve with a default secret outside development (raise ConfigError)."""
        if not self.is_development and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ConfigError(
                f"SIYU_SECRET_KEY is the built-in development default but SIYU_ENV={self.env}.",
                hint="Set SIYU_SECRET_KEY to a long random value, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
            )


def config_file_path() -> Path:
    """Where the optional TOML file is looked for."""
    return Path(os.environ.get("SIYU_CONFIG", "siyu.toml"))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from environment, the TOML file and defaults.

    Raises ConfigError with the offending setting named when a value is invalid.
    """
    path = config_file or config_file_path()
    values: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}", hint="Fix the file's syntax."
            ) from exc
        section = data.get("siyu", data)
        values.update({str(k).lower(): v for k, v in section.items()})
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        unknown = first["type"] == "extra_forbidden"
        raise ConfigError(
            f"Setting '{name}' is invalid: {first['msg']}"
            + (" (no such setting)" if unknown else ""),
            hint=f"Fix SIYU_{name.upper()} or '{name}' in {path}; 'siyu config' lists every "
            "setting with its help.",
            field=name,
        ) from exc


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":****@")
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2****", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # unchanged (urlunsplit would drop the '//' of an empty host)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def describe(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(name, effective value with secrets masked, default, help) for every setting."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        default = field.default
        if isinstance(value, SecretStr):
            shown = "****" if value.get_secret_value() else ""
            default_shown = "(built-in development secret)"
        else:
            shown = mask_url(value) if name == "database_url" else str(value)
            default_shown = str(default)
        rows.append((name, shown, default_shown, field.description or ""))
    return rows
