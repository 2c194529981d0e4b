"""The Job controller's pure decisions: counting, backoff, failure and success, suspend,
Indexed completion — no actor, no store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from controlplane.api.batch import Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods
from controlplane.api.core_pod import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStatus,
    Pod,
    PodCondition,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
)
from controlplane.api.defaults import apply_defaults
from controlplane.api.labels import Selector
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.clock import to_wall
from controlplane.controllers import job_decisions as jd
from controlplane.controllers import job_pods as jp
from controlplane.controllers import job_status as js
from controlplane.controllers.replication import claim_dependents

JOB_UID = "job-uid"


def job(**spec: Any) -> Job:
    status = spec.pop("status", JobStatus())
    template = PodTemplateSpec(spec=PodSpec(restart_policy=spec.pop("restart_policy", "Never")))
    j = Job(
        metadata=ObjectMeta(name="pi", namespace="default", uid=JOB_UID),
        spec=JobSpec(template=template, **spec),
        status=status,
    )
    return apply_defaults(j)


def pod(
    uid: str,
    phase: str = "Running",
    *,
    finalizer: bool = True,
    created: float = 0.0,
    finished: float | None = None,
    deleted: float | None = None,
    ready: bool = False,
    restarts: int = 0,
    index: int | None = None,
    node: str | None = "node-1",
) -> Pod:
    state = ContainerState(running=ContainerStateRunning(started_at=to_wall(created)))
    if finished is not None:
        state = ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=0 if phase == "Succeeded" else 1, finished_at=to_wall(finished)
            )
        )
    annotations = {} if index is None else {jp.COMPLETION_INDEX_KEY: str(index)}
    return Pod(
        metadata=ObjectMeta(
            name=f"pi-{uid}",
            namespace="default",
            uid=uid,
            creation_timestamp=to_wall(created),
            deletion_timestamp=None if deleted is None else to_wall(deleted),
            deletion_grace_period_seconds=None if deleted is None else 0,
            finalizers=(jp.JOB_TRACKING_FINALIZER,) if finalizer else (),
            annotations=annotations,
            owner_references=(
                OwnerReference(
                    api_version="batch/v1", kind="Job", name="pi", uid=JOB_UID, controller=True
                ),
            ),
        ),
        spec=PodSpec(node_name=node),
        status=PodStatus(
            phase=phase,
            conditions=(PodCondition(type="Ready", status="True" if ready else "False"),),
            container_statuses=(
                ContainerStatus(name="main", state=state, restart_count=restarts, ready=ready),
            ),
        ),
    )


def plan(j: Job, pods: list[Pod], now: float = 0.0, **kw: Any) -> jd.SyncPlan:
    kw.setdefault("backoff", jp.BackoffRecord())
    kw.setdefault("expectations_satisfied", True)
    return jd.plan_sync(j, pods, now=now, **kw)


def conditions(status: JobStatus) -> list[tuple[str, str, str | None]]:
    return [(c.type, c.status, c.reason) for c in status.conditions]


# -- small functions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completions", "parallelism", "succeeded", "active", "want"),
    [
        (5, 2, 0, 0, 2),
        (5, 2, 4, 0, 1),
        (5, 2, 5, 0, 0),
        (5, 2, 7, 0, 0),
        (1, 0, 0, 0, 0),
        (None, 3, 0, 0, 3),
        (None, 3, 1, 2, 2),  # after a success: leave what runs, create nothing
    ],
)
def test_want_active(completions, parallelism, succeeded, active, want) -> None:
    j = job(completions=completions, parallelism=parallelism)
    assert jd.want_active(j, succeeded, active) == want


@pytest.mark.parametrize(
    ("failures", "elapsed", "remaining"),
    [
        (0, 0.0, 0.0),
        (1, 0.0, 10.0),
        (1, 3.0, 7.0),
        (2, 3.0, 17.0),
        (3, 0.0, 40.0),
        (6, 0.0, 320.0),
        (7, 0.0, 600.0),  # 640 s capped at 10 min
        (30, 100.0, 500.0),
        (1, 11.0, 0.0),
    ],
)
def test_remaining_backoff_doubles_from_10s_capped_at_10min(failures, elapsed, remaining) -> None:
    record = jp.BackoffRecord(failures, 100.0 if failures else None)
    assert jp.remaining_backoff(record, 100.0 + elapsed) == remaining


def test_backoff_record_counts_failures_and_a_success_resets_it() -> None:
    record = jp.BackoffRecord()
    record = jp.new_backoff_record(record, [], [pod("a", "Failed", finished=5)])
    assert record == jp.BackoffRecord(1, 5.0)
    record = jp.new_backoff_record(
        record, [], [pod("b", "Failed", finished=9), pod("c", "Failed", finished=7)]
    )
    assert record == jp.BackoffRecord(3, 9.0)
    assert jp.new_backoff_record(record, [], []) is record
    # a success resets; only failures after it count
    record = jp.new_backoff_record(
        record,
        [pod("d", "Succeeded", finished=20)],
        [pod("e", "Failed", finished=18), pod("f", "Failed", finished=25)],
    )
    assert record == jp.BackoffRecord(1, 25.0)
    assert jp.new_backoff_record(record, [pod("g", "Succeeded", finished=30)], []) == (
        jp.BackoffRecord()
    )


def test_a_deleted_pod_counts_as_failed_unless_it_succeeded() -> None:
    assert jp.is_pod_failed(pod("a", "Failed"))
    assert jp.is_pod_failed(pod("a", "Running", deleted=5))
    assert jp.is_pod_failed(pod("a", "Pending", deleted=5))
    assert not jp.is_pod_failed(pod("a", "Succeeded", deleted=5))
    assert not jp.is_pod_failed(pod("a", "Running"))


def test_finished_time_prefers_container_finish_then_deletion() -> None:
    assert jp.finished_time(pod("a", "Failed", finished=42, created=1)) == 42.0
    deleted = pod("a", "Running", created=1, deleted=50)
    deleted = attrs.evolve(deleted, status=attrs.evolve(deleted.status, conditions=()))
    deleted = attrs.evolve(
        deleted, metadata=attrs.evolve(deleted.metadata, deletion_grace_period_seconds=30)
    )
    assert jp.finished_time(deleted) == 20.0  # deletionTimestamp - grace: when it was asked


def test_removal_order_unscheduled_pending_not_ready_newer_first() -> None:
    running_ready_old = pod("a", ready=True, created=1)
    running_ready_new = pod("b", ready=True, created=5)
    running_not_ready = pod("c", created=1)
    pending = pod("d", "Pending", created=1)
    unscheduled = pod("e", "Pending", created=1, node=None)
    order = jp.removal_order(
        [running_ready_old, running_ready_new, running_not_ready, pending, unscheduled]
    )
    assert [p.metadata.uid for p in order] == ["e", "d", "c", "b", "a"]


def test_pod_labels_add_the_generated_ones_unless_manual() -> None:
    j = job()
    assert jp.pod_labels(j) == {
        "batch.kubernetes.io/controller-uid": JOB_UID,
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": JOB_UID,
        "job-name": "pi",
    }
    manual = attrs.evolve(j, spec=attrs.evolve(j.spec, manual_selector=True))
    assert jp.pod_labels(manual) == {}
    assert jd.job_selector(j).matches(jp.pod_labels(j))


# -- plan_sync -------------------------------------------------------------------------


def test_a_new_job_starts_parallelism_pods_and_records_its_start_time() -> None:
    p = plan(job(completions=5, parallelism=2), [], now=12.5)
    assert p.create == 2
    assert p.flush
    assert p.status.active == 2
    assert p.status.start_time == to_wall(12.5)
    assert p.finished is None


def test_no_creations_while_expectations_are_pending() -> None:
    p = plan(job(completions=5, parallelism=2), [], expectations_satisfied=False)
    assert p.create == 0
    assert p.status.active == 0


def test_never_more_than_the_remaining_completions() -> None:
    j = job(completions=3, parallelism=5, status=JobStatus(succeeded=2))
    assert plan(j, []).create == 1


def test_surplus_pods_are_deleted_in_removal_order() -> None:
    j = job(completions=5, parallelism=1)
    old, new = pod("a", ready=True, created=1), pod("b", created=5)
    p = plan(j, [old, new])
    assert [x.metadata.uid for x in p.delete] == ["b"]
    assert p.expect_deletes
    assert p.create == 0
    assert p.status.active == 1
    assert p.status.terminating == 1


def test_a_succeeded_pod_is_uncounted_then_counted_after_its_finalizer_goes() -> None:
    j = job(completions=2, parallelism=2)
    done, running = pod("a", "Succeeded", finished=9), pod("b", ready=True)
    p = plan(j, [done, running], now=10)
    assert p.create == 0
    assert [x.metadata.uid for x in p.remove_finalizers] == ["a"]
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods(succeeded=("a",))
    assert p.status.succeeded == 0
    assert (p.status.active, p.status.ready) == (1, 1)
    status, finished = js.finish_status(
        p.status, p.uids_with_finalizer - {"a"}, p.finished, p.terminating, 10
    )
    assert not finished
    assert status.succeeded == 1
    assert status.uncounted_terminated_pods == UncountedTerminatedPods()


def test_a_pod_counted_in_an_earlier_sync_is_not_counted_again() -> None:
    j = job(completions=2, parallelism=2, status=JobStatus(succeeded=1, active=1))
    stale = pod("a", "Succeeded", finished=9)  # the cache still shows the finalizer
    p = plan(j, [stale, pod("b")], expected_removed_finalizers=frozenset({"a"}))
    assert p.status.succeeded == 1
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods()
    assert p.remove_finalizers == ()


def test_an_uncounted_pod_whose_finalizer_is_gone_is_counted_after_a_crash() -> None:
    # A controller wrote uid "a" as uncounted, removed the finalizer, then crashed.
    j = job(
        completions=3,
        parallelism=1,
        status=JobStatus(
            failed=1, uncounted_terminated_pods=UncountedTerminatedPods(failed=("a",))
        ),
    )
    p = plan(j, [pod("a", "Failed", finalizer=False, finished=3)], now=20)
    assert p.status.failed == 2
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods()
    assert p.flush


def test_a_fresh_failure_delays_the_replacement_by_the_backoff() -> None:
    j = job(completions=1, parallelism=1)
    failed = pod("a", "Failed", finished=100)
    p = plan(j, [failed], now=101)
    assert p.create == 0
    assert p.requeue_after == 9.0
    assert p.backoff == jp.BackoffRecord(1, 100.0)
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods(failed=("a",))
    # once counted (finalizer gone), the record alone holds the replacement back
    counted = attrs.evolve(j, status=attrs.evolve(j.status, failed=1))
    gone = pod("a", "Failed", finished=100, finalizer=False)
    assert plan(counted, [gone], now=105, backoff=p.backoff).requeue_after == 5.0
    assert plan(counted, [gone], now=110, backoff=p.backoff).create == 1


def test_the_backoff_wait_is_never_shorter_than_the_sync_batch_period() -> None:
    record = jp.BackoffRecord(1, 100.0)
    j = job(completions=1, parallelism=1, status=JobStatus(failed=1))
    assert plan(j, [], now=109.5, backoff=record).requeue_after == jd.SYNC_BATCH_PERIOD


def test_failures_beyond_backoff_limit_fail_the_job_after_its_pods_are_gone() -> None:
    j = job(completions=3, parallelism=2, backoff_limit=1, status=JobStatus(failed=1))
    running = pod("b", ready=True)
    p = plan(j, [pod("a", "Failed", finished=5), running], now=6)
    assert [(c.type, c.reason) for c in p.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded")
    ]
    assert p.status.conditions[0].message == "Job has reached the specified backoff limit"
    assert [x.metadata.uid for x in p.delete] == ["b"]
    assert not p.expect_deletes
    assert p.create == 0
    # the running pod is stopped and counted as failed too
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods(failed=("a", "b"))
    assert {x.metadata.uid for x in p.remove_finalizers} == {"a", "b"}
    assert (p.status.active, p.status.terminating, p.status.ready) == (0, 1, 0)
    assert p.finished is not None and p.finished.type == "Failed"
    status, finished = js.finish_status(p.status, frozenset(), p.finished, p.terminating, 6)
    assert not finished  # a pod is still terminating
    assert status.failed == 3
    assert conditions(status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    # a later sync, once the pod is gone: Failed
    j2 = attrs.evolve(j, status=status)
    p2 = plan(j2, [], now=40)
    assert p2.finished is not None and p2.finished.type == "Failed"
    assert p2.create == 0
    status2, finished2 = js.finish_status(p2.status, frozenset(), p2.finished, 0, 40)
    assert finished2
    assert conditions(status2) == [
        ("FailureTarget", "True", "BackoffLimitExceeded"),
        ("Failed", "True", "BackoffLimitExceeded"),
    ]
    assert status2.completion_time is None
    assert js.finished_event(attrs.evolve(j, status=status2), p2.finished) == [
        ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    ]


def test_backoff_limit_zero_fails_on_the_first_failure() -> None:
    j = job(completions=1, parallelism=1, backoff_limit=0)
    p = plan(j, [pod("a", "Failed", finished=5)], now=6)
    assert conditions(p.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]


@pytest.mark.parametrize(
    ("limit", "restarts", "fails"), [(3, 2, False), (3, 3, True), (0, 1, True), (0, 0, False)]
)
def test_on_failure_container_restarts_count_against_backoff_limit(limit, restarts, fails) -> None:
    j = job(completions=1, parallelism=1, backoff_limit=limit, restart_policy="OnFailure")
    p = plan(j, [pod("a", restarts=restarts)], now=6)
    assert bool(p.status.conditions) == fails
    never = job(completions=1, parallelism=1, backoff_limit=limit, restart_policy="Never")
    assert not plan(never, [pod("a", restarts=restarts)], now=6).status.conditions


def test_active_deadline_requeues_then_fails_the_job() -> None:
    start = to_wall(100)
    j = job(completions=1, parallelism=1, active_deadline_seconds=30)
    j = attrs.evolve(j, status=JobStatus(start_time=start, active=1, ready=0, terminating=0))
    running = pod("a")
    p = plan(j, [running], now=110)
    assert p.requeue_after == 20.0
    assert not p.status.conditions
    p = plan(j, [running], now=130)
    assert conditions(p.status) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert p.status.conditions[0].message == "Job was active longer than specified deadline"
    assert [x.metadata.uid for x in p.delete] == ["a"]


def test_reaching_completions_marks_success_criteria_then_complete() -> None:
    j = job(completions=2, parallelism=2, status=JobStatus(succeeded=1, active=1))
    p = plan(j, [pod("b", "Succeeded", finished=20)], now=21)
    assert conditions(p.status) == [("SuccessCriteriaMet", "True", "CompletionsReached")]
    assert p.finished is not None and p.finished.type == "Complete"
    status, finished = js.finish_status(p.status, frozenset(), p.finished, 0, 21)
    assert finished
    assert status.succeeded == 2
    assert conditions(status)[-1] == ("Complete", "True", "CompletionsReached")
    assert status.completion_time == to_wall(21)
    done = attrs.evolve(j, status=status)
    assert js.is_finished(done)
    assert js.finished_event(done, p.finished) == [("Normal", "Completed", "Job completed")]


def test_without_completions_the_first_success_ends_the_job_when_others_stop() -> None:
    j = job(parallelism=2)
    assert j.spec.completions is None
    p = plan(j, [pod("a", "Succeeded", finished=3), pod("b")], now=4)
    assert p.create == 0 and p.delete == ()
    assert not p.status.conditions
    p = plan(j, [pod("a", "Succeeded", finished=3), pod("b", "Succeeded", finished=5)], now=6)
    assert conditions(p.status) == [("SuccessCriteriaMet", "True", "CompletionsReached")]


def test_a_suspended_job_deletes_its_pods_and_says_so() -> None:
    j = job(completions=3, parallelism=2, suspend=True)
    p = plan(j, [pod("a"), pod("b")], now=5)
    assert {x.metadata.uid for x in p.delete} == {"a", "b"}
    assert p.expect_deletes
    assert p.create == 0
    assert p.status.start_time is None
    assert conditions(p.status) == [("Suspended", "True", "JobSuspended")]
    assert p.events == (("Normal", "Suspended", "Job suspended"),)
    # resumed: the condition goes False, the start time is (re)set, pods are created
    resumed = attrs.evolve(
        j,
        spec=attrs.evolve(j.spec, suspend=False),
        status=attrs.evolve(j.status, **{"conditions": p.status.conditions}),
    )
    p2 = plan(resumed, [], now=50)
    assert conditions(p2.status) == [("Suspended", "False", "JobResumed")]
    assert p2.events == (("Normal", "Resumed", "Job resumed"),)
    assert p2.status.start_time == to_wall(50)
    assert p2.create == 2


# -- Indexed ---------------------------------------------------------------------------


def test_indexes_parse_and_format() -> None:
    assert jp.parse_indexes("1,3-5,9", 6) == {1, 3, 4, 5}
    assert jp.parse_indexes("", 6) == set()
    assert jp.parse_indexes(None, 6) == set()
    assert jp.format_indexes({5, 1, 3, 4, 0}) == "0-1,3-5"
    assert jp.format_indexes([2]) == "2"
    assert jp.format_indexes([]) == ""


def test_indexed_creates_the_lowest_free_indexes() -> None:
    j = job(completions=5, parallelism=3, completion_mode="Indexed")
    j = attrs.evolve(j, status=attrs.evolve(j.status, completed_indexes="0"))
    p = plan(j, [pod("a", index=2)])
    assert p.create_indexes == (1, 3)
    assert p.create == 2


def test_indexed_counts_an_index_once_and_removes_duplicates() -> None:
    j = job(completions=3, parallelism=3, completion_mode="Indexed")
    pods = [
        pod("a", "Succeeded", index=0, finished=4),
        pod("b", "Succeeded", index=0, finished=5),
        pod("c", index=1, created=1),
        pod("d", index=1, created=2),
        pod("e", index=7),
    ]
    p = plan(j, pods, now=6)
    assert p.status.completed_indexes == "0"
    assert p.status.succeeded == 1
    assert p.status.uncounted_terminated_pods == UncountedTerminatedPods()
    assert {x.metadata.uid for x in p.delete} == {"d", "e"}  # the newer duplicate, bad index
    assert p.create == 0  # deletions first, as manageJob


def test_ensure_condition_only_appends_true_and_reports_changes() -> None:
    assert js.ensure_condition((), "Suspended", "False", "JobResumed", "m", 1) == ((), False)
    conds, changed = js.ensure_condition((), "Suspended", "True", "JobSuspended", "m", 1)
    assert changed and conds[0].last_transition_time == to_wall(1)
    same, changed = js.ensure_condition(conds, "Suspended", "True", "JobSuspended", "m", 9)
    assert not changed and same == conds
    flipped, changed = js.ensure_condition(conds, "Suspended", "False", "JobResumed", "m", 9)
    assert changed and flipped[0].status == "False"
    assert isinstance(flipped[0], JobCondition)
    assert flipped[0].last_transition_time - conds[0].last_transition_time == timedelta(seconds=8)


def test_a_pod_beyond_the_completions_is_deleted_and_the_job_meets_its_criteria() -> None:
    j = job(completions=2, parallelism=2, status=JobStatus(succeeded=1, active=2))
    p = plan(j, [pod("a", "Succeeded", finished=5), pod("b", ready=True)], now=6)
    assert [x.metadata.uid for x in p.delete] == ["b"]
    assert p.expect_deletes
    assert (p.status.active, p.status.terminating, p.status.ready) == (0, 1, 0)
    assert conditions(p.status) == [("SuccessCriteriaMet", "True", "CompletionsReached")]
    # Complete waits until b is gone
    status, finished = js.finish_status(p.status, frozenset(), p.finished, p.terminating, 6)
    assert not finished and status.succeeded == 2


def test_a_failing_job_with_writes_in_flight_stops_its_pods_but_decides_later() -> None:
    j = job(completions=3, parallelism=1, backoff_limit=0, status=JobStatus(failed=1, active=1))
    p = plan(j, [pod("b")], now=6, expectations_satisfied=False)
    assert [x.metadata.uid for x in p.delete] == ["b"]
    assert not p.expect_deletes
    assert (p.status.active, p.status.terminating) == (0, 1)
    assert p.status.conditions == ()
    assert p.finished is None


def test_claim_keeps_adopts_and_releases() -> None:
    sel = Selector.from_map({"app": "pi"})

    def labelled(p: Pod, labels: dict[str, str], owned: bool = True) -> Pod:
        refs = p.metadata.owner_references if owned else ()
        return attrs.evolve(
            p, metadata=attrs.evolve(p.metadata, labels=labels, owner_references=refs)
        )

    mine = labelled(pod("a"), {"app": "pi"})
    strayed = labelled(pod("b"), {"app": "other"})
    orphan = labelled(pod("c"), {"app": "pi"}, owned=False)
    dying_orphan = labelled(pod("d", deleted=3), {"app": "pi"}, owned=False)
    other_ns = attrs.evolve(orphan, metadata=attrs.evolve(orphan.metadata, namespace="x", uid="e"))
    theirs = attrs.evolve(
        mine,
        metadata=attrs.evolve(
            mine.metadata,
            uid="f",
            owner_references=(
                OwnerReference(api_version="v1", kind="X", name="x", uid="other", controller=True),
            ),
        ),
    )
    pods = [mine, strayed, orphan, dying_orphan, other_ns, theirs]
    claim = claim_dependents(JOB_UID, "default", sel, False, pods)
    assert [p.metadata.uid for p in claim.owned] == ["a", "c"]
    assert [p.metadata.uid for p in claim.adopt] == ["c"]
    assert [p.metadata.uid for p in claim.release] == ["b"]
    deleting = claim_dependents(JOB_UID, "default", sel, True, pods)
    assert [p.metadata.uid for p in deleting.owned] == ["a"]
    assert deleting.adopt == deleting.release == ()
