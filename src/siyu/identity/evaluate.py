"""Measuring One-ID against a truth: pairwise precision and recall over identifiers.

Each identifier the truth knows is an item with a true person and a resolved customer. A pair of
items is predicted together when they share a customer and truly together when they share a
person; pairs are counted from group sizes (n choose 2), never enumerated. Identifiers that the
truth gives to several people (a family phone, a store tablet) cannot be right for all of them,
so they are left out and counted separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from siyu.errors import NotFound
from siyu.identity import tables as t
from siyu.identity.extract import SEP, build_graph, fetch_tuples
from siyu.store import schema


@dataclass(frozen=True)
class Evaluation:
    precision: float
    recall: float
    identifiers: int
    """Identifiers scored (known to the truth, found in the graph, owned by one person)."""
    shared: int
    """Identifiers the truth gives to more than one person, left out."""
    unmatched: int
    """Truth values no identity was made of (invalid or blocked values)."""
    persons: int
    customers: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    linkable_pairs: int
    """True pairs connected by some chain of evidence at all (the raw graph, ignoring rules): the
    recall any rule set could reach on this data is ``linkable_pairs / true_pairs``."""
    component_pairs: int = 0
    """Pairs the raw connected components (no limits, no weak-identifier rule) would put
    together: what a merge-everything resolver would claim."""

    @property
    def unruled_precision(self) -> float:
        """Precision of plain connected components: what the merge rules protect against."""
        return self.linkable_pairs / self.component_pairs if self.component_pairs else 1.0

    @property
    def recall_ceiling(self) -> float:
        return self.linkable_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def missed_no_evidence(self) -> int:
        """True pairs that no chain of events links: no exact rule can reach them (duplicate
        suggestions are for these)."""
        return self.true_pairs - self.linkable_pairs

    @property
    def missed_by_rules(self) -> int:
        """True pairs the evidence links but the merge rules keep apart (a browser also seen
        with a lone phone, a family phone's dispute): the price of the rules' precision."""
        return self.linkable_pairs - self.correct_pairs


def _pairs(labels: npt.NDArray[np.int64]) -> int:
    _, counts = np.unique(labels, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _codes(values: list[str]) -> npt.NDArray[np.int64]:
    _, inverse = np.unique(np.array(values, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def evaluate(conn: sa.Connection, workspace_id: str) -> Evaluation:
    """Compare the stored resolution with the ``demo_truth`` table of the workspace."""
    w = schema.workspaces
    region = conn.execute(
        sa.select(w.c.default_region).where(w.c.workspace_id == workspace_id)
    ).scalar()
    graph = build_graph(workspace_id, fetch_tuples(conn, workspace_id), region)
    i = t.identities
    customer_of: dict[str, str] = {}
    component_of: dict[str, str] = {}
    for k, v, c, comp in conn.execute(
        sa.select(i.c.kind, i.c.value, i.c.customer_id, i.c.component_id).where(
            i.c.workspace_id == workspace_id
        )
    ):
        customer_of[f"{k}{SEP}{v}"] = str(c)
        component_of[f"{k}{SEP}{v}"] = str(comp)
    truth = schema.demo_truth
    owners: dict[str, set[str]] = {}
    unmatched = 0
    for person, value in conn.execute(
        sa.select(truth.c.person_id, truth.c.value)
        .where(truth.c.workspace_id == workspace_id)
        .distinct()
    ):
        nodes = graph.raw_nodes.get(value)
        if not nodes:
            unmatched += 1
            continue
        for node in nodes:
            owners.setdefault(graph.keys[node], set()).add(person)
    if not owners and not unmatched:
        raise NotFound(
            "This workspace has no demo truth to compare with.",
            hint="Evaluate a workspace loaded with 'siyu demo' (its persons are in demo_truth).",
        )
    items = sorted(k for k, people in owners.items() if len(people) == 1 and k in customer_of)
    shared = sum(1 for people in owners.values() if len(people) > 1)
    persons = [next(iter(owners[k])) for k in items]
    customers = [str(customer_of[k]) for k in items]
    p, c = _codes(persons), _codes(customers)
    r = _codes([component_of[k] for k in items])
    both = p * (int(c.max()) + 1 if len(c) else 1) + c
    linked = p * (int(r.max()) + 1 if len(r) else 1) + r
    true_pairs, predicted, correct = _pairs(p), _pairs(c), _pairs(both)
    return Evaluation(
        precision=correct / predicted if predicted else 1.0,
        recall=correct / true_pairs if true_pairs else 1.0,
        identifiers=len(items),
        shared=shared,
        unmatched=unmatched,
        persons=len(set(persons)),
        customers=len(set(customers)),
        true_pairs=true_pairs,
        predicted_pairs=predicted,
        correct_pairs=correct,
        linkable_pairs=_pairs(linked),
        component_pairs=_pairs(r),
    )
