"""Resolution: which identity nodes are one customer, under the merge rules.

1. Strong (person-level) identifiers are joined along strong-strong links. Connected components
   (SciPy) that break no limit are accepted whole, vectorised. Only the few components that would
   break a limit (a family sharing a phone, a recycled number) are replayed link by link in
   priority order (the weaker endpoint's ``merge_priority``, then time, then the identifiers),
   with a union-find that refuses, and records as a conflict, the link that would break a limit.
2. Weak identifiers (anonymous ids, devices) never join two people: a component of weak nodes
   attaches to the one strong group it touches; touching two or more (a store tablet used by
   several signed-in shoppers) is a conflict, and the weak nodes stay a customer of their own.
   The one exception needs a second, independent sign: two groups that share a weak component
   and hold e-mails one typo apart are one person (``corroborate``), within the limits.

Limits: each kind's ``max_per_customer`` distinct values, and one account (userId) per source.
A kind's limit can count per time window instead (``limit_window_days`` or the
``identity_limit_windows`` setting: at most 5 emails first seen within any 30 days), judged on
each identifier's first-seen time, which is a property of the graph like everything else here.
The result depends only on the graph's content, never on the order events arrived, so a full
rebuild and incremental runs agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from siyu.identity.corroborate import typo_pairs
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
    corroborated: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Groups that a shared browser plus e-mails one typo apart joined (see ``corroborate``)."""


def components(n: int, a: Ints, b: Ints) -> Ints:
    """Connected components of n nodes under links (a, b): the SciPy baseline."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    data = np.ones(len(a), dtype=np.int8)
    matrix = coo_matrix((data, (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(matrix, directed=False)
    out: Ints = np.asarray(labels, dtype=np.int64)
    return out


@dataclass
class Limits:
    """Each limit class's maximum, and the window (seconds) of the classes counted per window."""

    most: dict[str, int] = field(default_factory=dict)
    window: dict[str, int] = field(default_factory=dict)
    seen: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """First-seen time of every node, in seconds."""

    def count(self, cls: str, times: list[int]) -> int:
        """Values of a class one customer would hold, as the limit counts them."""
        span = self.window.get(cls)
        if span is None or len(times) <= self.most[cls]:
            return len(times)
        ordered = np.sort(np.asarray(times, dtype=np.int64))
        ends = np.searchsorted(ordered, ordered + span, side="left")
        return int((ends - np.arange(len(ordered))).max())


def window_days(windows: Mapping[str, int] | None, kind: str) -> int | None:
    """The window of a kind's limit: the setting's value when it names the kind, else the
    kind's own ``limit_window_days`` (0 in the setting: no window)."""
    if windows is not None and kind in windows:
        return int(windows[kind]) or None
    return get_kind(kind).limit_window_days


@dataclass
class _Classes:
    """Limit classes per node, as codes: the node's kind (when limited) and its account source.

    Only the nodes of contested components ever need their classes by name (:meth:`of`).
    """

    kind: Ints
    """Kind code per node; -1 when the kind has no limit."""
    kind_names: list[str]
    account: Ints
    """Account-source code per node; -1 when the node is not a source's account."""
    account_names: list[str]

    def of(self, i: int) -> tuple[str, ...]:
        out: list[str] = []
        if self.kind[i] >= 0:
            out.append(self.kind_names[int(self.kind[i])])
        if self.account[i] >= 0:
            out.append(f"account:{self.account_names[int(self.account[i])]}")
        return tuple(out)


def _node_kinds(graph: Graph) -> tuple[Ints, list[str]]:
    """Kind code per node and the kind names (one Arrow split, no per-node Python)."""
    return graph.kind_codes


def _classes(graph: Graph, windows: Mapping[str, int] | None = None) -> tuple[_Classes, Limits]:
    """Limit classes of each node, and each class's maximum (and window)."""
    limits = Limits()
    codes, names = _node_kinds(graph)
    limited = np.full(len(names), -1, dtype=np.int64)
    for c, name in enumerate(names):
        kind = get_kind(name)
        if kind.max_per_customer is None:
            continue
        limited[c] = c
        limits.most[kind.name] = kind.max_per_customer
        days = window_days(windows, kind.name)
        if days is not None:
            limits.window[kind.name] = days * 86_400
    # Codes in order of first appearance (as pd.factorize numbers them), -1 where none.
    encoded = pc.dictionary_encode(graph.account_source)
    account = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    account_names = [str(x) for x in encoded.dictionary.to_pylist()]
    for name in account_names:
        limits.most[f"account:{name}"] = ACCOUNT_LIMIT
    if limits.window:
        seen = np.array(graph.first_seen, dtype="datetime64[s]").astype(np.int64)
        limits.seen = seen
    kind_of = limited[codes] if len(codes) else codes
    classes = _Classes(kind_of, names, np.asarray(account, dtype=np.int64), account_names)
    return classes, limits


