"""Creating and deleting a controller's pods (client-go's ``PodControl`` + ``slowStartBatch``).

Shared by the ReplicaSet/ReplicationController and Job controllers: every write is
announced to the controller's :class:`~controlplane.controllers.expectations.Expectations`
first and taken back when it fails (a failed write is never observed), and recorded as
an Event on the owner (SuccessfulCreate / FailedCreate, SuccessfulDelete / FailedDelete,
with Kubernetes' messages). Creations go in slow-start batches and stop after the first
batch with an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from controlplane import errors
from controlplane.api.core_pod import Pod
from controlplane.client.protocol import Client
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.replication import slow_start_batches
from controlplane.events import EventRecorder

__all__ = ["PodControl"]


class PodControl:
    def __init__(self, client: Client, events: EventRecorder, expectations: Expectations) -> None:
        self._client = client
        self._events = events
        self._expectations = expectations

    async def create(
        self, key: str, owner: Any, count: int, pod_for: Callable[[int], Pod]
    ) -> tuple[int, errors.ApiError | None]:
        """Create ``count`` pods, the ``i``-th being ``pod_for(i)``; return how many were
        not created and the first error."""
        self._expectations.expect(key, adds=count)
        attempted = not_created = 0
        for size in slow_start_batches(count):
            failure: errors.ApiError | None = None
            for _ in range(size):
                pod = pod_for(attempted)
                attempted += 1
                try:
                    stored = await self._client.create(pod)
                except errors.ApiError as exc:
                    failure = failure or exc
                    not_created += 1
                    self._expectations.creation_observed(key)  # it will never be seen
                    self._events.record(owner, "Warning", "FailedCreate", f"Error creating: {exc}")
                    continue
                self._events.record(
                    owner, "Normal", "SuccessfulCreate", f"Created pod: {stored.metadata.name}"
                )
            if failure is not None:
                skipped = count - attempted
                for _ in range(skipped):  # the batches not attempted
                    self._expectations.creation_observed(key)
                return not_created + skipped, failure
        return not_created, None

    async def delete(
        self, key: str, owner: Any, pods: Sequence[Pod], *, expect: bool = True
    ) -> errors.ApiError | None:
        """Delete ``pods`` (``expect``: through the expectations); the first error. A pod
        already gone counts as deleted."""
        if expect:
            self._expectations.expect(key, deletes=tuple(p.metadata.uid for p in pods))
        failure: errors.ApiError | None = None
        for pod in pods:
            meta = pod.metadata
            try:
                await self._client.delete(
                    "Pod", meta.name, namespace=meta.namespace, preconditions_uid=meta.uid
                )
            except errors.ApiError as exc:
                if expect:
                    self._expectations.deletion_observed(key, meta.uid)
                if not isinstance(exc, errors.NotFound):
                    failure = failure or exc
                    self._events.record(owner, "Warning", "FailedDelete", f"Error deleting: {exc}")
                continue
            self._events.record(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta.name}")
        return failure
