"""What the Job controller reads off its pods and writes into them; the failure backoff.

Pure functions from Kubernetes' ``pkg/controller/job``: which pods count as failed or
terminating, when a pod finished, the order surplus pods are deleted in
(``controller.ActivePods``), which pods a Job claims, how its pods are stamped from the
template (with a completion index for an Indexed Job), and the exponential backoff
between pod failures (``backoff_utils.go``).
:mod:`controlplane.controllers.job_decisions` builds on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from controlplane.api.batch import Job
from controlplane.api.core_pod import (
    EnvVar,
    EnvVarSource,
    ObjectFieldSelector,
    Pod,
    PodTemplateSpec,
)
from controlplane.clock import EPOCH
from controlplane.controllers.pods import is_ready, pod_from_template

__all__ = [
    "COMPLETION_INDEX_ENV",
    "COMPLETION_INDEX_KEY",
    "CONTROLLER_UID_LABEL",
    "DEFAULT_POD_FAILURE_BACKOFF",
    "JOB_NAME_LABEL",
    "JOB_TRACKING_FINALIZER",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "MAX_POD_FAILURE_BACKOFF",
    "BackoffRecord",
    "completion_index",
    "finished_time",
    "first_pending_indexes",
    "format_indexes",
    "generated_labels",
    "has_tracking_finalizer",
    "has_valid_index",
    "indexed_pod",
    "indexed_removals",
    "is_indexed",
    "is_pod_failed",
    "is_terminating",
    "new_backoff_record",
    "parse_indexes",
    "pod_labels",
    "pod_template",
    "remaining_backoff",
    "removal_order",
    "to_seconds",
]

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
#: The annotation (and label) carrying an Indexed Job pod's completion index.
COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
#: The variable an Indexed Job's containers read their completion index from.
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

#: ``DefaultJobPodFailureBackOff`` / ``MaxJobPodFailureBackOff`` (job_controller.go). The
#: docs still say "capped at six minutes"; the code has capped at 10 minutes since 1.28.
DEFAULT_POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 600.0


def to_seconds(t: datetime) -> float:
    """Trio time of a virtual wall-clock instant (see :mod:`controlplane.clock`)."""
    return (t - EPOCH).total_seconds()


# -- labels ---------------------------------------------------------------------------


def generated_labels(job: Job) -> dict[str, str]:
    """The labels the apiserver's ``generateSelector`` puts on a Job's template (and so
    on its pods) when ``manualSelector`` is not true."""
    uid, name = job.metadata.uid, job.metadata.name
    return {
        CONTROLLER_UID_LABEL: uid,
        JOB_NAME_LABEL: name,
        LEGACY_CONTROLLER_UID_LABEL: uid,
        LEGACY_JOB_NAME_LABEL: name,
    }


def pod_labels(job: Job) -> Mapping[str, str]:
    """The labels of the Job's new pods: the template's, plus the generated ones
    (``batch.kubernetes.io/controller-uid`` …) unless the selector is manual."""
    labels = dict(job.spec.template.metadata.labels)
    if not job.spec.manual_selector:
        for key, value in generated_labels(job).items():
            labels.setdefault(key, value)
    return labels


# -- ownership -------------------------------------------------------------------------


# -- stamping pods ---------------------------------------------------------------------


def pod_template(job: Job) -> PodTemplateSpec:
    """The template the Job's pods are stamped from: the Job's, with the generated labels
    (:func:`pod_labels`) and the tracking finalizer. The spec is the Job's own, shared."""
    template = job.spec.template
    meta = template.metadata
    finalizers = meta.finalizers
    if JOB_TRACKING_FINALIZER not in finalizers:
        finalizers = (*finalizers, JOB_TRACKING_FINALIZER)
    return attrs.evolve(
        template, metadata=attrs.evolve(meta, labels=pod_labels(job), finalizers=finalizers)
    )