def resolve(
    graph: Graph, detached: Collection[int] = (), windows: Mapping[str, int] | None = None
) -> Resolution:
    """Group the graph's nodes into customers; ``detached`` nodes join nobody (operator split).

    ``windows`` (kind -> days) makes those kinds' limits count per time window.
    """
    n = len(graph.keys)
    a, b = graph.link_a, graph.link_b
    cut = np.zeros(n, dtype=bool)
    cut[list(detached)] = True
    keep = ~(cut[a] | cut[b]) if len(a) else np.zeros(0, dtype=bool)
    a, b = a[keep], b[keep]
    link_ids = np.flatnonzero(keep)
    raw = components(n, a, b)
    codes, names = _node_kinds(graph)
    person = np.array([get_kind(name).is_person_level for name in names], dtype=bool)
    strong = person[codes] if n else np.zeros(0, dtype=bool)
    ss = strong[a] & strong[b]
    comp = components(n, a[ss], b[ss])
    classes, limits = _classes(graph, windows)
    contested = _contested(comp, classes, limits)
    conflicts: list[Conflict] = []
    label = comp.copy()
    if contested.size:
        in_contest = np.isin(comp, contested)
        links = np.flatnonzero(ss & in_contest[a])
        roots = _replay(graph, a, b, links, link_ids, classes, limits, in_contest, conflicts)
        label[in_contest] = n + roots[in_contest]
    ww = ~strong[a] & ~strong[b]
    weak_comp = components(n, a[ww], b[ww])
    touch = _touches(a, b, strong, weak_comp, label)
    label, joined, touch = _corroborated(graph, touch, label, classes, limits)
    label = _attach_weak(graph, a, b, link_ids, strong, weak_comp, touch, label, conflicts)
    _, group = np.unique(label, return_inverse=True)
    corroborated = np.unique(group[joined]) if len(joined) else np.zeros(0, dtype=np.int64)
    return Resolution(group.astype(np.int64), raw, conflicts, corroborated.astype(np.int64))


def _over(comp: Ints, code: Ints, limit_of: Ints) -> tuple[Ints, Ints]:
    """(component, class code) pairs whose count of nodes exceeds the class's limit."""
    nodes = np.flatnonzero(code >= 0)
    if not nodes.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    width = int(code.max()) + 1
    pairs, counts = np.unique(comp[nodes] * width + code[nodes], return_counts=True)
    over = counts > limit_of[pairs % width]
    return pairs[over] // width, pairs[over] % width


def _contested(comp: Ints, classes: _Classes, limits: Limits) -> Ints:
    """Components holding more values of some limit class than the limit allows."""
    kind_limit = np.array(
        [limits.most.get(name, 0) for name in classes.kind_names] or [0], dtype=np.int64
    )
    bad: set[int] = set()
    comps, kinds = _over(comp, classes.kind, kind_limit)
    windowed: dict[str, set[int]] = {}
    for c, k in zip(comps.tolist(), kinds.tolist(), strict=True):
        name = classes.kind_names[k]
        if name in limits.window:
            windowed.setdefault(name, set()).add(c)
        else:
            bad.add(c)
    account_limit = np.full(max(len(classes.account_names), 1), ACCOUNT_LIMIT, dtype=np.int64)
    bad |= set(_over(comp, classes.account, account_limit)[0].tolist())
    for name, candidates in sorted(windowed.items()):
        bad |= _over_in_window(comp, classes, limits, name, candidates)
    return np.array(sorted(bad), dtype=np.int64)


def _over_in_window(
    comp: Ints, classes: _Classes, limits: Limits, cls: str, candidates: set[int]
) -> set[int]:
    """Candidate components holding more values of a windowed class in some window than allowed.

    Set-based: the class's nodes sorted by (component, first seen); for each node, the number of
    its component's nodes first seen in [t, t + window) is one ``searchsorted`` away.
    """
    span = limits.window[cls]
    code = classes.kind_names.index(cls)
    nodes = np.flatnonzero((classes.kind == code) & np.isin(comp, list(candidates)))
    c, t = comp[nodes], limits.seen[nodes]
    order = np.lexsort((t, c))
    c, t = c[order], t[order] - t.min()
    key = c * (int(t.max()) + span + 1) + t
    counts = np.searchsorted(key, key + span, side="left") - np.arange(len(key))
    worst = np.zeros(int(c.max()) + 1, dtype=np.int64)
    np.maximum.at(worst, c, counts)
    return {int(x) for x in np.unique(c) if worst[x] > limits.most[cls]}


