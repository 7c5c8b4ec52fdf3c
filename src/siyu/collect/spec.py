"""The Segment spec calls as Pydantic models (identify, track, page, screen, group, alias).

See https://segment.com/docs/connections/spec/common/. Field names follow the spec's camelCase on
the wire; Python attributes are snake_case. Rules enforced here, each with a precise error:
- ``userId`` or ``anonymousId`` is required (alias: ``userId`` and ``previousId``);
- ``timestamp``/``sentAt`` are ISO-8601 with an explicit time zone (a naive time is ambiguous
  across markets, so it is refused rather than guessed);
- ``track`` needs ``event``; ``group`` needs ``groupId``;
- properties of a documented event name are checked against that event's schema
  (see :mod:`siyu.collect.ecommerce`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)


def _id_to_str(value: Any) -> Any:
    """Segment clients send numeric ids as numbers; treat them as their string form."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


Identifier = Annotated[
    Annotated[str, StringConstraints(max_length=200)] | None, BeforeValidator(_id_to_str)
]


class Call(BaseModel):
    """Fields common to every Segment call."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", str_max_length=10_000)

    type: str
    message_id: Identifier = Field(None, alias="messageId")
    user_id: Identifier = Field(None, alias="userId")
    anonymous_id: Identifier = Field(None, alias="anonymousId")
    timestamp: AwareDatetime | None = None
    sent_at: AwareDatetime | None = Field(None, alias="sentAt")
    original_timestamp: AwareDatetime | None = Field(None, alias="originalTimestamp")
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_identity(self) -> Call:
        if self.type != "alias" and not self.user_id and not self.anonymous_id:
            raise ValueError("either userId or anonymousId is required")
        return self

    def event_time(self) -> datetime | None:
        return self.timestamp or self.original_timestamp


class TrackCall(Call):
    type: Literal["track"]
    event: str = Field(min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyCall(Call):
    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


class PageCall(Call):
    type: Literal["page"]
    name: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenCall(PageCall):
    type: Literal["screen"]  # type: ignore[assignment]


class GroupCall(Call):
    type: Literal["group"]
    group_id: Annotated[str, BeforeValidator(_id_to_str), Field(alias="groupId", min_length=1)]
    traits: dict[str, Any] = Field(default_factory=dict)


class AliasCall(Call):
    type: Literal["alias"]
    previous_id: Annotated[
        str, BeforeValidator(_id_to_str), Field(alias="previousId", min_length=1, max_length=200)
    ]

    @model_validator(mode="after")
    def _needs_user(self) -> AliasCall:
        if not self.user_id:
            raise ValueError("alias requires userId (the new id) and previousId")
        return self


AnyCall = Annotated[
    TrackCall | IdentifyCall | PageCall | ScreenCall | GroupCall | AliasCall,
    Field(discriminator="type"),
]
CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")

call_adapter: TypeAdapter[Any] = TypeAdapter(AnyCall)
calls_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[AnyCall])
