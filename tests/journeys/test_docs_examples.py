"""The examples of docs/journeys.md are valid: a definition, every trigger and every step kind."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from siyu.journeys.definition import TRIGGER_KINDS, from_data, parse

DOC = (Path(__file__).resolve().parents[2] / "docs" / "journeys.md").read_text(encoding="utf-8")


def _table_examples(heading: str) -> dict[str, str]:
    """kind -> the YAML example of its row in the table under ``heading``."""
    section = DOC.split(heading, 1)[1].split("\n#", 1)[0]
    out = {}
    for kind, example in re.findall(
        r"^\| `(\w+)` \|.*\| `([^`]+)`(?: or `[^`]+`)? \|$", section, re.M
    ):
        out[kind] = example
    return out


def test_the_definition_example_parses() -> None:
    block = re.search(r"```yaml\n(.*?)```", DOC, re.S)
    assert block is not None
    d = parse(block.group(1))
    assert d.id == "cart-reminder"
    assert [s.kind for s in d.steps] == ["wait", "send"]


def test_every_trigger_kind_has_a_valid_example() -> None:
    examples = _table_examples("### Triggers")
    assert set(examples) == set(TRIGGER_KINDS)
    for kind, example in examples.items():
        d = from_data(
            {
                "id": "t",
                "name": "t",
                "trigger": yaml.safe_load(example),
                "steps": [{"id": "x", "exit": True}],
            }
        )
        assert getattr(d.trigger, kind) is not None


def test_every_step_kind_has_a_valid_example() -> None:
    examples = _table_examples("### Steps")
    assert {"wait", "wait_until", "wait_for", "branch", "split", "send", "webhook", "set_trait",
            "set_tag", "reward", "exit"} == set(examples)  # fmt: skip
    targets = [{"id": t, "exit": True} for t in ("german", "english", "offer_b")]
    for kind, example in examples.items():
        step = {"id": "first", **yaml.safe_load(example)}
        d = from_data({"id": "t", "name": "t", "trigger": {"event": {"name": "X"}},
                       "steps": [step, *targets]})  # fmt: skip
        assert d.steps[0].kind == kind
