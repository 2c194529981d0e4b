"""The pod garbage collector: orphaned pods after the quarantine, terminated over the limit."""

from __future__ import annotations

import functools
from datetime import timedelta

import trio

from controlplane import open_cluster
from controlplane.api import from_dict
from controlplane.api.core_pod import Pod, PodSpec, PodStatus
from controlplane.api.meta import ObjectMeta
from controlplane.clock import EPOCH
from controlplane.controllers.podgc import PodGarbageCollector, pods_to_collect


def pod(name, node=None, phase="Running", age=0):
    return Pod(
        metadata=ObjectMeta(
            name=name, namespace="default", creation_timestamp=EPOCH + timedelta(seconds=age)
        ),
        spec=PodSpec(node_name=node),
        status=PodStatus(phase=phase),
    )


def test_orphans_and_the_oldest_terminated_pods_beyond_the_threshold():
    pods = [
        pod("on-gone", "gone"),
        pod("on-live", "live"),
        pod("pending"),
        pod("done-3", "live", "Succeeded", age=3),
        pod("done-1", "live", "Failed", age=1),
        pod("done-2", "live", "Succeeded", age=2),
    ]
    plan = pods_to_collect(pods, {"live"}, threshold=1)
    assert [p.metadata.name for p in plan.orphaned] == ["on-gone"]
    assert [p.metadata.name for p in plan.terminated] == ["done-1", "done-2"]
    assert pods_to_collect(pods, {"live"}, threshold=0).terminated == ()


def manifest(name, node=None, command=None):
    container = {"name": "app", "image": "busybox"}
    if command:
        container["command"] = command
    spec = {"containers": [container], "restartPolicy": "Never"}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


async def test_pods_of_a_removed_node_go_after_the_quarantine(autojump_clock):
    controllers = [(PodGarbageCollector.name, PodGarbageCollector)]
    async with open_cluster(nodes=2, seed=51, controllers=controllers) as cluster:
        await cluster.client.create(from_dict(manifest("stays", "node-1")))
        await cluster.client.create(from_dict(manifest("orphan", "node-2")))
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait("Pod", "orphan", namespace="default").status.phase == "Running"
            )
        )
        await cluster.remove_node("node-2")
        removed = trio.current_time()
        await cluster.wait_for(
            lambda: cluster.get_nowait("Pod", "orphan", namespace="default") is None, timeout=120
        )
        assert 40 <= trio.current_time() - removed <= 61  # quarantine, then the next pass
        assert cluster.get_nowait("Pod", "stays", namespace="default") is not None


async def test_terminated_pods_beyond_the_threshold_are_collected_oldest_first(autojump_clock):
    gc = functools.partial(PodGarbageCollector, terminated_pod_threshold=2)
    async with open_cluster(
        nodes=1, seed=52, controllers=[(PodGarbageCollector.name, gc)]
    ) as cluster:
        for i in range(4):
            await cluster.client.create(
                from_dict(manifest(f"job-{i}", command=["sh", "-c", "exit 0"]))
            )
            await trio.sleep(5)
        await cluster.wait_for(
            lambda: len(cluster.list_nowait("Pod", namespace="default")) == 2, timeout=120
        )
        assert sorted(p.metadata.name for p in cluster.list_nowait("Pod")) == ["job-2", "job-3"]
