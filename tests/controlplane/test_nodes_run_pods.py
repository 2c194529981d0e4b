"""A whole cluster through its public API: pods are scheduled, run, crash, restart and
are deleted; machines crash, restart and pause; chaos kills containers. Virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import ChildState
from controlplane import errors, open_cluster


def pod(name: str, *, image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], **spec},
    }


def running(cluster: Any, name: str) -> Any:
    p = cluster.get_nowait("Pod", name, namespace="default")
    return p if p is not None and p.status.phase == "Running" else None


def restarts(cluster: Any, name: str) -> int:
    p = cluster.get_nowait("Pod", name, namespace="default")
    return p.status.container_statuses[0].restart_count if p.status.container_statuses else 0


async def test_a_pod_is_scheduled_pulled_started_and_ready(autojump_clock):
    async with open_cluster(nodes=2, seed=3) as cluster:
        await cluster.apply(pod("web"))
        p = await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        assert p.spec.node_name in ("node-1", "node-2")
        assert p.status.pod_ip and p.status.host_ip
        conditions = {c.type: c.status for c in p.status.conditions}
        assert conditions["PodScheduled"] == "True"

        def ready() -> bool:
            p = cluster.get_nowait("Pod", "web", namespace="default")
            return bool(p.status.container_statuses and p.status.container_statuses[0].ready)

        await cluster.wait_for(ready, timeout=30)
        reasons = {e.reason for e in cluster.list_nowait("Event", namespace="default")}
        assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= reasons


async def test_unschedulable_pod_waits_for_a_node_with_room(autojump_clock):
    async with open_cluster(nodes=2, seed=3) as cluster:
        await cluster.apply(pod("big", container={"resources": {"requests": {"cpu": "6"}}}))

        def failed_scheduling() -> Any:
            return [
                e
                for e in cluster.list_nowait("Event", namespace="default")
                if e.reason == "FailedScheduling"
            ]

        events = await cluster.wait_for(failed_scheduling, timeout=30)
        assert events[0].message == "0/2 nodes are available: 2 Insufficient cpu."
        p = cluster.get_nowait("Pod", "big", namespace="default")
        scheduled = next(c for c in p.status.conditions if c.type == "PodScheduled")
        assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
        await cluster.add_node("node-big", cpu="8")
        p = await cluster.wait_for(lambda: running(cluster, "big"), timeout=60)
        assert p.spec.node_name == "node-big"


async def test_crash_loop_backs_off_10_20_40_seconds(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("crashy", image="busybox", container={"command": ["false"]}))
        await cluster.wait_for(lambda: restarts(cluster, "crashy") >= 1, timeout=60)
        first = trio.current_time()
        await cluster.wait_for(lambda: restarts(cluster, "crashy") >= 3, timeout=200)
        # Like the kubelet: the first restart is immediate, then 10 s, 20 s, 40 s...
        assert 30 <= trio.current_time() - first < 32
        third = trio.current_time()
        await cluster.wait_for(lambda: restarts(cluster, "crashy") >= 4, timeout=200)
        assert 40 <= trio.current_time() - third < 42
        p = cluster.get_nowait("Pod", "crashy", namespace="default")
        status = p.status.container_statuses[0]
        assert status.last_state.terminated.exit_code == 1
        assert status.state.waiting is None or status.state.waiting.reason == "CrashLoopBackOff"
        events = [
            e for e in cluster.list_nowait("Event", namespace="default") if e.reason == "BackOff"
        ]
        assert events and "Back-off restarting failed container" in events[0].message


async def test_kill_container_restarts_it_per_policy(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("web"))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        cluster.chaos.kill_container("default", "web")
        await cluster.wait_for(lambda: restarts(cluster, "web") == 1, timeout=60)
        p = await cluster.wait_for(lambda: running(cluster, "web"), timeout=60)
        assert p.status.container_statuses[0].last_state.terminated.exit_code == 137
        with pytest.raises(errors.NotFound):
            cluster.chaos.kill_container("default", "nope")
        with pytest.raises(errors.NotFound, match='container "other"'):
            cluster.chaos.kill_container("default", "web", "other")


def lease_renewed(cluster: Any, node: str) -> Any:
    lease = cluster.get_nowait("Lease", node, namespace="kube-node-lease")
    return lease.spec.renew_time if lease is not None else None


async def test_crashed_node_stops_its_lease_and_restarted_node_runs_its_pods_again(
    autojump_clock,
):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("web"))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        cluster.chaos.crash_node("node-1")
        frozen = lease_renewed(cluster, "node-1")
        with pytest.raises(TimeoutError):
            await cluster.wait_for(lambda: lease_renewed(cluster, "node-1") != frozen, timeout=60)
        cluster.chaos.restart_node("node-1")
        await cluster.wait_for(lambda: lease_renewed(cluster, "node-1") != frozen, timeout=30)
        await cluster.wait_for(lambda: restarts(cluster, "web") == 1, timeout=60)
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=60)
        engine = cluster.machines.get("node-1").runtime
        live = [c for c in engine.list_containers() if c.state.value == "running"]
        assert len(live) == 1  # adopted and restarted, not duplicated


async def test_paused_node_stops_renewing_until_resumed(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.wait_for(lambda: lease_renewed(cluster, "node-1"), timeout=30)
        cluster.chaos.pause_node("node-1")
        frozen = lease_renewed(cluster, "node-1")
        with pytest.raises(TimeoutError):
            await cluster.wait_for(lambda: lease_renewed(cluster, "node-1") != frozen, timeout=45)
        cluster.chaos.resume_node("node-1")
        await cluster.wait_for(lambda: lease_renewed(cluster, "node-1") != frozen, timeout=15)


async def test_deleted_pod_terminates_gracefully_then_disappears(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("web", terminationGracePeriodSeconds=5))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        await cluster.client.delete("Pod", "web", namespace="default")
        assert cluster.get_nowait("Pod", "web", namespace="default").metadata.deletion_timestamp
        await cluster.wait_for(
            lambda: cluster.get_nowait("Pod", "web", namespace="default") is None, timeout=30
        )
        engine = cluster.machines.get("node-1").runtime
        assert engine.list_containers() == []


async def test_remove_node_stops_its_machine_and_deletes_the_node(autojump_clock):
    async with open_cluster(nodes=2, seed=3) as cluster:
        await cluster.remove_node("node-2")
        assert cluster.get_nowait("Node", "node-2") is None
        assert "node-2" not in cluster.machines
        with pytest.raises(errors.NotFound):
            cluster.chaos.crash_node("node-2")
        with pytest.raises(errors.NotFound):
            await cluster.remove_node("node-2")
        again = await cluster.add_node("node-2", cpu="2")
        assert str(again.status.capacity["cpu"]) == "2"


async def test_missing_image_backs_off_without_crashing_anything(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        cluster.registry.mark_missing("example.invalid/nope:1")
        await cluster.apply(pod("nope", image="example.invalid/nope:1"))

        def waiting_reason() -> Any:
            p = cluster.get_nowait("Pod", "nope", namespace="default")
            statuses = p.status.container_statuses
            waiting = statuses[0].state.waiting if statuses else None
            return waiting.reason if waiting and waiting.reason == "ImagePullBackOff" else None

        await cluster.wait_for(waiting_reason, timeout=60)
        children = cluster.chaos.supervisor.children()
        assert {c.name for c in children if c.restarts} == set()
        assert all(c.state is ChildState.RUNNING for c in children)


async def test_pod_pinned_to_a_node_that_does_not_exist_stays_pending_until_collected(
    autojump_clock,
):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("pinned", nodeName="node-404"))
        await trio.sleep(30)
        p = cluster.get_nowait("Pod", "pinned", namespace="default")
        assert (p.status.phase, p.spec.node_name) == ("Pending", "node-404")
        children = cluster.chaos.supervisor.children()
        assert all(c.state is ChildState.RUNNING and not c.restarts for c in children)
        # the pod is nobody's: after the 40 s quarantine the pod garbage collector
        # force-deletes it (no kubelet to confirm), as in Kubernetes
        await cluster.wait_for(
            lambda: cluster.get_nowait("Pod", "pinned", namespace="default") is None, timeout=60
        )
        assert 40 <= trio.current_time() <= 61


async def test_bad_node_template_is_refused_before_anything_starts(autojump_clock):
    from controlplane.nodes import NodeTemplate

    with pytest.raises(errors.Invalid, match=r'memory: invalid quantity "lots"'):
        NodeTemplate.build(memory="lots")
    async with open_cluster(nodes=1, seed=3) as cluster:
        with pytest.raises(errors.Invalid, match="pods: must be a non-negative integer"):
            await cluster.add_node("node-x", pods=-1)
        assert "node-x" not in cluster.machines
        assert cluster.get_nowait("Node", "node-x") is None


async def test_a_restarted_kubelet_keeps_the_running_containers(autojump_clock):
    async with open_cluster(nodes=1, seed=3) as cluster:
        await cluster.apply(pod("web"))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        engine = cluster.machines.get("node-1").runtime
        before = [c.id for c in engine.list_containers() if c.state.value == "running"]
        # the kubelet process restarts (not the machine): containers live on
        await cluster.chaos.supervisor.restart_child("kubelet/node-1")
        await trio.sleep(60)
        after = [c.id for c in engine.list_containers() if c.state.value == "running"]
        assert after == before and len(after) == 1
        assert restarts(cluster, "web") == 0
        assert running(cluster, "web") is not None
