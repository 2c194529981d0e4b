"""The EndpointSlice controller (``endpointslice-controller``, ``pkg/controller/endpointslice``).

For each Service with a selector, ``sync(key)`` keeps the Service's EndpointSlices
(labels ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by:
endpointslice-controller.k8s.io``, a controller reference to the Service, at most
``max_endpoints_per_slice`` endpoints each, addressType IPv4) in line with its pods; the
plan comes from :func:`~controlplane.controllers.endpointslice_reconciler.reconcile_slices`,
which reuses and fills existing slices rather than rewriting them.

Unlike Endpoints, slices keep terminating pods, with ``ready: false``,
``serving: <readiness>`` and ``terminating: true``. A deleted Service's slices go with
it through the garbage collector (their owner reference), as in Kubernetes.

**Stale cache.** Slices are created with ``generateName``, so a sync that read a cache
missing its own last writes would create duplicates. Like Kubernetes'
``EndpointSliceTracker``, the controller remembers the resourceVersion of every slice it
wrote (and the slices it deleted); a sync that finds the cache behind writes nothing
and waits: the slice event that brings the cache up to date queues the Service again.
Slice events that only echo the controller's own writes queue nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import trio

from controlplane import errors
from controlplane.api import core
from controlplane.api.discovery import LABEL_MANAGED_BY, LABEL_SERVICE_NAME, EndpointSlice
from controlplane.api.meta import object_key
from controlplane.controllers.endpoints import (
    UNRESOLVED_PORT_REASON,
    PodServiceMapper,
    service_selector,
)
from controlplane.controllers.endpoints_decisions import (
    manages_endpoints,
    should_pod_be_in_endpoints,
    unresolved_message,
    unresolved_ports,
)
from controlplane.controllers.endpointslice_reconciler import (
    CONTROLLER_NAME,
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    reconcile_slices,
)
from controlplane.controllers.framework import ControllerContext

__all__ = ["SERVICE_INDEX", "EndpointSliceController", "SliceTracker", "endpointslice_controller"]

#: ``namespace/service`` → the slices this controller manages for that Service.
SERVICE_INDEX = "endpointslice_service"
#: Node label giving an endpoint's zone.
ZONE_LABEL = "topology.kubernetes.io/zone"

_DELETION_EXPECTED = -1


def _service_key(slice_: EndpointSlice) -> str | None:
    labels = slice_.metadata.labels
    name = labels.get(LABEL_SERVICE_NAME)
    if not name or labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME:
        return None
    return f"{slice_.metadata.namespace}/{name}"


def _service_index(slice_: EndpointSlice) -> Iterable[str]:
    key = _service_key(slice_)
    return (key,) if key is not None else ()


def _rv(obj: Any) -> int:
    return int(obj.metadata.resource_version or 0)


class SliceTracker:
    """The resourceVersions of the slices the controller wrote, per Service
    (``EndpointSliceTracker``, keyed by resourceVersion instead of generation)."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def written(self, key: str, slice_: EndpointSlice) -> None:
        self._by_service.setdefault(key, {})[slice_.metadata.uid] = _rv(slice_)

    def expect_deletion(self, key: str, slice_: EndpointSlice) -> None:
        self._by_service.setdefault(key, {})[slice_.metadata.uid] = _DELETION_EXPECTED

    def own_echo(self, key: str, slice_: EndpointSlice) -> bool:
        """Whether the event of ``slice_`` reports nothing newer than our own write."""
        tracked = self._by_service.get(key, {}).get(slice_.metadata.uid)
        return tracked is not None and tracked != _DELETION_EXPECTED and _rv(slice_) <= tracked

    def deleted(self, key: str, slice_: EndpointSlice) -> bool:
        """Forget a deleted slice; True if the deletion was the controller's own."""
        tracked = self._by_service.get(key, {}).pop(slice_.metadata.uid, None)
        return tracked == _DELETION_EXPECTED

    def stale(self, key: str, cached: Iterable[EndpointSlice]) -> bool:
        """Whether ``cached`` (the informer's slices of the Service) lags our writes."""
        tracked = self._by_service.get(key)
        if not tracked:
            return False
        seen = set()
        for slice_ in cached:
            seen.add(slice_.metadata.uid)
            rv = tracked.get(slice_.metadata.uid)
            if rv is not None and (rv == _DELETION_EXPECTED or rv > _rv(slice_)):
                return True
        return any(rv != _DELETION_EXPECTED and uid not in seen for uid, rv in tracked.items())

    def forget_service(self, key: str) -> None:
        self._by_service.pop(key, None)


