"""An event recorder for one kubelet: aggregate, rate-limit, then write in batches.

Like client-go's ``EventRecorder`` + ``EventCorrelator``:

- an event identical to an earlier one for the same object (type, reason, message) is
  not created again: the earlier Event's ``count`` and ``lastTimestamp`` are updated;
- a spam filter caps the writes per object: a bucket of 25, refilled one per 5 minutes
  (so a pod crash-looping for a day costs a few hundred writes, not thousands);
- the remembered events are bounded (LRU of 4096, as client-go's cache).

:meth:`EventRecorder.record` is sync and cheap; it queues the event and calls
``on_pending`` (the kubelet enqueues a flush on its work queue). :meth:`flush` writes
what is queued; writes that fail with a transient store error are kept for the next
flush; others are dropped (events are best effort) and logged.
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
from controlplane.clock import to_wall

__all__ = ["EventRecorder", "SpamFilter"]

log = structlog.get_logger(__name__)

CACHE_SIZE = 4096
#: Recent ``involvedObject`` references, for sharing (oldest dropped first).
REF_CACHE_SIZE = 256
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
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


class EventRecorder:
    """Records Events about pods for one node (source component ``kubelet``).

    Args:
        client: where Events are written.
        host: the node name (``source.host``, ``reportingInstance``).
        rng: names new Events (``<pod>.<16 hex digits>``), deterministically.
        on_pending: called (sync) when something was queued and a flush is wanted.
        enabled: False drops every event (for benchmarks).
    """

    def __init__(
        self,
        client: Client,
        *,
        host: str,
        rng: random.Random,
        on_pending: Callable[[], None],
        component: str = "kubelet",
        enabled: bool = True,
    ) -> None:
        self._client = client
        self._host = host
        self._rng = rng
        self._on_pending = on_pending
        self._component = component
        self._enabled = enabled
        self._pending: dict[_Key, _Pending] = {}
        self._written: OrderedDict[_Key, Event] = OrderedDict()
        self._spam = SpamFilter()
        # Shared by every Event this recorder writes (frozen values).
        self._source = EventSource(component=component, host=host)
        self._refs: dict[tuple[Any, ...], ObjectReference] = {}
        self._log = log.bind(component=component, node=host)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(
        self, obj: Any, type_: str, reason: str, message: str, *, field_path: str | None = None
    ) -> None:
        """Queue an event about ``obj`` (a Pod or Node). Does not block."""
        if not self._enabled:
            return
        meta = obj.metadata
        now = trio.current_time()
        key = (meta.uid, type_, reason, message, field_path or "")
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1
            pending.last = now
            return
        self._pending[key] = _Pending(self._ref(obj, field_path), 1, now, now)
        self._on_pending()

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
                uid=meta.uid,
                api_version=cls.api_version,
                resource_version=resource_version,
                field_path=field_path,
            )
        return ref

    async def flush(self) -> bool:
        """Write every queued event; return True if some must be retried later."""
        retry = False
        batch, self._pending = self._pending, {}
        for key, pending in batch.items():
            if not self._spam.allow(key[0], pending.last):
                self._log.debug("event_dropped_spam", reason=key[2], uid=key[0])
                continue
            try:
                await self._write(key, pending)
            except TRANSIENT as exc:
                self._log.info("event_write_retry", reason=key[2], error=str(exc))
                self._requeue(key, pending)
                retry = True
            except errors.ApiError as exc:
                # NotFound (namespace gone), Forbidden (terminating namespace)...: events
                # are best effort.
                self._log.info("event_write_failed", reason=key[2], error=str(exc))
        return retry

    async def flush_or_reschedule(self) -> None:
        """:meth:`flush`; whatever must be retried is left queued and ``on_pending`` is
        called so the owner flushes again (with its own back-off)."""
        if await self.flush():
            self._on_pending()

    def _requeue(self, key: _Key, pending: _Pending) -> None:
        queued = self._pending.get(key)
        if queued is None:
            self._pending[key] = pending
        else:
            queued.count += pending.count
            queued.first = min(queued.first, pending.first)

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
            reporting_component=self._component,
            reporting_instance=self._host,
        )
        self._remember(key, await self._client.create(event))

    def _remember(self, key: _Key, event: Event) -> None:
        self._written[key] = event
        if len(self._written) > CACHE_SIZE:
            self._written.popitem(last=False)
