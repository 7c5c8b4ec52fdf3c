"""Duplicate suggestions: customers that share no identifier but are probably one person.

Exact identifiers merge automatically (the graph); everything fuzzy is only *suggested*, scored
by a Fellegi-Sunter model (:mod:`siyu.identity.fellegi_sunter`), for an operator to confirm (a
manual link the graph keeps on every rebuild) or reject (never suggested again).

1. **Features**: one query reads each customer's name, email, phone, country and the postal
   code and city of its address (the merged customer row), then pandas normalises them as columns.
2. **Blocking** (vectorised self-joins on keys, blocks above :data:`MAX_BLOCK` skipped as
   uninformative): same full name and postcode; same email domain and local-part prefix, or
   suffix (a typo keeps one of them); same postcode, city and first name (same address).
3. **Exclusions**: pairs an operator rejected, and pairs a merge rule refused (a family sharing a
   phone: the rules already decided).
4. **Comparisons** per pair, as agreement levels: first and last name by Jaro-Winkler, email by
   edit distance (a typo is one or two edits), postcode, city, country and phone by equality.
5. **Model**: u from a fixed-seed sample of random customer pairs (drawn over the customers in
   the order of their matching fields, so the same customers give the same sample in any
   workspace), m and lambda by EM on the candidates; each suggestion has its match probability
   and log2 match weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from siyu.errors import Conflict, InvalidInput, NotFound
from siyu.identity import tables as t
from siyu.identity.extract import SEP, Graph
from siyu.identity.fellegi_sunter import FellegiSunter, Levels
from siyu.identity.kind import get_kind
from siyu.identity.similarity import edits_many, jaro_winkler_many
from siyu.store import schema
from siyu.store.bulk import append

MAX_BLOCK = 50
RANDOM_PAIRS = 20_000
SEED = 20_240_601
COMPARISONS: dict[str, int] = {
    "first_name": 3,
    "last_name": 3,
    "email": 3,
    "postal_code": 2,
    "city": 2,
    "country": 2,
    "phone": 2,
}
"""Comparison -> number of agreement levels (0 = disagree ... n-1 = agree)."""
LEVEL_NAMES = {3: ("different", "similar", "same"), 2: ("different", "same")}


@dataclass(frozen=True)
class Suggestion:
    customer_a: str
    customer_b: str
    probability: float
    """Match probability under the fitted model."""
    weight: float
    """log2 Bayes factor: how much the comparisons favour one person."""
    agreement: dict[str, str]
    """Comparison -> 'same' | 'similar' | 'different' (missing comparisons left out)."""
    blocks: list[str]
    """The blocking rules that proposed the pair."""
    computed_at: datetime | None = None
    """When the stored suggestion was computed (None: computed for this request)."""


def _json(dialect: str, column: str, *path: str) -> str:
    if dialect == "duckdb":
        return f"json_extract_string({column}, '$.{'.'.join(path)}')"
    head = "".join(f"->'{p}'" for p in path[:-1])
    return f"({column}{head}->>'{path[-1]}')"


def features(conn: sa.Connection, workspace_id: str) -> pd.DataFrame:
    """One row per customer with the normalised matching fields."""
    d = conn.dialect.name
    sql = (
        "SELECT customer_id, first_name, last_name, email, phone, country, "
        f"{_json(d, 'traits', 'address', 'postal_code')} AS postal_code, "
        f"{_json(d, 'traits', 'address', 'city')} AS city "
        "FROM customers WHERE workspace_id = :ws ORDER BY customer_id"
    )
    rows = conn.execute(sa.text(sql), {"ws": workspace_id}).all()
    cols = ["customer_id", "first_name", "last_name", "email", "phone", "country"]
    return matching_fields(pd.DataFrame(rows, columns=[*cols, "postal_code", "city"], dtype=object))


def matching_fields(df: pd.DataFrame) -> pd.DataFrame:
    """The customers' stored fields (id, names, email, phone, country, postcode, city)
    normalised for matching, with the derived full name and email prefix and suffix."""
    df = df.copy()
    for col in ("first_name", "last_name", "email", "city", "country"):
        df[col] = _clean(df[col]).str.lower()
    df["postal_code"] = _clean(df["postal_code"]).str.upper().str.replace(" ", "", regex=False)
    df["phone"] = _clean(df["phone"]).str.replace(r"[^\d]", "", regex=True)
    df["full_name"] = df["first_name"] + " " + df["last_name"]
    parts = df["email"].str.split("@", n=1, expand=True) if len(df) else None
    local = parts[0] if parts is not None and 0 in parts else pd.Series([], dtype=object)
    domain = parts[1] if parts is not None and 1 in parts else pd.Series(None, index=df.index)
    df["email_prefix"] = domain + "|" + local.str[:4]
    df["email_suffix"] = domain + "|" + local.str[-4:]
    return df.astype(object).where(df.notna(), None)


def _content_order(df: pd.DataFrame) -> np.ndarray:
    """Row positions ordered by a hash of each customer's matching fields.

    The frame is read in customer id order, and customer ids are hashes that include the
    workspace id: positions drawn at random from it picked other customers in another workspace
    (the demo built twice with one seed gave other probabilities). Customers equal in every
    field are interchangeable for the comparisons.
    """
    fields = df.drop(columns=["customer_id"])
    digest = pd.util.hash_pandas_object(fields, index=False).to_numpy()
    order: np.ndarray = np.argsort(digest, kind="stable")
    return order


def _clean(col: pd.Series) -> pd.Series:
    out = col.astype(object).where(col.notna(), None).astype("string").str.strip()
    return out.mask(out == "")


BLOCKS: dict[str, tuple[str, ...]] = {
    "same_name_postcode": ("full_name", "postal_code"),
    "similar_email": ("email_prefix",),
    "similar_email_end": ("email_suffix",),
    "same_address": ("postal_code", "city", "first_name"),
}
FIXED_BY_BLOCK: dict[str, tuple[str, ...]] = {
    "same_name_postcode": ("first_name", "last_name", "postal_code", "city", "country"),
    "similar_email": ("email", "first_name", "country"),
    "similar_email_end": ("email", "country"),
    "same_address": ("postal_code", "city", "first_name", "country"),
}
"""Comparisons a blocking rule forces (or makes likely) to agree: an email's local part starts
with the first name, a postcode implies city and country. Left out of that rule's EM session."""


