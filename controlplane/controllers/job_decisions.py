"""The decisions a Job controller makes, as pure functions of the Job, its pods and the time.

This is Kubernetes' ``pkg/controller/job`` (``job_controller.go``) with the I/O taken
out. :func:`plan_sync` is ``syncJob`` up to its first write: it counts finished pods,
decides whether the Job has failed (``backoffLimit``, restarts of ``OnFailure`` pods,
``activeDeadlineSeconds``) or met its completions, and what to create, delete and
un-finalize. What follows the finalizer removal — counting and the terminal condition —
is :func:`~controlplane.controllers.job_status.finish_status`; what it reads off pods
and the pod-failure backoff are in :mod:`controlplane.controllers.job_pods`.

Current Kubernetes delays the terminal condition (``JobPodReplacementPolicy`` is on by
default): a Job that fails first gets ``FailureTarget`` and only gets ``Failed`` once no
pod is terminating; one that succeeds gets ``SuccessCriteriaMet`` and then ``Complete``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from controlplane.api.batch import Job, JobCondition, JobStatus, UncountedTerminatedPods
from controlplane.api.core_pod import Pod
from controlplane.api.labels import Selector
from controlplane.api.meta import LabelSelector
from controlplane.clock import to_wall
from controlplane.controllers import job_status as js
from controlplane.controllers.job_pods import (
    CONTROLLER_UID_LABEL,
    BackoffRecord,
    completion_index,
    first_pending_indexes,
    has_tracking_finalizer,
    has_valid_index,
    indexed_removals,
    is_indexed,
    is_pod_failed,
    is_terminating,
    new_backoff_record,
    parse_indexes,
    remaining_backoff,
    removal_order,
    to_seconds,
)
from controlplane.controllers.pods import is_active, is_ready

__all__ = [
    "MAX_POD_CREATE_DELETE_PER_SYNC",
    "SYNC_BATCH_PERIOD",
    "SyncPlan",
    "job_selector",
    "past_active_deadline",
    "past_backoff_limit_on_failure",
    "plan_sync",
    "want_active",
]

#: ``syncJobBatchPeriod``: pod events and status-only Job updates sync the Job after 1 s.
SYNC_BATCH_PERIOD = 1.0
#: ``MaxPodCreateDeletePerSync``.
MAX_POD_CREATE_DELETE_PER_SYNC = 500

REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_COMPLETIONS = "CompletionsReached"
MESSAGE_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
MESSAGE_COMPLETIONS = "Reached expected number of succeeded pods"

# -- the Job ---------------------------------------------------------------------------


def job_selector(job: Job) -> Selector:
    """The Job's pod selector: ``spec.selector``, or — when admission did not generate
    one — ``batch.kubernetes.io/controller-uid=<uid>``, what ``generateSelector`` sets."""
    selector = job.spec.selector
    if selector is None:
        selector = LabelSelector(match_labels={CONTROLLER_UID_LABEL: job.metadata.uid})
    return Selector.from_label_selector(selector)


def past_backoff_limit_on_failure(job: Job, pods: Iterable[Pod]) -> bool:
    """``pastBackoffLimitOnFailure``: with ``restartPolicy: OnFailure`` the kubelet
    restarts failed containers in place, so the container restarts of Pending and Running
    pods count against ``backoffLimit`` (any restart when the limit is 0)."""
    if job.spec.template.spec.restart_policy != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if pod.status.phase in ("Running", "Pending"):
            restarts += sum(s.restart_count for s in pod.status.init_container_statuses)
            restarts += sum(s.restart_count for s in pod.status.container_statuses)
    limit = job.spec.backoff_limit or 0
    return restarts > 0 if limit == 0 else restarts >= limit


def past_active_deadline(job: Job, now: float) -> bool:
    ads = job.spec.active_deadline_seconds
    start = job.status.start_time
    if ads is None or start is None or js.is_suspended(job):
        return False
    return now - to_seconds(start) >= ads


# -- the sync --------------------------------------------------------------------------


def want_active(job: Job, succeeded: int, active: int) -> int:
    """How many pods should run: ``min(parallelism, completions - succeeded)``; with no
    ``completions``, ``parallelism`` until one pod succeeds, then whatever still runs."""
    parallelism = job.spec.parallelism or 0
    completions = job.spec.completions
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - succeeded))


@attrs.frozen(kw_only=True)
class SyncPlan:
    """What one sync of a Job does, in order.

    1. delete ``delete`` (``expect_deletes``: through the expectations, as manageJob
       does; otherwise the finishing Job's ``deleteActivePods``, which does not);
    2. create ``create`` pods;
    3. write ``status`` if ``flush`` (the actor lowers ``active`` by failed creations);
    4. remove the tracking finalizer from ``remove_finalizers``;
    5. ``job_status.finish_status`` with ``finished``, then write the status if it changed.

    ``requeue_after``: sync again then (pod-failure backoff, the active deadline);
    ``events``: ``(type, reason, message)`` to record on the Job.
    """

    status: JobStatus
    flush: bool
    delete: tuple[Pod, ...] = ()
    expect_deletes: bool = False
    create: int = 0
    #: Indexed Jobs: the completion index of each pod to create (``len == create``).
    create_indexes: tuple[int, ...] = ()
    remove_finalizers: tuple[Pod, ...] = ()
    uids_with_finalizer: frozenset[str] = frozenset()
    finished: JobCondition | None = None
    terminating: int = 0
    backoff: BackoffRecord = attrs.field(factory=BackoffRecord)
    requeue_after: float | None = None
    events: tuple[tuple[str, str, str], ...] = ()


def _min_delay(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@attrs.frozen
class _Counts:
    """What ``syncJob`` counts before deciding (``getNewFinishedPods`` and friends)."""

    tracked: tuple[Pod, ...]  # with the tracking finalizer, not already counted
    active: tuple[Pod, ...]
    new_succeeded: tuple[Pod, ...]
    new_failed: tuple[Pod, ...]
    succeeded: int
    failed: int
    #: Indexed Jobs: the indexes in ``status.completedIndexes`` / those plus new ones.
    prev_indexes: frozenset[int]
    succeeded_indexes: frozenset[int]


def _count(job: Job, pods: Sequence[Pod], expected_removed_finalizers: frozenset[str]) -> _Counts:
    status = job.status
    uncounted = status.uncounted_terminated_pods or UncountedTerminatedPods()
    tracked = tuple(
        p
        for p in pods
        if has_tracking_finalizer(p) and p.metadata.uid not in expected_removed_finalizers
    )
    indexed = is_indexed(job)
    valid = [p for p in tracked if has_valid_index(job, p)] if indexed else tracked
    new_succeeded = tuple(
        p
        for p in valid
        if p.status.phase == "Succeeded" and p.metadata.uid not in uncounted.succeeded
    )
    new_failed = tuple(
        p for p in valid if is_pod_failed(p) and p.metadata.uid not in uncounted.failed
    )
    succeeded = status.succeeded + len(new_succeeded) + len(uncounted.succeeded)
    prev: frozenset[int] = frozenset()
    succeeded_indexes: frozenset[int] = frozenset()
    if indexed:
        # ``calculateSucceededIndexes``: the recorded ones plus those of succeeded pods
        # not yet un-finalized; an index is counted once however many pods succeed in it.
        prev = frozenset(parse_indexes(status.completed_indexes, job.spec.completions or 0))
        succeeded_indexes = prev | {
            i for p in new_succeeded if (i := completion_index(p)) is not None
        }
        succeeded = len(succeeded_indexes)
    return _Counts(
        tracked=tracked,
        active=tuple(p for p in pods if is_active(p)),
        new_succeeded=new_succeeded,
        new_failed=new_failed,
        succeeded=succeeded,
        failed=status.failed + len(new_failed) + len(uncounted.failed),
        prev_indexes=prev,
        succeeded_indexes=succeeded_indexes,
    )


def _ending(
    job: Job, pods: Sequence[Pod], failed: int, start_time: datetime | None, now: float
) -> tuple[JobCondition | None, JobCondition | None, float | None]:
    """Has the Job failed or met its success criteria? ``(finished, interim, requeue)``:
    the terminal condition an earlier sync's ``FailureTarget``/``SuccessCriteriaMet``
    leads to, or a new ``FailureTarget`` to record, or when the deadline runs out."""
    for interim_type, final_type in (
        ("SuccessCriteriaMet", "Complete"),
        ("FailureTarget", "Failed"),
    ):
        if js.is_true(job, interim_type):
            recorded = js.find_condition(job, interim_type)
            assert recorded is not None
            reason, message = recorded.reason or "", recorded.message or ""
            return js.new_condition(final_type, reason, message, now), None, None
    if failed > (job.spec.backoff_limit or 0) or past_backoff_limit_on_failure(job, pods):
        target = js.new_condition("FailureTarget", REASON_BACKOFF_LIMIT, MESSAGE_BACKOFF_LIMIT, now)
        return None, target, None
    started = attrs.evolve(job, status=attrs.evolve(job.status, start_time=start_time))
    if past_active_deadline(started, now):
        return None, js.new_condition("FailureTarget", REASON_DEADLINE, MESSAGE_DEADLINE, now), None
    ads = job.spec.active_deadline_seconds
    if ads is not None and start_time is not None and not js.is_suspended(job):
        return None, None, max(ads - (now - to_seconds(start_time)), 0.0)
    return None, None, None


@attrs.frozen
class _Manage:
    """``manageJob``'s decision: deletions (which take precedence) or creations."""

    delete: tuple[Pod, ...] = ()
    create: int = 0
    create_indexes: tuple[int, ...] = ()
    requeue: float | None = None


def _manage(job: Job, counts: _Counts, record: BackoffRecord, now: float) -> _Manage:
    active_pods = counts.active
    if js.is_suspended(job):
        return _Manage(delete=tuple(removal_order(active_pods)))
    active = len(active_pods)
    completions = job.spec.completions or 0
    want = want_active(job, counts.succeeded, active)
    victims = indexed_removals(active_pods, completions) if is_indexed(job) else []
    if len(victims) < active - want:
        chosen = {p.metadata.uid for p in victims}
        rest = [p for p in removal_order(active_pods) if p.metadata.uid not in chosen]
        victims.extend(rest[: active - want - len(victims)])
    if victims:
        return _Manage(delete=tuple(victims[:MAX_POD_CREATE_DELETE_PER_SYNC]))
    if want <= active:
        return _Manage()
    wait = remaining_backoff(record, now)
    if wait > 0:
        return _Manage(requeue=max(wait, SYNC_BATCH_PERIOD))
    create = min(want - active, MAX_POD_CREATE_DELETE_PER_SYNC)
    if not is_indexed(job):
        return _Manage(create=create)
    indexes = first_pending_indexes(active_pods, set(counts.succeeded_indexes), create, completions)
    return _Manage(create=len(indexes), create_indexes=tuple(indexes))


def plan_sync(
    job: Job,
    pods: Sequence[Pod],
    *,
    now: float,
    backoff: BackoffRecord,
    expectations_satisfied: bool,
    expected_removed_finalizers: frozenset[str] = frozenset(),
) -> SyncPlan:
    """``syncJob`` for a Job that is not finished, up to its writes.

    Args:
        pods: the pods the Job controls (including finished and terminating ones).
        backoff: the Job's pod-failure backoff record from earlier syncs.
        expectations_satisfied: no creation or deletion of an earlier sync is still
            unobserved; otherwise nothing is created or deleted (the cache is behind).
        expected_removed_finalizers: uids whose finalizer removal is written but not yet
            seen in the cache: already counted, so skipped.
    """
    status = job.status
    counts = _count(job, pods, expected_removed_finalizers)
    active = len(counts.active)
    ready = sum(1 for p in counts.active if is_ready(p))
    terminating = sum(1 for p in pods if is_terminating(p))
    events: list[tuple[str, str, str]] = []
    record = new_backoff_record(backoff, counts.new_succeeded, counts.new_failed)
    start_time = status.start_time
    if start_time is None and not js.is_suspended(job):
        start_time = to_wall(now)
    finished, interim, requeue = _ending(job, pods, counts.failed, start_time, now)

    conditions = status.conditions
    manage = _Manage()
    expect_deletes = False  # manageJob's deletions go through the expectations
    suspend_changed = False
    if finished is not None or interim is not None:
        # The Job failed (or already met its success criteria): stop every active pod
        # (the actor gives up this sync if a deletion fails, as Kubernetes does).
        manage = _Manage(delete=counts.active)
        active -= len(manage.delete)
        if not expectations_satisfied:
            # Pods may still be in flight: decide again once the cache caught up.
            finished = interim = None
    else:
        managed = expectations_satisfied and job.metadata.deletion_timestamp is None
        if managed:
            manage = _manage(job, counts, record, now)
            expect_deletes = bool(manage.delete)
            requeue = _min_delay(requeue, manage.requeue)
            active += manage.create - len(manage.delete)
        completions = job.spec.completions
        if completions is None:
            complete = counts.succeeded > 0 and active == 0
        else:
            complete = counts.succeeded >= completions and active == 0
        if complete:
            interim = js.new_condition(
                "SuccessCriteriaMet", REASON_COMPLETIONS, MESSAGE_COMPLETIONS, now
            )
        elif managed:
            if js.is_suspended(job):
                conditions, suspend_changed = js.ensure_condition(
                    conditions, "Suspended", "True", "JobSuspended", "Job suspended", now
                )
                if suspend_changed:
                    events.append(("Normal", "Suspended", "Job suspended"))
            else:
                conditions, suspend_changed = js.ensure_condition(
                    conditions, "Suspended", "False", "JobResumed", "Job resumed", now
                )
                if suspend_changed:
                    events.append(("Normal", "Resumed", "Job resumed"))
                    # activeDeadlineSeconds counts time continuously active.
                    start_time = to_wall(now)
    terminating += len(manage.delete)
    ready -= sum(1 for p in manage.delete if is_ready(p))

    flush = (
        suspend_changed
        or active != status.active
        or ready != status.ready
        or terminating != status.terminating
        or start_time != status.start_time
    )
    tracking = js.track_finished_pods(
        job,
        counts.tracked,
        finished,
        interim,
        prev_indexes=counts.prev_indexes,
        succeeded_indexes=counts.succeeded_indexes,
    )
    if interim is not None:
        conditions = (*conditions, interim)
        final_type = "Failed" if interim.type == "FailureTarget" else "Complete"
        finished = js.new_condition(final_type, interim.reason or "", interim.message or "", now)
    new_status = attrs.evolve(
        status,
        completed_indexes=tracking.completed_indexes,
        conditions=conditions,
        start_time=start_time,
        active=active,
        ready=ready,
        terminating=terminating,
        succeeded=tracking.succeeded,
        failed=tracking.failed,
        uncounted_terminated_pods=tracking.uncounted,
    )
    return SyncPlan(
        status=new_status,
        flush=flush or tracking.changed or interim is not None,
        delete=manage.delete,
        expect_deletes=expect_deletes,
        create=manage.create,
        create_indexes=manage.create_indexes,
        remove_finalizers=tracking.remove,
        uids_with_finalizer=frozenset(p.metadata.uid for p in counts.tracked),
        finished=finished,
        terminating=terminating,
        backoff=record,
        requeue_after=requeue,
        events=tuple(events),
    )
