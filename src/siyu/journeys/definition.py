"""Journey definitions: the YAML/JSON format as pydantic models.

A definition names one trigger, an entry policy, an optional goal and exit events, and a list of
steps. Steps run in order; ``branch``, ``split`` and ``wait_for`` may jump to a *later* step (by
id) or to ``exit``. Jumps only go forward, so a journey cannot loop: every step of an enrollment
runs at most once, which the step-run table enforces with a unique key.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from siyu.errors import InvalidInput

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Scalar = str | int | float | bool
StepId = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,60}$")]
EXIT = "exit"
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Duration(Model):
    """A positive span of time: any of days, hours, minutes."""

    days: int = Field(0, ge=0, le=3650)
    hours: int = Field(0, ge=0, le=10_000)
    minutes: int = Field(0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _positive(self) -> Duration:
        if self.delta <= timedelta(0):
            raise ValueError("a duration needs days, hours or minutes above 0")
        return self

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


def _check_time(value: str) -> str:
    if not TIME.match(value):
        raise ValueError(f"{value!r} is not a local time as HH:MM (e.g. '20:00')")
    return value


# -- triggers -----------------------------------------------------------------------------------


class EventTrigger(Model):
    """A track event, optionally with property values (a list means any of them)."""

    name: str = Field(min_length=1, max_length=200)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)


class TierTrigger(Model):
    """Entering or leaving a tier of a tier model (from tier_history)."""

    model: str = "default"
    enter: str | None = None
    leave: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TierTrigger:
        if (self.enter is None) == (self.leave is None):
            raise ValueError("give exactly one of 'enter' or 'leave' (a tier name)")
        return self


class TagTrigger(Model):
    """Gaining or losing a tag (from tag_history)."""

    tag: str = Field(min_length=1, max_length=80)
    change: Literal["added", "removed"] = "added"


class DateTrigger(Model):
    """A date attribute reached, on the customer's local date.

    ``birthday``: every year, ``days`` after (negative: before) the birthday.
    ``first_order``: once, ``days`` after the first order.
    """

    attribute: Literal["birthday", "first_order"]
    days: int = Field(0, ge=-60, le=3650)


class ChurnTrigger(Model):
    """The latest churn risk score (0-100, ``siyu predict churn``) rises above ``above``."""

    above: int = Field(gt=0, lt=100)


class SegmentTrigger(Model):
    """Entering or leaving a saved segment (from segment_history)."""

    id: str = Field(min_length=1, max_length=80)
    change: Literal["entered", "left"] = "entered"


class ScheduleTrigger(Model):
    """Everyone (optionally holding a tag or tier) at a local time: daily or on weekdays."""

    at: str = "10:00"
    weekdays: list[Weekday] = Field(default_factory=list)  # empty: every day
    tag: str | None = None
    tier: str | None = None

    _t = field_validator("at")(_check_time)


TRIGGER_KINDS = ("event", "tier", "tag", "segment", "date", "churn_risk", "schedule")


class Trigger(Model):
    event: EventTrigger | None = None
    tier: TierTrigger | None = None
    tag: TagTrigger | None = None
    segment: SegmentTrigger | None = None
    date: DateTrigger | None = None
    churn_risk: ChurnTrigger | None = None
    schedule: ScheduleTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        given = [k for k in TRIGGER_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one trigger of: {', '.join(TRIGGER_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TRIGGER_KINDS if getattr(self, k) is not None)


class Entry(Model):
    """Re-entry policy: ``once`` ever, or at most ``every`` N days."""

    policy: Literal["once", "every"] = "once"
    days: int | None = Field(None, ge=1, le=3650)

    @model_validator(mode="after")
    def _days(self) -> Entry:
        if self.policy == "every" and self.days is None:
            raise ValueError("policy 'every' needs 'days' (at most one entry per N days)")
        if self.policy == "once" and self.days is not None:
            raise ValueError("'days' only applies to policy 'every'")
        return self


class Goal(Model):
    """The event that counts as success; reaching it ends the enrollment (goal reached)."""

    event: str = Field(min_length=1, max_length=200)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    attribution: Duration = Field(default_factory=lambda: Duration(days=7))


class ExitOn(Model):
    event: str = Field(min_length=1, max_length=200)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)


# -- conditions (branch steps) ------------------------------------------------------------------


class Condition(Model):
    """One test on the customer, or a combination. Exactly one key is given.

    ``attribute``+``op``+``value`` compares a customer column (country, language, ...) or a trait
    (``traits.vip``); ``tag`` / ``tier`` test current membership; ``event`` tests whether the
    customer sent that event since entering the journey (at least ``min_count`` times).
    """

    attribute: str | None = None
    op: Literal["eq", "ne", "in", "not_in", "exists", "gt", "lt"] = "eq"
    value: Scalar | list[Scalar] | None = None
    tag: str | None = None
    tier: str | None = None
    tier_model: str = "default"
    event: str | None = None
    min_count: int = Field(1, ge=1, le=1000)
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _one(self) -> Condition:
        kinds = ("attribute", "tag", "tier", "event", "all", "any", "not_")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            names = ", ".join(k.rstrip("_") for k in kinds)
            raise ValueError(f"a condition has exactly one of: {names}")
        if self.attribute is not None and self.op != "exists" and self.value is None:
            raise ValueError(f"op '{self.op}' needs a 'value'")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a list 'value'")
        return self


# -- steps --------------------------------------------------------------------------------------


class WaitUntil(Model):
    """The next moment at local ``time`` (on one of ``weekdays`` if given)."""

    time: str
    weekdays: list[Weekday] = Field(default_factory=list)

    _t = field_validator("time")(_check_time)


class WaitFor(Model):
    """Wait until the customer sends ``event`` ``count`` times (since the journey entry), or
    ``timeout`` passes; then continue with ``then`` / ``on_timeout`` (a later step id or exit)."""

    event: str = Field(min_length=1, max_length=200)
    count: int = Field(1, ge=1, le=1000)
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    timeout: Duration
    then: str | None = None  # default: the next step
    on_timeout: str = EXIT


class Branch(Model):
    if_: Condition = Field(alias="if")
    then: str | None = None  # default: the next step
    else_: str | None = Field(None, alias="else")  # default: the next step


class Variant(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    weight: float = Field(gt=0)
    goto: str | None = None  # default: the next step


class Split(Model):
    """Deterministic random split (hash of the enrollment) with an optional holdout share."""

    variants: list[Variant] = Field(min_length=1, max_length=10)
    holdout: float = Field(0, ge=0, lt=100)  # percent of enrollments that receive nothing

    @model_validator(mode="after")
    def _names(self) -> Split:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or "holdout" in names:
            raise ValueError("variant names must be unique and not 'holdout'")
        return self


class Send(Model):
    channel: str = Field(min_length=1, max_length=40)
    template: str = Field(min_length=1, max_length=200)
    purpose: Literal["marketing", "transactional"] = "marketing"
    context: dict[str, Any] = Field(default_factory=dict)


class Webhook(Model):
    template: str = Field(min_length=1, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)


class SetTrait(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_]{1,80}$")
    value: Scalar | None


class SetTag(Model):
    tag: str = Field(pattern=r"^[a-z0-9_]{1,80}$")
    remove: bool = False


class RewardStep(Model):
    kind: str = Field(min_length=1, max_length=40)
    spec: dict[str, Any] = Field(default_factory=dict)


STEP_KINDS = (
    "wait",
    "wait_until",
    "wait_for",
    "branch",
    "split",
    "send",
    "webhook",
    "set_trait",
    "set_tag",
    "reward",
    "exit",
)


class Step(Model):
    id: StepId
    wait: Duration | None = None
    wait_until: WaitUntil | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    split: Split | None = None
    send: Send | None = None
    webhook: Webhook | None = None
    set_trait: SetTrait | None = None
    set_tag: SetTag | None = None
    reward: RewardStep | None = None
    exit: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"a step has an 'id' and exactly one of: {', '.join(STEP_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) not in (None, False))

    def jumps(self) -> list[tuple[str, str]]:
        """(field path, target) of every jump this step makes."""
        out: list[tuple[str, str]] = []
        if self.wait_for is not None:
            if self.wait_for.then:
                out.append(("wait_for.then", self.wait_for.then))
            out.append(("wait_for.on_timeout", self.wait_for.on_timeout))
        if self.branch is not None:
            if self.branch.then:
                out.append(("branch.then", self.branch.then))
            if self.branch.else_:
                out.append(("branch.else", self.branch.else_))
        if self.split is not None:
            for i, v in enumerate(self.split.variants):
                if v.goto:
                    out.append((f"split.variants[{i}].goto", v.goto))
        return out


class Definition(Model):
    """A journey as written by the operator."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,79}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    trigger: Trigger
    entry: Entry = Field(default_factory=Entry)
    goal: Goal | None = None
    exit_on: list[ExitOn] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _graph(self) -> Definition:
        problems = graph_problems(self.steps)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def index(self) -> dict[str, int]:
        return {s.id: i for i, s in enumerate(self.steps)}

    def next_after(self, step_id: str) -> str | None:
        """The step following ``step_id`` in order (None at the end: the journey completes)."""
        i = self.index()[step_id]
        return self.steps[i + 1].id if i + 1 < len(self.steps) else None


