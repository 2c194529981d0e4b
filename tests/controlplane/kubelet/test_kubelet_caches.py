"""The kubelet's shortcuts for large nodes must never serve stale data: the running total
of admitted requests, shared status values, shared event references, shared memory."""

from __future__ import annotations

import random

import attrs
import trio
from kubelet_harness import open_node, simple_pod
from test_kubelet_pure import SANDBOX, app, info, make_pod

from controlplane.api.core_pod import PodCondition
from controlplane.clock import to_wall
from controlplane.events import EventRecorder
from controlplane.kubelet.admission import Resources, pod_requests
from controlplane.kubelet.model import NO_MEMORY, ObservedPod, PodMemory
from controlplane.kubelet.pod_workers import PodWorker, PodWorkers
from controlplane.kubelet.status import compute_status
from runtime.cri import ContainerState


def _total(pods) -> Resources:
    total = Resources()
    for pod in pods:
        total = total + pod_requests(pod)
    return total


def _assert_running_total(pods: PodWorkers) -> None:
    assert pods.admitted_requests == _total(pods.admitted_pods())


def _phase(env, name):
    pod = env.pod(name)
    return pod is not None and pod.status.phase


async def test_admitted_requests_follow_admissions_rejections_completions_deletions(
    autojump_clock,
):
    async with open_node() as env:
        pods = env.kubelet._pods
        await env.run_pod(simple_pod("a", resources={"requests": {"cpu": "1", "memory": "1Gi"}}))
        await env.run_pod(simple_pod("b", resources={"requests": {"cpu": "500m"}}))
        await env.wait_for(lambda: _phase(env, "a") == "Running" and _phase(env, "b") == "Running")
        _assert_running_total(pods)
        assert pods.admitted_requests == Resources(1500, 1024**3, 2)
        # Does not fit next to a and b (4 cpu): rejected, and not counted.
        await env.run_pod(simple_pod("big", resources={"requests": {"cpu": "3"}}))
        await env.wait_for(lambda: _phase(env, "big") == "Failed")
        _assert_running_total(pods)
        assert pods.admitted_requests.milli_cpu == 1500
        # A pod that completes stops counting.
        await env.run_pod(
            {
                "metadata": {"name": "job"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "exit 0"],
                            "resources": {"requests": {"cpu": "1"}},
                        }
                    ],
                },
            }
        )
        await env.wait_for(lambda: _phase(env, "job") == "Succeeded")
        await env.tracker.wait_idle()
        _assert_running_total(pods)
        assert pods.admitted_requests.milli_cpu == 1500
        # A deleted pod stops counting once it is gone; its room is free again.
        await env.client.delete("Pod", "a", namespace="default")
        await env.wait_for(lambda: env.pod("a") is None)
        await env.tracker.wait_idle()
        _assert_running_total(pods)
        assert pods.admitted_requests == Resources(500, 0, 1)
        await env.run_pod(simple_pod("later", resources={"requests": {"cpu": "3"}}))
        await env.wait_for(lambda: _phase(env, "later") == "Running")
        _assert_running_total(pods)


async def test_restarted_kubelet_counts_what_it_adopted(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("a", resources={"requests": {"cpu": "1500m"}}))
        await env.wait_for(lambda: _phase(env, "a") == "Running")
        env.kill_kubelet()
        await trio.sleep(1)
        kubelet = await env.start_kubelet(env.new_kubelet())
        await env.tracker.wait_idle()
        _assert_running_total(kubelet._pods)
        assert kubelet._pods.admitted_requests.milli_cpu == 1500


