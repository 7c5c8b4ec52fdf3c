"""Corroborated bridges: two groups that share a browser and hold e-mails one typo apart.

Why: a weak identifier (a browser, a device) that touches two strong groups is refused as a
bridge, because a family computer or a store tablet leaves that same evidence. But a shopper who
types ``maria@gmial.com`` into the newsletter form and ``maria@gmail.com`` at checkout, in the
same browser, leaves two independent signs of one person: the shared browser *and* an address
one slip of a key away from the other. Either alone is not enough (a shared computer; two
people with similar addresses), both together are. On the 50K demo these were the largest
group of true links the rules refused.

"One typo" is kept narrow, so that relatives on one computer are rarely taken for one person:

- the same domain and local parts one edit apart (a dropped, added, changed or swapped
  character; Damerau-Levenshtein), where the longer local part has at least ``MIN_LOCAL``
  characters and the two agree on their first character and on their digits (``jsmith``
  and ``ksmith``, ``lee.1985`` and ``lee.1987`` stay apart);
- or the same local part (at least ``MIN_LOCAL`` characters) at domains one or two edits apart
  (``gmial.com``, ``yaho.com``, ``lapostenet``).

What remains possible: two people on one computer whose addresses differ by one letter inside
the name (``ann.lee`` and ``anna.lee``). The operator's split (``siyu identity split``) undoes
such a merge, and the audit log names this rule as its reason.

Computed set-based in the shared in-memory DuckDB (``siyu.compute.arrow_sql``), whose
``damerau_levenshtein`` runs over all candidate pairs at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from siyu.compute.arrow_sql import arrow_query

Ints = npt.NDArray[np.int64]
TYPO_RULE = "typo_email"
"""The audit log's name for a merge this rule made (added to the evidence's own rules)."""
MIN_LOCAL = 5
"""Shortest local part (of the longer address) for which one edit is taken as a typo."""

TYPO_PAIRS_SQL = f"""
WITH mail AS (
    SELECT grp,
           regexp_extract(value, '^(.*)@([^@]*)$', 1) AS local,
           regexp_extract(value, '^(.*)@([^@]*)$', 2) AS domain
    FROM emails
    WHERE value LIKE '%@%'
),
pairs AS (
    SELECT DISTINCT t1.grp AS g1, t2.grp AS g2
    FROM touch t1 JOIN touch t2 ON t1.weak = t2.weak AND t1.grp < t2.grp
)
SELECT DISTINCT p.g1, p.g2
FROM pairs p
JOIN mail m1 ON m1.grp = p.g1
JOIN mail m2 ON m2.grp = p.g2
WHERE (
        m1.domain = m2.domain
        AND m1.local <> m2.local
        AND greatest(length(m1.local), length(m2.local)) >= {MIN_LOCAL}
        AND left(m1.local, 1) = left(m2.local, 1)
        AND regexp_replace(m1.local, '[^0-9]', '', 'g')
            = regexp_replace(m2.local, '[^0-9]', '', 'g')
        AND damerau_levenshtein(m1.local, m2.local) = 1
    ) OR (
        m1.local = m2.local
        AND length(m1.local) >= {MIN_LOCAL}
        AND m1.domain <> m2.domain
        AND damerau_levenshtein(m1.domain, m2.domain) <= 2
    )
ORDER BY p.g1, p.g2
"""


def typo_pairs(weak: Ints, group: Ints, email_group: Ints, email: pa.Array) -> Ints:
    """Pairs ``(g1, g2)``, ``g1 < g2``, of groups that touch one weak component and hold
    e-mails one typo apart.

    ``weak``/``group``: which weak component touches which strong group (one row per touch);
    ``email_group``/``email``: the e-mail values (normalised) of those groups. Returns an
    ``(m, 2)`` array, sorted.
    """
    if not len(weak) or not len(email):
        return np.zeros((0, 2), dtype=np.int64)
    found = arrow_query(
        TYPO_PAIRS_SQL,
        touch=pa.table({"weak": pa.array(weak), "grp": pa.array(group)}),
        emails=pa.table({"grp": pa.array(email_group), "value": email}),
    )
    if found.num_rows == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return np.stack(
        [
            np.asarray(found.column("g1").to_numpy(), dtype=np.int64),
            np.asarray(found.column("g2").to_numpy(), dtype=np.int64),
        ],
        axis=1,
    )