def indexed_pod(template: PodTemplateSpec, job: Job, index: int) -> Pod:
    """An Indexed Job's pod from :func:`pod_template`: its completion index as annotation
    and label, in ``JOB_COMPLETION_INDEX`` (read from the annotation) of every container,
    hostname ``<job>-<index>`` and generateName ``<job>-<index>-`` (``manageJob``)."""
    value = str(index)
    meta = template.metadata
    env = EnvVar(
        name=COMPLETION_INDEX_ENV,
        value_from=EnvVarSource(
            field_ref=ObjectFieldSelector(
                field_path=f"metadata.annotations['{COMPLETION_INDEX_KEY}']"
            )
        ),
    )

    def with_env(containers: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            c
            if any(e.name == COMPLETION_INDEX_ENV for e in c.env)
            else attrs.evolve(c, env=(*c.env, env))
            for c in containers
        )

    spec = attrs.evolve(
        template.spec,
        hostname=f"{job.metadata.name}-{index}",
        containers=with_env(template.spec.containers),
        init_containers=with_env(template.spec.init_containers),
    )
    template = attrs.evolve(
        template,
        metadata=attrs.evolve(
            meta,
            annotations={**meta.annotations, COMPLETION_INDEX_KEY: value},
            labels={**meta.labels, COMPLETION_INDEX_KEY: value},
        ),
        spec=spec,
    )
    return pod_from_template(template, job, generate_name=f"{job.metadata.name}-{index}-")


# -- pods ------------------------------------------------------------------------------


def has_tracking_finalizer(pod: Pod) -> bool:
    return JOB_TRACKING_FINALIZER in pod.metadata.finalizers


def is_pod_failed(pod: Pod) -> bool:
    """``isPodFailed``: Failed, or deleted before it succeeded (an orphaned or evicted
    pod may never reach the Failed phase, so a deletion counts as a failure)."""
    phase = pod.status.phase
    if phase == "Failed":
        return True
    return pod.metadata.deletion_timestamp is not None and phase != "Succeeded"


def is_terminating(pod: Pod) -> bool:
    """``CountTerminatingPods``: being deleted and not yet terminal."""
    return pod.metadata.deletion_timestamp is not None and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def finished_time(pod: Pod) -> float:
    """``getFinishedTime`` (trio seconds): the latest container finish, else when the
    pod stopped being Ready, else when its deletion began, else its creation."""
    statuses = pod.status.container_statuses
    if statuses:
        finishes = [
            s.state.terminated.finished_at
            for s in statuses
            if s.state.terminated is not None and s.state.terminated.finished_at is not None
        ]
        if len(finishes) == len(statuses):
            return to_seconds(max(finishes))
    for condition in pod.status.conditions:
        if (
            condition.type == "Ready"
            and condition.status == "False"
            and condition.last_transition_time is not None
        ):
            return to_seconds(condition.last_transition_time)
    meta = pod.metadata
    if meta.deletion_timestamp is not None:
        return to_seconds(meta.deletion_timestamp) - (meta.deletion_grace_period_seconds or 0)
    return to_seconds(meta.creation_timestamp) if meta.creation_timestamp else 0.0


