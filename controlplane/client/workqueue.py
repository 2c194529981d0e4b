"""A de-duplicating, delaying, rate-limited work queue (client-go ``util/workqueue``), on trio.

Semantics (client-go ``queue.go``):

- *dirty* set, *processing* set and a FIFO: ``add`` of a key that is already queued is a
  no-op; a key handed out by ``get`` is in *processing* until ``done``; a key re-added
  while it is processing is not handed to a second worker but queued again when
  ``done(key)`` is called. So one key is never worked on by two workers at once, and a
  change that arrives mid-reconcile is never lost.
- ``add_after(key, seconds)`` parks a key in a heap of deadlines; ONE timer task per queue
  (run by ``run()`` or ``open_work_queue()``) moves due keys into the queue. A key parked
  twice keeps the earlier deadline.
- ``add_rate_limited(key)`` is ``add_after(key, limiter.when(key, now))``; ``forget(key)``
  ends a key's retry history; ``num_requeues(key)`` reads it.

Work accounting: with a ``tracker`` (``actors.WorkTracker`` or anything with ``add(n)`` /
``done(n)``), the queue reports its outstanding work, i.e. the number of distinct keys
that are queued or processing (delayed keys are not counted until they are due): a new key
→ ``add(1)``; ``done`` of a key that is not queued again → ``done(1)``; ``shut_down``
releases everything still counted. The harness's ``cluster.settle()`` waits on this.

Shutdown differs from client-go's on purpose: ``shut_down`` drops the queued and delayed
keys (the owner is stopping; a restarted controller re-lists and re-enqueues everything,
since controllers are level-triggered) and every ``get`` raises ``ShutDown`` from then on.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeVar

import attrs
import structlog
import trio

from controlplane.client.ratelimit import RateLimiter, default_controller_rate_limiter

__all__ = ["ShutDown", "WorkQueue", "WorkQueueStatistics", "WorkTrackerLike", "open_work_queue"]

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The work queue was shut down: ``get`` will never return another key."""


class WorkTrackerLike(Protocol):
    """The part of ``actors.WorkTracker`` the queue and informers use."""

    def add(self, n: int = 1) -> None: ...

    def done(self, n: int = 1) -> None: ...


@attrs.frozen
class WorkQueueStatistics:
    """A snapshot of a work queue.

    ``depth``: keys waiting for a worker; ``processing``: keys handed out and not yet done;
    ``delayed``: keys parked by ``add_after``/``add_rate_limited``; ``adds``: ``add`` calls
    that queued a key (de-duplicated adds are not counted); ``retries``:
    ``add_rate_limited`` calls; ``waiting_getters``: tasks blocked in ``get``.
    """

    depth: int
    processing: int
    delayed: int
    adds: int
    retries: int
    waiting_getters: int
    shutting_down: bool


