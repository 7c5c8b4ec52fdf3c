"""A per-source token bucket for the tracking API (in process memory).

Each source may make ``rate`` requests per second with bursts of ``burst``; past that the API
answers 429 with the number of seconds to wait in ``Retry-After``, which Segment's libraries
honour. The buckets live in one server process: with several processes each enforces the limit
on its own share of the traffic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by source id."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int:
        """Take one token for ``key``: 0 if allowed, else the whole seconds to wait."""
        if self.rate <= 0:
            return 0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
