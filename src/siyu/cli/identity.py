"""``siyu identity``: resolve customers, explain one, split a wrong merge, measure quality."""

from __future__ import annotations

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
    from siyu.identity.graph import resolve_workspace

    with runtime() as rt:
        ws = rt.workspace(workspace)
        with rt.db.engine.begin() as conn:
            report = resolve_workspace(conn, ws.workspace_id)
    console.print(
        f"{report.identifiers} identifiers, {report.links} links -> {report.customers} customers; "
        f"{report.merges} merges recorded, {report.conflicts} links refused by rules, "
        f"{report.refused} values refused (invalid or blocked)."
    )
    moved = ", ".join(f"{k} {v}" for k, v in report.repointed.items())
    console.print(f"Records re-pointed: {moved}.")


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
            f"seen {r['first_seen_at']} .. {r['last_seen_at']}",
            markup=False,
            highlight=False,
        )
    console.print("Evidence:")
    for r in found.links:
        console.print(
            f"  {r['kind_a']}:{r['value_a']} = {r['kind_b']}:{r['value_b']}  "
            f"{r['rule']} in message {r['message_id']} at {r['seen_at']}",
            markup=False,
            highlight=False,
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
            f"{r['recorded_at']} {r['action']} ({r['rule']}): {r['customers']}",
            markup=False,
            highlight=False,
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
            key = split(conn, ws.workspace_id, identifier, note)
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
        f"{e.identifiers} identifiers of {e.persons} persons in {e.customers} customers; "
        f"{e.shared} shared identifiers left out, {e.unmatched} truth values not found."
    )