def candidate_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Pairs (a < b, row positions, sorted) proposed by any blocking rule; ``mask`` has bit i
    set when the i-th rule of :data:`BLOCKS` proposed the pair (:func:`block_names`).

    Column-wise throughout: keys by string concatenation, block sizes by counting factorised
    keys, the rules of a pair by summing distinct bits. Row-wise ``agg``/``apply`` took 36.8 of
    53 s of a suggestion run on the 50K demo."""
    found = []
    pos = pd.Series(np.arange(len(df)), index=df.index)
    for bit, keys in enumerate(BLOCKS.values()):
        part = df[list(keys)].dropna()
        if part.empty:
            continue
        key = part[keys[0]].astype(str)
        for column in keys[1:]:
            key = key + "\x1f" + part[column].astype(str)
        codes, _ = pd.factorize(key)
        small = np.bincount(codes)[codes] <= MAX_BLOCK
        left = pd.DataFrame({"k": codes[small], "a": pos[key.index[small]].to_numpy()})
        pairs = left.merge(left.rename(columns={"a": "b"}), on="k")
        pairs = pairs[pairs["a"] < pairs["b"]][["a", "b"]]
        found.append(pairs.assign(mask=np.int64(1 << bit)))
    if not found:
        empty = np.array([], np.int64)
        return pd.DataFrame({"a": empty, "b": empty, "mask": empty})
    every = pd.concat(found, ignore_index=True).drop_duplicates()
    return every.groupby(["a", "b"], sort=True)["mask"].sum().reset_index()


def block_names(mask: int) -> list[str]:
    """The names of the blocking rules in a pair's ``mask``, alphabetically."""
    return sorted(name for bit, name in enumerate(BLOCKS) if mask >> bit & 1)