def _pod_sort_key(pod: Pod) -> tuple[object, ...]:
    """``controller.ActivePods`` order: the pods cheapest to lose first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod.status.phase or "", 0)
    ready = is_ready(pod)
    ready_since = 0.0
    if ready:
        for condition in pod.status.conditions:
            if condition.type == "Ready" and condition.last_transition_time is not None:
                ready_since = to_seconds(condition.last_transition_time)
    restarts = sum(s.restart_count for s in pod.status.container_statuses)
    created = pod.metadata.creation_timestamp
    return (
        bool(pod.spec.node_name),
        phase_rank,
        ready,
        -ready_since,  # ready for less time first
        -restarts,  # more restarts first
        -(to_seconds(created) if created else 0.0),  # newer first
        pod.metadata.uid,
    )


def removal_order(pods: Iterable[Pod]) -> list[Pod]:
    """Active pods in the order Kubernetes deletes them: unscheduled before scheduled,
    Pending before Running, not ready before ready, newer before older."""
    return sorted(pods, key=_pod_sort_key)


# -- Indexed completion mode -----------------------------------------------------------


def is_indexed(job: Job) -> bool:
    return job.spec.completion_mode == "Indexed"


def completion_index(pod: Pod) -> int | None:
    """``getCompletionIndex``: the pod's completion index annotation, None if absent or
    not a non-negative integer."""
    value = pod.metadata.annotations.get(COMPLETION_INDEX_KEY)
    if value is None or not value.isdigit():
        return None
    return int(value)


def has_valid_index(job: Job, pod: Pod) -> bool:
    index = completion_index(pod)
    return index is not None and index < (job.spec.completions or 0)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """``parseIndexesFromString``: ``"1,3-5"`` -> ``{1, 3, 4, 5}``, below ``completions``
    (malformed parts are skipped, as Kubernetes logs and skips them)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        out.update(i for i in range(int(first), int(last or first) + 1) if i < completions)
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """``orderedIntervals.String``: ``{1, 3, 4, 5}`` -> ``"1,3-5"``."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def first_pending_indexes(
    active_pods: Iterable[Pod], succeeded: set[int], count: int, completions: int
) -> list[int]:
    """``firstPendingIndexes``: the lowest ``count`` indexes neither succeeded nor held
    by an active pod."""
    taken = set(succeeded)
    taken.update(i for p in active_pods if (i := completion_index(p)) is not None)
    out: list[int] = []
    for i in range(completions):
        if len(out) >= count:
            break
        if i not in taken:
            out.append(i)
    return out


def indexed_removals(active_pods: Iterable[Pod], completions: int) -> list[Pod]:
    """``appendDuplicatedIndexPodsForRemoval``: active pods with no valid index, and all
    but one pod of an index held twice (the one kept is the last to go in
    :func:`removal_order`)."""
    remove: list[Pod] = []
    by_index: dict[int, list[Pod]] = {}
    for pod in active_pods:
        index = completion_index(pod)
        if index is None or index >= completions:
            remove.append(pod)
        else:
            by_index.setdefault(index, []).append(pod)
    for index in sorted(by_index):
        holders = removal_order(by_index[index])
        remove.extend(holders[:-1])
    return remove


# -- pod failure backoff ---------------------------------------------------------------


@attrs.frozen
class BackoffRecord:
    """``backoffRecord``: failures since the last success and when the last one was.
    Kept in memory per Job (a restarted controller starts from none, as Kubernetes)."""

    failures_after_last_success: int = 0
    last_failure_time: float | None = None


def new_backoff_record(
    record: BackoffRecord, new_succeeded: Sequence[Pod], new_failed: Sequence[Pod]
) -> BackoffRecord:
    """``backoffStore.newBackoffRecord``: fold the newly finished pods into ``record``.
    A success resets the count to the failures that finished after it."""
    failed_times = sorted(finished_time(p) for p in new_failed)
    if not new_succeeded:
        if not failed_times:
            return record
        return BackoffRecord(
            record.failures_after_last_success + len(failed_times), failed_times[-1]
        )
    last_success = max(finished_time(p) for p in new_succeeded)
    after = [t for t in failed_times if t > last_success]
    if not after:
        return BackoffRecord()
    return BackoffRecord(len(after), after[-1])


def remaining_backoff(
    record: BackoffRecord,
    now: float,
    *,
    base: float = DEFAULT_POD_FAILURE_BACKOFF,
    cap: float = MAX_POD_FAILURE_BACKOFF,
) -> float:
    """Seconds until the next pod may be created: ``base * 2^(failures-1)`` (capped)
    after the last failure; 0 when there is no failure on record."""
    if record.failures_after_last_success == 0 or record.last_failure_time is None:
        return 0.0
    delay = base
    for _ in range(1, record.failures_after_last_success):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    return max(0.0, delay - (now - record.last_failure_time))
