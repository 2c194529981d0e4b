"""The resource metrics pipeline: kubelets read their containers' usage from the runtime
and report it to the MetricsStore every 15 s; a silent node's samples go stale."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from controlplane import open_cluster
from controlplane.metrics import ContainerUsage, MetricsStore, PodUsage
from runtime.programs import Curve, MiB, Program


def sample(name: str, node: str, at: float, *, cpu: float = 0.1, memory: int = MiB) -> PodUsage:
    return PodUsage(
        namespace="default",
        name=name,
        uid=f"uid-{name}",
        node=node,
        timestamp=at,
        window=15.0,
        containers=(ContainerUsage("main", cpu, memory),),
    )


# -- the store --------------------------------------------------------------------------


def test_a_report_replaces_the_nodes_previous_batch() -> None:
    store = MetricsStore()
    store.report("node-1", [sample("a", "node-1", 0), sample("b", "node-1", 0)], 0)
    store.report("node-1", [sample("a", "node-1", 15, cpu=0.5)], 15)
    assert store.pod_usage("default", "b", 15) is None
    a = store.pod_usage("default", "a", 15)
    assert a is not None and a.containers[0].cpu == 0.5
    assert store.statistics().pods == 1


def test_samples_older_than_two_resolutions_are_not_served() -> None:
    store = MetricsStore()
    store.report("node-1", [sample("a", "node-1", 100)], 100)
    assert store.pod_usage("default", "a", 130) is not None
    assert store.pod_usage("default", "a", 130.5) is None
    assert dict(store.pods_usage("default", ["a", "zzz"], 110)).keys() == {"a"}


def test_a_pod_that_moved_node_is_kept_when_its_old_node_reports_without_it() -> None:
    store = MetricsStore()
    store.report("node-1", [sample("a", "node-1", 0)], 0)
    store.report("node-2", [sample("a", "node-2", 5)], 5)
    store.report("node-1", [], 15)
    a = store.pod_usage("default", "a", 15)
    assert a is not None and a.node == "node-2"
    store.forget_node("node-2")
    assert store.pod_usage("default", "a", 15) is None
    assert store.statistics().nodes == 0


def test_milli_values_sum_containers_like_the_hpa_metrics_client() -> None:
    usage = PodUsage(
        namespace="default",
        name="a",
        uid="u",
        node="n",
        timestamp=0,
        window=15,
        containers=(ContainerUsage("main", 0.25, 2 * MiB), ContainerUsage("side", 0.05, MiB)),
    )
    assert usage.milli_value("cpu") == 300
    assert usage.milli_value("memory") == 3 * MiB * 1000
    assert usage.milli_value("cpu", container="side") == 50
    assert usage.milli_value("cpu", container="nope") is None
    assert usage.milli_value("ephemeral-storage") is None


def test_bad_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^resolution: must be > 0, got 0$"):
        MetricsStore(resolution=0)
    with pytest.raises(ValueError, match=r"^max_age: must be > 0, got -1$"):
        MetricsStore(max_age=-1)


# -- through kubelets -------------------------------------------------------------------


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }


async def test_kubelets_report_running_containers_usage_every_15_seconds(autojump_clock):
    metrics = MetricsStore()
    async with open_cluster(nodes=0, seed=4) as cluster:
        cluster.machines.metrics = metrics
        await cluster.add_node("node-1")
        cluster.registry.add(
            "load:1",
            program=Program(cpu=Curve([(0, 0.2), (100, 0.7)]), memory=64 * MiB),
        )
        await cluster.apply(pod("web", "load:1"))
        running = await cluster.wait_for(
            lambda: (
                (p := cluster.get_nowait("Pod", "web", namespace="default"))
                and p.status.phase == "Running"
                and p
            ),
            timeout=60,
        )
        started = trio.current_time()
        await trio.sleep(16)
        usage = metrics.pod_usage("default", "web", trio.current_time())
        assert usage is not None
        assert (usage.node, usage.uid) == ("node-1", running.metadata.uid)
        assert usage.containers == (ContainerUsage("main", 0.2, 64 * MiB),)
        assert usage.window == 15.0
        assert trio.current_time() - usage.timestamp <= 15.0
        await trio.sleep(started + 100 + 16 - trio.current_time())
        usage = metrics.pod_usage("default", "web", trio.current_time())
        assert usage is not None and usage.milli_value("cpu") == 700
        # a deleted pod drops out of the next report
        await cluster.client.delete("Pod", "web", namespace="default")
        await cluster.wait_for(
            lambda: cluster.get_nowait("Pod", "web", namespace="default") is None, timeout=60
        )
        await trio.sleep(16)
        assert metrics.pod_usage("default", "web", trio.current_time()) is None


async def test_without_a_metrics_store_kubelets_report_nothing(autojump_clock):
    metrics = MetricsStore()
    async with open_cluster(nodes=1, seed=4) as cluster:
        await cluster.apply(pod("web", "nginx"))
        await trio.sleep(60)
        assert metrics.statistics().reports == 0
        assert cluster.machines.get("node-1").kubelet.statistics().pods == 1


async def test_a_crashed_nodes_pods_metrics_go_missing(autojump_clock):
    metrics = MetricsStore()
    async with open_cluster(nodes=0, seed=5) as cluster:
        cluster.machines.metrics = metrics
        await cluster.add_node("node-1")
        await cluster.add_node("node-2")
        await cluster.apply([pod("a", "nginx"), pod("b", "nginx")])
        await cluster.wait_for(lambda: all_running(cluster, "a", "b"), timeout=60)
        await trio.sleep(16)  # one report period
        now = trio.current_time()
        assert metrics.pod_usage("default", "a", now) is not None
        assert metrics.pod_usage("default", "b", now) is not None
        a = cluster.get_nowait("Pod", "a", namespace="default")
        crashed = a.spec.node_name
        cluster.chaos.crash_node(crashed)
        crash_time = trio.current_time()
        await trio.sleep(31)  # past max_age (2 x 15 s) without a report
        now = trio.current_time()
        assert metrics.pod_usage("default", "a", now) is None
        b = cluster.get_nowait("Pod", "b", namespace="default")
        if b.spec.node_name != crashed:
            fresh = metrics.pod_usage("default", "b", now)
            assert fresh is not None and fresh.timestamp > crash_time
        # the node comes back; its kubelet restarts the container and reports again
        cluster.chaos.restart_node(crashed)
        restarted = trio.current_time()

        def a_running_again() -> bool:
            p = cluster.get_nowait("Pod", "a", namespace="default")
            statuses = p.status.container_statuses
            return bool(statuses and statuses[0].restart_count >= 1 and statuses[0].ready)

        await cluster.wait_for(a_running_again, timeout=120)
        await trio.sleep(16)
        back = metrics.pod_usage("default", "a", trio.current_time())
        assert back is not None and back.timestamp > restarted


def all_running(cluster: Any, *names: str) -> bool:
    pods = [cluster.get_nowait("Pod", n, namespace="default") for n in names]
    return all(p is not None and p.status.phase == "Running" for p in pods)