def test_recount_follows_a_new_spec_and_the_phase():
    pods = PodWorkers(
        client=None,  # type: ignore[arg-type]
        runtime=None,  # type: ignore[arg-type]
        timers=None,  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        puller=None,  # type: ignore[arg-type]
        enqueue=lambda key: None,
        spawn=lambda *a: None,
        hold=lambda: None,
        release=lambda: None,
        node_name="node-1",
        host_ip="10.0.0.1",
    )
    small = make_pod({"containers": [app(resources={"requests": {"cpu": "100m"}})]})
    worker = pods.worker("default/p", small.metadata.uid)
    worker.pod = small
    pods.recount(worker)
    assert pods.admitted_requests == Resources()  # not admitted yet
    worker.admitted = True
    pods.recount(worker)
    assert pods.admitted_requests == Resources(100, 0, 1)
    # A new spec (another image and more cpu): the share is computed again, not reused.
    resized = attrs.evolve(
        small,
        spec=attrs.evolve(
            small.spec,
            containers=(
                attrs.evolve(
                    small.spec.containers[0],
                    image="nginx:1.26",
                    resources=make_pod({"containers": [app(resources={"requests": {"cpu": "2"}})]})
                    .spec.containers[0]
                    .resources,
                ),
            ),
        ),
    )
    worker.pod = resized
    pods.recount(worker)
    assert pods.admitted_requests == Resources(2000, 0, 1)
    worker.pod = attrs.evolve(resized, status=attrs.evolve(resized.status, phase="Succeeded"))
    pods.recount(worker)
    assert pods.admitted_requests == Resources()
    worker.pod = resized
    pods.recount(worker)
    pods._forget(worker)
    assert pods.admitted_requests == Resources()
    assert isinstance(worker, PodWorker)


def test_shared_conditions_change_with_what_they_say():
    pod = make_pod({"containers": [app(), app("side")]})
    observed = ObservedPod(SANDBOX, (info(pod),))
    first = compute_status(pod, observed, PodMemory(), now=10.0, host_ip="10.0.0.1")
    ready = {c.type: c for c in first.conditions}["Ready"]
    assert ready.status == "False"
    assert ready.message == "containers with unready status: [side]"
    # Another container unready at the same moment: a different message, never the
    # shared condition of the first.
    pod2 = attrs.evolve(pod, status=attrs.evolve(pod.status))
    observed2 = ObservedPod(SANDBOX, ())
    second = compute_status(pod2, observed2, PodMemory(), now=10.0, host_ip="10.0.0.1")
    ready2 = {c.type: c for c in second.conditions}["Ready"]
    assert ready2.message == "containers with unready status: [app side]"
    # Equal conditions (same moment, same content) may be one object; a later status
    # keeps the transition time of an unchanged condition and moves a changed one.
    third_pod = attrs.evolve(pod, status=first)
    both = ObservedPod(SANDBOX, (info(pod), info(pod, "side", cid="c2")))
    third = compute_status(third_pod, both, PodMemory(), now=20.0, host_ip="10.0.0.1")
    by_type = {c.type: c for c in third.conditions}
    assert by_type["PodReadyToStartContainers"].last_transition_time == to_wall(10.0)
    assert by_type["Ready"] == PodCondition(
        type="Ready", status="True", last_transition_time=to_wall(20.0)
    )
    # A condition someone else stamped with a probe time is not taken as unchanged.
    probed = attrs.evolve(
        by_type["Initialized"], last_probe_time=to_wall(15.0), message="stale", reason="Old"
    )
    others = tuple(c for c in third.conditions if c.type != "Initialized")
    fourth_pod = attrs.evolve(pod, status=attrs.evolve(third, conditions=(*others, probed)))
    fourth = compute_status(fourth_pod, both, PodMemory(), now=30.0, host_ip="10.0.0.1")
    initialized = {c.type: c for c in fourth.conditions}["Initialized"]
    assert initialized.last_probe_time is None
    assert initialized.message is None and initialized.reason is None
    assert initialized.last_transition_time == to_wall(10.0)


