"""The Deployment controller: rolls pod templates out through ReplicaSets.

``sync(key)`` is Kubernetes' ``syncDeployment``:

1. claim ReplicaSets (adopt matching orphans, release those that stopped matching);
2. a Deployment being deleted only gets its status refreshed; a paused one and one
   whose ``spec.replicas`` changed (a *scaling event*: some active ReplicaSet carries
   another ``desired-replicas`` annotation) are scaled proportionally, with no rollout;
3. otherwise one step of the strategy. RollingUpdate: create or find the new ReplicaSet
   ``<deployment>-<pod-template-hash>``, scale it up within maxSurge, scale old ones down
   within maxUnavailable (one of the two per sync; the ReplicaSet status changes that
   follow bring the next sync). Recreate: scale every old ReplicaSet to 0, wait until
   their pods are gone, then create the new one at full size;
4. when the rollout is complete, delete old ReplicaSets beyond ``revisionHistoryLimit``;
5. status: counts, Available, Progressing (with ``progressDeadlineSeconds``: a rollout
   that makes no progress for that long gets Progressing=False,
   ProgressDeadlineExceeded; a re-check is scheduled for the deadline) and ReplicaFailure
   copied from a ReplicaSet that cannot create pods.

The decisions are in :mod:`controlplane.controllers.rollout`; this module reads caches and
writes. Rollback, pause and resume are client-side, as in kubectl
(:mod:`controlplane.rollouts`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.api.apps import Deployment, ReplicaSet, ReplicaSetSpec
from controlplane.api.core_pod import Pod
from controlplane.api.meta import LabelSelector, ObjectMeta, object_key
from controlplane.clock import precise_wall, to_wall
from controlplane.controllers import rollout
from controlplane.controllers.framework import (
    ORPHAN_INDEX,
    OWNER_UID_INDEX,
    ControllerContext,
    compiled_selector,
    controller_uid,
)
from controlplane.controllers.ownership import adopt_and_release
from controlplane.controllers.pods import owner_reference
from controlplane.controllers.replication import claim_dependents

__all__ = ["DeploymentController"]


class DeploymentController:
    """``deployment-controller``."""

    name = "deployment-controller"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self._deployments = context.informers.informer("Deployment")
        self._deployments.add_event_handler(self._enqueue, self._updated, self._enqueue)
        self._sets = context.informers.informer("ReplicaSet")
        self._sets.add_event_handler(self._rs_changed, self._rs_updated, self._rs_changed)
        self._pods = context.informers.informer("Pod")
        self._pods.add_event_handler(None, self._pod_updated, self._pod_deleted)

    # -- handlers -----------------------------------------------------------------------

    def _enqueue(self, deployment: Deployment) -> None:
        self._queue.add(object_key(deployment))

    def _updated(self, old: Deployment, new: Deployment) -> None:
        self._queue.add(object_key(new))

    def _owner_key(self, rs: ReplicaSet) -> str | None:
        ref = rs.metadata.controller_ref()
        if ref is None or ref.kind != "Deployment":
            return None
        key = f"{rs.metadata.namespace}/{ref.name}"
        owner = self._deployments.cache.get_by_key(key)
        return key if owner is not None and owner.metadata.uid == ref.uid else None

    def _rs_changed(self, rs: ReplicaSet) -> None:
        key = self._owner_key(rs)
        if key is not None:
            self._queue.add(key)
        elif rs.metadata.controller_ref() is None:
            for deployment in self._deployments.cache.list(rs.metadata.namespace):
                if compiled_selector(deployment.spec.selector).matches(rs.metadata.labels):
                    self._queue.add(object_key(deployment))

    def _rs_updated(self, old: ReplicaSet, new: ReplicaSet) -> None:
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key is not None and old_key != new_key:
            self._queue.add(old_key)
        if new_key is not None or old.metadata.labels != new.metadata.labels:
            self._rs_changed(new)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if new.status.phase in ("Succeeded", "Failed") and old.status.phase != new.status.phase:
            self._pod_deleted(new)

    def _pod_deleted(self, pod: Pod) -> None:
        """Recreate waits for the old pods to be gone: a pod leaving wakes it."""
        ref = pod.metadata.controller_ref()
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self._sets.cache.get(ref.name, pod.metadata.namespace)
        if rs is None or rs.metadata.uid != ref.uid:
            return
        key = self._owner_key(rs)
        if key is None:
            return
        deployment = self._deployments.cache.get_by_key(key)
        if deployment is not None and deployment.spec.strategy.type == "Recreate":
            self._queue.add(key)

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        d = self._deployments.cache.get_by_key(key)
        if d is None:
            await trio.lowlevel.checkpoint()
            return None
        now = precise_wall(trio.current_time())
        selector = d.spec.selector
        if selector is not None and not selector.match_labels and not selector.match_expressions:
            self._events.record(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            if d.status.observed_generation < d.metadata.generation:
                await self._write_status(
                    d, attrs.evolve(d.status, observed_generation=d.metadata.generation)
                )
            return None
        sets = await self._claim(d)
        if d.metadata.deletion_timestamp is not None:
            new_rs = rollout.find_new_rs(d, sets)
            return await self._sync_status(d, _others(sets, new_rs), new_rs, now)
        paused = rollout.paused_condition(d, to_wall(trio.current_time()))
        if paused is not None:
            d = await self._write_status(d, paused)
        if d.spec.paused or rollout.is_scaling_event(d, sets):
            return await self._scale(d, sets, now)
        if d.spec.strategy.type == "Recreate":
            return await self._rollout_recreate(d, sets, now)
        return await self._rollout_rolling(d, sets, now)

    async def _claim(self, d: Deployment) -> list[ReplicaSet]:
        cache = self._sets.cache
        candidates = [
            *cache.by_index(OWNER_UID_INDEX, d.metadata.uid),
            *cache.by_index(ORPHAN_INDEX, d.metadata.namespace),
        ]
        claim = claim_dependents(
            d.metadata.uid,
            d.metadata.namespace,
            compiled_selector(d.spec.selector),
            d.metadata.deletion_timestamp is not None,
            candidates,
        )
        return await adopt_and_release(self._client, d, claim.owned, claim.adopt, claim.release)

    # -- the new ReplicaSet and revisions ------------------------------------------------

    async def _new_and_old(
        self, d: Deployment, sets: list[ReplicaSet], *, create: bool
    ) -> tuple[Deployment, ReplicaSet | None, list[ReplicaSet]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (found, its revision
        and annotations brought up to date, or created if ``create``) and the old ones;
        the Deployment as last written."""
        existing = rollout.find_new_rs(d, sets)
        old_sets = _others(sets, existing)
        revision = rollout.max_revision(old_sets) + 1
        if existing is not None:
            new_rs = await self._sync_new_rs(d, existing, revision)
            d = await self._note_revision(d, new_rs, created=False)
            return d, new_rs, old_sets
        if not create:
            return d, None, old_sets
        new_rs = await self._create_new_rs(d, old_sets, revision)
        if new_rs is None:
            return d, None, old_sets
        d = await self._note_revision(d, new_rs, created=new_rs.metadata.uid not in _uids(sets))
        return d, new_rs, old_sets

    async def _sync_new_rs(self, d: Deployment, rs: ReplicaSet, revision: int) -> ReplicaSet:
        annotations = {**rs.metadata.annotations, **rollout.copied_annotations(d)}
        if rollout.revision_of(rs) < revision:
            annotations[rollout.REVISION_ANNOTATION] = str(revision)
        min_ready = d.spec.min_ready_seconds
        if annotations == dict(rs.metadata.annotations) and rs.spec.min_ready_seconds == min_ready:
            return rs
        updated = attrs.evolve(
            rs,
            metadata=attrs.evolve(rs.metadata, annotations=annotations),
            spec=attrs.evolve(rs.spec, min_ready_seconds=min_ready),
        )
        return await self._client.update(updated)

    async def _create_new_rs(
        self, d: Deployment, old_sets: list[ReplicaSet], revision: int
    ) -> ReplicaSet | None:
        template = d.spec.template
        hash_ = rollout.pod_template_hash(template, d.status.collision_count)
        labels = {**template.metadata.labels, rollout.HASH_LABEL: hash_}
        selector = d.spec.selector or LabelSelector()
        rs = ReplicaSet(
            metadata=ObjectMeta(
                name=f"{d.metadata.name}-{hash_}",
                namespace=d.metadata.namespace,
                labels=labels,
                owner_references=(owner_reference(d),),
            ),
            spec=ReplicaSetSpec(
                replicas=0,
                min_ready_seconds=d.spec.min_ready_seconds,
                selector=attrs.evolve(
                    selector, match_labels={**selector.match_labels, rollout.HASH_LABEL: hash_}
                ),
                template=attrs.evolve(
                    template, metadata=attrs.evolve(template.metadata, labels=labels)
                ),
            ),
        )
        replicas = rollout.new_rs_replicas(d, [*old_sets, rs], rs)
        annotations = rollout.replica_annotations(
            d, {**rollout.copied_annotations(d), rollout.REVISION_ANNOTATION: str(revision)}
        )
        rs = attrs.evolve(
            rs,
            metadata=attrs.evolve(rs.metadata, annotations=annotations),
            spec=attrs.evolve(rs.spec, replicas=replicas),
        )
        try:
            created = await self._client.create(rs)
        except errors.AlreadyExists:
            found = self._sets.cache.get(rs.metadata.name, rs.metadata.namespace)
            if (
                found is not None
                and controller_uid(found) == d.metadata.uid
                and rollout.template_without_hash(found.spec.template)
                == rollout.template_without_hash(template)
            ):
                return found
            # a hash collision: bump collisionCount, and the next sync hashes anew
            await self._write_status(
                d, attrs.evolve(d.status, collision_count=(d.status.collision_count or 0) + 1)
            )
            raise
        except errors.ApiError as exc:
            message = f'Failed to create new replica set "{rs.metadata.name}": {exc}'
            self._events.record(d, "Warning", "ReplicaSetCreateError", message)
            if rollout.has_progress_deadline(d):
                condition = rollout.new_condition(
                    "Progressing", "False", "ReplicaSetCreateError", message, _now_wall()
                )
                await self._write_status(d, rollout.set_condition(d.status, condition))
            raise
        if replicas > 0:
            self._events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {created.metadata.name} from 0 to {replicas}",
            )
        return created

    async def _note_revision(
        self, d: Deployment, new_rs: ReplicaSet, *, created: bool
    ) -> Deployment:
        """The Deployment's revision annotation, and Progressing NewReplicaSetCreated /
        FoundNewReplicaSet."""
        revision = new_rs.metadata.annotations.get(rollout.REVISION_ANNOTATION)
        if (
            revision is not None
            and d.metadata.annotations.get(rollout.REVISION_ANNOTATION) != revision
        ):
            annotations = {**d.metadata.annotations, rollout.REVISION_ANNOTATION: revision}
            d = await self._client.update(
                attrs.evolve(d, metadata=attrs.evolve(d.metadata, annotations=annotations))
            )
        if not rollout.has_progress_deadline(d):
            return d
        name = new_rs.metadata.name
        current = rollout.get_condition(d.status, "Progressing")
        if created:
            condition = rollout.new_condition(
                "Progressing",
                "True",
                rollout.NEW_RS_CREATED,
                f'Created new replica set "{name}"',
                _now_wall(),
            )
        elif current is None:
            condition = rollout.new_condition(
                "Progressing",
                "True",
                rollout.FOUND_NEW_RS,
                f'Found new replica set "{name}"',
                _now_wall(),
            )
        else:
            return d
        return await self._write_status(d, rollout.set_condition(d.status, condition))

    # -- strategies ---------------------------------------------------------------------

    async def _rollout_rolling(
        self, d: Deployment, sets: list[ReplicaSet], now: Any
    ) -> float | None:
        d, new_rs, old_sets = await self._new_and_old(d, sets, create=True)
        if new_rs is None:
            return None
        all_sets = [*old_sets, new_rs]
        desired = d.spec.replicas or 0
        size = new_rs.spec.replicas or 0
        if size != desired:
            target = desired if size > desired else rollout.new_rs_replicas(d, all_sets, new_rs)
            if target != size:
                new_rs = await self._scale_rs(d, new_rs, target)
                return await self._sync_status(d, old_sets, new_rs, now)
        active_old = [rs for rs in old_sets if (rs.spec.replicas or 0) > 0]
        sizes = rollout.old_rs_scale_down(d, active_old, new_rs)
        if sizes:
            old_sets = await self._apply_sizes(d, old_sets, sizes)
            return await self._sync_status(d, old_sets, new_rs, now)
        return await self._finish(d, old_sets, new_rs, now)

    async def _rollout_recreate(
        self, d: Deployment, sets: list[ReplicaSet], now: Any
    ) -> float | None:
        d, new_rs, old_sets = await self._new_and_old(d, sets, create=False)
        active_old = {rs.metadata.name: 0 for rs in old_sets if (rs.spec.replicas or 0) > 0}
        if active_old:
            old_sets = await self._apply_sizes(d, old_sets, active_old)
            return await self._sync_status(d, old_sets, new_rs, now)
        if self._old_pods_running(new_rs, old_sets):
            return await self._sync_status(d, old_sets, new_rs, now)
        if new_rs is None:
            d, new_rs, old_sets = await self._new_and_old(d, sets, create=True)
            if new_rs is None:
                return None
        if (new_rs.spec.replicas or 0) != (d.spec.replicas or 0):
            new_rs = await self._scale_rs(d, new_rs, d.spec.replicas or 0)
        return await self._finish(d, old_sets, new_rs, now)

    def _old_pods_running(self, new_rs: ReplicaSet | None, old_sets: list[ReplicaSet]) -> bool:
        """Any pod of an old ReplicaSet not yet Succeeded/Failed (``oldPodsRunning``)."""
        if any(rs.status.replicas > 0 for rs in old_sets):
            return True
        for rs in old_sets:
            for pod in self._pods.cache.by_index(OWNER_UID_INDEX, rs.metadata.uid):
                if controller_uid(pod) == rs.metadata.uid and pod.status.phase not in (
                    "Succeeded",
                    "Failed",
                ):
                    return True
        return False

    async def _finish(
        self, d: Deployment, old_sets: list[ReplicaSet], new_rs: ReplicaSet, now: Any
    ) -> float | None:
        status = rollout.deployment_status(
            d, [*old_sets, new_rs], new_rs, to_wall(trio.current_time())
        )
        if rollout.is_complete(d, status):
            old_sets = await self._clean_history(d, old_sets)
        return await self._sync_status(d, old_sets, new_rs, now)

    async def _scale(self, d: Deployment, sets: list[ReplicaSet], now: Any) -> float | None:
        """Proportional scaling (paused, or ``spec.replicas`` changed mid-rollout)."""
        d, new_rs, old_sets = await self._new_and_old(d, sets, create=False)
        sizes = rollout.proportional_scale(d, new_rs, old_sets)
        every = await self._apply_sizes(d, [*old_sets, *([new_rs] if new_rs else [])], sizes)
        if new_rs is not None:
            new_rs = next(rs for rs in every if rs.metadata.uid == new_rs.metadata.uid)
        old_sets = [rs for rs in every if rs is not new_rs]
        if d.spec.paused:
            old_sets = await self._clean_history(d, old_sets)
        return await self._sync_status(d, old_sets, new_rs, now)

    # -- writes -------------------------------------------------------------------------

    async def _apply_sizes(
        self, d: Deployment, sets: list[ReplicaSet], sizes: dict[str, int]
    ) -> list[ReplicaSet]:
        out = []
        for rs in sets:
            if rs.metadata.name in sizes:
                rs = await self._scale_rs(d, rs, sizes[rs.metadata.name])
            out.append(rs)
        return out

    async def _scale_rs(self, d: Deployment, rs: ReplicaSet, size: int) -> ReplicaSet:
        """``scaleReplicaSetAndRecordEvent``: size and replica annotations."""
        old_size = rs.spec.replicas or 0
        annotations = rollout.replica_annotations(d, rs.metadata.annotations)
        if old_size == size and annotations == dict(rs.metadata.annotations):
            return rs
        updated = await self._client.update(
            attrs.evolve(
                rs,
                metadata=attrs.evolve(rs.metadata, annotations=annotations),
                spec=attrs.evolve(rs.spec, replicas=size),
            )
        )
        if old_size != size:
            direction = "up" if size > old_size else "down"
            self._events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs.metadata.name} from {old_size} to {size}",
            )
        return updated

    async def _clean_history(self, d: Deployment, old_sets: list[ReplicaSet]) -> list[ReplicaSet]:
        doomed = rollout.history_to_clean(d, old_sets)
        for rs in doomed:
            with contextlib.suppress(errors.NotFound):
                await self._client.delete(
                    "ReplicaSet",
                    rs.metadata.name,
                    namespace=rs.metadata.namespace,
                    preconditions_uid=rs.metadata.uid,
                )
        gone = {rs.metadata.uid for rs in doomed}
        return [rs for rs in old_sets if rs.metadata.uid not in gone]

    async def _sync_status(
        self, d: Deployment, old_sets: list[ReplicaSet], new_rs: ReplicaSet | None, now: Any
    ) -> float | None:
        """``syncRolloutStatus``; returns when to re-check the progress deadline."""
        wall = to_wall(trio.current_time())
        all_sets = [*old_sets, *([new_rs] if new_rs is not None else [])]
        status = rollout.deployment_status(d, all_sets, new_rs, wall)
        status = rollout.rollout_conditions(
            d, status, new_rs, _replica_failure(all_sets, new_rs), wall
        )
        if status != d.status:
            d = await self._write_status(d, status)
            return None
        return rollout.seconds_until_deadline(d, status, now)

    async def _write_status(self, d: Deployment, status: Any) -> Deployment:
        return await self._client.update_status(attrs.evolve(d, status=status))


def _others(sets: list[ReplicaSet], new_rs: ReplicaSet | None) -> list[ReplicaSet]:
    if new_rs is None:
        return list(sets)
    return [rs for rs in sets if rs.metadata.uid != new_rs.metadata.uid]


def _uids(sets: list[ReplicaSet]) -> set[str]:
    return {rs.metadata.uid for rs in sets}


def _now_wall() -> Any:
    return to_wall(trio.current_time())


def _replica_failure(all_sets: list[ReplicaSet], new_rs: ReplicaSet | None) -> Any:
    """The new ReplicaSet's ReplicaFailure condition, else an old one's."""
    for rs in [*([new_rs] if new_rs is not None else []), *all_sets]:
        for condition in rs.status.conditions:
            if condition.type == "ReplicaFailure":
                return condition
    return None
