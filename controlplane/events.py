"""``EventRecorder``: core/v1 Events about objects, aggregated, rate-limited, batched.

One recorder serves every component (scheduler, kubelets, controllers), as client-go's
``record`` package does:

- :meth:`EventRecorder.record` is sync and cheap: it queues the event. A component's
  control loop never waits on an event write, and an apiserver refusing events (chaos,
  quota) cannot stop it;
- an event identical to an earlier one for the same object (type, reason, message, field
  path) is not created again: the earlier Event's ``count`` and ``lastTimestamp`` are
  updated (client-go's ``EventCorrelator``). Identical events queued before a flush are
  folded into one write;
- a spam filter caps the writes per object: a bucket of 25, refilled one per 5 minutes
  (so a pod crash-looping for a day costs a few hundred writes, not thousands);
- remembered events are bounded (an LRU of 4096, as client-go's cache);
- a write failing with a transient error (TooManyRequests, Timeout, Conflict) is retried
  at the next flush, up to 12 tries (client-go's ``maxTriesPerEvent``); any other API
  error drops the event (events are best effort) with a log line.

Names are ``<object name>.<16 hex digits>`` drawn from the owner's seeded RNG. Kubernetes
uses the hex Unix nanoseconds of the first occurrence; in virtual time several events for
one object share a nanosecond (Pulled, Created and Started of a container), so a time
name would collide and cost a failed write each time.

Two ways to flush. A component with its own work queue passes ``on_pending`` (called once
each time the queue goes from empty to non-empty) and calls :meth:`flush` from its worker
(the kubelet). Others run :meth:`run` in their nursery: it flushes whenever something is
queued, waits ``RETRY_DELAY`` before retrying transient failures, and, with a
``tracker``, counts queued events as outstanding work, so ``cluster.settle()`` returns
only once they are written.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.core import Event, EventSource, ObjectReference
from controlplane.api.meta import ObjectMeta
from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkTrackerLike
from controlplane.clock import to_wall

__all__ = ["EventRecorder", "EventRecorderStatistics", "SpamFilter"]

log = structlog.get_logger(__name__)

CACHE_SIZE = 4096
#: Recent ``involvedObject`` references, for sharing (oldest dropped first).
REF_CACHE_SIZE = 256
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
#: client-go's ``maxTriesPerEvent``.
MAX_TRIES = 12
#: Wait before retrying transient failures (:meth:`EventRecorder.run`).
RETRY_DELAY = 1.0
TRANSIENT = (errors.TooManyRequests, errors.Timeout, errors.Conflict)


class SpamFilter:
    """A token bucket per object: ``burst`` writes, one more every ``refill`` seconds."""

    def __init__(self, burst: int = SPAM_BURST, refill: float = SPAM_REFILL_SECONDS) -> None:
        self._burst = burst
        self._refill = refill
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        tokens, at = self._buckets.pop(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) / self._refill)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > CACHE_SIZE:
            self._buckets.popitem(last=False)
        return allowed


#: What makes two events "the same" (client-go's aggregation key): ``(uid, type, reason,
#: message, field_path)``. A plain tuple of strings: cheap to build and hash, and the
#: cyclic GC stops tracking it (thousands are remembered per node).
_Key = tuple[str, str, str, str, str]


@attrs.define
class _Pending:
    ref: ObjectReference
    count: int
    first: float
    last: float
    action: str | None
    tries: int = 0


@attrs.frozen
class EventRecorderStatistics:
    """Counters since the recorder was built: Events created, Events updated (a repeat),
    write attempts that will be retried, events dropped (spam filter, out of tries, or a
    non-transient error), and events queued now."""

    created: int
    updated: int
    retries: int
    dropped: int
    pending: int


class EventRecorder:
    """Records Events as ``component`` (``source.component``, ``reportingComponent``).

    Args:
        client: where Events are written.
        component: ``"default-scheduler"``, ``"kubelet"``, ``"replicaset-controller"`` ...
        rng: names new Events, deterministically (the owner's seeded RNG).
        host: the node, for a kubelet (``source.host``, ``reportingInstance``).
        on_pending: see the module docstring; without it, run :meth:`run`.
        tracker: with :meth:`run`, counts queued events as outstanding work.
        enabled: False drops every event (for benchmarks).
    """

    def __init__(
        self,
        client: Client,
        *,
        component: str,
        rng: random.Random,
        host: str | None = None,
        on_pending: Callable[[], None] | None = None,
        tracker: WorkTrackerLike | None = None,
        enabled: bool = True,
    ) -> None:
        self._client = client
        self.component = component
        self._host = host
        self._rng = rng
        self._on_pending = on_pending
        self._tracker = tracker
        self._enabled = enabled
        self._pending: dict[_Key, _Pending] = {}
        self._written: OrderedDict[_Key, Event] = OrderedDict()
        self._spam = SpamFilter()
        # Shared by every Event this recorder writes (frozen values).
        self._source = EventSource(component=component, host=host)
        self._refs: dict[tuple[Any, ...], ObjectReference] = {}
        self._log = log.bind(component=component, **({"node": host} if host else {}))
        self._wakeup = trio.Event()
        self._tracked = False
        self._created = 0
        self._updated = 0
        self._retries = 0
        self._dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def statistics(self) -> EventRecorderStatistics:
        return EventRecorderStatistics(
            created=self._created,
            updated=self._updated,
            retries=self._retries,
            dropped=self._dropped,
            pending=len(self._pending),
        )

    def record(
        self,
        obj: Any,
        type_: str,
        reason: str,
        message: str,
        *,
        field_path: str | None = None,
        action: str | None = None,
    ) -> None:
        """Queue an event about ``obj`` (any stored object). Does not block."""
        if not self._enabled:
            return
        meta = obj.metadata
        now = trio.current_time()
        key = (
            meta.uid or f"{meta.namespace}/{meta.name}",
            type_,
            reason,
            message,
            field_path or "",
        )
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1
            pending.last = now
            return
        was_empty = not self._pending
        self._pending[key] = _Pending(self._ref(obj, field_path), 1, now, now, action)
        if was_empty:
            self._became_pending()

    def _became_pending(self) -> None:
        if self._on_pending is not None:
            self._on_pending()
            return
        if self._tracker is not None and not self._tracked:
            self._tracker.add()
            self._tracked = True
        self._wakeup.set()

    def _ref(self, obj: Any, field_path: str | None) -> ObjectReference:
        """The ``involvedObject`` for an event about ``obj``, shared by the events about
        the same version of the same object and field (Pulled, Created and Started of a
        container: one frozen reference, not three)."""
        meta = obj.metadata
        cls = type(obj)
        resource_version = meta.resource_version or None
        key = (meta.uid, resource_version, field_path, cls.kind, meta.name, meta.namespace)
        refs = self._refs
        ref = refs.get(key)
        if ref is None:
            if len(refs) >= REF_CACHE_SIZE:
                del refs[next(iter(refs))]
            ref = refs[key] = ObjectReference(
                kind=cls.kind,
                namespace=meta.namespace or None,
                name=meta.name,
                uid=meta.uid or None,
                api_version=cls.api_version,
                resource_version=resource_version,
                field_path=field_path,
            )
        return ref

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush whenever something is queued, until cancelled (the module docstring)."""
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                if await self.flush():
                    await trio.sleep(RETRY_DELAY)
                    self._wakeup.set()
                elif self._tracked and not self._pending:
                    self._tracked = False
                    assert self._tracker is not None
                    self._tracker.done()
        finally:
            if self._tracked:
                self._tracked = False
                assert self._tracker is not None
                self._tracker.done()

    async def flush(self) -> bool:
        """Write every queued event; return True if some are left queued for a retry."""
        retry = False
        batch, self._pending = self._pending, {}
        for key, pending in batch.items():
            if not pending.tries and not self._spam.allow(key[0], pending.last):
                self._dropped += 1
                self._log.debug("event_dropped_spam", reason=key[2], uid=key[0])
                continue
            pending.tries += 1
            try:
                await self._write(key, pending)
            except TRANSIENT as exc:
                if pending.tries >= MAX_TRIES:
                    self._dropped += 1
                    self._log.info("event_dropped", reason=key[2], tries=pending.tries)
                    continue
                self._retries += 1
                self._log.debug("event_write_retry", reason=key[2], error=str(exc))
                self._requeue(key, pending)
                retry = True
            except errors.ApiError as exc:
                # NotFound (namespace gone), Forbidden (terminating namespace)...
                self._dropped += 1
                self._log.info("event_write_failed", reason=key[2], error=str(exc))
        return retry

    async def flush_or_reschedule(self) -> None:
        """:meth:`flush`; whatever must be retried stays queued and the owner is asked to
        flush again (``on_pending``, or :meth:`run`'s loop)."""
        if await self.flush():
            self._became_pending()

    def _requeue(self, key: _Key, pending: _Pending) -> None:
        queued = self._pending.get(key)
        if queued is None:
            self._pending[key] = pending
        else:
            queued.count += pending.count
            queued.first = min(queued.first, pending.first)
            queued.tries = max(queued.tries, pending.tries)

    async def _write(self, key: _Key, pending: _Pending) -> None:
        previous = self._written.pop(key, None)
        if previous is not None:
            updated = attrs.evolve(
                previous,
                metadata=attrs.evolve(previous.metadata, resource_version=""),
                count=(previous.count or 1) + pending.count,
                last_timestamp=to_wall(pending.last),
            )
            try:
                stored = await self._client.update(updated)
            except errors.NotFound:
                stored = None
            if stored is not None:
                self._updated += 1
                self._remember(key, stored)
                return
        ref = pending.ref
        _, type_, reason, message, _ = key
        event = Event(
            metadata=ObjectMeta(
                name=f"{ref.name}.{self._rng.getrandbits(64):016x}",
                namespace=ref.namespace or "default",
            ),
            involved_object=ref,
            reason=reason,
            message=message,
            source=self._source,
            first_timestamp=to_wall(pending.first),
            last_timestamp=to_wall(pending.last),
            count=pending.count,
            type=type_,
            action=pending.action,
            reporting_component=self.component,
            reporting_instance=self._host,
        )
        self._remember(key, await self._client.create(event))
        self._created += 1

    def _remember(self, key: _Key, event: Event) -> None:
        self._written[key] = event
        if len(self._written) > CACHE_SIZE:
            self._written.popitem(last=False)
