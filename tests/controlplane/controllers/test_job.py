"""The Job controller end to end: a cluster with two nodes, virtual time, real kubelets
running fake containers that succeed, fail or run on."""

from __future__ import annotations

import itertools
import random
from typing import Any

import attrs
import pytest
import structlog
import trio
import trio.testing

from controlplane import errors, open_cluster
from controlplane.api import from_dict
from controlplane.client.workqueue import WorkQueue
from controlplane.clock import EPOCH
from controlplane.controllers import job_pods as jp
from controlplane.controllers.framework import ControllerContext, SharedInformers
from controlplane.controllers.job import JobController
from controlplane.events import EventRecorder
from runtime.programs import Program, Timeline

CONTROLLERS = [("job-controller", JobController)]
OK = "work:ok"  # exits 0 after 5 s
FAIL = "work:fail"  # exits 1 after 2 s
SLOW = "work:slow"  # exits 0 after 100 s
FOREVER = "work:forever"


def job_manifest(
    name: str = "pi", *, image: str = OK, restart: str = "Never", **spec: Any
) -> dict[str, Any]:
    template = spec.pop("template_metadata", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            **spec,
            "template": {
                "metadata": template,
                "spec": {
                    "restartPolicy": restart,
                    "containers": [{"name": "main", "image": image}],
                },
            },
        },
    }


def setup_images(cluster: Any) -> None:
    cluster.registry.add(OK, program=Program(timeline=Timeline(exit_at=5, exit_code=0)))
    cluster.registry.add(FAIL, program=Program(timeline=Timeline(exit_at=2, exit_code=1)))
    cluster.registry.add(SLOW, program=Program(timeline=Timeline(exit_at=100, exit_code=0)))
    cluster.registry.add(FOREVER, program=Program())


def get_job(cluster: Any, name: str = "pi") -> Any:
    return cluster.get_nowait("Job", name, namespace="default")


def pods_of(cluster: Any, job: Any) -> list[Any]:
    return [
        p
        for p in cluster.list_nowait("Pod", namespace="default")
        if any(r.uid == job.metadata.uid for r in p.metadata.owner_references)
    ]


def active(pods: list[Any]) -> list[Any]:
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")
    ]


def condition(job: Any, type_: str) -> Any:
    return next((c for c in job.status.conditions if c.type == type_ and c.status == "True"), None)


def job_events(cluster: Any, name: str = "pi") -> list[Any]:
    return [
        e
        for e in cluster.list_nowait("Event", namespace="default")
        if e.involved_object.kind == "Job" and e.involved_object.name == name
    ]


def seconds(t: Any) -> float:
    return (t - EPOCH).total_seconds()


