"""Publish-time checks of a definition against the workspace: channels, templates, rewards.

Parsing catches what is wrong with the file itself; these catch what is wrong with it *here*
(a template that does not exist or uses a variable the journey cannot provide, an unknown reward
kind or a reward spec the reward refuses), so that nothing fails later at send time.
"""

from __future__ import annotations

from siyu.errors import NotFound
from siyu.journeys.conditions import attribute_problems
from siyu.journeys.definition import Definition
from siyu.registry import registry
from siyu.store.database import Database

# What a journey message template may use besides the step's own ``context`` keys.
BASE_VARIABLES: frozenset[str] = frozenset(
    {
        "customer",
        "journey",
        "enrollment",
        "step",
        "workspace",
        "unsubscribe_url",
        "rewards",
        "recommendations",
    }
)


def _template_problems(
    db: Database, workspace_id: str, channel: str, template: str, variables: set[str]
) -> list[str]:
    try:
        from siyu.messaging.templates import validate_template
    except ImportError:  # the messaging slice is not installed: channels are checked only
        return []
    problems: list[str] = validate_template(db, workspace_id, channel, template, variables)
    return problems


def publish_problems(db: Database, workspace_id: str, definition: Definition) -> list[str]:
    problems: list[str] = []
    for i, step in enumerate(definition.steps):
        where = f"steps[{i}] ('{step.id}')"
        if step.send is not None or step.webhook is not None:
            channel = step.send.channel if step.send is not None else "webhook"
            template = step.send.template if step.send is not None else step.webhook.template  # type: ignore[union-attr]
            context = (step.send or step.webhook).context  # type: ignore[union-attr]
            field = "send" if step.send is not None else "webhook"
            if channel not in registry.channels:
                known = ", ".join(registry.channels.names()) or "none"
                problems.append(f"{where}.{field}.channel: unknown channel '{channel}' ({known})")
                continue
            for problem in _template_problems(
                db, workspace_id, channel, template, set(BASE_VARIABLES) | set(context)
            ):
                problems.append(f"{where}.{field}.template: {problem}")
        if step.branch is not None:
            problems.extend(attribute_problems(step.branch.if_, f"{where}.branch.if"))
        if step.reward is not None:
            try:
                reward = registry.rewards.get(step.reward.kind)
            except NotFound as exc:
                problems.append(f"{where}.reward.kind: {exc.message} {exc.hint}")
                continue
            for problem in reward.validate(step.reward.spec):
                problems.append(f"{where}.reward.spec: {problem}")
    return problems
