"""Message templates: stored per workspace, one variant per locale, checked at publish time.

A template (name, channel, default locale) has variants keyed by locale. At send time the
variant is picked by the customer's language, then their market's language, then the template's
default locale (:func:`siyu.messaging.render.pick_locale`). The variables a variant uses are read
from its syntax tree, so :func:`validate_template` tells a journey at publish time that a
template needs ``coupon`` which the step does not provide, instead of failing at send time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from siyu.config import Settings, load_settings
from siyu.errors import InvalidInput, NotFound
from siyu.messaging import render as r
from siyu.messaging.tables import message_template_variants as tv
from siyu.messaging.tables import message_templates as tt
from siyu.store.database import Database
from siyu.store.schema import customers, workspaces

# Attributes of ``customer`` a template may read.
CUSTOMER_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "customer_id",
        "user_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "country",
        "language",
        "timezone",
        "currency",
        "birthday",
        "traits",
    }
)
# Variables every message gets besides the sender's context.
SEND_VARIABLES: frozenset[str] = frozenset({"customer", "workspace", "unsubscribe_url"})
PARTS = ("subject", "text", "html")
# What each channel's variants must have.
REQUIRED: dict[str, tuple[tuple[str, ...], str]] = {
    "email": (("subject",), "an email needs a subject and a text or html body"),
    "sms": (("text",), "an SMS needs a text body"),
    "webhook": ((), ""),
    "outbox": ((), ""),
    "whatsapp": ((), "a WhatsApp variant needs an approved template (wa_template, wa_language)"),
}


@dataclass(frozen=True)
class Variant:
    locale: str
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    wa_template: str | None = None
    wa_language: str | None = None
    wa_components: list[Any] | None = None


@dataclass(frozen=True)
class MessageTemplate:
    name: str
    channel: str
    default_locale: str
    description: str | None
    variants: Mapping[str, Variant] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """A template rendered for one customer."""

    template: str
    locale: str
    subject: str | None
    text: str | None
    html: str | None
    whatsapp: dict[str, Any] | None


def _variant_problems(channel: str, v: Variant) -> list[str]:
    where = f"variants['{v.locale}']"
    if channel == "email" and (not v.subject or not (v.text or v.html)):
        return [f"{where}: {REQUIRED['email'][1]}"]
    if channel == "sms" and not v.text:
        return [f"{where}: {REQUIRED['sms'][1]}"]
    if channel == "whatsapp" and not (v.wa_template and v.wa_language) and not v.text:
        return [f"{where}: {REQUIRED['whatsapp'][1]} or a free-form text"]
    if channel in ("webhook", "outbox") and not (v.text or v.html or v.subject):
        return [f"{where}: needs at least one of subject, text, html"]
    return []


def template_from_doc(doc: Mapping[str, Any], known_channels: Collection[str]) -> MessageTemplate:
    """Validate a template document (YAML/JSON) into a template; InvalidInput names the field."""
    if not isinstance(doc, Mapping):
        raise InvalidInput("A template must be a mapping with name, channel and variants.")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise InvalidInput("name: a template needs a name (1-120 characters).", field="name")
    channel = doc.get("channel")
    if channel not in known_channels:
        raise InvalidInput(
            f"channel: unknown channel {channel!r}.",
            hint=f"Use one of: {', '.join(sorted(known_channels))}.",
            field="channel",
        )
    variants_doc = doc.get("variants")
    if not isinstance(variants_doc, Mapping) or not variants_doc:
        raise InvalidInput(
            "variants: give at least one variant, keyed by locale (e.g. en, de-DE).",
            field="variants",
        )
    variants: dict[str, Variant] = {}
    for locale, body in variants_doc.items():
        if not isinstance(body, Mapping):
            raise InvalidInput(f"variants['{locale}'] must be a mapping.", field="variants")
        unknown = set(body) - {*PARTS, "wa_template", "wa_language", "wa_components"}
        if unknown:
            raise InvalidInput(
                f"variants['{locale}']: unknown field(s) {', '.join(sorted(unknown))}.",
                hint="A variant has subject, text, html, wa_template, wa_language, wa_components.",
                field="variants",
            )
        loc = r.norm_locale(str(locale))
        v = Variant(
            loc,
            **{k: body.get(k) for k in (*PARTS, "wa_template", "wa_language", "wa_components")},
        )
        for part in PARTS:
            source = getattr(v, part)
            if source is not None:
                r.parse(str(source), f"variants['{loc}'].{part}", html=part == "html")
        for s in _strings(v.wa_components):
            r.parse(s, f"variants['{loc}'].wa_components")
        variants[loc] = v
    default = r.norm_locale(str(doc.get("default_locale") or next(iter(variants))))
    problems = [p for v in variants.values() for p in _variant_problems(str(channel), v)]
    if default not in variants:
        problems.append(f"default_locale: there is no variant for the default locale '{default}'")
    if problems:
        raise InvalidInput("; ".join(problems), field="variants")
    desc = doc.get("description")
    return MessageTemplate(name.strip(), str(channel), default, desc, variants)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def save_template(
    conn: sa.Connection, workspace_id: str, t: MessageTemplate, now: datetime
) -> bool:
    """Store a template, replacing its variants; True when it was new."""
    key = (tt.c.workspace_id == workspace_id) & (tt.c.name == t.name)
    created = conn.execute(sa.select(tt.c.created_at).where(key)).scalar()
    conn.execute(tt.delete().where(key))
    conn.execute(tv.delete().where((tv.c.workspace_id == workspace_id) & (tv.c.name == t.name)))
    conn.execute(
        tt.insert().values(
            workspace_id=workspace_id,
            name=t.name,
            channel=t.channel,
            default_locale=t.default_locale,
            description=t.description,
            created_at=created or now,
            updated_at=now,
        )
    )
    conn.execute(
        tv.insert(),
        [
            {
                "workspace_id": workspace_id,
                "name": t.name,
                "locale": v.locale,
                "subject": v.subject,
                "text": v.text,
                "html": v.html,
                "wa_template": v.wa_template,
                "wa_language": v.wa_language,
                "wa_components": v.wa_components,
                "updated_at": now,
            }
            for v in t.variants.values()
        ],
    )
    return created is None


def template_to_doc(t: MessageTemplate) -> dict[str, Any]:
    """The template as the document 'templates add' reads (for show and export)."""
    variants: dict[str, Any] = {}
    for loc, v in sorted(t.variants.items()):
        fields = {
            "subject": v.subject,
            "text": v.text,
            "html": v.html,
            "wa_template": v.wa_template,
            "wa_language": v.wa_language,
            "wa_components": v.wa_components,
        }
        variants[loc] = {k: x for k, x in fields.items() if x is not None}
    doc: dict[str, Any] = {"name": t.name, "channel": t.channel}
    doc["default_locale"] = t.default_locale
    if t.description:
        doc["description"] = t.description
    doc["variants"] = variants
    return doc


def load_templates(
    conn: sa.Connection, workspace_id: str, names: Collection[str] | None = None
) -> dict[str, MessageTemplate]:
    """Templates of a workspace (all, or those named) with their variants."""
    q = sa.select(tt).where(tt.c.workspace_id == workspace_id)
    qv = sa.select(tv).where(tv.c.workspace_id == workspace_id)
    if names is not None:
        q = q.where(tt.c.name.in_(sorted(set(names))))
        qv = qv.where(tv.c.name.in_(sorted(set(names))))
    variants: dict[str, dict[str, Variant]] = {}
    for row in conn.execute(qv).mappings():
        variants.setdefault(row["name"], {})[row["locale"]] = Variant(
            row["locale"],
            row["subject"],
            row["text"],
            row["html"],
            row["wa_template"],
            row["wa_language"],
            row["wa_components"],
        )
    return {
        row["name"]: MessageTemplate(
            row["name"],
            row["channel"],
            row["default_locale"],
            row["description"],
            variants.get(row["name"], {}),
        )
        for row in conn.execute(q.order_by(tt.c.name)).mappings()
    }


def get_template(conn: sa.Connection, workspace_id: str, name: str) -> MessageTemplate:
    found = load_templates(conn, workspace_id, [name]).get(name)
    if found is None:
        known = ", ".join(load_templates(conn, workspace_id)) or "none yet"
        raise NotFound(
            f"No message template named '{name}'.",
            hint=f"Templates of this workspace: {known}. Add one with 'siyu templates add FILE'.",
        )
    return found


def template_problems(t: MessageTemplate, channel: str, available: Collection[str]) -> list[str]:
    """What is wrong with using ``t`` on ``channel`` with these variables."""
    problems: list[str] = []
    if channel != t.channel and channel != "outbox":
        problems.append(f"template '{t.name}' is for the {t.channel} channel, not {channel}")
    if t.default_locale not in t.variants:
        problems.append(
            f"template '{t.name}' has no variant for its default locale '{t.default_locale}'"
        )
    have = set(available)
    for v in t.variants.values():
        sources = [(p, getattr(v, p)) for p in PARTS] + [
            ("wa_components", s) for s in _strings(v.wa_components)
        ]
        for part, source in sources:
            if source is None:
                continue
            where = f"template '{t.name}' variant '{v.locale}' {part}"
            try:
                used = r.used_variables(r.parse(str(source), where, html=part == "html"))
            except InvalidInput as exc:
                problems.append(exc.message)
                continue
            for name in sorted(set(used) - have):
                problems.append(
                    f"{where} uses the variable '{name}', which the sender does not provide "
                    f"(available: {', '.join(sorted(have))})"
                )
            for attr in sorted(used.get("customer", set()) - CUSTOMER_FIELDS):
                problems.append(
                    f"{where} uses 'customer.{attr}', which is not a customer field "
                    f"(fields: {', '.join(sorted(CUSTOMER_FIELDS))}; others are in "
                    "customer.traits)"
                )
    return problems


def validate_template(
    db: Database,
    workspace_id: str,
    channel: str,
    template_name: str,
    available_variables: Collection[str],
) -> list[str]:
    """Problems of sending ``template_name`` on ``channel`` with these variables (publish time).

    ``available_variables`` are the names the sender provides; customer, workspace and
    unsubscribe_url are always provided.
    """
    with db.engine.connect() as conn:
        try:
            t = get_template(conn, workspace_id, template_name)
        except NotFound as exc:
            return [f"{exc.message} {exc.hint}"]
    return template_problems(t, channel, set(available_variables) | SEND_VARIABLES)


def customer_variables(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``customer`` template variable from a customers row."""
    first, last = row.get("first_name"), row.get("last_name")
    return {
        "id": row["customer_id"],
        "customer_id": row["customer_id"],
        "user_id": row.get("user_id"),
        "email": row.get("email"),
        "phone": row.get("phone"),
        "first_name": first,
        "last_name": last,
        "name": " ".join(p for p in (first, last) if p) or None,
        "country": row.get("country"),
        "language": row.get("language"),
        "timezone": row.get("timezone"),
        "currency": row.get("currency"),
        "birthday": row.get("birthday"),
        "traits": row.get("traits") or {},
    }


