"""``siyu identity``: resolve customers, explain one, split a wrong merge, measure quality."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from siyu.cli.common import WorkspaceOpt, console, runtime

identity_app = typer.Typer(
    help="One-ID: resolve identifiers into customers, explain, split, evaluate.",
    no_args_is_help=True,
)


@identity_app.command("resolve")
def resolve_cmd(workspace: WorkspaceOpt = None) -> None:
    """Rebuild the identity graph from all events and point every record at its customer."""
    from siyu.identity.explain import outcome
    from siyu.identity.graph import resolve_workspace

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            report = resolve_workspace(
                conn, ws.workspace_id, windows=rt.settings.identity_limit_windows
            )
            left = outcome(conn, ws.workspace_id)
    console.print(
        f"{report.identifiers} identifiers, {report.links} links -> {left.customers} customers "
        f"({left.standalone} identifiers kept apart on no customer's record); "
        f"{report.merges} merges recorded, {report.conflicts} links refused by rules, "
        f"{report.refused} values refused (invalid or blocked)."
    )
    moved = ", ".join(f"{k} {v}" for k, v in report.repointed.items())
    console.print(f"Records re-pointed: {moved}.")


def _when(value: object) -> str:
    """A stored time (naive UTC) to the second: microseconds are noise when reading evidence."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@identity_app.command("explain")