def _replay(
    graph: Graph,
    a: Ints,
    b: Ints,
    links: Ints,
    link_ids: Ints,
    classes: _Classes,
    limits: Limits,
    nodes: npt.NDArray[np.bool_],
    conflicts: list[Conflict],
) -> Ints:
    """Union-find over the contested components' links in priority order, refusing breaches.

    A refused link shows that its weaker identifier is shared by people who hold different
    accounts (a family phone), so that identifier is *disputed*: the replay starts again without
    letting it bridge anyone, until no new dispute appears. A disputed identifier then joins the
    group of its strongest link, if that breaks no limit, and brings no one else along.
    """

    seen = graph.link_seen.astype(np.int64)
    # The contested nodes' keys and merge priorities, looked up once (not per comparison).
    contested = np.flatnonzero(nodes)
    keys = dict(zip(contested.tolist(), graph.key_array.take(contested).to_pylist(), strict=True))
    codes, names = graph.kind_codes
    by_kind = np.array([get_kind(name).merge_priority for name in names] or [0], dtype=np.int64)
    priority_of = dict(zip(contested.tolist(), by_kind[codes[contested]].tolist(), strict=True))

    def rank(j: int) -> tuple[int, int, str, str]:
        x, y = int(a[j]), int(b[j])
        priority = max(priority_of[x], priority_of[y])
        return (priority, int(seen[int(link_ids[j])]), keys[x], keys[y])

    ordered = sorted(links.tolist(), key=rank)
    disputed: set[int] = set()
    limit_conflicts: dict[int, Conflict] = {}
    while True:
        uf = _UnionFind(classes, limits, np.flatnonzero(nodes))
        refused: list[int] = []
        for j in ordered:
            if int(a[j]) in disputed or int(b[j]) in disputed:
                continue
            if uf.union(int(a[j]), int(b[j]), keys) is not None:
                refused.append(j)
                if j not in limit_conflicts:
                    limit_conflicts[j] = _limit_conflict(graph, uf, a, b, link_ids, j)
        new = set()
        for j in refused:
            x, y = int(a[j]), int(b[j])
            px, py = priority_of[x], priority_of[y]
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
        if uf.union(node, other, keys) is not None:
            conflicts.append(_disputed(graph, a, b, link_ids, j))
    roots = np.arange(len(graph.keys), dtype=np.int64)
    for i in np.flatnonzero(nodes).tolist():
        roots[i] = uf.find(i)
    return roots


class _UnionFind:
    """Union-find over a few contested nodes, with each group's values per limit class.

    Counts suffice for plain limits; a windowed class keeps its values' first-seen times.
    """

    def __init__(self, classes: _Classes, limits: Limits, nodes: Ints) -> None:
        self.parent: dict[int, int] = {int(i): int(i) for i in nodes}
        self.counts: dict[int, Counter[str]] = {int(i): Counter(classes.of(i)) for i in nodes}
        self.times: dict[int, dict[str, list[int]]] = {
            int(i): {c: [int(limits.seen[i])] for c in classes.of(i) if c in limits.window}
            for i in nodes
        }
        self.sizes: dict[int, int] = {int(i): 1 for i in nodes}
        self.limits = limits

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def size(self, x: int) -> int:
        return self.sizes[self.find(x)]

    def _breach(self, rx: int, ry: int) -> tuple[Counter[str], dict[str, list[int]], list[str]]:
        merged = self.counts[rx] + self.counts[ry]
        tx, ty = self.times[rx], self.times[ry]
        times = {c: tx.get(c, []) + ty.get(c, []) for c in tx.keys() | ty.keys()}
        broken = sorted(
            c
            for c, k in merged.items()
            if k > self.limits.most[c]
            and (c not in times or self.limits.count(c, times[c]) > self.limits.most[c])
        )
        return merged, times, broken

    def union(self, x: int, y: int, keys: Mapping[int, str]) -> str | None:
        """Join the groups of x and y; return the broken limit class instead when one would be."""
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return None
        merged, times, broken = self._breach(rx, ry)
        if broken:
            return broken[0]
        keep, gone = (rx, ry) if keys[rx] <= keys[ry] else (ry, rx)
        self.parent[gone] = keep
        self.counts[keep] = merged
        self.times[keep] = times
        self.sizes[keep] = self.sizes[rx] + self.sizes[ry]
        return None

    def would_break(self, x: int, y: int) -> tuple[str, int] | None:
        merged, times, broken = self._breach(self.find(x), self.find(y))
        if not broken:
            return None
        cls = broken[0]
        return cls, self.limits.count(cls, times[cls]) if cls in times else merged[cls]


