"""The Job controller (``job-controller``): runs pods to completion, batch/v1 style.

``sync(key)`` is Kubernetes' ``syncJob``; the decisions are
:func:`~controlplane.controllers.job_decisions.plan_sync` and
:func:`~controlplane.controllers.job_status.finish_status`, this class only reads the
caches and performs the plan:

1. read the Job from the cache (gone: forget its expectations and backoff record; finished:
   nothing to do);
2. claim its pods (the ``owner_uid`` index; orphans its selector matches are adopted,
   pods that stopped matching released) and plan;
3. delete pods (a failing Job's active pods, a suspended Job's, a surplus), create pods
   from the template in slow-start batches (``generateName: <job>-``, the tracking
   finalizer, the ``controller-uid``/``job-name`` labels, a controller reference; for an
   Indexed Job also the completion index annotation and label, ``JOB_COMPLETION_INDEX``
   and hostname ``<job>-<index>``);
4. write the status with newly finished pods in ``uncountedTerminatedPods``, remove their
   ``batch.kubernetes.io/job-tracking`` finalizers, then write the counters and — once no
   pod is uncounted or terminating — the ``Complete`` or ``Failed`` condition.

Pod events sync the Job after 1 s (``syncJobBatchPeriod``), so a burst of pod changes
costs one sync; Job creations and spec changes sync it at once. Failed pods are replaced
after the pod-failure backoff (10 s doubling, capped at 10 min, from the last failure);
``activeDeadlineSeconds`` re-queues the Job for when it runs out. Pods left with the
tracking finalizer by a Job that finished or went away are un-finalized through keys
``pod:<namespace>/<name>`` on the same queue (Kubernetes' orphan queue).

Not done: ``podFailurePolicy``, ``successPolicy``, ``backoffLimitPerIndex``,
``podReplacementPolicy: Failed``, ``managedBy``. ``ttlSecondsAfterFinished`` belongs to
the TTL-after-finished controller.
"""

from __future__ import annotations

import attrs
import trio

from controlplane import errors
from controlplane.api.batch import Job
from controlplane.api.core_pod import Pod
from controlplane.api.meta import object_key
from controlplane.controllers import job_decisions as jd
from controlplane.controllers import job_pods as jp
from controlplane.controllers import job_status as js
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.framework import OWNER_UID_INDEX, ControllerContext
from controlplane.controllers.ownership import adopt_and_release
from controlplane.controllers.podcontrol import PodControl
from controlplane.controllers.pods import pod_from_template
from controlplane.controllers.replication import claim_dependents

__all__ = ["JobController"]

#: Keys of pods whose tracking finalizer must go (their Job is gone or finished).
ORPHAN_PREFIX = "pod:"
#: Tries of a finalizer removal that meets a concurrent pod write (``RetryOnConflict``).
FINALIZER_RETRIES = 5


def _with_tracking(pod: Pod, tracked: bool) -> Pod:
    """``pod`` with or without the Job tracking finalizer."""
    meta = pod.metadata
    if (jp.JOB_TRACKING_FINALIZER in meta.finalizers) == tracked:
        return pod
    others = tuple(f for f in meta.finalizers if f != jp.JOB_TRACKING_FINALIZER)
    finalizers = (*others, jp.JOB_TRACKING_FINALIZER) if tracked else others
    return attrs.evolve(pod, metadata=attrs.evolve(meta, finalizers=finalizers))