async def test_completions_5_parallelism_2_never_runs_more_than_2(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        stored = await cluster.apply(job_manifest(completions=5, parallelism=2))
        most = {"pods": 0, "status": 0}

        def complete() -> Any:
            job = get_job(cluster)
            most["pods"] = max(most["pods"], len(active(pods_of(cluster, job))))
            most["status"] = max(most["status"], job.status.active)
            return condition(job, "Complete")

        done = await cluster.wait_for(complete, timeout=300)
        assert most == {"pods": 2, "status": 2}
        job = get_job(cluster)
        assert (job.status.succeeded, job.status.failed, job.status.active) == (5, 0, 0)
        assert [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
        assert done.reason == "CompletionsReached"
        assert job.status.completion_time == done.last_transition_time
        assert job.status.start_time is not None
        pods = pods_of(cluster, job)
        assert len(pods) == 5
        for pod in pods:
            assert pod.status.phase == "Succeeded"
            assert pod.metadata.generate_name == "pi-"
            assert pod.metadata.finalizers == ()  # counted, then un-finalized
            labels = pod.metadata.labels
            assert labels["batch.kubernetes.io/controller-uid"] == stored.metadata.uid
            assert labels["batch.kubernetes.io/job-name"] == "pi"
            assert labels["controller-uid"] == stored.metadata.uid
            assert labels["job-name"] == "pi"
            (ref,) = pod.metadata.owner_references
            assert (ref.kind, ref.name, ref.uid) == ("Job", "pi", stored.metadata.uid)
            assert ref.controller and ref.block_owner_deletion
        await cluster.wait_for(lambda: any(e.reason == "Completed" for e in job_events(cluster)))
        events = job_events(cluster)
        created = sorted(e.message for e in events if e.reason == "SuccessfulCreate")
        assert created == sorted(f"Created pod: {p.metadata.name}" for p in pods)
        (completed,) = [e for e in events if e.reason == "Completed"]
        assert (completed.type, completed.message) == ("Normal", "Job completed")


async def test_pods_carry_the_tracking_finalizer_while_they_run(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=SLOW, completions=1))
        job = get_job(cluster)

        def running() -> Any:
            pods = [p for p in pods_of(cluster, job) if p.status.phase == "Running"]
            return pods[0] if pods else None

        pod = await cluster.wait_for(running, timeout=60)
        assert pod.metadata.finalizers == (jp.JOB_TRACKING_FINALIZER,)
        await cluster.wait_for(lambda: get_job(cluster).status.ready == 1, timeout=60)
        assert get_job(cluster).status.active == 1


async def test_a_failing_image_backs_off_10_20_40_s_then_fails_the_job(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=FAIL, backoffLimit=3))
        failed = await cluster.wait_for(lambda: condition(get_job(cluster), "Failed"), timeout=600)
        assert failed.reason == "BackoffLimitExceeded"
        assert failed.message == "Job has reached the specified backoff limit"
        job = get_job(cluster)
        assert [c.type for c in job.status.conditions] == ["FailureTarget", "Failed"]
        assert (job.status.failed, job.status.succeeded, job.status.active) == (4, 0, 0)
        assert job.status.completion_time is None
        await cluster.settle()
        pods = sorted(pods_of(cluster, job), key=lambda p: p.metadata.creation_timestamp)
        assert len(pods) == 4  # the first try and backoffLimit retries, no more
        assert all(p.status.phase == "Failed" for p in pods)
        gaps = []
        for earlier, later in itertools.pairwise(pods):
            finished = earlier.status.container_statuses[0].state.terminated.finished_at
            gaps.append(seconds(later.metadata.creation_timestamp) - seconds(finished))
        # whole-second timestamps: each gap is the backoff, give or take the truncation
        for gap, backoff in zip(gaps, (10, 20, 40), strict=True):
            assert backoff - 1 <= gap <= backoff + 1, gaps
        await cluster.wait_for(
            lambda: any(e.reason == "BackoffLimitExceeded" for e in job_events(cluster))
        )
        (event,) = [e for e in job_events(cluster) if e.reason == "BackoffLimitExceeded"]
        assert (event.type, event.message) == ("Warning", failed.message)


async def test_on_failure_container_restarts_count_toward_backoff_limit(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=FAIL, restart="OnFailure", backoffLimit=2))
        failed = await cluster.wait_for(lambda: condition(get_job(cluster), "Failed"), timeout=600)
        assert failed.reason == "BackoffLimitExceeded"
        job = get_job(cluster)
        # one pod, restarted in place by the kubelet, then stopped by the controller
        assert job.status.failed == 1
        await cluster.settle()
        assert len(pods_of(cluster, job)) <= 1
        deleted = [e for e in job_events(cluster) if e.reason == "SuccessfulDelete"]
        assert len(deleted) == 1


async def test_active_deadline_fails_the_job_and_stops_its_pods(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(
            job_manifest(image=FOREVER, completions=4, parallelism=2, activeDeadlineSeconds=30)
        )
        failed = await cluster.wait_for(lambda: condition(get_job(cluster), "Failed"), timeout=300)
        job = get_job(cluster)
        assert failed.reason == "DeadlineExceeded"
        assert failed.message == "Job was active longer than specified deadline"
        target = condition(job, "FailureTarget")
        assert seconds(target.last_transition_time) - seconds(job.status.start_time) == 30
        assert (job.status.active, job.status.failed, job.status.terminating) == (0, 2, 0)
        await cluster.wait_for(lambda: not pods_of(cluster, job), timeout=120)
        await cluster.wait_for(
            lambda: any(e.reason == "DeadlineExceeded" for e in job_events(cluster))
        )
        reasons = [e.reason for e in job_events(cluster)]
        assert reasons.count("SuccessfulDelete") == 2


async def test_a_pod_deleted_by_hand_is_replaced_and_counted_failed(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=SLOW, completions=1))
        job = get_job(cluster)
        first = await cluster.wait_for(
            lambda: next((p for p in pods_of(cluster, job) if p.status.phase == "Running"), None)
        )
        deleted_at = trio.current_time()
        await cluster.client.delete("Pod", first.metadata.name, namespace="default")

        def replacement() -> Any:
            pods = pods_of(cluster, job)
            return next((p for p in pods if p.metadata.uid != first.metadata.uid), None)

        second = await cluster.wait_for(replacement, timeout=60)
        assert get_job(cluster).status.failed == 1
        # a deletion counts as a failure: the replacement waits out the 10 s backoff
        assert 9 <= seconds(second.metadata.creation_timestamp) - deleted_at <= 11
        await cluster.wait_for(lambda: condition(get_job(cluster), "Complete"), timeout=300)
        job = get_job(cluster)
        assert (job.status.succeeded, job.status.failed) == (1, 1)
        assert cluster.get_nowait("Pod", first.metadata.name, namespace="default") is None