def _render_strings(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return r.render(value, variables)
    if isinstance(value, Mapping):
        return {k: _render_strings(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_strings(v, variables) for v in value]
    return value


def render_for(
    t: MessageTemplate,
    customer: Mapping[str, Any],
    variables: Mapping[str, Any],
    zone: ZoneInfo,
    fallback_locale: str,
) -> Rendered:
    """Render ``t`` for one customer (row of customers); jinja errors propagate."""
    locale = r.pick_locale(
        t.variants, customer.get("language"), customer.get("country"), t.default_locale
    )
    v = t.variants.get(locale) or t.variants[t.default_locale]
    # Format in the customer's own language when the variant is in it (de-AT reading de-DE),
    # else in the variant's language, so that text and numbers agree.
    lang = customer.get("language")
    if not lang or r.norm_locale(str(lang)).split("-")[0] != v.locale.split("-")[0]:
        lang = v.locale
    loc = r.babel_locale(str(lang), customer.get("country"), v.locale)
    scope = {
        **variables,
        "customer": customer_variables(customer),
        "_locale": loc,
        "_tz": zone,
        "_currency": customer.get("currency"),
    }
    wa = None
    if v.wa_template:
        wa = {
            "name": v.wa_template,
            "language": v.wa_language or loc.language,
            "components": _render_strings(v.wa_components or [], scope),
        }
    return Rendered(
        t.name,
        v.locale,
        r.render(v.subject, scope),
        r.render(v.text, scope),
        r.render(v.html, scope, html=True),
        wa,
    )


def preview(
    db: Database,
    workspace_id: str,
    template_name: str,
    customer_id: str,
    context: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Rendered:
    """Render a template with a real customer's data (as a send would, without sending)."""
    from jinja2 import UndefinedError

    from siyu.journeys.localtime import COUNTRY_ZONES, zone_of
    from siyu.messaging.unsubscribe import unsubscribe_url

    settings = settings or load_settings()
    with db.engine.connect() as conn:
        t = get_template(conn, workspace_id, template_name)
        row = (
            conn.execute(
                sa.select(customers).where(
                    customers.c.workspace_id == workspace_id,
                    customers.c.customer_id == customer_id,
                )
            )
            .mappings()
            .first()
        )
        ws = conn.execute(
            sa.select(workspaces).where(workspaces.c.workspace_id == workspace_id)
        ).mappings()
        ws_row = ws.first()
    if row is None:
        raise NotFound(
            f"No customer '{customer_id}' in this workspace.",
            hint="Pick a customer id from 'siyu profiles' or the customers table.",
        )
    region = str(ws_row["default_region"]) if ws_row else settings.default_region
    zone = zone_of(row["timezone"] or COUNTRY_ZONES.get(row["country"] or region))
    variables: dict[str, Any] = {
        "journey": {"id": "preview", "name": "Preview", "version": 0},
        "enrollment": "preview",
        "step": "preview",
        **(context or {}),
        "workspace": dict(ws_row) if ws_row else {},
        "unsubscribe_url": unsubscribe_url(
            settings, workspace_id, customer_id, t.channel, "preview"
        ),
    }
    try:
        return render_for(t, dict(row), variables, zone, settings.messaging_default_locale)
    except UndefinedError as exc:
        raise InvalidInput(
            f"Template '{template_name}' needs a variable the preview lacks: {exc.message}.",
            hint="Pass it as context (CLI: --var name=value; API: the context object).",
        ) from exc
