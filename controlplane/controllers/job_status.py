"""The Job's status: its conditions and its exact pod counters.

Counting rests on the ``batch.kubernetes.io/job-tracking`` finalizer every Job pod is
created with: a finished pod cannot vanish before it is counted. Its uid goes to
``status.uncountedTerminatedPods`` first (:func:`track_finished_pods`), then the
finalizer is removed, then the uid moves to ``succeeded``/``failed``
(:func:`finish_status`) — a crash between any two steps neither loses nor double-counts
a pod. Indexed Jobs count completion indexes in ``completedIndexes`` instead of uids.
This is ``trackJobStatusAndRemoveFinalizers`` and ``enactJobFinished`` of Kubernetes'
``job_controller.go``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from controlplane.api.batch import Job, JobCondition, JobStatus, UncountedTerminatedPods
from controlplane.api.core_pod import Pod
from controlplane.clock import to_wall
from controlplane.controllers.job_pods import (
    completion_index,
    format_indexes,
    has_valid_index,
    is_indexed,
    is_pod_failed,
)

__all__ = [
    "MAX_UNCOUNTED_PODS",
    "Tracking",
    "ensure_condition",
    "find_condition",
    "finish_status",
    "finished_event",
    "is_finished",
    "is_suspended",
    "is_true",
    "new_condition",
    "track_finished_pods",
]

#: ``MaxUncountedPods``: at most this many uids in uncountedTerminatedPods per sync.
MAX_UNCOUNTED_PODS = 500


# -- conditions ------------------------------------------------------------------------


def find_condition(job: Job, type_: str) -> JobCondition | None:
    for condition in job.status.conditions:
        if condition.type == type_:
            return condition
    return None


def is_true(job: Job, type_: str) -> bool:
    found = find_condition(job, type_)
    return found is not None and found.status == "True"


def is_finished(job: Job) -> bool:
    """``util.IsJobFinished``: a Complete or Failed condition is True."""
    return is_true(job, "Complete") or is_true(job, "Failed")


def is_suspended(job: Job) -> bool:
    return bool(job.spec.suspend)


def new_condition(
    type_: str, reason: str, message: str, now: float, status: str = "True"
) -> JobCondition:
    t = to_wall(now)
    return JobCondition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_probe_time=t,
        last_transition_time=t,
    )


def ensure_condition(
    conditions: Sequence[JobCondition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: float,
) -> tuple[tuple[JobCondition, ...], bool]:
    """``ensureJobConditionStatus``: set the condition ``type_`` (appended only when
    ``status`` is not False); returns the conditions and whether they changed."""
    out = list(conditions)
    for i, condition in enumerate(out):
        if condition.type == type_:
            if (condition.status, condition.reason, condition.message) == (
                status,
                reason,
                message,
            ):
                return tuple(out), False
            out[i] = new_condition(type_, reason, message, now, status)
            return tuple(out), True
    if status == "False":
        return tuple(out), False
    out.append(new_condition(type_, reason, message, now, status))
    return tuple(out), True


# -- counting --------------------------------------------------------------------------


@attrs.frozen
class Tracking:
    """``trackJobStatusAndRemoveFinalizers`` up to its first write."""

    uncounted: UncountedTerminatedPods
    succeeded: int
    failed: int
    completed_indexes: str | None
    remove: tuple[Pod, ...]
    changed: bool


def track_finished_pods(
    job: Job,
    tracked: Sequence[Pod],
    finished: JobCondition | None,
    interim: JobCondition | None,
    *,
    prev_indexes: frozenset[int] = frozenset(),
    succeeded_indexes: frozenset[int] = frozenset(),
) -> Tracking:
    """Count what finalizer-less uids in ``uncountedTerminatedPods`` say, put newly
    finished pods there and pick the pods whose tracking finalizer can go: finished
    ones, and every pod of a Job that is ending or being deleted.

    Args:
        tracked: the Job's pods with the tracking finalizer (not already counted).
        finished, interim: the terminal condition and the ``FailureTarget`` /
            ``SuccessCriteriaMet`` condition this sync decided on, if any.
        prev_indexes, succeeded_indexes: Indexed Jobs: the indexes recorded in
            ``completedIndexes``, and those plus the newly succeeded ones.
    """
    status = job.status
    uncounted = status.uncounted_terminated_pods or UncountedTerminatedPods()
    uncounted_succeeded = set(uncounted.succeeded)
    uncounted_failed = set(uncounted.failed)
    with_finalizer = {p.metadata.uid for p in tracked}
    kept_succeeded = [u for u in uncounted.succeeded if u in with_finalizer]
    kept_failed = [u for u in uncounted.failed if u in with_finalizer]
    succeeded = status.succeeded + len(uncounted.succeeded) - len(kept_succeeded)
    failed = status.failed + len(uncounted.failed) - len(kept_failed)
    changed = (succeeded, failed) != (status.succeeded, status.failed)
    indexed = is_indexed(job)
    failing = (finished is not None and finished.type == "Failed") or (
        interim is not None and interim.type == "FailureTarget"
    )
    ending = finished is not None or interim is not None
    remove: list[Pod] = []
    for pod in tracked:
        uid = pod.metadata.uid
        considered_failed = is_pod_failed(pod)
        if not (
            job.metadata.deletion_timestamp is not None
            or ending
            or pod.status.phase == "Succeeded"
            or considered_failed
        ):
            continue
        remove.append(pod)
        if indexed and not has_valid_index(job, pod):
            pass  # an out-of-range index: un-finalized, never counted
        elif pod.status.phase == "Succeeded" and uid not in uncounted_failed:
            if indexed:
                # The completion index is enough to avoid recounting: no uid tracked.
                changed = changed or completion_index(pod) not in prev_indexes
            elif uid not in uncounted_succeeded:
                kept_succeeded.append(uid)
                uncounted_succeeded.add(uid)
                changed = True
        elif (considered_failed or failing) and uid not in uncounted_failed:
            # A failing Job counts each pod it stops as failed.
            kept_failed.append(uid)
            uncounted_failed.add(uid)
            changed = True
        if len(kept_succeeded) + len(kept_failed) >= MAX_UNCOUNTED_PODS:
            break
    completed_indexes = status.completed_indexes
    if indexed:
        succeeded = len(succeeded_indexes)
        completed_indexes = format_indexes(succeeded_indexes)
        changed = changed or completed_indexes != (status.completed_indexes or "")
    return Tracking(
        uncounted=UncountedTerminatedPods(
            succeeded=tuple(kept_succeeded), failed=tuple(kept_failed)
        ),
        succeeded=succeeded,
        failed=failed,
        completed_indexes=completed_indexes,
        remove=tuple(remove),
        changed=changed,
    )


def finish_status(
    status: JobStatus,
    uids_with_finalizer: Iterable[str],
    finished: JobCondition | None,
    terminating: int,
    now: float,
) -> tuple[JobStatus, bool]:
    """After finalizer removal: count the uncounted pods whose finalizer is gone
    (``cleanUncountedPodsWithoutFinalizers``) and, if the Job is ending and no pod is
    uncounted or terminating, set ``finished`` (``enactJobFinished``; ``Complete`` also
    sets ``completionTime``). Returns the status and whether the Job finished now."""
    keep = set(uids_with_finalizer)
    uncounted = status.uncounted_terminated_pods or UncountedTerminatedPods()
    succeeded = [u for u in uncounted.succeeded if u in keep]
    failed = [u for u in uncounted.failed if u in keep]
    status = attrs.evolve(
        status,
        succeeded=status.succeeded + len(uncounted.succeeded) - len(succeeded),
        failed=status.failed + len(uncounted.failed) - len(failed),
        uncounted_terminated_pods=UncountedTerminatedPods(
            succeeded=tuple(succeeded), failed=tuple(failed)
        ),
    )
    if finished is None or succeeded or failed or terminating > 0:
        return status, False
    conditions, _ = ensure_condition(
        status.conditions,
        finished.type,
        finished.status,
        finished.reason or "",
        finished.message or "",
        now,
    )
    completion_time = status.completion_time
    if finished.type == "Complete":
        completion_time = to_wall(now)
    return attrs.evolve(status, conditions=conditions, completion_time=completion_time), True


def finished_event(job: Job, condition: JobCondition) -> list[tuple[str, str, str]]:
    """``recordJobFinished``: the events for a Job that just finished."""
    if condition.type == "Complete":
        out = []
        completions = job.spec.completions
        if completions is not None and job.status.succeeded > completions:
            out.append(
                (
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            )
        out.append(("Normal", "Completed", "Job completed"))
        return out
    return [("Warning", condition.reason or "", condition.message or "")]
