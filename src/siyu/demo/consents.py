"""Consent histories that follow each region's rules, so send-time checks have work to do.

EU and UK are opt-in: marketing e-mail is granted by a minority, explicitly, and some say no.
The US is opt-out for e-mail (granted at sign-up, withdrawn by unsubscribing) but SMS needs an
explicit keyword opt-in. In SEA, LATAM and MENA, customers who chat with the brand on WhatsApp
usually opt in there. Each decision is a "Consent Updated" event with the evidence (form and
wording shown) that a regulator would ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from siyu.demo.calendar import DAY_MS
from siyu.demo.markets import EMAIL, SHOPIFY, WHATSAPP
from siyu.demo.people import People

Ints = npt.NDArray[np.int64]

PURPOSES: tuple[str, ...] = ("marketing", "transactional")
CHANNELS: tuple[str, ...] = ("email", "whatsapp", "sms")
STATUSES: tuple[str, ...] = ("granted", "withdrawn", "denied")
GRANTED, WITHDRAWN, DENIED = range(3)
NEVER = np.iinfo(np.int64).max

EVIDENCE: tuple[tuple[str, str], ...] = (
    ("account_signup", "By creating an account you agree to receive marketing emails from "
     "Siyu. You can unsubscribe at any time."),
    ("checkout_checkbox", "Yes, I would like to receive news and offers by email. I can "
     "withdraw my consent at any time."),
    ("preference_center", "No marketing emails, please."),
    ("unsubscribe_link", "Unsubscribed with the link in a marketing email."),
    ("whatsapp_opt_in", "Reply YES to get offers and restock alerts from Siyu on WhatsApp."),
    ("whatsapp_reply", "STOP"),
    ("sms_keyword", "Text JOIN to receive recurring automated marketing texts from Siyu. Msg & "
     "data rates may apply. Reply STOP to cancel."),
    ("sms_reply", "STOP"),
    ("order_updates_opt_in", "Send my order and delivery updates on WhatsApp."),
    ("whatsapp_opt_in", "No thanks"),
    ("checkout_prechecked", "Send me promotions by email (you can unsubscribe at any time)."),
    ("checkout_checkbox", "Text me offers: not selected."),
)  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """One consent (purpose, channel): probabilities per region row, evidence per status."""

    purpose: int
    channel: int
    granted: tuple[float, ...]  # US, UK, EU, SEA, LATAM, MENA
    denied: tuple[float, ...]
    withdraw: tuple[float, ...]  # share of grants withdrawn later
    evidence: tuple[tuple[int, ...], tuple[int, int, int]]  # grant evidence per region; w, d


EMAIL_MARKETING = Policy(
    0, 0, (0.92, 0.3, 0.3, 0.6, 0.6, 0.6), (0.0, 0.3, 0.3, 0.1, 0.1, 0.1),
    (0.12, 0.1, 0.1, 0.08, 0.08, 0.08), ((0, 1, 1, 10, 10, 10), (3, 2, 2)),
)  # fmt: skip
WHATSAPP_MARKETING = Policy(
    0, 1, (0.3, 0.25, 0.25, 0.75, 0.75, 0.75), (0.1, 0.2, 0.2, 0.05, 0.05, 0.05),
    (0.1,) * 6, ((4,) * 6, (5, 9, 9)),
)  # fmt: skip
SMS_MARKETING = Policy(
    0, 2, (0.2, 0.05, 0.05, 0.15, 0.15, 0.15), (0.1, 0.2, 0.2, 0.1, 0.1, 0.1),
    (0.1,) * 6, ((6,) * 6, (7, 11, 11)),
)  # fmt: skip
WHATSAPP_TRANSACTIONAL = Policy(1, 1, (0.9,) * 6, (0.0,) * 6, (0.02,) * 6, ((8,) * 6, (5, 9, 9)))


@dataclass
class Consents:
    """Consent events of a block, plus the marketing windows the send simulation obeys."""

    person: Ints
    ts: Ints
    source: Ints
    purpose: Ints
    channel: Ints
    status: Ints
    evidence: Ints
    email_from: Ints  # marketing e-mail allowed from (ms) ... until; NEVER when not granted
    email_until: Ints
    whatsapp_from: Ints
    whatsapp_until: Ints


def _decide(
    rng: np.random.Generator, p: People, who: Ints, policy: Policy, source: Ints
) -> tuple[list[Ints], Ints, Ints]:
    """Event columns for one policy over eligible people, and their granted window."""
    region = p.region[who]
    u = rng.random(len(who))
    granted = u < np.asarray(policy.granted)[region]
    denied = ~granted & (u < np.asarray(policy.granted)[region] + np.asarray(policy.denied)[region])
    withdrawn = granted & (rng.random(len(who)) < np.asarray(policy.withdraw)[region])
    span = np.maximum(p.t_end[who] - p.t0[who], 1)
    at = p.t0[who] + (rng.random(len(who)) * np.minimum(span, DAY_MS)).astype(np.int64)
    later = at + (rng.random(len(who)) * np.maximum(p.t_end[who] - at, 0)).astype(np.int64)
    grant_ev = np.asarray(policy.evidence[0])[region]
    withdraw_ev, deny_ev = policy.evidence[1][0], policy.evidence[1][2]
    first = granted | denied
    rows = [
        np.concatenate([who[first], who[withdrawn]]),
        np.concatenate([at[first], later[withdrawn]]),
        np.concatenate([source[first], source[withdrawn]]),
        np.full(int(first.sum() + withdrawn.sum()), policy.purpose, dtype=np.int64),
        np.full(int(first.sum() + withdrawn.sum()), policy.channel, dtype=np.int64),
        np.concatenate(
            [np.where(granted[first], GRANTED, DENIED), np.full(int(withdrawn.sum()), WITHDRAWN)]
        ),
        np.concatenate(
            [
                np.where(granted[first], grant_ev[first], deny_ev),
                np.full(int(withdrawn.sum()), withdraw_ev),
            ]
        ),
    ]
    start = np.where(granted, at, NEVER)
    until = np.where(withdrawn, later, np.where(granted, p.t_end[who], NEVER))
    return [r.astype(np.int64) for r in rows], start.astype(np.int64), until.astype(np.int64)


def make_consents(rng: np.random.Generator, p: People) -> Consents:
    """Draw every consent decision of a block under its region's policy."""
    n = len(p)
    m = p.member
    parts: list[list[Ints]] = []
    email_from = np.full(n, NEVER, dtype=np.int64)
    email_until = np.full(n, NEVER, dtype=np.int64)
    wa_from = np.full(n, NEVER, dtype=np.int64)
    wa_until = np.full(n, NEVER, dtype=np.int64)
    who = np.flatnonzero(m[:, SHOPIFY] | m[:, EMAIL])
    src = np.where(m[who, SHOPIFY], SHOPIFY, EMAIL).astype(np.int64)
    rows, email_from[who], email_until[who] = _decide(rng, p, who, EMAIL_MARKETING, src)
    parts.append(rows)
    who = np.flatnonzero(m[:, WHATSAPP])
    src = np.full(len(who), WHATSAPP, dtype=np.int64)
    rows, wa_from[who], wa_until[who] = _decide(rng, p, who, WHATSAPP_MARKETING, src)
    parts.append(rows)
    parts.append(_decide(rng, p, who, WHATSAPP_TRANSACTIONAL, src)[0])
    who = np.flatnonzero(m[:, SHOPIFY] & p.phone_shown[:, SHOPIFY])
    src = np.full(len(who), SHOPIFY, dtype=np.int64)
    parts.append(_decide(rng, p, who, SMS_MARKETING, src)[0])
    person, ts, source, purpose, channel, status, evidence = (
        np.concatenate([part[i] for part in parts]) for i in range(7)
    )
    return Consents(
        person=person,
        ts=ts,
        source=source,
        purpose=purpose,
        channel=channel,
        status=status,
        evidence=evidence,
        email_from=email_from,
        email_until=email_until,
        whatsapp_from=wa_from,
        whatsapp_until=wa_until,
    )
