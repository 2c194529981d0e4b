"""Rate limiters and backoff for work queues and reflectors: pure, sync, clock passed in.

These follow client-go's ``util/workqueue/default_rate_limiters.go`` and the reflector's
``wait.ExponentialBackoffManager``. Nothing here reads a clock: every method that depends
on time takes ``now`` (trio time, seconds), so the maths is testable without trio and runs
unchanged under ``MockClock``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "default_controller_rate_limiter",
]


class RateLimiter(Protocol):
    """Decides how long a key must wait before it is retried.

    ``when`` records one more failure of ``key`` and returns the delay in seconds;
    ``forget`` clears the key's history (call it when the key was handled successfully);
    ``num_requeues`` is how many failures are on record.
    """

    def when(self, key: Hashable, now: float) -> float: ...

    def forget(self, key: Hashable) -> None: ...

    def num_requeues(self, key: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """Per-key exponential backoff: ``base * 2**failures``, capped at ``max_delay``.

    With the defaults (5 ms, 1000 s) the delays are 5 ms, 10 ms, 20 ms, ... and reach the
    cap at the 19th consecutive failure. ``now`` is ignored.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must be >= 0")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable, now: float = 0.0) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        # 2**exp overflows a float long after the cap; stop doubling once past it.
        if exp >= 1024:
            return self.max_delay
        return min(self.base_delay * (2**exp), self.max_delay)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """An overall token bucket (golang ``rate.Limiter``'s ``Reserve().Delay()``).

    The bucket starts full with ``burst`` tokens and refills at ``qps`` tokens per second.
    Each ``when`` takes a token, going into debt when the bucket is empty; the delay is the
    time until that debt is repaid. Keys are not tracked: ``num_requeues`` is 0.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def when(self, key: Hashable, now: float) -> float:
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        if self._last is None or now > self._last:
            self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Hashable) -> None:
        pass

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of ``limiters`` asks for (each one is consulted every time)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, key: Hashable, now: float) -> float:
        return max(limiter.when(key, now) for limiter in self.limiters)

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter() -> MaxOfRateLimiter:
    """client-go's ``DefaultControllerRateLimiter``: per key 5 ms doubling to 1000 s, and
    overall 10 qps with a burst of 100, whichever is longer."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(qps=10.0, burst=100),
    )
