"""batch/v1 kinds: Job and CronJob.

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.core_pod import PodTemplateSpec, as_tuple
from controlplane.api.core_service import ObjectReference
from controlplane.api.meta import LabelSelector, ObjectMeta

__all__ = [
    "CronJob",
    "CronJobSpec",
    "CronJobStatus",
    "Job",
    "JobCondition",
    "JobSpec",
    "JobStatus",
    "JobTemplateSpec",
    "UncountedTerminatedPods",
]


@attrs.frozen(kw_only=True)
class JobSpec:
    parallelism: int | None = None
    completions: int | None = None
    active_deadline_seconds: int | None = None
    backoff_limit: int | None = None
    selector: LabelSelector | None = None
    manual_selector: bool | None = None
    template: PodTemplateSpec = PodTemplateSpec()
    ttl_seconds_after_finished: int | None = None
    #: NonIndexed or Indexed.
    completion_mode: str | None = None
    suspend: bool | None = None


@attrs.frozen(kw_only=True)
class JobCondition:
    """``type`` is Complete, Failed, Suspended, FailureTarget or SuccessCriteriaMet."""

    type: str = ""
    status: str = ""
    last_probe_time: datetime | None = None
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class UncountedTerminatedPods:
    """Uids of finished pods the Job controller has seen but not yet added to the
    counters (it removes their tracking finalizers in between)."""

    succeeded: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)
    failed: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class JobStatus:
    conditions: tuple[JobCondition, ...] = attrs.field(default=(), converter=as_tuple)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int | None = None
    ready: int | None = None
    completed_indexes: str | None = None
    uncounted_terminated_pods: UncountedTerminatedPods | None = None


@attrs.frozen(kw_only=True)
class Job:
    kind: ClassVar[str] = "Job"
    api_version: ClassVar[str] = "batch/v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: JobSpec = JobSpec()
    status: JobStatus = JobStatus()


@attrs.frozen(kw_only=True)
class JobTemplateSpec:
    metadata: ObjectMeta = ObjectMeta()
    spec: JobSpec = JobSpec()


@attrs.frozen(kw_only=True)
class CronJobSpec:
    schedule: str = ""
    time_zone: str | None = None
    starting_deadline_seconds: int | None = None
    #: Allow, Forbid or Replace.
    concurrency_policy: str | None = None
    suspend: bool | None = None
    job_template: JobTemplateSpec = JobTemplateSpec()
    successful_jobs_history_limit: int | None = None
    failed_jobs_history_limit: int | None = None


@attrs.frozen(kw_only=True)
class CronJobStatus:
    active: tuple[ObjectReference, ...] = attrs.field(default=(), converter=as_tuple)
    last_schedule_time: datetime | None = None
    last_successful_time: datetime | None = None


@attrs.frozen(kw_only=True)
class CronJob:
    kind: ClassVar[str] = "CronJob"
    api_version: ClassVar[str] = "batch/v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: CronJobSpec = CronJobSpec()
    status: CronJobStatus = CronJobStatus()
