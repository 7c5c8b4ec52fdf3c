"""`siyu templates` (message templates), `siyu suppressions` and `siyu messages` (the send log).

The same operations as the messaging API; templates are YAML or JSON documents
(:func:`siyu.messaging.templates.template_from_doc`), so a brand keeps them in version control and
adds them with one command.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime
from siyu.errors import InvalidInput, NotFound

templates_app = typer.Typer(
    help="Message templates: sandboxed Jinja2, one variant per locale.", no_args_is_help=True
)
suppressions_app = typer.Typer(
    help="Suppression lists: addresses never contacted on a channel (bounces, complaints).",
    no_args_is_help=True,
)
messages_app = typer.Typer(help="The message log: every send with its outcome and reason.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _json(data: Any) -> None:
    print(json.dumps(data, default=str, ensure_ascii=False, indent=2))


def _read_doc(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NotFound(f"No file {path}.", hint="Give the path of a YAML or JSON template file.")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML/JSON: {exc}.") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} must hold a mapping (name, channel, variants).")
    return doc


@templates_app.command("list")
def templates_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """The workspace's templates with their channel and locales."""
    from siyu.messaging.templates import load_templates, template_to_doc

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            found = load_templates(conn, ws.workspace_id)
    if as_json:
        _json([{**template_to_doc(t), "locales": sorted(t.variants)} for t in found.values()])
        return
    if not found:
        console.print("No templates yet. Add one with 'siyu templates add FILE'.")
        return
    table = Table("name", "channel", "default", "locales", "description")
    for t in found.values():
        table.add_row(
            t.name, t.channel, t.default_locale, ", ".join(sorted(t.variants)), t.description or ""
        )
    console.print(table)


@templates_app.command("add")
def templates_add(
    files: Annotated[list[Path], typer.Argument(help="YAML or JSON template files.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Add or replace templates (each checked: channel, variants, Jinja syntax)."""
    from siyu.messaging.templates import save_template, template_from_doc
    from siyu.registry import registry

    docs = [(f, _read_doc(f)) for f in files]
    parsed = [template_from_doc(doc, registry.channels.names()) for _, doc in docs]
    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            for t in parsed:
                created = save_template(conn, ws.workspace_id, t, _now())
                verb = "Added" if created else "Replaced"
                console.print(
                    f"{verb} template '{t.name}' ({t.channel}; {', '.join(sorted(t.variants))}).",
                    markup=False,
                )


@templates_app.command("show")
def templates_show(name: str, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """One template as the YAML document 'templates add' reads (or JSON)."""
    from siyu.messaging.templates import get_template, template_to_doc

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            doc = template_to_doc(get_template(conn, ws.workspace_id, name))
    if as_json:
        _json(doc)
    else:
        print(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), end="")


def _vars(values: list[str]) -> dict[str, Any]:
    """--var a.b=1 -> {"a": {"b": "1"}}; a value that is JSON is read as JSON."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--var {item!r} must be name=value.", hint="E.g. --var coupon=W10")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidInput(f"--var {item!r} conflicts with another --var.")
        node[last] = value
    return out


@templates_app.command("preview")
def templates_preview(
    name: str,
    customer: Annotated[str, typer.Option("--customer", help="Customer id whose data to use.")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="A template variable, name=value (dots nest: order.total=5)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Render a template with a real customer's data: locale, money and dates as sent."""
    from siyu.messaging.templates import preview

    with runtime() as rt:
        ws = rt.workspace(workspace)
        r = preview(rt.db, ws.workspace_id, name, customer, _vars(var or []), rt.settings)
    data = {
        "template": r.template,
        "locale": r.locale,
        "subject": r.subject,
        "text": r.text,
        "html": r.html,
        "whatsapp": r.whatsapp,
    }
    if as_json:
        _json(data)
        return
    for key, value in data.items():
        if value is not None:
            shown = json.dumps(value, ensure_ascii=False) if key == "whatsapp" else value
            console.print(f"{key}: {shown}", markup=False, highlight=False)


@suppressions_app.command("list")
def suppressions_list(
    channel: Annotated[
        str | None, typer.Option("--channel", help="email, sms or whatsapp.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 1000,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppressed addresses with the reason and when."""
    from siyu.messaging.suppress import list_suppressions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            found = list_suppressions(conn, ws.workspace_id, channel, limit)
    if as_json:
        _json(found)
        return
    table = Table("channel", "address", "reason", "since", "note")
    for s in found:
        table.add_row(
            s["channel"], s["address"], s["reason"], str(s["created_at"]), s["note"] or ""
        )
    console.print(table)


@suppressions_app.command("add")
def suppressions_add(
    channel: str,
    address: str,
    reason: Annotated[
        str, typer.Option("--reason", help="bounce, complaint, unsubscribe or manual.")
    ] = "manual",
    note: Annotated[str | None, typer.Option("--note", help="Why, for the next person.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Never contact ADDRESS on CHANNEL again (whatever the purpose)."""
    from siyu.messaging.suppress import add_suppression

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            addr, created = add_suppression(
                conn, ws.workspace_id, channel, address, reason, _now(), note
            )
    state = "Suppressed" if created else "Already suppressed:"
    console.print(f"{state} {addr} on {channel}.", markup=False)


@suppressions_app.command("remove")
def suppressions_remove(channel: str, address: str, workspace: WorkspaceOpt = None) -> None:
    """Lift a suppression (consent still applies)."""
    from siyu.messaging.suppress import remove_suppression

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            addr = remove_suppression(conn, ws.workspace_id, channel, address)
    console.print(f"Removed {addr} from the {channel} suppression list.", markup=False)


@messages_app.callback(invoke_without_command=True)
def messages_list(
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="sent, skipped, deferred, retry, failed...")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest messages: status, and the reason of every skip, deferral or failure."""
    import sqlalchemy as sa

    from siyu.messaging.tables import messages

    m = messages.c
    q = sa.select(
        m.message_id,
        m.customer_id,
        m.channel,
        m.template,
        m.purpose,
        m.status,
        m.reason_code,
        m.reason,
        m.retry_at,
        m.updated_at,
    )
    with runtime() as rt:
        ws = rt.workspace(workspace)
        q = q.where(m.workspace_id == ws.workspace_id)
        if customer:
            q = q.where(m.customer_id == customer)
        if status:
            q = q.where(m.status == status)
        with rt.db.engine.connect() as conn:
            found = [
                dict(r)
                for r in conn.execute(q.order_by(m.updated_at.desc()).limit(limit)).mappings()
            ]
    if as_json:
        _json(found)
        return
    table = Table("customer", "channel", "template", "status", "why", "retry at")
    for r in found:
        why = f"{r['reason_code']}: {r['reason']}" if r["reason_code"] else ""
        table.add_row(
            r["customer_id"],
            r["channel"],
            r["template"],
            r["status"],
            why,
            str(r["retry_at"] or ""),
        )
    console.print(table)
