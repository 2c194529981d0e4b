"""The Endpoints controller (``endpoint-controller``, ``pkg/controller/endpoint``).

For each Service with a selector, ``sync(key)`` writes an Endpoints object named like
the Service: the addresses of the pods the selector matches in its namespace, ready
ones in ``addresses`` and the rest in ``notReadyAddresses``, per resolved port, repacked
into the fewest subsets (:func:`~controlplane.controllers.endpoints_decisions.compute_subsets`).
It writes only when the content changed, with get-modify-update: a Conflict with another
writer is retried by the framework against the refreshed cache.

- A deleted Service has its Endpoints deleted; at start-up, Endpoints left behind by a
  Service deleted while the controller was down are deleted too (``checkLeftoverEndpoints``).
- A Service without a selector (or of type ExternalName) is left alone: its Endpoints are
  the user's, written by hand.
- A deleted Endpoints object of a live Service is written again.
- A named targetPort that none of the selected pods declares leaves that port without
  endpoints and records a ``FailedToResolveTargetPort`` Warning on the Service (Kubernetes
  only logs it; an Event says why a Service has no backends where users look).

Pod events are mapped to the Services of the pod's namespace whose selector matches
(a per-namespace cache listing, not a scan of every Service); pod updates that cannot
change an endpoint (restart counts, probe timestamps) are dropped before that.
"""

from __future__ import annotations

import functools
from typing import Any

import trio

from controlplane import errors
from controlplane.api import core
from controlplane.api.core_pod import Pod
from controlplane.api.labels import Selector
from controlplane.api.meta import object_key
from controlplane.controllers.endpoints_decisions import (
    LEADER_ANNOTATION,
    compute_subsets,
    desired_endpoints,
    manages_endpoints,
    pod_endpoints_changed,
    services_selecting,
    unresolved_message,
)
from controlplane.controllers.framework import ControllerContext

__all__ = ["UNRESOLVED_PORT_REASON", "EndpointsController", "service_selector"]

#: The reason of the Warning recorded on a Service whose named targetPort no pod declares.
UNRESOLVED_PORT_REASON = "FailedToResolveTargetPort"


@functools.lru_cache(maxsize=4096)
def _selector(mapping: Any) -> Selector:
    return Selector.from_map(mapping) if mapping else Selector.nothing()


def service_selector(service: core.Service) -> Selector:
    """``spec.selector`` compiled once per distinct selector (they are frozen maps)."""
    return _selector(service.spec.selector)


class PodServiceMapper:
    """Informer handlers that turn pod events into the keys of the Services selecting
    the pod (``GetPodServiceMemberships``), for both endpoint controllers."""

    def __init__(self, services: Any, enqueue: Any) -> None:
        self._services = services
        self._enqueue = enqueue

    def keys_for(self, pod: Pod) -> list[str]:
        candidates = self._services.cache.list(pod.metadata.namespace)
        return services_selecting(pod, candidates, service_selector)

    def added(self, pod: Pod) -> None:
        for key in self.keys_for(pod):
            self._enqueue(key)

    def updated(self, old: Pod, new: Pod) -> None:
        if not pod_endpoints_changed(old, new):
            return
        keys = self.keys_for(new)
        if old.metadata.labels != new.metadata.labels:
            keys += self.keys_for(old)
        for key in dict.fromkeys(keys):
            self._enqueue(key)

    def deleted(self, pod: Pod) -> None:
        self.added(pod)


class EndpointsController:
    """Keeps an Endpoints object per Service with a selector (``endpoint-controller``)."""

    name = "endpoint-controller"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self._services = context.informers.informer("Service")
        self._services.add_event_handler(
            self._service_changed, self._service_updated, self._service_changed
        )
        self._pods = context.informers.informer("Pod")
        mapper = PodServiceMapper(self._services, self._queue.add)
        self._pods.add_event_handler(mapper.added, mapper.updated, mapper.deleted)
        self._endpoints = context.informers.informer("Endpoints")
        self._endpoints.add_event_handler(self._endpoints_added, None, self._endpoints_deleted)
        #: Until the first sync: Endpoints seen in the initial list are checked for a Service.
        self._starting = True
        #: Per service key, the unresolved named ports already reported in an Event.
        self._reported: dict[str, tuple[tuple[str, str], ...]] = {}

    # -- handlers ---------------------------------------------------------------------

    def _service_changed(self, service: core.Service) -> None:
        self._queue.add(object_key(service))

    def _service_updated(self, old: core.Service, new: core.Service) -> None:
        self._queue.add(object_key(new))

    def _endpoints_added(self, endpoints: core.Endpoints) -> None:
        # checkLeftoverEndpoints: at start-up only, so hand-written Endpoints created
        # before their Service are not deleted while the controller runs.
        if self._starting and LEADER_ANNOTATION not in endpoints.metadata.annotations:
            self._queue.add(object_key(endpoints))

    def _endpoints_deleted(self, endpoints: core.Endpoints) -> None:
        self._queue.add(object_key(endpoints))

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        self._starting = False
        namespace, _, name = key.partition("/")
        service = self._services.cache.get_by_key(key)
        if service is None:
            self._reported.pop(key, None)
            try:
                await self._client.delete("Endpoints", name, namespace=namespace)
                self._log.info("endpoints_deleted", namespace=namespace, name=name)
            except errors.NotFound:
                pass
            return None
        if not manages_endpoints(service):
            self._reported.pop(key, None)
            await trio.lowlevel.checkpoint()
            return None
        pods = self._pods.cache.list(namespace, service_selector(service))
        result = compute_subsets(service, pods)
        self._report_unresolved(key, service, result.unresolved)
        current = self._endpoints.cache.get_by_key(key)
        desired = desired_endpoints(service, current, result.subsets)
        if desired is None:
            await trio.lowlevel.checkpoint()
            return None
        await self._write(service, current, desired)
        self._log.debug(
            "endpoints_written",
            namespace=namespace,
            name=name,
            ready=result.ready,
            not_ready=result.not_ready,
        )
        return None

    async def _write(self, service: Any, current: Any, desired: core.Endpoints) -> None:
        """Create or update; on failure a Warning on the Endpoints (as Kubernetes
        records it, Conflicts included), then the error goes to the framework's retry."""
        try:
            if current is None:
                await self._client.create(desired)
            else:
                await self._client.update(desired)
        except errors.ApiError as exc:
            terminating = isinstance(exc, errors.Forbidden) and "being terminated" in str(exc)
            if current is None and terminating:
                return  # the namespace is going away: creates would keep failing
            meta = service.metadata
            if current is None:
                reason = "FailedToCreateEndpoint"
                message = (
                    f"Failed to create endpoint for service {meta.namespace}/{meta.name}: {exc}"
                )
            else:
                reason = "FailedToUpdateEndpoint"
                message = f"Failed to update endpoint {meta.namespace}/{meta.name}: {exc}"
            self._events.record(desired, "Warning", reason, message)
            raise

    def _report_unresolved(
        self, key: str, service: Any, unresolved: tuple[tuple[str, str], ...]
    ) -> None:
        if unresolved and self._reported.get(key) != unresolved:
            message = unresolved_message(service, unresolved)
            self._events.record(service, "Warning", UNRESOLVED_PORT_REASON, message)
            self._log.info("target_port_unresolved", key=key, ports=unresolved)
        if unresolved:
            self._reported[key] = unresolved
        else:
            self._reported.pop(key, None)
