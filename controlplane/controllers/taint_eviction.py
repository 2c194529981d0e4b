"""The taint eviction controller (``taint-eviction-controller``): deletes pods from
nodes with NoExecute taints they do not tolerate.

As Kubernetes' ``pkg/controller/tainteviction``: for a pod bound to a node with NoExecute
taints,

- a taint the pod does not tolerate: the pod is deleted at once;
- all tolerated, some toleration with ``tolerationSeconds``: the pod is deleted when the
  shortest of them has passed (a toleration of 0 or less: at once);
- all tolerated without ``tolerationSeconds``: the pod stays for good;
- the taints go away (the node recovered) or the pod's tolerations change so that it
  stays: a scheduled deletion is cancelled.

A deletion first sets the pod's ``DisruptionTarget`` condition (reason
DeletionByTaintManager), then deletes it with its own grace period, and records a
``TaintManagerEviction`` event "Marking for deletion Pod ns/name" (and "Cancelling
deletion of Pod ns/name" for a cancellation). A pod on a dead node stays Terminating --
no kubelet confirms -- until the node is deleted or the pod force-deleted, as in
Kubernetes; its controller replaces it, since terminating pods do not count.

Level-triggered: handlers queue pod keys (``ns/name``) when a pod's node or tolerations
change and node keys (``node:<name>``) when a node's NoExecute taints change; a node key
queues its pods. A pod's sync computes its deadline from the cache and either deletes it
or re-queues itself for the deadline (a work queue timer, not a sleep per pod).

One difference from Kubernetes, on purpose: the toleration time is counted from the
taint's ``timeAdded`` (set by whoever added it; the node lifecycle controller always
does), not from the moment this controller first saw the taint. So a restarted
controller manager does not grant every pod a fresh ``tolerationSeconds``; a taint
without ``timeAdded`` counts from when this controller first saw the pod under it.
Another: a pod already terminating is not deleted again (the apiserver would change
nothing; Kubernetes would only record another event).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.api.core_node import Node, Taint
from controlplane.api.core_pod import Pod, PodCondition, Toleration
from controlplane.api.meta import object_key
from controlplane.client.cache import NODE_NAME_INDEX
from controlplane.clock import to_wall
from controlplane.controllers.framework import ControllerContext
from controlplane.controllers.nodelifecycle_decisions import trio_time
from controlplane.scheduler.plugins.taint_toleration import tolerates_taint

__all__ = [
    "EVICT_NOW",
    "NEVER",
    "TaintEvictionController",
    "eviction_deadline",
    "matching_tolerations",
    "no_execute_taints",
    "with_disruption_target",
]

NODE_PREFIX = "node:"
#: :func:`eviction_deadline`: delete at once / never.
EVICT_NOW = -math.inf
NEVER = math.inf


def no_execute_taints(node: Node | None) -> tuple[Taint, ...]:
    if node is None:
        return ()
    return tuple(t for t in node.spec.taints if t.effect == "NoExecute")


def matching_tolerations(
    taints: Sequence[Taint], tolerations: Sequence[Toleration]
) -> tuple[bool, list[tuple[Taint, Toleration]]]:
    """``GetMatchingTolerations``: whether every taint is tolerated, and for each taint
    the first toleration that tolerates it."""
    used: list[tuple[Taint, Toleration]] = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates_taint(t, taint)), None)
        if match is None:
            return False, []
        used.append((taint, match))
    return True, used


def eviction_deadline(
    taints: Sequence[Taint],
    tolerations: Sequence[Toleration],
    now: float,
    first_seen: float | None = None,
) -> float:
    """When a pod with ``tolerations`` must leave a node with NoExecute ``taints``:
    :data:`EVICT_NOW`, :data:`NEVER`, or a trio time.

    Each tolerated taint with ``tolerationSeconds`` gives a deadline: its ``timeAdded``
    (or ``first_seen``, or ``now``, when it has none; never later than ``now``) plus the
    seconds (0 for a negative value); the earliest counts (``getMinTolerationTime``).
    """
    if not taints:
        return NEVER
    all_tolerated, used = matching_tolerations(taints, tolerations)
    if not all_tolerated:
        return EVICT_NOW
    fallback = now if first_seen is None else min(first_seen, now)
    deadline = NEVER
    for taint, toleration in used:
        seconds = toleration.toleration_seconds
        if seconds is None:
            continue
        start = min(trio_time(taint.time_added, fallback), now)
        deadline = min(deadline, start + max(seconds, 0))
    return deadline


def with_disruption_target(pod: Pod, now: float) -> Pod | None:
    """The pod with ``DisruptionTarget=True`` (DeletionByTaintManager); None if it has it
    already (``UpdatePodCondition`` would change nothing)."""
    condition = PodCondition(
        type="DisruptionTarget",
        status="True",
        reason="DeletionByTaintManager",
        message="Taint manager: deleting due to NoExecute taint",
        last_transition_time=to_wall(now),
    )
    conditions = pod.status.conditions
    for i, existing in enumerate(conditions):
        if existing.type != condition.type:
            continue
        if (existing.status, existing.reason, existing.message) == (
            condition.status,
            condition.reason,
            condition.message,
        ):
            return None
        new = (*conditions[:i], condition, *conditions[i + 1 :])
        return attrs.evolve(pod, status=attrs.evolve(pod.status, conditions=new))
    status = attrs.evolve(pod.status, conditions=(*conditions, condition))
    return attrs.evolve(pod, status=status)


@attrs.define
class _Scheduled:
    """A deletion this controller has in view for a pod."""

    uid: str
    first_seen: float
    deadline: float
    pod: Any


class TaintEvictionController:
    """``taint-eviction-controller`` (see the module docstring)."""

    name = "taint-eviction-controller"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        #: pod key -> the deletion in view (deadline in the future), for cancel events
        self.scheduled: dict[str, _Scheduled] = {}
        self._pods = context.informers.informer("Pod")
        self._pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self._nodes = context.informers.informer("Node")
        self._nodes.add_event_handler(self._node_added, self._node_updated, self._node_added)

    # -- handlers ------------------------------------------------------------------------------

    def _pod_added(self, pod: Pod) -> None:
        if pod.spec.node_name:
            self._queue.add(object_key(pod))

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if (
            old.spec.node_name == new.spec.node_name
            and old.spec.tolerations == new.spec.tolerations
            and old.metadata.uid == new.metadata.uid
        ):
            return
        self._queue.add(object_key(new))

    def _pod_deleted(self, pod: Pod) -> None:
        key = object_key(pod)
        if key in self.scheduled:
            self._queue.add(key)

    def _node_added(self, node: Node) -> None:
        self._queue.add(NODE_PREFIX + node.metadata.name)

    def _node_updated(self, old: Node, new: Node) -> None:
        if no_execute_taints(old) != no_execute_taints(new):
            self._queue.add(NODE_PREFIX + new.metadata.name)

    # -- the worker ------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """A node key queues the node's pods; a pod key decides and acts for that pod.
        Returns the seconds until the pod's deadline when it is in the future."""
        if key.startswith(NODE_PREFIX):
            name = key[len(NODE_PREFIX) :]
            for pod in self._pods.cache.by_index(NODE_NAME_INDEX, name):
                self._queue.add(object_key(pod))
            return None
        return await self._sync_pod(key)

    def _cancel(self, key: str) -> None:
        scheduled = self.scheduled.pop(key, None)
        if scheduled is not None:
            self._log.info("pod_eviction_cancelled", pod=key)
            self._events.record(
                scheduled.pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}"
            )

    async def _sync_pod(self, key: str) -> float | None:
        pod = self._pods.cache.get_by_key(key)
        scheduled = self.scheduled.get(key)
        if pod is None or (scheduled is not None and scheduled.uid != pod.metadata.uid):
            self._cancel(key)
            scheduled = None
        if pod is None or not pod.spec.node_name or pod.metadata.deletion_timestamp is not None:
            self._cancel(key)
            return None
        taints = no_execute_taints(self._nodes.cache.get(pod.spec.node_name))
        now = trio.current_time()
        first_seen = scheduled.first_seen if scheduled is not None else now
        deadline = eviction_deadline(taints, pod.spec.tolerations, now, first_seen)
        if deadline == NEVER:
            self._cancel(key)
            return None
        if deadline == EVICT_NOW and scheduled is not None:
            self._cancel(key)  # Kubernetes cancels the timed deletion, then deletes now
        if deadline > now:
            self.scheduled[key] = _Scheduled(pod.metadata.uid, first_seen, deadline, pod)
            return deadline - now
        await self._evict(key, pod)
        return None

    async def _evict(self, key: str, pod: Pod) -> None:
        """``deletePodHandler``: event, DisruptionTarget condition, delete (only the pod
        with this uid: a namesake created meanwhile is judged on its own).

        Raises:
            errors.ApiError: a write failed other than with NotFound; the framework
                retries the key with backoff (a Conflict: the cache was behind).
        """
        self.scheduled.pop(key, None)
        self._events.record(
            pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}"
        )
        self._log.info("pod_evicted", pod=key, node=pod.spec.node_name)
        meta = pod.metadata
        try:
            marked = with_disruption_target(pod, trio.current_time())
            if marked is not None:
                await self._client.update_status(marked)
            await self._client.delete(
                "Pod", meta.name, namespace=meta.namespace, preconditions_uid=meta.uid
            )
        except errors.NotFound:
            return