def graph_problems(steps: list[Step]) -> list[str]:
    """Duplicate ids, unknown or backward jumps, each with the path of the offending field."""
    problems: list[str] = []
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in index:
            problems.append(
                f"steps[{i}].id: '{step.id}' is already the id of steps[{index[step.id]}]"
            )
        else:
            index[step.id] = i
    for i, step in enumerate(steps):
        for path, target in step.jumps():
            if target == EXIT:
                continue
            if target not in index:
                problems.append(
                    f"steps[{i}].{path}: no step has id '{target}' (known: "
                    f"{', '.join(index)}, or 'exit')"
                )
            elif index[target] <= i:
                problems.append(
                    f"steps[{i}].{path}: '{target}' is not after this step; journeys only "
                    "jump forward (no loops)"
                )
    return problems


# -- parsing with precise errors ----------------------------------------------------------------


def _path(loc: tuple[int | str, ...]) -> str:
    """('steps', 3, 'wait', 'until') -> 'steps[3].wait.until'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def parse(text: str, *, source: str = "definition") -> Definition:
    """Parse YAML or JSON text into a definition; errors name every offending field."""
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{source} is not valid YAML or JSON: {exc}",
            hint="Fix the syntax at the position given.",
        ) from None
    return from_data(data, source=source)


def from_data(data: Any, *, source: str = "definition") -> Definition:
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InvalidInput(f"{source} must be a mapping with id, name, trigger and steps.")
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
            msg = err["msg"].removeprefix("Value error, ")
            if "; steps[" in msg or msg.startswith("steps["):
                problems.extend(msg.split("; "))
            else:
                problems.append(f"{_path(loc) or '(top level)'}: {msg}")
        raise InvalidInput(
            f"{source} is not a valid journey: " + "; ".join(problems),
            hint="Fix the named fields (see docs/journeys.md for the format).",
            details={"problems": problems},
        ) from None