def explain_cmd(
    customer: Annotated[str, typer.Argument(help="A customer id, or an identifier kind:value.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Show a customer's identifiers, the evidence linking them, refused links and merges."""
    from siyu.identity.explain import explain

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            found = explain(conn, ws.workspace_id, customer)
    # Plain lines, not tables: identifiers are long and must stay whole to be copied.
    console.print(f"Customer {found.customer_id}", highlight=False)
    console.print("Identifiers:")
    for r in found.identifiers:
        console.print(
            f"  {r['kind']}:{r['value']}  source {r['source_id'] or '-'}, "
            f"seen {_when(r['first_seen_at'])} .. {_when(r['last_seen_at'])} UTC",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print("Evidence:")
    for r in found.links:
        console.print(
            f"  {r['kind_a']}:{r['value_a']} = {r['kind_b']}:{r['value_b']}  "
            f"{r['rule']} in message {r['message_id']} at {_when(r['seen_at'])} UTC",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if found.conflicts:
        console.print("Refused:")
        for r in found.conflicts:
            other = f" ~ {r['other_kind']}:{r['other_value']}" if r["other_kind"] else ""
            console.print(
                f"  {r['kind']}:{r['value']}{other}  {r['rule']}: {r['reason']}",
                markup=False,
                highlight=False,
            )
    for r in found.audit:
        console.print(
            f"{_when(r['recorded_at'])} UTC {r['action']} ({r['rule']}): {r['customers']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@identity_app.command("split")
def split_cmd(
    identifier: Annotated[str, typer.Argument(help="The identifier to detach, as kind:value.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the audit).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Detach an identifier from every merge and re-resolve; records follow their customers."""
    from siyu.identity.graph import split

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            key = split(
                conn, ws.workspace_id, identifier, note, windows=rt.settings.identity_limit_windows
            )
    console.print(f"Detached {key}; customers re-resolved.")


@identity_app.command("evaluate")
def evaluate_cmd(workspace: WorkspaceOpt = None) -> None:
    """Compare the resolved customers with the demo brand's true persons (pairwise)."""
    from siyu.identity.evaluate import evaluate

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.connect() as conn:
            e = evaluate(conn, ws.workspace_id)
    console.print(
        f"precision {e.precision:.4f}  recall {e.recall:.4f}  "
        f"(recall ceiling of the evidence {e.recall_ceiling:.4f})"
    )
    console.print(
        f"without the merge rules (plain connected components): precision {e.unruled_precision:.4f}"
    )
    console.print(
        f"true pairs missed: {e.missed_no_evidence:,} with no linking evidence (see 'siyu "
        f"identity suggest'), {e.missed_by_rules:,} kept apart by the merge rules "
        "(see 'siyu identity explain')"
    )
    console.print(
        f"{e.identifiers} identifiers of {e.persons} persons in {e.customers} customers; "
        f"{e.shared} shared identifiers left out, {e.unmatched} truth values not found."
    )


@identity_app.command("suggest")
def suggest_cmd(
    workspace: WorkspaceOpt = None,
    min_probability: Annotated[
        float, typer.Option("--min-probability", help="Smallest match probability listed.")
    ] = 0.8,
    limit: Annotated[int, typer.Option(help="How many suggestions at most.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the suggestions as JSON.")] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh/--stored",
            help="Recompute and store the suggestions first (--stored: list the last refresh's).",
        ),
    ] = True,
) -> None:
    """List likely duplicates that share no identifier, scored by a Fellegi-Sunter model.

    The suggestions are computed over every customer and stored (what the API and the console
    list); --stored only reads the last refresh's."""
    import dataclasses
    import json

    from siyu.identity import suggest as suggestions

    with runtime() as rt:
        ws = rt.workspace(workspace)
        if refresh:
            with (
                console.status("Computing duplicate suggestions ..."),
                rt.db.write_lock,
                rt.db.engine.begin() as conn,
            ):
                suggestions.refresh(conn, ws.workspace_id)
        with rt.db.engine.connect() as conn:
            found = suggestions.suggest(
                conn, ws.workspace_id, min_probability=min_probability, limit=limit
            )
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(s) for s in found], default=str))
        return
    if not found:
        console.print("No likely duplicates.")
        return
    for s in found:
        same = ", ".join(k for k, v in s.agreement.items() if v != "different") or "-"
        differ = ", ".join(k for k, v in s.agreement.items() if v == "different") or "-"
        console.print(
            f"{s.customer_a} ~ {s.customer_b}  p={s.probability:.4f} weight={s.weight:+.1f}  "
            f"agree: {same}; differ: {differ}  ({'+'.join(s.blocks)})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "Confirm with 'siyu identity confirm A B', reject with 'siyu identity reject A B'."
    )


def _decide(
    decision: str, customer_a: str, customer_b: str, note: str | None, ws: str | None
) -> None:
    from siyu.identity.suggest import decide

    with runtime() as rt:
        workspace = rt.workspace(ws)
        with rt.db.engine.begin() as conn:
            result = decide(
                conn,
                workspace.workspace_id,
                customer_a,
                customer_b,
                decision,
                note=note,
                windows=rt.settings.identity_limit_windows,
            )
    ids = " and ".join(result["identifiers"])
    if decision == "confirm" and not result.get("merged", True):
        console.print(
            f"{result['reason']} ({ids}). It is listed as a conflict in "
            f"'siyu identity explain {result['customer_id']}'.",
            highlight=False,
            soft_wrap=True,
        )
    elif decision == "confirm":
        console.print(
            f"Linked {ids}; now customer {result['customer_id']}.", highlight=False, soft_wrap=True
        )
    else:
        console.print(
            f"Rejected: {ids} will not be suggested again.", highlight=False, soft_wrap=True
        )


@identity_app.command("confirm")
def confirm_cmd(
    customer_a: Annotated[str, typer.Argument(help="A customer id from 'siyu identity suggest'.")],
    customer_b: Annotated[str, typer.Argument(help="The other customer id.")],
    note: Annotated[str | None, typer.Option(help="Why (kept with the decision).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Confirm a suggestion: a manual link kept on every rebuild (undo with 'identity split')."""
    _decide("confirm", customer_a, customer_b, note, workspace)


@identity_app.command("reject")
def reject_cmd(
    customer_a: Annotated[str, typer.Argument(help="A customer id from 'siyu identity suggest'.")],
    customer_b: Annotated[str, typer.Argument(help="The other customer id.")],
    note: Annotated[str | None, typer.Option(help="Why (kept with the decision).")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Reject a suggestion: the pair is never suggested again."""
    _decide("reject", customer_a, customer_b, note, workspace)
