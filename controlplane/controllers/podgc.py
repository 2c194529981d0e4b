"""The pod garbage collector (``pod-garbage-collector``, ``pkg/controller/podgc``).

Every 20 s (kube-controller-manager's fixed ``gcCheckPeriod``) it
force-deletes (grace 0) pods nothing else will ever finish:

- **orphaned**: bound to a node that does not exist. A node missing from the cache is
  first quarantined for 40 s and then confirmed gone with a read from the API, so a
  node that is only slow to appear in the cache costs nobody their pods. The pod gets a
  ``DisruptionTarget`` condition (reason ``DeletionByPodGC``) first, as Kubernetes does;
- **terminated beyond the threshold**: when more than ``terminated_pod_threshold``
  (12,500) pods are Succeeded or Failed, the oldest excess ones.

The decisions are :func:`pods_to_collect`, a pure function of the pods, the nodes known
to exist and the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.api.core_pod import Pod, PodCondition
from controlplane.clock import to_wall
from controlplane.controllers.framework import ControllerContext

__all__ = ["GC_PERIOD", "QUARANTINE", "PodGarbageCollector", "pods_to_collect"]

GC_PERIOD = 20.0
QUARANTINE = 40.0
TERMINATED_POD_THRESHOLD = 12_500
GC_KEY = "@gc"


@attrs.frozen
class Collection:
    """What one pass deletes, and why."""

    orphaned: tuple[Pod, ...] = ()
    terminated: tuple[Pod, ...] = ()


def _terminal(pod: Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def pods_to_collect(pods: Iterable[Pod], existing_nodes: Set[str], threshold: int) -> Collection:
    """Orphaned pods (node not in ``existing_nodes``) and the oldest terminated pods
    beyond ``threshold`` (0 disables that part). (Kubernetes also collects unscheduled
    pods being deleted; this store removes those at once.)"""
    orphaned: list[Pod] = []
    terminated: list[Pod] = []
    for pod in pods:
        node = pod.spec.node_name
        if node and node not in existing_nodes:
            orphaned.append(pod)
        elif _terminal(pod) and pod.metadata.deletion_timestamp is None:
            terminated.append(pod)
    excess = len(terminated) - threshold if threshold > 0 else 0
    oldest = sorted(
        terminated,
        key=lambda p: (p.metadata.creation_timestamp or to_wall(0), p.metadata.name),
    )[: max(excess, 0)]
    return Collection(tuple(orphaned), tuple(oldest))


class PodGarbageCollector:
    """``pod-garbage-collector``: see the module docstring."""

    name = "pod-garbage-collector"

    def __init__(
        self,
        context: ControllerContext,
        *,
        terminated_pod_threshold: int = TERMINATED_POD_THRESHOLD,
    ) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self._threshold = terminated_pod_threshold
        self._pods = context.informers.informer("Pod")
        self._nodes = context.informers.informer("Node")
        #: node name -> when it was first seen missing
        self._missing_since: dict[str, float] = {}
        self._queue.add(GC_KEY)

    async def sync(self, key: str) -> float | None:
        now = trio.current_time()
        cached_nodes = set(self._nodes.cache.keys())
        plan = pods_to_collect(self._pods.cache, cached_nodes, self._threshold)
        confirmed = await self._confirmed_missing(
            {p.spec.node_name for p in plan.orphaned if p.spec.node_name}, now
        )
        for pod in plan.orphaned:
            if pod.spec.node_name in confirmed:
                await self._force_delete(pod, "PodGC: node no longer exists", condition=True)
        for pod in plan.terminated:
            await self._force_delete(pod, "PodGC: terminated pods over the threshold")
        return GC_PERIOD

    async def _confirmed_missing(self, missing: set[str], now: float) -> set[str]:
        """Nodes missing for at least the quarantine and absent from the API too."""
        for name in list(self._missing_since):
            if name not in missing:
                del self._missing_since[name]
        confirmed: set[str] = set()
        for name in sorted(missing):
            since = self._missing_since.setdefault(name, now)
            if now - since < QUARANTINE:
                continue
            try:
                await self._client.get("Node", name)
            except errors.NotFound:
                confirmed.add(name)
        return confirmed

    async def _force_delete(self, pod: Pod, message: str, *, condition: bool = False) -> None:
        meta = pod.metadata
        try:
            if condition:
                await self._mark(pod, message)
            await self._client.delete(
                "Pod",
                meta.name,
                namespace=meta.namespace,
                grace_period_seconds=0,
                preconditions_uid=meta.uid,
            )
        except errors.NotFound:
            return
        self._log.info("pod_collected", namespace=meta.namespace, name=meta.name, why=message)

    async def _mark(self, pod: Pod, message: str) -> Any:
        """The ``DisruptionTarget`` condition Kubernetes sets before deleting."""
        target = PodCondition(
            type="DisruptionTarget",
            status="True",
            reason="DeletionByPodGC",
            message=message,
            last_transition_time=to_wall(trio.current_time()),
        )
        kept = tuple(c for c in pod.status.conditions if c.type != "DisruptionTarget")
        status = attrs.evolve(pod.status, conditions=(*kept, target))
        return await self._client.update_status(attrs.evolve(pod, status=status))
