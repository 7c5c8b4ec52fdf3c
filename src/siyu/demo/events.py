"""The columnar event table a block is generated into before it becomes Segment messages.

Generating columns (person, source, kind, time, two references) keeps every draw vectorised;
only the final step turns rows into dictionaries. ``ref``/``ref2`` point into the table that a
kind needs (an order, a product, a consent, a quantity), see ``siyu.demo.records``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

(
    IDENTIFY,
    PAGE,
    PRODUCT_VIEWED,
    PRODUCT_ADDED,
    CHECKOUT_STARTED,
    CART_CHECKOUT,  # a Checkout Started that is never completed (abandoned checkout)
    COUPON_APPLIED,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    EMAIL_OPENED,
    EMAIL_CLICKED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    COMMUNITY_JOINED,
    COMMUNITY_POSTED,
    REFERRAL_SHARED,
    CONSENT_UPDATED,
    ALIAS,  # the store links another account (Amazon buyer, Instagram) to a Shopify customer
) = range(18)

EVENT_NAMES: tuple[str, ...] = (
    "",
    "",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Checkout Started",
    "Coupon Applied",
    "Order Completed",
    "Order Refunded",
    "Email Opened",
    "Email Clicked",
    "Message Received",
    "Message Sent",
    "Community Joined",
    "Community Message Posted",
    "Referral Link Shared",
    "Consent Updated",
    "",
)
MESSAGE_TYPES: tuple[str, ...] = ("identify", "page", *(["track"] * 15), "alias")

NO_DEVICE, TABLET = -1, 2  # device column: -1 none, 0/1 the person's browsers, 2 store tablet


@dataclass
class EventTable:
    """Parallel columns, one row per event."""

    person: Ints
    source: Ints
    kind: Ints
    ts: Ints
    device: Ints
    user: Bools  # carries the source's userId (web: the shopify customer id after login)
    ref: Ints
    ref2: Ints

    def __len__(self) -> int:
        return len(self.person)

    def take(self, index: Ints) -> EventTable:
        return EventTable(
            self.person[index],
            self.source[index],
            self.kind[index],
            self.ts[index],
            self.device[index],
            self.user[index],
            self.ref[index],
            self.ref2[index],
        )


@dataclass
class EventBuilder:
    """Collects event columns from many generators, then concatenates them once."""

    parts: list[tuple[Ints, ...]] = field(default_factory=list)

    def add(
        self,
        kind: int,
        source: int | Ints,
        person: Ints,
        ts: Ints,
        *,
        device: int | Ints = NO_DEVICE,
        user: bool | Bools = True,
        ref: int | Ints = -1,
        ref2: int | Ints = -1,
    ) -> None:
        n = len(person)
        if n == 0:
            return

        def col(value: int | bool | npt.NDArray[np.generic]) -> Ints:
            return np.broadcast_to(np.asarray(value, dtype=np.int64), (n,))

        self.parts.append(
            (col(kind), col(source), person, ts, col(device), col(user), col(ref), col(ref2))
        )

    def build(self) -> EventTable:
        cols = [np.concatenate([p[i] for p in self.parts]).astype(np.int64) for i in range(8)]
        kind, source, person, ts, device, user, ref, ref2 = cols
        return EventTable(person, source, kind, ts, device, user.astype(np.bool_), ref, ref2)