def levels(df: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> Levels:
    """Agreement level per pair and comparison (-1 where a side is missing)."""
    out = np.full((len(a), len(COMPARISONS)), -1, dtype=np.int8)
    for k, (name, n) in enumerate(COMPARISONS.items()):
        left = df[name].to_numpy(dtype=object)[a]
        right = df[name].to_numpy(dtype=object)[b]
        missing = pd.isna(left) | pd.isna(right)
        if n == 2:
            out[:, k] = np.where(missing, -1, left == right)
            continue
        lt = [None if pd.isna(x) else str(x) for x in left]
        rt = [None if pd.isna(x) else str(x) for x in right]
        if name == "email":
            # A typo is one or two edits; namesakes' addresses differ by more.
            dist = np.array(edits_many(lt, rt, 2))
            out[:, k] = np.select([missing, dist <= 1, dist == 2], [-1, 2, 1], default=0)
            continue
        sim = np.array(jaro_winkler_many(lt, rt))
        out[:, k] = np.select([missing, sim >= 0.96, sim >= 0.88], [-1, 2, 1], default=0)
    return out


def _decided(conn: sa.Connection, workspace_id: str) -> set[tuple[str, str]]:
    """Customer pairs an operator rejected or a merge rule refused: never suggested."""
    rows = conn.execute(
        sa.text(
            "SELECT ia.customer_id, ib.customer_id FROM identity_decisions d "
            "JOIN identities ia ON ia.workspace_id = d.workspace_id AND ia.kind = d.kind_a "
            "AND ia.value = d.value_a JOIN identities ib ON ib.workspace_id = d.workspace_id "
            "AND ib.kind = d.kind_b AND ib.value = d.value_b WHERE d.workspace_id = :ws "
            "UNION SELECT ia.customer_id, ib.customer_id FROM identity_conflicts c "
            "JOIN identities ia ON ia.workspace_id = c.workspace_id AND ia.kind = c.kind "
            "AND ia.value = c.value JOIN identities ib ON ib.workspace_id = c.workspace_id "
            "AND ib.kind = c.other_kind AND ib.value = c.other_value WHERE c.workspace_id = :ws"
        ),
        {"ws": workspace_id},
    ).all()
    decided = {(min(str(x), str(y)), max(str(x), str(y))) for x, y in rows}
    return decided | _refused_together(conn, workspace_id)


def _refused_together(conn: sa.Connection, workspace_id: str) -> set[tuple[str, str]]:
    """Pairs of customers a merge rule kept apart over one shared identifier: a family's phone
    refused between two store accounts belongs to neither customer, so the pairs above (one
    customer per side of a conflict) miss them, while two family members with one surname,
    address and phone are what the model rates most alike (the 50K demo's top suggestions were
    such pairs, p > 0.9999). Groups larger than :data:`MAX_BLOCK` (a store tablet) say nothing
    about any one pair and are skipped, as blocking skips such blocks."""
    rows = conn.execute(
        sa.text(
            "SELECT c.kind, c.value, i.customer_id FROM identity_conflicts c "
            "JOIN identities i ON i.workspace_id = c.workspace_id AND i.kind = c.other_kind "
            "AND i.value = c.other_value WHERE c.workspace_id = :ws "
            "UNION SELECT c.kind, c.value, i.customer_id FROM identity_conflicts c "
            "JOIN identities i ON i.workspace_id = c.workspace_id AND i.kind = c.kind "
            "AND i.value = c.value WHERE c.workspace_id = :ws"
        ),
        {"ws": workspace_id},
    ).all()
    groups: dict[tuple[str, str], set[str]] = {}
    for kind, value, customer in rows:
        groups.setdefault((str(kind), str(value)), set()).add(str(customer))
    pairs: set[tuple[str, str]] = set()
    for members in groups.values():
        if 2 <= len(members) <= MAX_BLOCK:
            ordered = sorted(members)
            pairs.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    return pairs


STORED_FLOOR = 0.5
"""A refresh stores the suggestions down to this match probability; a request for less than
this is computed for that request."""


def match_scores(df: pd.DataFrame, pairs: pd.DataFrame) -> tuple[Levels, np.ndarray, np.ndarray]:
    """(agreement levels, match probability, log2 match weight) of each candidate pair, by a
    Fellegi-Sunter model fitted on these customers and candidates."""
    gamma = levels(df, pairs["a"].to_numpy(), pairs["b"].to_numpy())
    model = FellegiSunter(list(COMPARISONS), list(COMPARISONS.values()))
    rng = np.random.default_rng(SEED)
    n = len(df)
    by_content = _content_order(df)
    ra, rb = rng.integers(0, n, RANDOM_PAIRS), rng.integers(0, n, RANDOM_PAIRS)
    ra, rb = by_content[ra], by_content[rb]
    keep = ra != rb
    u = model.u_from_random(levels(df, ra[keep], rb[keep]), model.n_levels)
    names = list(COMPARISONS)
    sessions = []
    masks = pairs["mask"].to_numpy()
    for block, fixed in FIXED_BY_BLOCK.items():
        rows = (masks >> list(BLOCKS).index(block) & 1).astype(bool)
        sessions.append((gamma[rows], {names.index(c) for c in fixed}))
    model.fit(sessions, u, candidates=len(pairs), total_pairs=n * (n - 1) / 2)
    prob, weight = model.predict(gamma), model.log2_bayes_factor(gamma)
    return gamma, prob, weight


def suggest(
    conn: sa.Connection, workspace_id: str, *, min_probability: float = 0.8, limit: int = 50
) -> list[Suggestion]:
    """Likely duplicates, most probable first: those of the last refresh when there is one
    (:func:`refresh`, read by :func:`stored`), else computed now (nothing is written)."""
    _check_probability(min_probability)
    if min_probability >= STORED_FLOOR:
        found = stored(conn, workspace_id, min_probability=min_probability, limit=limit)
        if found is not None:
            return found
    return compute(conn, workspace_id, min_probability=min_probability, limit=limit)


def _check_probability(min_probability: float) -> None:
    if not 0 <= min_probability <= 1:
        raise InvalidInput(
            f"min_probability must be between 0 and 1, got {min_probability}.",
            hint="For example 0.8.",
            field="min_probability",
        )


def refresh(conn: sa.Connection, workspace_id: str) -> int:
    """Compute the workspace's suggestions down to :data:`STORED_FLOOR` and store them in place
    of the last refresh's; return how many. The batch half of suggestions: run by ``siyu
    identity suggest``, the demo, ``POST /api/identity/suggestions/refresh`` and the first
    read of a workspace without any."""
    found = compute(conn, workspace_id, min_probability=STORED_FLOOR, limit=None)
    s = t.identity_suggestions
    conn.execute(s.delete().where(s.c.workspace_id == workspace_id))
    now = datetime.now(UTC).replace(tzinfo=None)
    if found:
        append(
            conn,
            s,
            pa.table(
                {
                    "workspace_id": pa.array([workspace_id] * len(found), pa.string()),
                    "customer_a": pa.array([x.customer_a for x in found], pa.string()),
                    "customer_b": pa.array([x.customer_b for x in found], pa.string()),
                    "probability": pa.array([x.probability for x in found], pa.float64()),
                    "weight": pa.array([x.weight for x in found], pa.float64()),
                    "agreement": pa.array(
                        [orjson.dumps(x.agreement).decode() for x in found], pa.string()
                    ),
                    "blocks": pa.array(
                        [orjson.dumps(x.blocks).decode() for x in found], pa.string()
                    ),
                    "computed_at": pa.array([now] * len(found), pa.timestamp("us")),
                }
            ),
        )
    return len(found)


def has_stored(conn: sa.Connection, workspace_id: str) -> bool:
    """Whether a refresh stored suggestions for the workspace."""
    s = t.identity_suggestions
    query = sa.select(s.c.customer_a).where(s.c.workspace_id == workspace_id).limit(1)
    return conn.execute(query).first() is not None


def stored(
    conn: sa.Connection, workspace_id: str, *, min_probability: float = 0.8, limit: int = 50
) -> list[Suggestion] | None:
    """The last refresh's suggestions, most probable first, without the pairs decided since and
    those whose customers merged since (None: no refresh stored any)."""
    _check_probability(min_probability)
    if not has_stored(conn, workspace_id):
        return None
    s, c = t.identity_suggestions, schema.customers
    a, b = c.alias("a"), c.alias("b")
    query = (
        sa.select(s)
        .where(
            s.c.workspace_id == workspace_id,
            s.c.probability >= min_probability,
            sa.exists().where(a.c.workspace_id == workspace_id, a.c.customer_id == s.c.customer_a),
            sa.exists().where(b.c.workspace_id == workspace_id, b.c.customer_id == s.c.customer_b),
        )
        .order_by(s.c.probability.desc(), s.c.customer_a, s.c.customer_b)
    )
    decided = _decided(conn, workspace_id)
    out: list[Suggestion] = []
    for row in conn.execute(query).mappings():
        if len(out) >= limit:
            break
        if (row["customer_a"], row["customer_b"]) in decided:
            continue
        out.append(
            Suggestion(
                row["customer_a"],
                row["customer_b"],
                float(row["probability"]),
                float(row["weight"]),
                _in_order(_document(row["agreement"])),
                _document(row["blocks"]),
                row["computed_at"],
            )
        )
    return out


def _in_order(agreement: dict[str, str]) -> dict[str, str]:
    """Comparisons in :data:`COMPARISONS` order (PostgreSQL's jsonb keeps keys sorted)."""
    return {name: agreement[name] for name in COMPARISONS if name in agreement}


def _json_texts(values: list[Any]) -> pa.Array:
    return pa.array([orjson.dumps(v).decode() for v in values], pa.string())


def _document(value: Any) -> Any:
    """A JSON column's value: DuckDB may hand back the text, PostgreSQL the object."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def compute(
    conn: sa.Connection,
    workspace_id: str,
    *,
    min_probability: float = 0.8,
    limit: int | None = 50,
) -> list[Suggestion]:
    """Likely duplicates computed now (``limit`` None: all), most probable first."""
    _check_probability(min_probability)
    df = features(conn, workspace_id)
    if len(df) < 2:
        return []
    pairs = candidate_pairs(df)
    ids = df["customer_id"].to_numpy(dtype=object)
    decided = _decided(conn, workspace_id)
    if decided and len(pairs):
        key = pd.Series(ids[pairs["a"].to_numpy()]) + SEP + pd.Series(ids[pairs["b"].to_numpy()])
        pairs = pairs[~key.isin({f"{x}{SEP}{y}" for x, y in decided}).to_numpy()]
    if pairs.empty:
        return []
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    gamma, prob, weight = match_scores(df, pairs)
    masks = pairs["mask"].to_numpy()
    order = np.lexsort((ids[b], ids[a], -prob))
    out: list[Suggestion] = []
    for i in order.tolist():
        if prob[i] < min_probability or (limit is not None and len(out) >= limit):
            break
        agreement = {
            name: LEVEL_NAMES[n][int(gamma[i, k])]
            for k, (name, n) in enumerate(COMPARISONS.items())
            if gamma[i, k] >= 0
        }
        out.append(
            Suggestion(
                str(ids[a[i]]),
                str(ids[b[i]]),
                round(float(prob[i]), 6),
                round(float(weight[i]), 3),
                agreement,
                block_names(int(masks[i])),
            )
        )
    return out


# --- operator decisions -----------------------------------------------------------------------


def _anchor_node(conn: sa.Connection, workspace_id: str, customer_id: str) -> tuple[str, str]:
    """The customer's strongest person-level identifier: what a decision is recorded on."""
    i = t.identities
    rows = conn.execute(
        sa.select(i.c.kind, i.c.value).where(
            i.c.workspace_id == workspace_id, i.c.customer_id == customer_id
        )
    ).all()
    if not rows:
        raise NotFound(
            f"No customer {customer_id!r} in the identity graph.",
            hint="Use customer ids from 'siyu identity suggest' (after 'siyu identity resolve').",
        )
    strong = [(get_kind(k).merge_priority, k, v) for k, v in rows if get_kind(k).is_person_level]
    if not strong:
        raise InvalidInput(
            f"Customer {customer_id!r} has only weak identifiers (anonymous or device ids), "
            "which never merge people.",
            hint="Confirm a suggestion between customers with an email, phone or account.",
        )
    _, kind, value = min(strong)
    return str(kind), str(value)


def decide(
    conn: sa.Connection,
    workspace_id: str,
    customer_a: str,
    customer_b: str,
    decision: str,
    *,
    note: str | None = None,
    score: float | None = None,
    windows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Record confirm or reject on a pair of customers; a confirm re-resolves the workspace
    (with the ``identity_limit_windows`` setting as ``windows``)."""
    if decision not in ("confirm", "reject"):
        raise InvalidInput(f"Unknown decision {decision!r}.", hint="Use confirm or reject.")
    if customer_a == customer_b:
        raise InvalidInput("Both customers are the same.", hint="Give two different customers.")
    na = _anchor_node(conn, workspace_id, customer_a)
    nb = _anchor_node(conn, workspace_id, customer_b)
    (ka, va), (kb, vb) = sorted([na, nb])
    d = t.identity_decisions
    where = (
        d.c.workspace_id == workspace_id,
        d.c.kind_a == ka,
        d.c.value_a == va,
        d.c.kind_b == kb,
        d.c.value_b == vb,
    )
    existing = conn.execute(sa.select(d.c.decision).where(*where)).scalar()
    if existing is not None and existing != decision:
        raise Conflict(
            f"This pair was already {existing}ed.",
            hint="Split the identifiers with 'siyu identity split' to undo a confirm.",
        )
    conn.execute(d.delete().where(*where))
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(
        d.insert().values(
            workspace_id=workspace_id,
            kind_a=ka,
            value_a=va,
            kind_b=kb,
            value_b=vb,
            decision=decision,
            score=score,
            evidence={"customers": [customer_a, customer_b]},
            note=note,
            decided_at=now,
        )
    )
    out: dict[str, Any] = {
        "decision": decision,
        "identifiers": [f"{ka}:{va}", f"{kb}:{vb}"],
        "customer_id": None,
    }
    if decision == "confirm":
        _resolve_pair(conn, workspace_id, [customer_a, customer_b], windows)
        out.update(_confirmed(conn, workspace_id, (ka, va), (kb, vb)))
    return out


def _confirmed(
    conn: sa.Connection, workspace_id: str, a: tuple[str, str], b: tuple[str, str]
) -> dict[str, Any]:
    """Whether the confirmed link merged the two customers; when a merge rule still keeps them
    apart (two accounts of one store: at most one per customer), the rule's reason, so the
    operator is not told a merge happened that did not."""
    i, c = t.identities, t.identity_conflicts
    owners = [
        conn.execute(
            sa.select(i.c.customer_id).where(
                i.c.workspace_id == workspace_id, i.c.kind == kind, i.c.value == value
            )
        ).scalar()
        for kind, value in (a, b)
    ]
    if owners[0] == owners[1]:
        return {"customer_id": owners[0], "merged": True}
    pair = sa.or_(
        sa.and_(
            c.c.kind == a[0], c.c.value == a[1], c.c.other_kind == b[0], c.c.other_value == b[1]
        ),
        sa.and_(
            c.c.kind == b[0], c.c.value == b[1], c.c.other_kind == a[0], c.c.other_value == a[1]
        ),
    )
    reasons = conn.execute(
        sa.select(c.c.rule, c.c.reason).where(c.c.workspace_id == workspace_id, pair)
    ).all()
    ranked = sorted(reasons, key=lambda r: (r.rule == "disputed", str(r.rule)))
    reason = ranked[0].reason if ranked else "a merge rule keeps them apart"
    return {
        "customer_id": owners[0],
        "merged": False,
        "reason": f"The link is recorded, but the customers were not merged: {reason}.",
    }


def _resolve_pair(
    conn: sa.Connection,
    workspace_id: str,
    customers: list[str],
    windows: Mapping[str, int] | None,
) -> None:
    """Re-resolve the two customers' components with the new operator link: incrementally,
    from one event of each (a batch reaches its senders' whole components, and the operator
    links of reached identifiers are added as in a full run), so a confirm costs two
    components, not the workspace (a full rebuild took 264 s at 1M customers). A customer
    without any event falls back to the full rebuild."""
    from siyu.identity.graph import resolve_new_events, resolve_workspace

    picked = conn.execute(
        sa.text(
            "SELECT customer_id, min(message_id) AS message_id FROM events "
            "WHERE workspace_id = :ws AND customer_id IN :customers GROUP BY customer_id"
        ).bindparams(sa.bindparam("customers", expanding=True)),
        {"ws": workspace_id, "customers": customers},
    ).all()
    if len(picked) < len(set(customers)):
        resolve_workspace(conn, workspace_id, windows=windows)
        return
    resolve_new_events(conn, workspace_id, [str(r.message_id) for r in picked], windows=windows)


def add_operator_links(conn: sa.Connection, workspace_id: str, graph: Graph) -> int:
    """Confirmed pairs become links (rule ``operator``) when both identifiers are in the graph."""
    d = t.identity_decisions
    rows = conn.execute(
        sa.select(d.c.kind_a, d.c.value_a, d.c.kind_b, d.c.value_b, d.c.decided_at).where(
            d.c.workspace_id == workspace_id, d.c.decision == "confirm"
        )
    ).all()
    if not rows:
        return 0
    # Each pair's two nodes, looked up in the graph's Arrow keys (no index of every key).
    wanted = pa.array(
        [f"{k}{SEP}{v}" for ka, va, kb, vb, _ in rows for k, v in ((ka, va), (kb, vb))],
        pa.string(),
    )
    found = pc.index_in(wanted, value_set=graph.key_array).to_pylist()
    added = 0
    extra_a, extra_b, extra_seen, extra_message = [], [], [], []
    for (_, _, _, _, at), x, y in zip(rows, found[0::2], found[1::2], strict=True):
        if x is None or y is None:
            continue
        x, y = min(x, y), max(x, y)
        if bool(np.any((graph.link_a == x) & (graph.link_b == y))):
            continue
        extra_a.append(x)
        extra_b.append(y)
        extra_message.append(f"operator:{at.isoformat()}")
        extra_seen.append(np.datetime64(at, "us"))
        added += 1
    if added:
        graph.link_a = np.concatenate([graph.link_a, np.array(extra_a, dtype=np.int64)])
        graph.link_message = pa.concat_arrays(
            [graph.link_message, pa.array(extra_message, pa.string())]
        )
        graph.link_rule = pa.concat_arrays(
            [graph.link_rule, pa.array(["operator"] * added, pa.string())]
        )
        graph.link_b = np.concatenate([graph.link_b, np.array(extra_b, dtype=np.int64)])
        graph.link_seen = np.concatenate(
            [graph.link_seen, np.array(extra_seen, dtype="datetime64[us]")]
        )
    return added