class _FinalizerExpectations:
    """``uidTrackingExpectations``: per Job, the uids whose finalizer removal was written
    but not yet seen in the pod cache. Those pods are counted already; a sync that ran
    before the cache caught up would otherwise count them twice."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[str]] = {}

    def expect(self, key: str, uids: list[str]) -> None:
        self._by_key.setdefault(key, set()).update(uids)

    def observed(self, key: str, uid: str) -> None:
        uids = self._by_key.get(key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self._by_key[key]

    def expected(self, key: str) -> frozenset[str]:
        return frozenset(self._by_key.get(key, ()))

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


class JobController:
    """Runs every Job's pods to completion (see the module docstring)."""

    name = "job-controller"

    def __init__(self, context: ControllerContext) -> None:
        self._client = context.client
        self._queue = context.queue
        self._events = context.events
        self._log = context.log
        self.expectations = Expectations()
        self.finalizer_expectations = _FinalizerExpectations()
        self._pod_control = PodControl(context.client, context.events, self.expectations)
        #: the pod-failure backoff record per Job key (in memory, as Kubernetes)
        self.backoff: dict[str, jp.BackoffRecord] = {}
        self._jobs = context.informers.informer("Job")
        self._jobs.add_event_handler(self._job_added, self._job_updated, self._job_deleted)
        self._pods = context.informers.informer("Pod")
        self._pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- informer handlers: map changes to keys, observe expectations ----------------------

    def _job_added(self, job: Job) -> None:
        self._queue.add(object_key(job))

    def _job_updated(self, old: Job, new: Job) -> None:
        key = object_key(new)
        if old.metadata.generation == new.metadata.generation:
            self._queue.add_after(key, jd.SYNC_BATCH_PERIOD)
        else:
            self._queue.add(key)
        if js.is_finished(new):
            self._cleanup_finalizers(new)  # a backup: the last sync removed them
        ads = new.spec.active_deadline_seconds
        start = new.status.start_time
        if ads is not None and start is not None and ads != old.spec.active_deadline_seconds:
            passed = trio.current_time() - jp.to_seconds(start)
            self._queue.add_after(key, ads - passed)

    def _job_deleted(self, job: Job) -> None:
        self._queue.add(object_key(job))
        self._cleanup_finalizers(job)

    def _cleanup_finalizers(self, job: Job) -> None:
        for pod in self._pods.cache.by_index(OWNER_UID_INDEX, job.metadata.uid):
            if jp.has_tracking_finalizer(pod):
                self._queue.add(ORPHAN_PREFIX + object_key(pod))

    def _job_of(self, pod: Pod) -> Job | None:
        """The cached Job controlling ``pod`` (same name and uid as the reference)."""
        ref = pod.metadata.controller_ref()
        if ref is None or ref.kind != "Job":
            return None
        job = self._jobs.cache.get(ref.name, pod.metadata.namespace)
        if job is None or job.metadata.uid != ref.uid:
            return None
        return job

    def _pod_added(self, pod: Pod) -> None:
        if pod.metadata.deletion_timestamp is not None:
            # A restarted controller sees a pod already being deleted: not a creation.
            self._pod_deleted(pod, final=False)
            return
        job = self._job_of(pod)
        if job is None:
            if jp.has_tracking_finalizer(pod) and pod.metadata.controller_ref() is None:
                self._queue.add(ORPHAN_PREFIX + object_key(pod))
            return
        key = object_key(job)
        self.expectations.creation_observed(key)
        self._queue.add_after(key, jd.SYNC_BATCH_PERIOD)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if new.metadata.deletion_timestamp is not None:
            self._pod_deleted(new, final=False)
            return
        job = self._job_of(new)
        if job is None:
            if jp.has_tracking_finalizer(new):
                self._queue.add(ORPHAN_PREFIX + object_key(new))
            old_job = self._job_of(old)
            if old_job is not None:
                self._queue.add_after(object_key(old_job), jd.SYNC_BATCH_PERIOD)
            return
        key = object_key(job)
        if not jp.has_tracking_finalizer(new):
            self.finalizer_expectations.observed(key, new.metadata.uid)
        self._queue.add_after(key, jd.SYNC_BATCH_PERIOD)

    def _pod_deleted(self, pod: Pod, final: bool = True) -> None:
        job = self._job_of(pod)
        has_finalizer = jp.has_tracking_finalizer(pod)
        if job is None or js.is_finished(job):
            if has_finalizer and not final:
                self._queue.add(ORPHAN_PREFIX + object_key(pod))
            return
        key = object_key(job)
        self.expectations.deletion_observed(key, pod.metadata.uid)
        if final or not has_finalizer:
            self.finalizer_expectations.observed(key, pod.metadata.uid)
        self._queue.add_after(key, jd.SYNC_BATCH_PERIOD)

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        if key.startswith(ORPHAN_PREFIX):
            await self._sync_orphan_pod(key.removeprefix(ORPHAN_PREFIX))
            return None
        job = self._jobs.cache.get_by_key(key)
        if job is None:
            self.expectations.forget(key)
            self.finalizer_expectations.forget(key)
            self.backoff.pop(key, None)
            await trio.lowlevel.checkpoint()
            return None
        if js.is_finished(job):
            self.backoff.pop(key, None)
            await trio.lowlevel.checkpoint()
            return None
        satisfied = self.expectations.satisfied(key)
        pods = await self._claim_pods(job)
        now = trio.current_time()
        plan = jd.plan_sync(
            job,
            pods,
            now=now,
            backoff=self.backoff.get(key, jp.BackoffRecord()),
            expectations_satisfied=satisfied,
            expected_removed_finalizers=self.finalizer_expectations.expected(key),
        )
        status = plan.status
        # A failed write still lets the status go out; the sync is retried after it.
        failure: errors.ApiError | None = None
        if plan.delete:
            failure = await self._delete(key, job, plan.delete, plan.expect_deletes)
            if failure is not None and plan.finished is not None:
                # A finishing Job could not stop all its pods: not finished yet (the
                # pods deleted so far are counted by the retry).
                raise failure
        if plan.create:
            not_created, create_failure = await self._create(
                key, job, plan.create, plan.create_indexes
            )
            failure = failure or create_failure
            if not_created:
                status = attrs.evolve(status, active=status.active - not_created)
        for type_, reason, message in plan.events:
            self._events.record(job, type_, reason, message)
        if plan.flush or status != job.status:
            job = await self._client.update_status(attrs.evolve(job, status=status))
        self.backoff[key] = plan.backoff  # the failures it holds are on record now
        removed, rm_failure = await self._remove_finalizers(key, plan.remove_finalizers)
        failure = failure or rm_failure
        removed_uids = {p.metadata.uid for p in removed}
        final_status, finished = js.finish_status(
            job.status,
            plan.uids_with_finalizer - removed_uids,
            plan.finished,
            plan.terminating,
            trio.current_time(),
        )
        if final_status != job.status:
            job = await self._client.update_status(attrs.evolve(job, status=final_status))
        if finished:
            assert plan.finished is not None
            for type_, reason, message in js.finished_event(job, plan.finished):
                self._events.record(job, type_, reason, message)
            self._log.info(
                "job_finished",
                job=key,
                condition=plan.finished.type,
                reason=plan.finished.reason,
                succeeded=final_status.succeeded,
                failed=final_status.failed,
            )
        if failure is not None:
            raise failure
        return plan.requeue_after

    # -- pods ------------------------------------------------------------------------------

    async def _claim_pods(self, job: Job) -> list[Pod]:
        """``getPodsForJob``: the pods the Job controls, after adopting orphans its
        selector matches (with the tracking finalizer) and releasing pods that stopped
        matching (without it) — ``PodControllerRefManager.ClaimPods``."""
        meta = job.metadata
        selector = jd.job_selector(job)
        owned = self._pods.cache.by_index(OWNER_UID_INDEX, meta.uid)
        orphans = [
            p
            for p in self._pods.cache.list(meta.namespace, selector)
            if p.metadata.controller_ref() is None
        ]
        deleting = meta.deletion_timestamp is not None
        claim = claim_dependents(meta.uid, meta.namespace, selector, deleting, [*owned, *orphans])
        return await adopt_and_release(
            self._client,
            job,
            claim.owned,
            claim.adopt,
            claim.release,
            on_adopt=lambda pod: _with_tracking(pod, True),
            on_release=lambda pod: _with_tracking(pod, False),
        )

    # -- writes ----------------------------------------------------------------------------

    async def _create(
        self, key: str, job: Job, count: int, indexes: tuple[int, ...]
    ) -> tuple[int, errors.ApiError | None]:
        """Create ``count`` pods (Indexed Jobs: one per index of ``indexes``); return how
        many were not created and the first error."""
        template = jp.pod_template(job)
        shared = pod_from_template(template, job)

        def pod_for(i: int) -> Pod:
            return jp.indexed_pod(template, job, indexes[i]) if indexes else shared

        not_created, failure = await self._pod_control.create(key, job, count, pod_for)
        if failure is not None:
            self._log.info("job_create_failed", job=key, error=str(failure), skipped=not_created)
        return not_created, failure

    async def _delete(
        self, key: str, job: Job, pods: tuple[Pod, ...], expect: bool
    ) -> errors.ApiError | None:
        """Delete ``pods`` (``expect``: through the expectations); the first error."""
        return await self._pod_control.delete(key, job, pods, expect=expect)

    async def _remove_finalizers(
        self, key: str, pods: tuple[Pod, ...]
    ) -> tuple[list[Pod], errors.ApiError | None]:
        """Remove the tracking finalizer from ``pods``; return those it is gone from
        (a pod already deleted counts) and the first error (the sync re-queues)."""
        if not pods:
            return [], None
        self.finalizer_expectations.expect(key, [p.metadata.uid for p in pods])
        done: list[Pod] = []
        failure: errors.ApiError | None = None
        for pod in pods:
            try:
                await self._remove_finalizer(pod)
            except errors.ApiError as exc:
                self.finalizer_expectations.observed(key, pod.metadata.uid)
                failure = failure or exc
                continue
            done.append(pod)
        if failure is not None:
            self._log.info("job_finalizer_removal_failed", job=key, error=str(failure))
        return done, failure

    async def _remove_finalizer(self, pod: Pod) -> None:
        """The finalizer-removal patch, as a read-modify-write retried on Conflict.
        NotFound means it is gone already."""
        current = pod
        for attempt in range(FINALIZER_RETRIES):
            finalizers = tuple(
                f for f in current.metadata.finalizers if f != jp.JOB_TRACKING_FINALIZER
            )
            if finalizers == current.metadata.finalizers:
                await trio.lowlevel.checkpoint()
                return
            try:
                await self._client.update(
                    attrs.evolve(
                        current, metadata=attrs.evolve(current.metadata, finalizers=finalizers)
                    )
                )
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                if attempt == FINALIZER_RETRIES - 1:
                    raise
                meta = pod.metadata
                try:
                    current = await self._client.get("Pod", meta.name, namespace=meta.namespace)
                except errors.NotFound:
                    return
                if current.metadata.uid != meta.uid:
                    return  # a new pod with the same name

    async def _sync_orphan_pod(self, pod_key: str) -> None:
        """``syncOrphanPod``: drop the tracking finalizer of a pod whose Job is gone or
        finished (nothing else would, and the pod could never be deleted)."""
        pod = self._pods.cache.get_by_key(pod_key)
        if pod is None or not jp.has_tracking_finalizer(pod):
            await trio.lowlevel.checkpoint()
            return
        ref = pod.metadata.controller_ref()
        if ref is not None:
            if ref.kind != "Job" or ref.api_version != "batch/v1":
                await trio.lowlevel.checkpoint()
                return
            job = self._job_of(pod)
            if job is not None and not js.is_finished(job):
                await trio.lowlevel.checkpoint()
                return  # its Job still tracks it
        await self._remove_finalizer(pod)
