"""`siyu tags`: the tag catalogue, tagging runs, explanations and workspace tags."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import WorkspaceOpt, console, runtime

tags_app = typer.Typer(help="Tags: 200+ built-in rules plus your own, explained per customer.")


@tags_app.command("list")
def list_tags(
    workspace: WorkspaceOpt = None,
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    zh: Annotated[bool, typer.Option("--zh", help="Names in Simplified Chinese.")] = False,
) -> None:
    """List tags with their family, name and rule."""
    from siyu.segments.tagging import all_tags

    with runtime() as rt:
        tags = all_tags(rt.db, rt.workspace(workspace).workspace_id)
    table = Table()
    for col in ("id", "family", "name", "rule"):
        table.add_column(col, overflow="fold")
    for tag in tags:
        if family is None or tag.family == family:
            table.add_row(tag.tag_id, tag.family, tag.name_zh if zh else tag.name_en, tag.rule)
    console.print(table)


@tags_app.command("run")
def run(workspace: WorkspaceOpt = None) -> None:
    """Evaluate every tag for every customer now; record what changed."""
    from siyu.segments.tagging import run_tags

    with runtime() as rt:
        report = run_tags(rt.db, rt.workspace(workspace))
    console.print(
        f"{report.tags} tags, {report.memberships:,} customer tags; "
        f"{report.added:,} added, {report.removed:,} removed since the last run."
    )


@tags_app.command("explain")
def explain(customer: str, tag: str, workspace: WorkspaceOpt = None) -> None:
    """Say why CUSTOMER has or lacks TAG: each part of the rule with its value."""
    from siyu.segments.tagging import explain_tag

    with runtime() as rt:
        explanation = explain_tag(rt.db, rt.workspace(workspace), customer, tag)
    for line in explanation.lines():
        console.print(line, markup=False, highlight=False)


@tags_app.command("add")
def add(
    tag_id: str,
    rule: str,
    name: Annotated[str, typer.Option(help="Name in English.")],
    name_zh: Annotated[str | None, typer.Option(help="Name in Simplified Chinese.")] = None,
    description: Annotated[str, typer.Option(help="What the tag means.")] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Add a workspace tag; the rule is checked first (errors point at the position)."""
    from siyu.segments.tagging import add_tag

    with runtime() as rt:
        tag = add_tag(
            rt.db,
            rt.workspace(workspace),
            tag_id,
            rule,
            name_en=name,
            name_zh=name_zh,
            description=description,
        )
    console.print(f"Added tag {tag.tag_id}: {tag.rule}", markup=False)
