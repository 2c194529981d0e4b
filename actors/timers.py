"""``TimerService``: many simulated delays on one task and one heap.

A ``trio.sleep`` per delay costs a task (~2 KB, ~20 µs to spawn) and a wake-up of its own
(DESIGN.md, "Performance": ~13k wake-ups/s under MockClock with 10k sleepers). Image
pulls, probe periods and backoffs of 150,000 containers instead go through one service:
deadlines are rounded *up* to a multiple of ``resolution`` so timers due together fire in
one wake-up, in deadline order, ties in the order they were set (deterministic).

Callbacks are plain synchronous functions run on the service's task: they must not
block; to do async work they hand it to an actor (push to its queue). A callback that
raises crashes the service (it is code, not input, that is wrong), and its supervisor
reports it. Pending timers are not "work" for quiescence: what a callback queues is.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Timer", "TimerService"]


class Timer:
    """A handle to one pending callback; :meth:`cancel` it to stop it firing."""

    __slots__ = ("args", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[..., Any], args: tuple[Any, ...]):
        self.deadline = deadline
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the callback from running (idempotent; does nothing once it has run)."""
        self.cancelled = True

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "pending"
        name = getattr(self.callback, "__qualname__", self.callback)
        return f"<Timer {name!r} at {self.deadline:g} {state}>"


class TimerService:
    """Run callbacks at (quantised) trio times. Start :meth:`run` in a nursery; timers can
    be set before it starts and fire once it runs.

    Args:
      resolution: deadlines are rounded up to a multiple of this many seconds (> 0).
    """

    def __init__(self, resolution: float = 0.01) -> None:
        if not resolution > 0:
            raise ValueError(f"TimerService resolution must be > 0, got {resolution!r}")
        self._resolution = resolution
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self._sleep: trio.CancelScope | None = None

    def __len__(self) -> int:
        """Timers in the heap (cancelled ones are dropped lazily, so this is an upper
        bound on the pending ones)."""
        return len(self._heap)

    def call_at(self, deadline: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` at trio time ``deadline`` (rounded up to the
        resolution); a deadline in the past fires on the service's next wake-up."""
        res = self._resolution
        quantised = math.ceil(deadline / res - 1e-9) * res
        timer = Timer(quantised, callback, args)
        self._seq += 1
        heapq.heappush(self._heap, (quantised, self._seq, timer))
        sleep = self._sleep
        if sleep is not None and quantised < sleep.deadline:
            sleep.deadline = quantised
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` ``delay`` seconds from now (rounded up)."""
        return self.call_at(trio.current_time() + delay, callback, *args)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire timers as they come due, forever (until cancelled)."""
        heap = self._heap
        task_status.started()
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                timer = heapq.heappop(heap)[2]
                if not timer.cancelled:
                    timer.cancelled = True  # ran: a later cancel() is a no-op
                    timer.callback(*timer.args)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                try:
                    await trio.sleep_forever()
                finally:
                    self._sleep = None