def _limit_conflict(
    graph: Graph, uf: _UnionFind, a: Ints, b: Ints, link_ids: Ints, j: int
) -> Conflict:
    found = uf.would_break(int(a[j]), int(b[j]))
    cls, count = found if found else ("limit", 0)
    what = cls.split(":")[0]
    span = uf.limits.window.get(cls)
    within = f" first seen within {span // 86_400} days" if span else ""
    most = uf.limits.most.get(cls)
    reason = f"merging would give one customer {count} {what} values{within} (at most {most})"
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
    weak_comp: Ints,
    pairs: Ints,
    label: Ints,
    conflicts: list[Conflict],
) -> Ints:
    """Weak components join the single strong group they touch; touching several is a conflict.

    ``pairs`` is :func:`_touches` of ``label``.
    """
    n = len(graph.keys)
    mixed = strong[a] != strong[b]
    wa = np.where(strong[a[mixed]], b[mixed], a[mixed])
    sa_ = np.where(strong[a[mixed]], a[mixed], b[mixed])
    mixed_ids = np.flatnonzero(mixed)
    out = label.copy()
    weak = ~strong
    out[weak] = 2 * n + weak_comp[weak]  # on their own unless attached below
    if not len(pairs):
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


def _touches(a: Ints, b: Ints, strong: npt.NDArray[np.bool_], weak_comp: Ints, label: Ints) -> Ints:
    """Distinct (weak component, strong group) pairs that a weak-strong link connects."""
    mixed = strong[a] != strong[b]
    w = np.where(strong[a[mixed]], b[mixed], a[mixed])
    s = np.where(strong[a[mixed]], a[mixed], b[mixed])
    if not len(w):
        return np.zeros((0, 2), dtype=np.int64)
    # One int64 per pair: a 1-D unique is several times faster than a unique over rows.
    width = int(label.max()) + 1
    pairs = np.unique(weak_comp[w] * width + label[s])
    return np.stack([pairs // width, pairs % width], axis=1)


def _corroborated(
    graph: Graph, touch: Ints, label: Ints, classes: _Classes, limits: Limits
) -> tuple[Ints, Ints, Ints]:
    """Join strong groups that share a weak component *and* hold e-mails one typo apart.

    Two independent signs of one person (``siyu.identity.corroborate``), where a shared browser
    alone is refused. A chain of such joins that would break a limit is not made at all (the
    groups stay as they were). ``touch`` is :func:`_touches` of ``label``. Returns the new
    labels, the nodes of the joined groups and ``touch`` under the new labels.
    """
    none = np.zeros(0, dtype=np.int64)
    if not len(touch):
        return label, none, touch
    # ``touch`` is sorted by weak component: runs of one component are its touches.
    starts = np.flatnonzero(np.r_[True, touch[1:, 0] != touch[:-1, 0]])
    sizes = np.diff(np.r_[starts, len(touch)])
    shared = touch[np.repeat(sizes > 1, sizes)]
    codes, names = graph.kind_codes
    if not len(shared) or "email" not in names:
        return label, none, touch
    mailed = np.flatnonzero((codes == names.index("email")) & np.isin(label, shared[:, 1]))
    pairs = typo_pairs(
        shared[:, 0], shared[:, 1], label[mailed], graph.key_parts[1].take(pa.array(mailed))
    )
    if not len(pairs):
        return label, none, touch
    # Chains of joined groups: each takes its smallest label.
    involved = np.unique(pairs)
    ends = np.searchsorted(involved, pairs)  # (m, 2) on every NumPy (unique's inverse is not)
    chain = components(len(involved), ends[:, 0], ends[:, 1])
    first = np.full(int(chain.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, chain, involved)
    target = first[chain]
    nodes = np.flatnonzero(np.isin(label, involved))
    merged = target[np.searchsorted(involved, label[nodes])]
    sub = _Classes(
        classes.kind[nodes], classes.kind_names, classes.account[nodes], classes.account_names
    )
    seen = limits.seen[nodes] if len(limits.seen) else limits.seen
    over = _contested(merged, sub, Limits(limits.most, limits.window, seen))
    ok = ~np.isin(merged, over)
    out = label.copy()
    out[nodes[ok]] = merged[ok]
    # The touches under the new labels (cheaper than finding them again from the links).
    # Only the weak components that touched a joined group change (and may now touch it twice).
    moved = ~np.isin(target, over)
    at = np.minimum(np.searchsorted(involved, touch[:, 1]), len(involved) - 1)
    hit = (involved[at] == touch[:, 1]) & moved[at]
    renamed = touch.copy()
    renamed[hit, 1] = target[at[hit]]
    redo = np.isin(renamed[:, 0], renamed[hit, 0])
    width = int(renamed[:, 1].max()) + 1
    again = np.unique(renamed[redo, 0] * width + renamed[redo, 1])
    redone = np.stack([again // width, again % width], axis=1)
    return out, nodes[ok], np.concatenate([renamed[~redo], redone])


def _msg(graph: Graph, link_ids: Ints, j: int) -> str | None:
    message: str | None = graph.link_message[int(link_ids[j])].as_py()
    return message