async def test_a_controller_restart_mid_way_converges_without_over_creating(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        cluster.registry.add(OK, program=Program(timeline=Timeline(exit_at=20, exit_code=0)))
        await cluster.apply(job_manifest(completions=6, parallelism=3))
        job = get_job(cluster)
        most = {"active": 0}

        def watch(pred: Any) -> Any:
            def check() -> Any:
                most["active"] = max(most["active"], len(active(pods_of(cluster, job))))
                return pred()

            return check

        await cluster.wait_for(watch(lambda: get_job(cluster).status.succeeded >= 2), timeout=120)
        await cluster.chaos.supervisor.restart_child("controller-manager")
        # and once more right after it created pods, before it saw them come back
        await cluster.wait_for(watch(lambda: len(pods_of(cluster, job)) >= 4), timeout=120)
        await cluster.chaos.supervisor.restart_child("controller-manager")
        await cluster.wait_for(watch(lambda: condition(get_job(cluster), "Complete")), timeout=300)
        await cluster.settle()
        job = get_job(cluster)
        assert (job.status.succeeded, job.status.failed) == (6, 0)
        assert len(pods_of(cluster, job)) == 6
        assert most["active"] <= 3


async def test_counts_stay_exact_when_a_third_of_the_controllers_writes_fail(autojump_clock):
    async with open_cluster(nodes=2, seed=2, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(completions=8, parallelism=3))
        job = get_job(cluster)
        for verb in ("update", "update_status", "create"):
            kind = "Job" if verb == "update_status" else "Pod"
            cluster.chaos.store_fault(
                kind=kind, verb=verb, error=errors.TooManyRequests, fraction=0.3
            )
        most = {"active": 0}

        def complete() -> Any:
            most["active"] = max(most["active"], len(active(pods_of(cluster, job))))
            return condition(get_job(cluster), "Complete")

        await cluster.wait_for(complete, timeout=600)
        cluster.store.faults.clear()
        await cluster.settle()
        job = get_job(cluster)
        assert (job.status.succeeded, job.status.failed) == (8, 0)
        pods = pods_of(cluster, job)
        assert len(pods) == 8
        assert all(not jp.has_tracking_finalizer(p) for p in pods)
        assert most["active"] <= 3
        assert any(e.reason == "FailedCreate" for e in job_events(cluster))


async def test_a_manual_selector_job_adopts_a_matching_orphan_and_releases_a_stray(
    autojump_clock,
):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        orphan = await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "m"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": FOREVER}],
                },
            }
        )
        await cluster.apply(
            job_manifest(
                image=FOREVER,
                completions=2,
                parallelism=2,
                manualSelector=True,
                selector={"matchLabels": {"app": "m"}},
                template_metadata={"labels": {"app": "m"}},
            )
        )
        job = get_job(cluster)
        await cluster.wait_for(lambda: len(active(pods_of(cluster, job))) == 2, timeout=60)
        await cluster.settle()
        adopted = cluster.get_nowait("Pod", "stray", namespace="default")
        assert adopted.metadata.uid == orphan.metadata.uid
        assert adopted.metadata.controller_ref().uid == job.metadata.uid
        assert jp.JOB_TRACKING_FINALIZER in adopted.metadata.finalizers
        assert len(pods_of(cluster, job)) == 2  # the orphan counts: only one created
        # relabelled, it is released (reference and finalizer gone) and replaced
        relabelled = attrs.evolve(
            adopted, metadata=attrs.evolve(adopted.metadata, labels={"app": "elsewhere"})
        )
        await cluster.client.update(relabelled)

        def released() -> Any:
            pod = cluster.get_nowait("Pod", "stray", namespace="default")
            return pod if not pod.metadata.owner_references else None

        pod = await cluster.wait_for(released, timeout=30)
        assert not jp.has_tracking_finalizer(pod)
        await cluster.wait_for(lambda: len(active(pods_of(cluster, job))) == 2, timeout=60)
        assert "stray" not in {p.metadata.name for p in pods_of(cluster, job)}


