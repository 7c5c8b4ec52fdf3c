"""Resolution: which identity nodes are one customer, under the merge rules.

1. Strong (person-level) identifiers are joined along strong-strong links. Connected components
   (SciPy) that break no limit are accepted whole, vectorised. Only the few components that would
   break a limit (a family sharing a phone, a recycled number) are replayed link by link in
   priority order (the weaker endpoint's ``merge_priority``, then time, then the identifiers),
   with a union-find that refuses, and records as a conflict, the link that would break a limit.
2. Weak identifiers (anonymous ids, devices) never join two people: a component of weak nodes
   attaches to the one strong group it touches; touching two or more (a store tablet used by
   several signed-in shoppers) is a conflict, and the weak nodes stay a customer of their own.

Limits: each kind's ``max_per_customer`` distinct values, and one account (userId) per source.
The result depends only on the graph's content, never on the order events arrived, so a full
rebuild and incremental runs agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from siyu.identity.extract import Graph
from siyu.identity.kind import get_kind

Ints = npt.NDArray[np.int64]
ACCOUNT_LIMIT = get_kind("user_id").max_per_customer or 1


@dataclass
class Conflict:
    node: int
    other: int
    rule: str
    reason: str
    message_id: str | None


@dataclass
class Resolution:
    group: Ints
    """Group label per node (0..n_groups-1)."""
    component: Ints
    """Raw connected component per node, ignoring every rule."""
    conflicts: list[Conflict]


def components(n: int, a: Ints, b: Ints) -> Ints:
    """Connected components of n nodes under links (a, b): the SciPy baseline."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    data = np.ones(len(a), dtype=np.int8)
    matrix = coo_matrix((data, (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(matrix, directed=False)
    out: Ints = np.asarray(labels, dtype=np.int64)
    return out


def _classes(graph: Graph) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """Limit classes of each node, and each class's maximum."""
    limits: dict[str, int] = {}
    out: list[tuple[str, ...]] = []
    for i, key in enumerate(graph.keys):
        kind = get_kind(key.split("\x1f", 1)[0])
        mine: list[str] = []
        if kind.max_per_customer is not None:
            limits[kind.name] = kind.max_per_customer
            mine.append(kind.name)
        if graph.account_source[i]:
            cls = f"account:{graph.account_source[i]}"
            limits[cls] = ACCOUNT_LIMIT
            mine.append(cls)
        out.append(tuple(mine))
    return out, limits


def resolve(graph: Graph, detached: Collection[int] = ()) -> Resolution:
    """Group the graph's nodes into customers; ``detached`` nodes join nobody (operator split)."""
    n = len(graph.keys)
    a, b = graph.link_a, graph.link_b
    cut = np.zeros(n, dtype=bool)
    cut[list(detached)] = True
    keep = ~(cut[a] | cut[b]) if len(a) else np.zeros(0, dtype=bool)
    a, b = a[keep], b[keep]
    link_ids = np.flatnonzero(keep)
    raw = components(n, a, b)
    strong = np.array([get_kind(k.split("\x1f", 1)[0]).is_person_level for k in graph.keys])
    strong = strong.astype(bool) if n else np.zeros(0, dtype=bool)
    ss = strong[a] & strong[b]
    comp = components(n, a[ss], b[ss])
    classes, limits = _classes(graph)
    contested = _contested(comp, classes, limits)
    conflicts: list[Conflict] = []
    label = comp.copy()
    if contested.size:
        in_contest = np.isin(comp, contested)
        links = np.flatnonzero(ss & in_contest[a])
        roots = _replay(graph, a, b, links, link_ids, classes, limits, in_contest, conflicts)
        label[in_contest] = n + roots[in_contest]
    label = _attach_weak(graph, a, b, link_ids, strong, label, conflicts)
    _, group = np.unique(label, return_inverse=True)
    return Resolution(group.astype(np.int64), raw, conflicts)


def _contested(comp: Ints, classes: list[tuple[str, ...]], limits: dict[str, int]) -> Ints:
    """Components holding more values of some limit class than the limit allows."""
    pairs = Counter((int(comp[i]), c) for i, cs in enumerate(classes) for c in cs)
    bad = {c for (c, cls), count in pairs.items() if count > limits[cls]}
    return np.array(sorted(bad), dtype=np.int64)


def _replay(
    graph: Graph,
    a: Ints,
    b: Ints,
    links: Ints,
    link_ids: Ints,
    classes: list[tuple[str, ...]],
    limits: dict[str, int],
    nodes: npt.NDArray[np.bool_],
    conflicts: list[Conflict],
) -> Ints:
    """Union-find over the contested components' links in priority order, refusing breaches.

    A refused link shows that its weaker identifier is shared by people who hold different
    accounts (a family phone), so that identifier is *disputed*: the replay starts again without
    letting it bridge anyone, until no new dispute appears. A disputed identifier then joins the
    group of its strongest link, if that breaks no limit, and brings no one else along.
    """

    def rank(j: int) -> tuple[int, object, str, str]:
        x, y = int(a[j]), int(b[j])
        priority = max(_priority(graph.keys[x]), _priority(graph.keys[y]))
        return (priority, graph.link_seen[int(link_ids[j])], graph.keys[x], graph.keys[y])

    ordered = sorted(links.tolist(), key=rank)
    disputed: set[int] = set()
    limit_conflicts: dict[int, Conflict] = {}
    while True:
        uf = _UnionFind(classes, limits, np.flatnonzero(nodes))
        refused: list[int] = []
        for j in ordered:
            if int(a[j]) in disputed or int(b[j]) in disputed:
                continue
            if uf.union(int(a[j]), int(b[j]), graph.keys) is not None:
                refused.append(j)
                if j not in limit_conflicts:
                    limit_conflicts[j] = _limit_conflict(graph, uf, a, b, link_ids, j)
        new = set()
        for j in refused:
            x, y = int(a[j]), int(b[j])
            px, py = _priority(graph.keys[x]), _priority(graph.keys[y])
            new |= {x} if px > py else {y} if py > px else {x, y}
        if not new - disputed:
            break
        disputed |= new
    conflicts.extend(limit_conflicts[j] for j in sorted(limit_conflicts))
    for j in ordered:
        x, y = int(a[j]), int(b[j])
        if (x in disputed) == (y in disputed):
            if x in disputed and y in disputed:
                conflicts.append(_disputed(graph, a, b, link_ids, j))
            continue
        node, other = (x, y) if x in disputed else (y, x)
        if uf.find(node) != node or uf.size(node) > 1:  # already attached to someone
            if uf.find(node) != uf.find(other):
                conflicts.append(_disputed(graph, a, b, link_ids, j))
            continue
        if uf.union(node, other, graph.keys) is not None:
            conflicts.append(_disputed(graph, a, b, link_ids, j))
    roots = np.arange(len(graph.keys), dtype=np.int64)
    for i in np.flatnonzero(nodes).tolist():
        roots[i] = uf.find(i)
    return roots


class _UnionFind:
    """Union-find over a few contested nodes, with each group's counts per limit class."""

    def __init__(self, classes: list[tuple[str, ...]], limits: dict[str, int], nodes: Ints) -> None:
        self.parent: dict[int, int] = {int(i): int(i) for i in nodes}
        self.counts: dict[int, Counter[str]] = {int(i): Counter(classes[i]) for i in nodes}
        self.sizes: dict[int, int] = {int(i): 1 for i in nodes}
        self.limits = limits

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def size(self, x: int) -> int:
        return self.sizes[self.find(x)]

    def union(self, x: int, y: int, keys: list[str]) -> str | None:
        """Join the groups of x and y; return the broken limit class instead when one would be."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return None
        merged = self.counts[rx] + self.counts[ry]
        broken = sorted(c for c, k in merged.items() if k > self.limits[c])
        if broken:
            return broken[0]
        keep, gone = (rx, ry) if keys[rx] <= keys[ry] else (ry, rx)
        self.parent[gone] = keep
        self.counts[keep] = merged
        self.sizes[keep] = self.sizes[rx] + self.sizes[ry]
        return None

    def would_break(self, x: int, y: int) -> tuple[str, int] | None:
        merged = self.counts[self.find(x)] + self.counts[self.find(y)]
        broken = sorted(c for c, k in merged.items() if k > self.limits[c])
        return (broken[0], merged[broken[0]]) if broken else None


def _limit_conflict(
    graph: Graph, uf: _UnionFind, a: Ints, b: Ints, link_ids: Ints, j: int
) -> Conflict:
    found = uf.would_break(int(a[j]), int(b[j]))
    cls, count = found if found else ("limit", 0)
    what = cls.split(":")[0]
    reason = f"merging would give one customer {count} {what} values (at most {uf.limits.get(cls)})"
    return Conflict(int(a[j]), int(b[j]), f"limit:{what}", reason, _msg(graph, link_ids, j))


def _disputed(graph: Graph, a: Ints, b: Ints, link_ids: Ints, j: int) -> Conflict:
    return Conflict(
        int(a[j]),
        int(b[j]),
        "disputed",
        "this identifier is shared by people with different accounts; it does not merge them",
        _msg(graph, link_ids, j),
    )


def _attach_weak(
    graph: Graph,
    a: Ints,
    b: Ints,
    link_ids: Ints,
    strong: npt.NDArray[np.bool_],
    label: Ints,
    conflicts: list[Conflict],
) -> Ints:
    """Weak components join the single strong group they touch; touching several is a conflict."""
    n = len(graph.keys)
    ww = ~strong[a] & ~strong[b]
    weak_comp = components(n, a[ww], b[ww])
    mixed = strong[a] != strong[b]
    wa = np.where(strong[a[mixed]], b[mixed], a[mixed])
    sa_ = np.where(strong[a[mixed]], a[mixed], b[mixed])
    mixed_ids = np.flatnonzero(mixed)
    pairs = np.unique(np.stack([weak_comp[wa], label[sa_]], axis=1), axis=0) if len(wa) else None
    out = label.copy()
    weak = ~strong
    out[weak] = 2 * n + weak_comp[weak]  # on their own unless attached below
    if pairs is None:
        return out
    wc, counts = np.unique(pairs[:, 0], return_counts=True)
    per_comp = np.zeros(n, dtype=np.int64)
    per_comp[wc] = counts
    single = per_comp[pairs[:, 0]] == 1
    target = np.full(n, -1, dtype=np.int64)
    target[pairs[single, 0]] = pairs[single, 1]
    attach = weak & (target[weak_comp] >= 0)
    out[attach] = target[weak_comp[attach]]
    shared = wc[counts > 1]
    if shared.size:
        seen: set[tuple[int, int]] = set()
        for j in np.flatnonzero(np.isin(weak_comp[wa], shared)).tolist():
            key = (int(weak_comp[wa[j]]), int(label[sa_[j]]))
            if key in seen:
                continue
            seen.add(key)
            people = int(counts[np.searchsorted(wc, key[0])])
            conflicts.append(
                Conflict(
                    int(wa[j]),
                    int(sa_[j]),
                    "shared_weak_identifier",
                    f"a weak identifier seen with {people} different people is not used to merge",
                    _msg(graph, link_ids, int(mixed_ids[j])),
                )
            )
    return out


def _priority(key: str) -> int:
    return get_kind(key.split("\x1f", 1)[0]).merge_priority


def _msg(graph: Graph, link_ids: Ints, j: int) -> str | None:
    return graph.link_message[int(link_ids[j])]