def test_running_state_follows_the_start_time():
    pod = make_pod({"containers": [app()]})
    a = compute_status(
        pod, ObservedPod(SANDBOX, (info(pod, started=1.0),)), PodMemory(), now=2.0, host_ip=""
    )
    b = compute_status(
        pod, ObservedPod(SANDBOX, (info(pod, started=3.0),)), PodMemory(), now=4.0, host_ip=""
    )
    assert a.container_statuses[0].state.running.started_at == to_wall(1.0)
    assert b.container_statuses[0].state.running.started_at == to_wall(3.0)
    assert a.host_ips == () and a.pod_ips[0].ip == SANDBOX.ip
    c = compute_status(
        pod,
        ObservedPod(None, (info(pod, state=ContainerState.EXITED),)),
        NO_MEMORY,
        now=5.0,
        host_ip="10.0.0.9",
    )
    assert c.host_ips[0].ip == "10.0.0.9"


def test_pod_memory_compacts_to_the_shared_empty_memory():
    memory = attrs.evolve(NO_MEMORY, pulling=frozenset({"app"}))
    assert memory.compact() is memory
    emptied = attrs.evolve(memory, pulling=memory.pulling - {"app"})
    assert emptied == NO_MEMORY
    assert emptied.compact() is NO_MEMORY
    assert PodMemory(killing={"c1"}).compact().killing == {"c1"}


class _Capture:
    def __init__(self) -> None:
        self.created: list = []

    async def create(self, obj):
        stored = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, resource_version="1"))
        self.created.append(stored)
        return stored

    async def update(self, obj):
        return obj


async def test_event_references_follow_the_object_version_and_field(autojump_clock):
    client = _Capture()
    recorder = EventRecorder(
        client,  # type: ignore[arg-type]
        component="kubelet",
        host="node-1",
        rng=random.Random(0),
        on_pending=lambda: None,
    )
    pod = make_pod({"containers": [app(), app("side")]}, resourceVersion="5")
    newer = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, resource_version="6"))
    other = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, uid="uid-2", name="q"))
    recorder.record(pod, "Normal", "Pulling", "one", field_path="spec.containers{app}")
    recorder.record(pod, "Normal", "Pulled", "two", field_path="spec.containers{app}")
    recorder.record(pod, "Normal", "Pulled", "two", field_path="spec.containers{side}")
    recorder.record(newer, "Normal", "Created", "three", field_path="spec.containers{app}")
    recorder.record(other, "Normal", "Created", "four", field_path="spec.containers{app}")
    recorder.record(pod, "Warning", "OutOfcpu", "five")
    await recorder.flush()
    refs = {(e.message, e.involved_object.field_path): e.involved_object for e in client.created}
    assert len(refs) == 6
    refs = {
        message: ref for (message, path), ref in refs.items() if path != "spec.containers{side}"
    }
    assert refs["one"] is refs["two"]  # same pod version, same field: shared
    side = next(
        e.involved_object for e in client.created if "side" in (e.involved_object.field_path or "")
    )
    assert side.field_path == "spec.containers{side}" and side.resource_version == "5"
    assert refs["three"].resource_version == "6" and refs["one"].resource_version == "5"
    assert (refs["four"].uid, refs["four"].name) == ("uid-2", "q")
    assert refs["five"].field_path is None and refs["five"].uid == pod.metadata.uid
    assert {e.source for e in client.created} == {client.created[0].source}
    assert client.created[0].source.host == "node-1"


async def test_a_pod_costs_two_syncs_and_two_status_writes(autojump_clock):
    """Bound (sync: sandbox, pull requested, Pending written) and image pulled (sync:
    containers started, Running written); the echoes of our own writes cause no sync."""
    async with open_node() as env:
        for i in range(5):
            await env.run_pod(simple_pod(f"web-{i}"))
        await env.wait_for(lambda: all(_phase(env, f"web-{i}") == "Running" for i in range(5)))
        await env.tracker.wait_idle()
        pods = env.kubelet._pods
        assert pods.status_writes == 10
        assert all(w.memory is NO_MEMORY for w in pods.workers.values())
        stats = env.kubelet.statistics()
        # 2 per pod, plus the first Lease renewal and a few event flushes at most.
        assert stats.syncs <= 2 * 5 + 1 + 5
        for i in range(5):
            reasons = sorted(e.reason for e in env.events(f"web-{i}"))
            assert reasons == ["Created", "Pulled", "Pulling", "Started"]