async def test_indexed_job_gives_each_pod_an_index(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(completions=3, parallelism=2, completionMode="Indexed"))
        await cluster.wait_for(lambda: condition(get_job(cluster), "Complete"), timeout=300)
        job = get_job(cluster)
        assert job.status.completed_indexes == "0-2"
        assert job.status.succeeded == 3
        pods = sorted(pods_of(cluster, job), key=lambda p: p.spec.hostname)
        assert [p.spec.hostname for p in pods] == ["pi-0", "pi-1", "pi-2"]
        for i, pod in enumerate(pods):
            assert pod.metadata.generate_name == f"pi-{i}-"
            assert pod.metadata.annotations[jp.COMPLETION_INDEX_KEY] == str(i)
            assert pod.metadata.labels[jp.COMPLETION_INDEX_KEY] == str(i)
            (env,) = pod.spec.containers[0].env
            assert env.name == "JOB_COMPLETION_INDEX"
            assert env.value_from.field_ref.field_path == (
                "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            )


async def test_suspended_job_runs_nothing_until_resumed(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        stored = await cluster.apply(job_manifest(completions=2, parallelism=2, suspend=True))
        await cluster.wait_for(lambda: condition(get_job(cluster), "Suspended"), timeout=30)
        await cluster.settle()
        assert pods_of(cluster, stored) == []
        assert get_job(cluster).status.start_time is None
        job = get_job(cluster)
        job = attrs.evolve(job, spec=attrs.evolve(job.spec, suspend=False))
        await cluster.client.update(job)
        await cluster.wait_for(lambda: condition(get_job(cluster), "Complete"), timeout=300)
        job = get_job(cluster)
        suspended = next(c for c in job.status.conditions if c.type == "Suspended")
        assert (suspended.status, suspended.reason) == ("False", "JobResumed")
        reasons = {e.reason for e in job_events(cluster)}
        assert {"Suspended", "Resumed"} <= reasons


async def test_a_deleted_job_releases_its_pods_tracking_finalizers(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=FOREVER, parallelism=2, completions=2))
        job = get_job(cluster)
        await cluster.wait_for(lambda: len(active(pods_of(cluster, job))) == 2, timeout=60)
        await cluster.client.delete("Job", "pi", namespace="default")
        await cluster.wait_for(
            lambda: all(not jp.has_tracking_finalizer(p) for p in pods_of(cluster, job)),
            timeout=30,
        )
        assert len(pods_of(cluster, job)) == 2  # deleting them is the garbage collector's job


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"completions": -1},
            "spec.completions: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"parallelism": -2},
            "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
        ),
        (
            {"backoffLimit": -1},
            "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"activeDeadlineSeconds": 0},
            "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than or equal to 1",
        ),
    ],
)
async def test_invalid_jobs_are_refused_and_change_nothing(autojump_clock, spec, message):
    async with open_cluster(nodes=0, seed=1, controllers=CONTROLLERS) as cluster:
        with pytest.raises(errors.Invalid) as info:
            await cluster.apply(job_manifest(**spec))
        assert message in [str(c) for c in info.value.causes]
        assert str(info.value).startswith('Job "pi" is invalid: ')
        assert cluster.list_nowait("Job", namespace="default") == []


async def test_a_manual_selector_must_match_the_template(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=CONTROLLERS) as cluster:
        bad = job_manifest(
            manualSelector=True,
            selector={"matchLabels": {"app": "x"}},
            template_metadata={"labels": {"app": "y"}},
        )
        with pytest.raises(errors.Invalid, match="`selector` does not match template `labels`"):
            await cluster.apply(bad)
        assert cluster.list_nowait("Job", namespace="default") == []


