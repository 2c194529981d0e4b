"""The ReplicaSet controller and the ReplicationManager: one actor class for both kinds.

``sync(key)`` is Kubernetes' ``syncReplicaSet``, level-triggered:

1. read the owner from the cache (gone: forget its expectations, done);
2. claim pods (:func:`~controlplane.controllers.replication.claim_dependents`): adopt matching
   orphans (after a fresh read of the owner proves it is neither replaced nor being
   deleted) and release owned pods that stopped matching — both are ownerReference
   updates of the pod;
3. if the expectations of earlier writes are met and the owner is not being deleted,
   create from the template in slow-start batches, or delete the surplus in Kubernetes'
   order, recording what it expects to see back;
4. write status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
   observedGeneration, a ReplicaFailure condition while creates or deletes fail) if it
   changed, and re-check after ``minReadySeconds`` while ready pods are not yet
   available.

Candidates are read through the ``owner_uid`` index plus an index of orphans per
namespace, not by scanning every pod of the namespace: the result is the one Kubernetes
computes from a full list (a pod is only ever claimed by its controller or, as an orphan,
by a matching owner), at a cost that grows with the owner's pods.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import attrs
import trio

from controlplane import errors
from controlplane.api import apps, core
from controlplane.api.core_pod import Pod, PodTemplateSpec
from controlplane.api.labels import Selector
from controlplane.api.meta import object_key
from controlplane.clock import precise_wall, to_wall
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.framework import (
    ORPHAN_INDEX,
    OWNER_UID_INDEX,
    ControllerContext,
    compiled_selector,
    controller_uid,
)
from controlplane.controllers.ownership import adopt_and_release
from controlplane.controllers.podcontrol import PodControl
from controlplane.controllers.pods import (
    is_active,
    is_ready,
    pod_from_template,
)
from controlplane.controllers.replication import (
    ReplicaCounts,
    claim_dependents,
    pods_to_delete,
    replica_counts,
    scale_plan,
)

__all__ = ["ReplicaSetController", "ReplicationManager"]


@functools.lru_cache(maxsize=4096)
def _from_map(mapping: Any) -> Selector:
    return Selector.from_map(mapping) if mapping else Selector.nothing()


class ReplicaSetController:
    """Keeps ``spec.replicas`` pods of every ReplicaSet (``replicaset-controller``)."""

    name = "replicaset-controller"
    kind: ClassVar[type[Any]] = apps.ReplicaSet
    condition_cls: ClassVar[type[Any]] = apps.ReplicaSetCondition

    def __init__(self, context: ControllerContext) -> None:
        self._ctx = context
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self.expectations = Expectations()
        self._pod_control = PodControl(context.client, context.events, self.expectations)
        self._owners = context.informers.informer(self.kind)
        self._owners.add_event_handler(
            self._owner_changed, self._owner_updated, self._owner_deleted
        )
        self._pods = context.informers.informer("Pod")
        self._pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- what differs between the two kinds ---------------------------------------------

    def selector(self, owner: Any) -> Selector:
        return compiled_selector(owner.spec.selector)

    @staticmethod
    def template(owner: Any) -> PodTemplateSpec | None:
        return owner.spec.template

    # -- informer handlers (cheap: map to keys, track expectations) -----------------------

    def _owner_changed(self, owner: Any) -> None:
        self._queue.add(object_key(owner))

    def _owner_updated(self, old: Any, new: Any) -> None:
        self._queue.add(object_key(new))

    def _owner_deleted(self, owner: Any) -> None:
        key = object_key(owner)
        self.expectations.forget(key)
        self._queue.add(key)

    def _owner_key_of(self, pod: Pod) -> str | None:
        """The key of the owner of this kind that controls ``pod``, if it is cached."""
        ref = pod.metadata.controller_ref()
        if ref is None or ref.kind != self.kind.kind:
            return None
        key = f"{pod.metadata.namespace}/{ref.name}"
        owner = self._owners.cache.get_by_key(key)
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return key

    def _enqueue_matching_owners(self, pod: Pod) -> None:
        for owner in self._owners.cache.list(pod.metadata.namespace):
            if self.selector(owner).matches(pod.metadata.labels):
                self._queue.add(object_key(owner))

    def _pod_added(self, pod: Pod) -> None:
        if pod.metadata.deletion_timestamp is not None:
            self._pod_deleted(pod)  # a restarted controller sees a terminating pod
            return
        if pod.metadata.controller_ref() is not None:
            key = self._owner_key_of(pod)
            if key is not None:
                self.expectations.creation_observed(key)
                self._queue.add(key)
            return
        self._enqueue_matching_owners(pod)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if new.metadata.deletion_timestamp is not None:
            self._pod_deleted(new)
            if old.metadata.labels != new.metadata.labels:
                self._pod_deleted(old)
            return
        old_key = self._owner_key_of(old)
        new_key = self._owner_key_of(new)
        if old_key is not None and old_key != new_key:
            self._queue.add(old_key)
        if new_key is not None:
            self._queue.add(new_key)
            owner = self._owners.cache.get_by_key(new_key)
            min_ready = owner.spec.min_ready_seconds or 0
            if min_ready and not is_ready(old) and is_ready(new):
                self._queue.add_after(new_key, float(min_ready))
            return
        if new.metadata.controller_ref() is None and (
            old.metadata.labels != new.metadata.labels or old.metadata.controller_ref() is not None
        ):
            self._enqueue_matching_owners(new)

    def _pod_deleted(self, pod: Pod) -> None:
        key = self._owner_key_of(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self._queue.add(key)

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        owner = self._owners.cache.get_by_key(key)
        if owner is None:
            self.expectations.forget(key)
            await trio.lowlevel.checkpoint()
            return None
        meta = owner.metadata
        selector = self.selector(owner)
        deleting = meta.deletion_timestamp is not None
        claim = claim_dependents(
            meta.uid, meta.namespace, selector, deleting, self._candidates(owner)
        )
        owned = await adopt_and_release(
            self._client, owner, claim.owned, claim.adopt, claim.release
        )
        active = [pod for pod in owned if is_active(pod)]
        failure: errors.ApiError | None = None
        if self.expectations.satisfied(key) and not deleting:
            failure = await self._manage(key, owner, active)
        return await self._update_status(owner, active, failure)

    def _candidates(self, owner: Any) -> list[Pod]:
        cache = self._pods.cache
        seen = cache.by_index(OWNER_UID_INDEX, owner.metadata.uid)
        return [*seen, *cache.by_index(ORPHAN_INDEX, owner.metadata.namespace)]

    async def _manage(self, key: str, owner: Any, active: list[Pod]) -> errors.ApiError | None:
        """Create or delete toward ``spec.replicas``; the first write error."""
        diff = scale_plan(len(active), owner.spec.replicas or 0)
        if diff > 0:
            template = self.template(owner)
            assert template is not None, "validation requires spec.template"
            pod = pod_from_template(template, owner)
            _, failure = await self._pod_control.create(key, owner, diff, lambda _: pod)
            return failure
        if diff < 0:
            related = self._related_pods(owner, active)
            now = precise_wall(trio.current_time())
            victims = pods_to_delete(active, -diff, related, now)
            return await self._pod_control.delete(key, owner, victims)
        return None

    def _related_pods(self, owner: Any, active: list[Pod]) -> list[Pod]:
        """The active pods of ``owner`` and its siblings (same controller)."""
        parent = controller_uid(owner)
        if parent is None:
            return active
        pods: list[Pod] = []
        for sibling in self._owners.cache.by_index(OWNER_UID_INDEX, parent):
            if controller_uid(sibling) == parent:
                pods.extend(
                    p
                    for p in self._pods.cache.by_index(OWNER_UID_INDEX, sibling.metadata.uid)
                    if is_active(p) and controller_uid(p) == sibling.metadata.uid
                )
        return pods

    # -- status -----------------------------------------------------------------------

    async def _update_status(
        self, owner: Any, active: list[Pod], failure: errors.ApiError | None
    ) -> float | None:
        template = self.template(owner)
        template_labels = template.metadata.labels if template is not None else {}
        min_ready = owner.spec.min_ready_seconds or 0
        counts = replica_counts(
            active,
            lambda pod: all(pod.metadata.labels.get(k) == v for k, v in template_labels.items()),
            min_ready,
            precise_wall(trio.current_time()),
        )
        status = self._status(owner, counts, failure)
        if status != owner.status:
            await self._write_status(owner, status)
        if failure is not None:
            raise failure
        # Kubernetes re-checks after minReadySeconds; re-checking when the next ready pod
        # actually turns available reports it on time instead of up to a period late.
        return counts.next_available_in

    def _status(self, owner: Any, counts: ReplicaCounts, failure: errors.ApiError | None) -> Any:
        old = owner.status
        conditions = tuple(c for c in old.conditions if c.type != "ReplicaFailure")
        current = next((c for c in old.conditions if c.type == "ReplicaFailure"), None)
        if failure is not None:
            if current is not None:
                conditions = old.conditions
            else:
                diff = counts.replicas - (owner.spec.replicas or 0)
                reason = "FailedCreate" if diff < 0 else "FailedDelete"
                conditions = (
                    *conditions,
                    self.condition_cls(
                        type="ReplicaFailure",
                        status="True",
                        reason=reason,
                        message=str(failure),
                        last_transition_time=to_wall(trio.current_time()),
                    ),
                )
        return attrs.evolve(
            old,
            replicas=counts.replicas,
            fully_labeled_replicas=counts.fully_labeled,
            ready_replicas=counts.ready,
            available_replicas=counts.available,
            observed_generation=owner.metadata.generation,
            conditions=conditions,
        )

    async def _write_status(self, owner: Any, status: Any) -> None:
        """``update_status``; on a Conflict, once more against a fresh read."""
        try:
            await self._client.update_status(attrs.evolve(owner, status=status))
        except errors.Conflict:
            fresh = await self._client.get(
                type(owner), owner.metadata.name, namespace=owner.metadata.namespace
            )
            if fresh.metadata.uid == owner.metadata.uid:
                await self._client.update_status(attrs.evolve(fresh, status=status))


class ReplicationManager(ReplicaSetController):
    """Keeps ``spec.replicas`` pods of every ReplicationController (``replicationcontroller``);
    the selector is a plain label map, the template optional."""

    name = "replicationcontroller"
    kind = core.ReplicationController
    condition_cls = core.ReplicationControllerCondition

    def selector(self, owner: Any) -> Selector:
        return _from_map(owner.spec.selector)
