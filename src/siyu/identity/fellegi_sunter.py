"""The Fellegi-Sunter record-linkage model, with u from random pairs and m by EM.

Each candidate pair has, per comparison k, an agreement level ``gamma[k]`` (0 = disagree, higher =
closer, -1 = a side is missing, which says nothing). Under the model,

    P(gamma | match) = prod_k m_k[gamma_k],   P(gamma | non-match) = prod_k u_k[gamma_k],

and the match probability of a pair is lambda * P(g|M) / (lambda * P(g|M) + (1-lambda) * P(g|U)).
As in Splink: ``u`` is estimated from random pairs (almost all non-matches), ``m`` and ``lambda``
by expectation-maximisation on the blocked candidate pairs with ``u`` fixed. Everything is
vectorised over pairs; the loop is over EM iterations and comparisons only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Levels = npt.NDArray[np.int8]
Floats = npt.NDArray[np.float64]


@dataclass
class FellegiSunter:
    """``fit(sessions, u)`` returns self; ``m_``, ``u_``, ``lambda_`` and ``iterations_``."""

    names: list[str]
    n_levels: list[int]
    max_iter: int = 100
    tol: float = 1e-6
    prior_strength: float = 0.1
    """Dirichlet pseudo-counts on m (this share of the expected matches, spread as in
    :meth:`_start`, favouring agreement), so that EM cannot explain a block of look-alikes by a
    'match' class that disagrees on everything the block did not force."""
    max_lambda: float = 0.5
    """Blocked candidates are never mostly duplicates: a session's match rate is capped."""
    m_: list[Floats] = field(default_factory=list)
    u_: list[Floats] = field(default_factory=list)
    lambda_: float = 0.0
    iterations_: int = 0

    def __repr__(self) -> str:
        return f"FellegiSunter({len(self.names)} comparisons, lambda={self.lambda_:.4f})"

    @staticmethod
    def u_from_random(gamma: Levels, n_levels: list[int], smoothing: float = 1.0) -> list[Floats]:
        """Level frequencies among random pairs (Laplace-smoothed, missing levels ignored)."""
        out = []
        for k, n in enumerate(n_levels):
            col = gamma[:, k]
            counts = np.bincount(col[col >= 0], minlength=n).astype(float) + smoothing
            out.append(counts / counts.sum())
        return out

    def fit(
        self,
        sessions: list[tuple[Levels, set[int]]],
        u: list[Floats],
        *,
        candidates: int,
        total_pairs: float,
    ) -> FellegiSunter:
        """Estimate m and lambda by EM, u fixed, one session per blocking rule.

        A session's pairs were chosen *because* they agree on the rule's columns, so those
        comparisons (its second item) say nothing there and are left out of its likelihood, as
        Splink does; each m is the mean over the sessions that estimated it. ``lambda_`` is the
        prior that two *random* records match: the expected matches among the ``candidates``
        (the sessions' pair-weighted match rate) over ``total_pairs``, assuming blocking proposes
        every match. Scoring candidates with it counts the agreement blocking required once.
        """
        self.u_ = [np.asarray(x, dtype=float) for x in u]
        found: list[list[Floats]] = [[] for _ in self.n_levels]
        rates, sizes = [], []
        for gamma, fixed in sessions:
            if not len(gamma):
                continue
            masked = gamma.copy()
            masked[:, sorted(fixed)] = -1
            m, lam = self._em(masked)
            for k in range(len(self.n_levels)):
                if k not in fixed:
                    found[k].append(m[k])
            rates.append(lam)
            sizes.append(len(gamma))
        self.m_ = [
            np.mean(f, axis=0) if f else self._start(n)
            for f, n in zip(found, self.n_levels, strict=True)
        ]
        rate = float(np.average(rates, weights=sizes)) if rates else 0.0
        self.lambda_ = float(np.clip(rate * candidates / max(total_pairs, 1.0), 1e-12, 0.5))
        return self

    @staticmethod
    def _start(n: int) -> Floats:
        raw = np.arange(1, n + 1, dtype=float) ** 2
        out: Floats = raw / raw.sum()
        return out

    def _em(self, gamma: Levels) -> tuple[list[Floats], float]:
        self.m_ = [self._start(n) for n in self.n_levels]
        lam = 0.1
        for _ in range(self.max_iter):
            p = self._posterior(gamma, lam)
            new_m = []
            for k, n in enumerate(self.n_levels):
                col = gamma[:, k]
                seen = col >= 0
                prior = self.prior_strength * max(p.sum(), 1.0) * self._start(n)
                weights = np.bincount(col[seen], weights=p[seen], minlength=n) + prior
                new_m.append(weights / weights.sum())
            new_lam = float(np.clip(p.mean(), 1e-6, self.max_lambda))
            change = max(
                abs(new_lam - lam),
                max(float(np.abs(a - b).max()) for a, b in zip(new_m, self.m_, strict=True)),
            )
            self.m_, lam = new_m, new_lam
            self.iterations_ += 1
            if change < self.tol:
                break
        return self.m_, lam

    def log2_bayes_factor(self, gamma: Levels) -> Floats:
        """Match weight of each pair: sum over comparisons of log2(m/u); missing adds 0."""
        total = np.zeros(len(gamma))
        for k in range(len(self.n_levels)):
            col = gamma[:, k]
            ratio = np.log2(self.m_[k]) - np.log2(self.u_[k])
            total += np.where(col >= 0, ratio[np.maximum(col, 0)], 0.0)
        return total

    def _posterior(self, gamma: Levels, lam: float) -> Floats:
        prior = np.log2(lam) - np.log2(1 - lam)
        weight = prior + self.log2_bayes_factor(gamma)
        out: Floats = 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60)))
        return out

    def predict(self, gamma: Levels) -> Floats:
        """Match probability of each pair."""
        return self._posterior(gamma, self.lambda_)