class EndpointSliceController:
    """Keeps the EndpointSlices of every Service with a selector."""

    name = "endpointslice-controller"

    def __init__(
        self,
        context: ControllerContext,
        *,
        max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        if max_endpoints_per_slice < 1:
            raise ValueError(f"max_endpoints_per_slice must be positive: {max_endpoints_per_slice}")
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self.tracker = SliceTracker()
        #: Services whose last sync found the slice cache behind our writes.
        self._waiting: set[str] = set()
        self._reported: dict[str, tuple[tuple[str, str], ...]] = {}
        self._services = context.informers.informer("Service")
        self._services.add_event_handler(
            self._service_added, self._service_updated, self._service_deleted
        )
        self._pods = context.informers.informer("Pod")
        mapper = PodServiceMapper(self._services, self._queue.add)
        self._pods.add_event_handler(mapper.added, mapper.updated, mapper.deleted)
        self._nodes = context.informers.informer("Node")
        self._slices = context.informers.informer(
            "EndpointSlice", indexers={SERVICE_INDEX: _service_index}
        )
        self._slices.add_event_handler(self._slice_added, self._slice_updated, self._slice_deleted)

    # -- handlers ---------------------------------------------------------------------

    def _service_added(self, service: core.Service) -> None:
        self._queue.add(object_key(service))

    def _service_updated(self, old: core.Service, new: core.Service) -> None:
        self._queue.add(object_key(new))

    def _service_deleted(self, service: core.Service) -> None:
        key = object_key(service)
        self.tracker.forget_service(key)
        self._queue.add(key)

    def _slice_added(self, slice_: EndpointSlice) -> None:
        key = _service_key(slice_)
        if key is not None and (key in self._waiting or not self.tracker.own_echo(key, slice_)):
            self._queue.add(key)

    def _slice_updated(self, old: EndpointSlice, new: EndpointSlice) -> None:
        old_key = _service_key(old)
        if old_key is not None and old_key != _service_key(new):
            self._queue.add(old_key)
        self._slice_added(new)

    def _slice_deleted(self, slice_: EndpointSlice) -> None:
        key = _service_key(slice_)
        if key is None:
            return
        own = self.tracker.deleted(key, slice_)
        if key in self._waiting or not own:
            self._queue.add(key)

    # -- sync -------------------------------------------------------------------------

    def _zone_of(self, node_name: str) -> str | None:
        node = self._nodes.cache.get_by_key(node_name) if node_name else None
        return node.metadata.labels.get(ZONE_LABEL) if node is not None else None

    async def sync(self, key: str) -> float | None:
        service = self._services.cache.get_by_key(key)
        if service is None or not manages_endpoints(service):
            # A deleted Service's slices go with it (garbage collector, owner reference);
            # a selector-less Service's slices are the user's.
            self._reported.pop(key, None)
            self._waiting.discard(key)
            await trio.lowlevel.checkpoint()
            return None
        existing = self._slices.cache.by_index(SERVICE_INDEX, key)
        if self.tracker.stale(key, existing):
            self._waiting.add(key)
            self._log.debug("endpointslice_cache_stale", key=key)
            await trio.lowlevel.checkpoint()
            return None
        self._waiting.discard(key)
        namespace = service.metadata.namespace
        pods = self._pods.cache.list(namespace, service_selector(service))
        self._report_unresolved(key, service, pods)
        plan = reconcile_slices(
            service,
            pods,
            existing,
            zone_of=self._zone_of,
            max_endpoints_per_slice=self.max_endpoints_per_slice,
        )
        if plan.empty:
            await trio.lowlevel.checkpoint()
            return None
        try:
            await self._apply(key, service, plan)
        except errors.ApiError as exc:
            if not (isinstance(exc, errors.Forbidden) and "being terminated" in str(exc)):
                meta = service.metadata
                self._events.record(
                    service,
                    "Warning",
                    "FailedToUpdateEndpointSlices",
                    f"Error updating Endpoint Slices for Service {meta.namespace}/{meta.name}:"
                    f" {exc}",
                )
                raise
        return None

    async def _apply(self, key: str, service: Any, plan: SlicePlan) -> None:
        """Creates (not for a Service being deleted), then updates, then deletes."""
        if service.metadata.deletion_timestamp is None:
            for slice_ in plan.create:
                self.tracker.written(key, await self._client.create(slice_))
        for slice_ in plan.update:
            self.tracker.written(key, await self._client.update(slice_))
        for slice_ in plan.delete:
            meta = slice_.metadata
            try:
                await self._client.delete("EndpointSlice", meta.name, namespace=meta.namespace)
            except errors.NotFound:
                continue
            self.tracker.expect_deletion(key, slice_)
        self._log.debug(
            "endpointslices_written",
            key=key,
            created=len(plan.create),
            updated=len(plan.update),
            deleted=len(plan.delete),
        )

    def _report_unresolved(self, key: str, service: Any, pods: list[Any]) -> None:
        included = [p for p in pods if should_pod_be_in_endpoints(p, include_terminating=True)]
        unresolved = unresolved_ports(service, included)
        if unresolved and self._reported.get(key) != unresolved:
            message = unresolved_message(service, unresolved)
            self._events.record(service, "Warning", UNRESOLVED_PORT_REASON, message)
        if unresolved:
            self._reported[key] = unresolved
        else:
            self._reported.pop(key, None)


def endpointslice_controller(
    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
) -> Callable[[ControllerContext], EndpointSliceController]:
    """A factory with ``--max-endpoints-per-slice`` set (default 100)."""

    def factory(context: ControllerContext) -> EndpointSliceController:
        return EndpointSliceController(context, max_endpoints_per_slice=max_endpoints_per_slice)

    return factory
