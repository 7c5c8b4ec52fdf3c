"""The library of ready journeys shipped with siyu (``journeys/library/*.yaml``).

A brand lists them, reads one (to edit it and publish its own version) or enables it as is:
enabling adds the message templates it needs that the workspace does not have yet (from
``library/templates.yaml``, English and Simplified Chinese; a template the brand already has is
never overwritten) and publishes the journey.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import yaml

from siyu.errors import NotFound
from siyu.journeys.definition import Definition, parse
from siyu.journeys.versions import PublishResult, publish
from siyu.store.database import Database

TEMPLATES_FILE = "templates.yaml"


@dataclass(frozen=True)
class LibraryJourney:
    journey_id: str
    name: str
    description: str
    file: str
    text: str

    def definition(self) -> Definition:
        return parse(self.text, source=f"library/{self.file}")


def library() -> list[LibraryJourney]:
    folder = resources.files("siyu.journeys") / "library"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml") or entry.name == TEMPLATES_FILE:
            continue
        text = entry.read_text(encoding="utf-8")
        d = parse(text, source=f"library/{entry.name}")
        out.append(LibraryJourney(d.id, d.name, d.description, entry.name, text))
    return out


def find(name: str) -> LibraryJourney:
    for item in library():
        if name in (item.journey_id, item.file, item.file.removesuffix(".yaml")):
            return item
    known = ", ".join(i.journey_id for i in library())
    raise NotFound(f"No library journey '{name}'.", hint=f"Library journeys: {known}.")


def library_templates() -> list[dict[str, Any]]:
    folder = resources.files("siyu.journeys") / "library"
    docs: list[dict[str, Any]] = yaml.safe_load((folder / TEMPLATES_FILE).read_text("utf-8"))
    return docs


def templates_used(d: Definition) -> set[str]:
    return {
        s.send.template if s.send is not None else s.webhook.template  # type: ignore[union-attr]
        for s in d.steps
        if s.send is not None or s.webhook is not None
    }


def add_missing_templates(db: Database, ws: str, d: Definition, now: datetime) -> list[str]:
    """Save the library templates ``d`` uses that the workspace lacks; return their names."""
    from siyu.messaging.templates import get_template, save_template, template_from_doc
    from siyu.registry import registry

    wanted = templates_used(d)
    added = []
    with db.engine.begin() as conn:
        for doc in library_templates():
            if doc["name"] not in wanted:
                continue
            try:
                get_template(conn, ws, doc["name"])
                continue
            except NotFound:
                pass
            save_template(conn, ws, template_from_doc(doc, registry.channels.names()), now)
            added.append(doc["name"])
    return added


def enable(db: Database, ws: str, name: str, now: datetime) -> tuple[PublishResult, list[str]]:
    item = find(name)
    d = item.definition()
    added = add_missing_templates(db, ws, d, now)
    return publish(db, ws, d, now=now), added
