"""``EventRecorder``: core/v1 Events about pods, correlated like client-go's recorder.

An event repeated for the same object (same type, reason and message) updates the
Event already written — ``count`` + 1 and a new ``lastTimestamp`` — instead of creating
another (client-go's ``EventCorrelator``), so a pod retried every 10 s for an hour leaves
one FailedScheduling event with a count, not 360 of them. Names follow Kubernetes:
``<pod name>.<hex unix nanoseconds>`` of the (virtual) time of the first occurrence.

Events are best effort, as in Kubernetes, where the broadcaster retries a few times and
then drops: an API error writing one is logged and dropped, never raised, so an apiserver
refusing events (chaos, quota) cannot stop scheduling.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.core import Event, EventSource, ObjectReference
from controlplane.api.meta import ObjectMeta
from controlplane.client.protocol import Client
from controlplane.clock import EPOCH, to_wall

__all__ = ["EventRecorder"]

log = structlog.get_logger(__name__)

#: client-go's correlator remembers this many distinct events.
CACHE_SIZE = 4096
_EPOCH_NANOS = int(EPOCH.timestamp()) * 1_000_000_000


class EventRecorder:
    """Write Events about objects as ``component``.

    Args:
        client: where Events are written.
        component: ``source.component`` and ``reportingComponent``.
        logger: the owner's bound logger (dropped events are logged there).
    """

    def __init__(
        self,
        client: Client,
        *,
        component: str = "default-scheduler",
        logger: Any = None,
    ) -> None:
        self._client = client
        self.component = component
        self._source = EventSource(component=component)
        self._seen: OrderedDict[tuple[str, str, str, str], Event] = OrderedDict()
        self._log = logger if logger is not None else log.bind(component=component)
        #: events that could not be written (best effort, see the module docstring)
        self.dropped = 0

    async def record(
        self, obj: Any, type_: str, reason: str, message: str, *, action: str | None = None
    ) -> Event | None:
        """Record that ``reason`` happened to ``obj``; returns the stored Event, or None
        if it could not be written (see the module docstring)."""
        meta = obj.metadata
        key = (meta.uid or f"{meta.namespace}/{meta.name}", type_, reason, message)
        now = trio.current_time()
        wall = to_wall(now)
        previous = self._seen.pop(key, None)
        try:
            if previous is not None:
                try:
                    stored = await self._client.update(
                        attrs.evolve(previous, count=(previous.count or 1) + 1, last_timestamp=wall)
                    )
                except (errors.Conflict, errors.NotFound):
                    stored = await self._create(obj, type_, reason, message, action, now, wall)
            else:
                stored = await self._create(obj, type_, reason, message, action, now, wall)
        except errors.ApiError as exc:
            self.dropped += 1
            self._log.info(
                "event_dropped",
                reason=reason,
                namespace=meta.namespace,
                name=meta.name,
                error=str(exc),
            )
            return None
        self._seen[key] = stored
        if len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)
        return stored

    async def _create(
        self,
        obj: Any,
        type_: str,
        reason: str,
        message: str,
        action: str | None,
        now: float,
        wall: Any,
    ) -> Event:
        meta = obj.metadata
        nanos = _EPOCH_NANOS + round(now * 1_000_000_000)
        for _ in range(8):
            event = Event(
                metadata=ObjectMeta(name=f"{meta.name}.{nanos:x}", namespace=meta.namespace),
                involved_object=ObjectReference(
                    kind=type(obj).kind,
                    namespace=meta.namespace or None,
                    name=meta.name,
                    uid=meta.uid or None,
                    api_version=type(obj).api_version,
                    resource_version=meta.resource_version or None,
                ),
                reason=reason,
                message=message,
                source=self._source,
                first_timestamp=wall,
                last_timestamp=wall,
                count=1,
                type=type_,
                action=action,
                reporting_component=self.component,
            )
            try:
                return await self._client.create(event)
            except errors.AlreadyExists:
                nanos += 1  # two events for one object in the same virtual nanosecond
        raise errors.AlreadyExists(
            f'events "{meta.name}.{nanos:x}" already exists', kind="Event", name=meta.name
        )
