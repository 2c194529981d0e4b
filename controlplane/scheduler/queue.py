"""The scheduling queue: active, backoff and unschedulable sub-queues (``PriorityQueue``
in ``pkg/scheduler/backend/queue``), sans-IO: every method takes ``now`` (trio time) and
nothing here sleeps; the scheduler actor waits until :meth:`next_deadline`.

- **active**: ordered by priority (higher first; ``spec.priority`` absent counts as 0),
  then by the time the pod was (re)queued, then FIFO (``PrioritySort``).
- **backoff**: pods that failed wait ``initial * 2**(attempts - 1)`` seconds, capped at
  ``maximum`` (1 s doubling to 10 s), counted from the failure, before going back to
  active. Attempts count every time a pod is popped.
- **unschedulable**: pods no node fits wait for a cluster change that could help
  (:meth:`move_all`: a node added or changed, an assigned pod deleted), or for 5 minutes
  (``podMaxInUnschedulablePodsDuration``); then they go to backoff if still backing off,
  else to active. A pod that fails while a move request arrived during its cycle goes
  straight to backoff (``moveRequestCycle``), so a change is never missed.
- a pending pod whose spec or labels change while unschedulable moves likewise; one
  updated while being scheduled ("in flight") is retried at once.

Work accounting: with a ``tracker``, active and in-flight pods count as outstanding work
(so a harness's ``settle()`` waits for them); backoff and unschedulable pods do not.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import Literal

import attrs

from controlplane.api.core_pod import Pod
from controlplane.client.workqueue import WorkTrackerLike
from controlplane.scheduler.podinfo import PodInfo

__all__ = ["QueueStatistics", "QueuedPod", "SchedulingQueue"]

Where = Literal["active", "backoff", "unschedulable", "inflight"]


@attrs.define(eq=False)
class QueuedPod:
    """The queue's record of one pending pod (mutable, private to the queue and actor)."""

    key: str
    pod: Pod
    timestamp: float
    where: Where = "active"
    attempts: int = 0
    #: bumped on every (re)insertion: heap entries with an older seq are stale
    seq: int = 0
    backoff_expiry: float = 0.0
    unschedulable_since: float = 0.0
    cycle: int = 0
    #: updated while in flight: retry at once
    dirty: bool = False
    deleted: bool = False
    _info: PodInfo | None = None

    @property
    def info(self) -> PodInfo:
        """The digested pod (computed once per pod version)."""
        info = self._info
        if info is None or info.pod is not self.pod:
            info = self._info = PodInfo.from_pod(self.pod)
        return info


@attrs.frozen
class QueueStatistics:
    active: int
    backoff: int
    unschedulable: int
    in_flight: int


def _relevant_change(old: Pod, new: Pod) -> bool:
    """Whether a pending pod changed in a way that could change where it fits (its
    status — our own PodScheduled condition, say — does not)."""
    if old.metadata.labels != new.metadata.labels:
        return True
    return old.spec is not new.spec and old.spec != new.spec