async def test_the_selector_admission_step_generates_the_selector(autojump_clock):
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)  # the default admission chain has the JobSelector step
        stored = await cluster.apply(
            job_manifest(completions=1, template_metadata={"labels": {"app": "pi"}})
        )
        uid = stored.metadata.uid
        assert dict(stored.spec.selector.match_labels) == {
            "batch.kubernetes.io/controller-uid": uid
        }
        assert dict(stored.spec.template.metadata.labels) == {
            "app": "pi",
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": "pi",
            "controller-uid": uid,
            "job-name": "pi",
        }
        await cluster.wait_for(lambda: condition(get_job(cluster), "Complete"), timeout=120)
        (pod,) = pods_of(cluster, stored)
        assert dict(pod.metadata.labels) == dict(stored.spec.template.metadata.labels)
        # a template that claims another Job's uid cannot match the generated selector
        other = job_manifest(
            "other", template_metadata={"labels": {"batch.kubernetes.io/controller-uid": "x"}}
        )
        with pytest.raises(errors.Invalid, match=r"^Job \"other\" is invalid: spec\.template"):
            await cluster.apply(other)
        assert get_job(cluster, "other") is None
        # a manual selector is left alone
        manual = job_manifest(
            "manual",
            manualSelector=True,
            selector={"matchLabels": {"app": "m"}},
            template_metadata={"labels": {"app": "m"}},
        )
        stored = await cluster.apply(manual)
        assert dict(stored.spec.selector.match_labels) == {"app": "m"}
        assert dict(stored.spec.template.metadata.labels) == {"app": "m"}


# -- the actor against caches it does not own: what expectations prevent ----------------


def _controller(cluster: Any) -> tuple[JobController, Any, Any]:
    """A JobController whose informers never run: the test fills their caches, so it
    decides when the controller sees its own writes."""
    client = cluster.client
    informers = SharedInformers(client)
    context = ControllerContext(
        client=client,
        informers=informers,
        queue=WorkQueue(),
        events=EventRecorder(client, component="job-controller", rng=random.Random(0)),
        rng=random.Random(0),
        log=structlog.get_logger().bind(component="job-controller"),
    )
    controller = JobController(context)
    return controller, informers.informer("Job").cache, informers.informer("Pod").cache


async def _refresh_job(cluster: Any, jobs: Any) -> Any:
    job = await cluster.client.get("Job", "pi", namespace="default")
    jobs.upsert(job)
    return job


async def test_expectations_stop_a_sync_from_recreating_pods_the_cache_has_not_seen(
    autojump_clock,
):
    async with open_cluster(nodes=0, seed=1, controllers=()) as cluster:
        controller, jobs, pod_cache = _controller(cluster)
        await cluster.client.create(from_dict(job_manifest(completions=4, parallelism=2)))
        await _refresh_job(cluster, jobs)
        await controller.sync("default/pi")
        created = cluster.list_nowait("Pod", namespace="default")
        assert len(created) == 2
        await _refresh_job(cluster, jobs)
        await controller.sync("default/pi")  # the pod cache is still empty
        assert len(cluster.list_nowait("Pod", namespace="default")) == 2
        for pod in created:  # the informer delivers them
            pod_cache.upsert(pod)
            controller._pod_added(pod)
        await _refresh_job(cluster, jobs)
        await controller.sync("default/pi")
        assert len(cluster.list_nowait("Pod", namespace="default")) == 2
        assert (await _refresh_job(cluster, jobs)).status.active == 2


async def test_a_pod_counted_before_the_cache_saw_its_finalizer_go_is_not_counted_twice(
    autojump_clock,
):
    async with open_cluster(nodes=0, seed=1, controllers=()) as cluster:
        controller, jobs, pod_cache = _controller(cluster)
        await cluster.client.create(from_dict(job_manifest(completions=4, parallelism=2)))
        await _refresh_job(cluster, jobs)
        await controller.sync("default/pi")
        for pod in cluster.list_nowait("Pod", namespace="default"):
            done = attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Succeeded"))
            done = await cluster.client.update_status(done)
            pod_cache.upsert(done)
            controller._pod_added(done)
        await _refresh_job(cluster, jobs)
        await controller.sync("default/pi")
        job = await _refresh_job(cluster, jobs)
        assert job.status.succeeded == 2
        # the cache still shows the finalizers the last sync removed
        assert all(jp.has_tracking_finalizer(p) for p in pod_cache.list("default"))
        await controller.sync("default/pi")
        job = await _refresh_job(cluster, jobs)
        assert job.status.succeeded == 2
        assert not condition(job, "Complete")


async def _run_failing_job(seed: int) -> str:
    async with open_cluster(nodes=2, seed=seed, controllers=CONTROLLERS) as cluster:
        setup_images(cluster)
        await cluster.apply(job_manifest(image=FAIL, parallelism=2, completions=3, backoffLimit=3))
        await cluster.wait_for(lambda: condition(get_job(cluster), "Failed"), timeout=600)
        await cluster.settle()
        return cluster.history_digest()


def test_the_same_seed_replays_the_same_history() -> None:
    def run(seed: int) -> str:
        return trio.run(_run_failing_job, seed, clock=trio.testing.MockClock(autojump_threshold=0))

    assert run(4) == run(4)