class WorkQueue(Generic[K]):
    """A de-duplicating FIFO of keys with a processing set, delays and rate limiting.

    Args:
        rate_limiter: decides ``add_rate_limited`` delays; defaults to
            :func:`~controlplane.client.ratelimit.default_controller_rate_limiter`.
        tracker: optional work counter (see the module docstring).
        name: for logs and statistics only.

    ``add``/``done``/``forget`` are sync and never block; ``get`` waits for a key. Delays need
    the queue's timer task: ``await nursery.start(queue.run)`` or ``open_work_queue()``.
    Without it, ``add_after`` keys wait until ``run`` starts.
    """

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        tracker: WorkTrackerLike | None = None,
        name: str = "",
    ) -> None:
        self.name = name
        self._limiter = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        )
        self._tracker = tracker
        self._queue: deque[K] = deque()
        # dicts as insertion-ordered sets: nothing here iterates a set of strings, so
        # behaviour never depends on PYTHONHASHSEED.
        self._dirty: dict[K, None] = {}
        self._processing: dict[K, None] = {}
        self._shutting_down = False
        self._getters = trio.lowlevel.ParkingLot()
        # Delayed keys: key -> earliest deadline, plus a heap with lazy deletion.
        self._waiting: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0
        self._timer_scope: trio.CancelScope | None = None
        self._running = False
        self._tracked = 0  # what we have reported to the tracker and not yet released
        self._adds = 0
        self._retries = 0
        self._log = log.bind(component="workqueue", queue=name)

    # -- the basic queue -------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is queued already (a no-op after ``shut_down``).

        If ``key`` is being processed it is marked dirty and queued again by ``done``.
        """
        if self._shutting_down or key in self._dirty:
            return
        self._dirty[key] = None
        self._adds += 1
        if key in self._processing:
            return  # already counted as outstanding; done() will queue it again
        self._track(1)
        self._queue.append(key)
        self._getters.unpark()

    def get_nowait(self) -> K:
        """Take the next key and mark it processing.

        Raises:
            ShutDown: the queue was shut down.
            trio.WouldBlock: no key is queued.
        """
        if self._shutting_down:
            raise ShutDown(f"work queue {self.name!r} is shut down")
        if not self._queue:
            raise trio.WouldBlock
        key = self._queue.popleft()
        del self._dirty[key]
        self._processing[key] = None
        return key

    async def get(self) -> K:
        """Wait for the next key and mark it processing; call ``done(key)`` when finished.

        Raises:
            ShutDown: the queue was shut down (also wakes tasks already waiting).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                key = self.get_nowait()
            except trio.WouldBlock:
                await self._getters.park()
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return key

    def done(self, key: K) -> None:
        """Finish processing ``key``; if it was re-added meanwhile, queue it again.

        Raises:
            ValueError: ``key`` is not being processed.
        """
        try:
            del self._processing[key]
        except KeyError:
            raise ValueError(f"work queue {self.name!r}: {key!r} is not processing") from None
        if key in self._dirty:
            self._queue.append(key)
            self._getters.unpark()
        else:
            self._release(1)

    def __len__(self) -> int:
        """The number of queued keys (not processing, not delayed)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def shut_down(self) -> None:
        """Stop the queue: drop queued and delayed keys, wake every ``get`` with ``ShutDown``,
        stop the timer task, and release the work reported to the tracker. Idempotent.

        Keys still processing may be passed to ``done`` afterwards (nothing is re-queued).
        """
        if self._shutting_down:
            return
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._waiting.clear()
        self._heap.clear()
        self._release(self._tracked)
        self._getters.unpark_all()
        if self._timer_scope is not None:
            self._timer_scope.cancel()
        self._log.debug("workqueue_shut_down", processing=len(self._processing))

    # -- delays ----------------------------------------------------------------------

    def add_after(self, key: K, seconds: float) -> None:
        """Queue ``key`` after ``seconds`` of trio time (now if ``seconds <= 0``).

        A key already waiting keeps the earlier of the two deadlines. Must be called from
        inside trio (it reads ``trio.current_time()``).
        """
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        deadline = trio.current_time() + seconds
        current = self._waiting.get(key)
        if current is not None and current <= deadline:
            return
        self._waiting[key] = deadline
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, key))
        scope = self._timer_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def _move_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._waiting.get(key) != deadline:
                continue  # superseded by an earlier deadline for the same key
            del self._waiting[key]
            self.add(key)

    def _next_deadline(self) -> float:
        heap = self._heap
        while heap and self._waiting.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else float("inf")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the queue's timer: move delayed keys into the queue when they are due.

        Returns after ``shut_down``; runs until then (or until cancelled). Only one ``run``
        per queue. Calls ``task_status.started()`` at once.

        Raises:
            RuntimeError: the timer is already running.
        """
        if self._running:
            raise RuntimeError(f"work queue {self.name!r} timer is already running")
        self._running = True
        try:
            task_status.started()
            while not self._shutting_down:
                self._move_due(trio.current_time())
                with trio.CancelScope(deadline=self._next_deadline()) as scope:
                    self._timer_scope = scope
                    await trio.sleep_forever()
                self._timer_scope = None
        finally:
            self._timer_scope = None
            self._running = False

    # -- rate limiting ---------------------------------------------------------------

    def add_rate_limited(self, key: K) -> None:
        """Queue ``key`` after the rate limiter's delay (one more failure on record)."""
        if self._shutting_down:
            return
        self._retries += 1
        self.add_after(key, self._limiter.when(key, trio.current_time()))

    def forget(self, key: K) -> None:
        """Clear ``key``'s failure history (it does not remove the key from the queue)."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        """How many rate-limited re-adds of ``key`` are on record since the last ``forget``."""
        return self._limiter.num_requeues(key)

    # -- accounting ------------------------------------------------------------------

    def _track(self, n: int) -> None:
        self._tracked += n
        if self._tracker is not None:
            self._tracker.add(n)

    def _release(self, n: int) -> None:
        # After shut_down everything was released at once: later done()s report nothing.
        n = min(n, self._tracked)
        if n <= 0:
            return
        self._tracked -= n
        if self._tracker is not None:
            self._tracker.done(n)

    def statistics(self) -> WorkQueueStatistics:
        return WorkQueueStatistics(
            depth=len(self._queue),
            processing=len(self._processing),
            delayed=len(self._waiting),
            adds=self._adds,
            retries=self._retries,
            waiting_getters=self._getters.statistics().tasks_waiting,
            shutting_down=self._shutting_down,
        )


@asynccontextmanager
async def open_work_queue(
    *,
    rate_limiter: RateLimiter | None = None,
    tracker: WorkTrackerLike | None = None,
    name: str = "",
) -> AsyncIterator[WorkQueue]:
    """A work queue whose timer runs in a nursery owned by this context manager.

    On exit the queue is shut down (waking every ``get`` with ``ShutDown``) and the timer
    task is awaited.
    """
    queue: WorkQueue = WorkQueue(rate_limiter=rate_limiter, tracker=tracker, name=name)
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        try:
            yield queue
        finally:
            queue.shut_down()