class SchedulingQueue:
    """See the module docstring.

    Args:
        initial_backoff, max_backoff: per-pod backoff (seconds).
        max_unschedulable: how long a pod may sit in unschedulable without a move.
        tracker: optional work counter.
    """

    def __init__(
        self,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable: float = 300.0,
        tracker: WorkTrackerLike | None = None,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._tracker = tracker
        self._tracked = 0
        self._entries: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._unschedulable_timeouts: list[tuple[float, int, str]] = []
        self._counts = {"active": 0, "backoff": 0, "unschedulable": 0, "inflight": 0}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._seq = 0
        self.scheduling_cycle = 0
        self.move_request_cycle = -1

    # -- reads -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def where(self, key: str) -> Where | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.where

    def statistics(self) -> QueueStatistics:
        c = self._counts
        return QueueStatistics(c["active"], c["backoff"], c["unschedulable"], c["inflight"])

    def backoff_duration(self, attempts: int) -> float:
        """``calculateBackoffDuration``: initial doubled per attempt after the first."""
        if attempts <= 1:
            return min(self.initial_backoff, self.max_backoff)
        exponent = min(attempts - 1, 64)
        return min(self.initial_backoff * (2**exponent), self.max_backoff)

    def next_deadline(self) -> float:
        """When :meth:`flush` next has something to move (``inf`` if never)."""
        deadline = math.inf
        for heap in (self._backoff, self._unschedulable_timeouts):
            while heap:
                due, seq, key = heap[0]
                entry = self._entries.get(key)
                if entry is not None and entry.seq == seq:
                    deadline = min(deadline, due)
                    break
                heapq.heappop(heap)
        return deadline

    # -- informer side ---------------------------------------------------------------

    def add(self, pod: Pod, now: float) -> None:
        """A pending pod appeared (or changed): queue it, or update what is queued."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        entry = self._entries.get(key)
        if entry is None:
            entry = QueuedPod(key=key, pod=pod, timestamp=now)
            self._entries[key] = entry
            self._counts["active"] += 1
            self._push_active(entry)
            self._sync()
            return
        old, entry.pod = entry.pod, pod
        if old.metadata.uid != pod.metadata.uid:
            entry.attempts = 0  # deleted and re-created while we were not looking
        if not _relevant_change(old, pod) and old.metadata.uid == pod.metadata.uid:
            return
        if entry.where == "inflight":
            entry.dirty = True
        elif entry.where == "unschedulable":
            self._move(entry, now)
        elif entry.where == "active":
            pass  # keeps its place; the new version is what gets scheduled
        self._sync()

    update = add

    def delete(self, key: str) -> None:
        """The pod was deleted, bound elsewhere or is terminating: stop scheduling it."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._counts[entry.where] -= 1
        self._unschedulable.pop(key, None)
        entry.deleted = True
        entry.seq = -1
        self._sync()

    def move_all(self, now: float) -> int:
        """Something changed that may make unschedulable pods fit: move them all to
        backoff (if still backing off) or active. Returns how many moved."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for entry in list(self._unschedulable.values()):
            self._move(entry, now)
            moved += 1
        if moved:
            self._sync()
        return moved

    # -- scheduler side --------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Move pods whose backoff is over to active, and pods unschedulable for too
        long to backoff/active."""
        changed = False
        for entry in self._due(self._backoff, now, "backoff"):
            self._set_where(entry, "active")
            self._push_active(entry)
            changed = True
        for entry in self._due(self._unschedulable_timeouts, now, "unschedulable"):
            self._move(entry, now)
            changed = True
        if changed:
            self._sync()

    def _due(
        self, heap: list[tuple[float, int, str]], now: float, where: str
    ) -> Iterator[QueuedPod]:
        """Pop the entries of ``heap`` due by ``now`` that are still ``where`` they were
        when pushed (a newer push of the same pod supersedes an older one)."""
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry.seq == seq and entry.where == where:
                yield entry

    def pop(self, now: float) -> QueuedPod | None:
        """The next active pod, now in flight (attempts and cycle counted), or None."""
        self.flush(now)
        heap = self._active
        while heap:
            _, _, seq, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or entry.seq != seq or entry.where != "active":
                continue
            self._set_where(entry, "inflight")
            entry.attempts += 1
            self.scheduling_cycle += 1
            entry.cycle = self.scheduling_cycle
            entry.dirty = False
            self._sync()
            return entry
        return None

    def done(self, entry: QueuedPod) -> None:
        """Scheduling ``entry`` ended for good (bound, or no longer ours)."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            self._counts[entry.where] -= 1
            self._unschedulable.pop(entry.key, None)
            self._sync()

    def requeue(self, entry: QueuedPod, now: float, *, unschedulable: bool) -> None:
        """Scheduling ``entry`` failed: no node fits (``unschedulable``) or an error."""
        if self._entries.get(entry.key) is not entry:
            return  # deleted meanwhile
        entry.timestamp = now
        entry.backoff_expiry = now + self.backoff_duration(entry.attempts)
        if entry.dirty:
            self._set_where(entry, "active")
            self._push_active(entry)
        elif unschedulable and self.move_request_cycle < entry.cycle:
            self._set_where(entry, "unschedulable")
            entry.unschedulable_since = now
            self._seq += 1
            entry.seq = self._seq
            heapq.heappush(
                self._unschedulable_timeouts,
                (now + self.max_unschedulable, entry.seq, entry.key),
            )
        else:
            self._to_backoff(entry)
        self._sync()

    # -- internals -------------------------------------------------------------------

    def _move(self, entry: QueuedPod, now: float) -> None:
        if entry.backoff_expiry > now:
            self._to_backoff(entry)
        else:
            entry.timestamp = now
            self._set_where(entry, "active")
            self._push_active(entry)

    def _to_backoff(self, entry: QueuedPod) -> None:
        self._set_where(entry, "backoff")
        self._seq += 1
        entry.seq = self._seq
        heapq.heappush(self._backoff, (entry.backoff_expiry, entry.seq, entry.key))

    def _push_active(self, entry: QueuedPod) -> None:
        self._seq += 1
        entry.seq = self._seq
        priority = entry.pod.spec.priority or 0
        heapq.heappush(self._active, (-priority, entry.timestamp, entry.seq, entry.key))

    def _set_where(self, entry: QueuedPod, where: Where) -> None:
        counts = self._counts
        counts[entry.where] -= 1
        counts[where] += 1
        if entry.where == "unschedulable":
            del self._unschedulable[entry.key]
        elif where == "unschedulable":
            self._unschedulable[entry.key] = entry
        entry.where = where

    def _sync(self) -> None:
        if self._tracker is None:
            return
        outstanding = self._counts["active"] + self._counts["inflight"]
        diff = outstanding - self._tracked
        if diff > 0:
            self._tracker.add(diff)
        elif diff < 0:
            self._tracker.done(-diff)
        self._tracked = outstanding

    def close(self) -> None:
        """Release everything reported to the tracker (the scheduler is stopping)."""
        if self._tracker is not None and self._tracked:
            self._tracker.done(self._tracked)
        self._tracked = 0
        self._tracker = None
