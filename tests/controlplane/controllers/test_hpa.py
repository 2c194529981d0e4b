"""The HPA controller end to end, in virtual time: kubelets report the fake runtime's
usage to the MetricsStore, the HPA reads it and scales a ReplicaSet's spec.replicas.

No ReplicaSet controller runs here (only the HPA): a small stand-in in the test keeps
the number of live pods equal to ``spec.replicas``, so the HPA is tested alone."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.testing

from controlplane import open_cluster
from controlplane.api import from_dict
from controlplane.clock import EPOCH
from controlplane.controllers.hpa import HorizontalPodAutoscalerController, hpa_controller
from controlplane.metrics import MetricsStore
from runtime.programs import Curve, MiB, Program

NS = "default"
#: Each pod burns 250m (250 % of its 100m request) for its first 240 s, then idles.
BUSY = Program(cpu=Curve([(0, 0.25), (240, 0.01)]), memory=32 * MiB)
BUSY_FOR = 240.0


def replica_set(name: str, replicas: int, image: str = "busy:1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def hpa(
    name: str, *, target: str, max_replicas: int = 6, metrics: Any = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": target},
            "maxReplicas": max_replicas,
            "metrics": metrics
            or [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            **spec,
        },
    }


async def stand_in_replica_set(cluster: Any, name: str) -> None:
    """Keep live pods == spec.replicas (newest deleted first). Runs until cancelled."""
    serial = 0
    while True:
        rs = cluster.get_nowait("ReplicaSet", name, namespace=NS)
        live = [
            p
            for p in cluster.list_nowait("Pod", namespace=NS, label_selector=f"app={name}")
            if p.metadata.deletion_timestamp is None
        ]
        want = rs.spec.replicas
        for _ in range(want - len(live)):
            serial += 1
            template = rs.spec.template
            pod = from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{name}-{serial}", "namespace": NS},
                }
            )
            pod = attrs.evolve(
                pod,
                metadata=attrs.evolve(pod.metadata, labels=template.metadata.labels),
                spec=template.spec,
            )
            await cluster.client.create(pod)
        if len(live) > want:
            live.sort(key=lambda p: p.metadata.creation_timestamp, reverse=True)
            for p in live[: len(live) - want]:
                await cluster.client.delete("Pod", p.metadata.name, namespace=NS)

        def changed() -> bool:
            current = cluster.get_nowait("ReplicaSet", name, namespace=NS)
            live = [
                p
                for p in cluster.list_nowait("Pod", namespace=NS, label_selector=f"app={name}")
                if p.metadata.deletion_timestamp is None
            ]
            return current.spec.replicas != len(live)

        await cluster.store.wait_until(changed)


@asynccontextmanager
async def hpa_cluster(seed: int, **options: Any) -> AsyncIterator[tuple[Any, MetricsStore]]:
    metrics = MetricsStore()
    controllers = [("horizontal-pod-autoscaler", hpa_controller(metrics, **options))]
    async with open_cluster(nodes=0, seed=seed, controllers=controllers) as cluster:
        cluster.machines.metrics = metrics
        for i in (1, 2, 3):
            await cluster.add_node(f"node-{i}")
        cluster.registry.add("busy:1", program=BUSY)
        cluster.registry.add("idle:1", program=Program(cpu=0.01, memory=32 * MiB))
        yield cluster, metrics


def replicas(cluster: Any, name: str = "web") -> int:
    return cluster.get_nowait("ReplicaSet", name, namespace=NS).spec.replicas


def conditions(cluster: Any, name: str = "web") -> dict[str, tuple[str, str]]:
    h = cluster.get_nowait("HorizontalPodAutoscaler", name, namespace=NS)
    return {c.type: (c.status, c.reason) for c in h.status.conditions}


def events(cluster: Any, reason: str) -> list[Any]:
    return [
        e
        for e in cluster.list_nowait("Event", namespace=NS)
        if e.reason == reason and e.involved_object.kind == "HorizontalPodAutoscaler"
    ]


async def wait_events(cluster: Any, reason: str, count: int = 1) -> list[Any]:
    """The HPA's events of ``reason`` once there are ``count`` (events are written
    asynchronously by the recorder)."""
    return await cluster.wait_for(
        lambda: (found := events(cluster, reason)) and len(found) >= count and found,
        timeout=10,
    )


async def test_load_scales_up_and_scale_down_waits_for_the_stabilization_window(
    autojump_clock,
):
    async with hpa_cluster(seed=11) as (cluster, _), trio.open_nursery() as nursery:
        await cluster.apply(replica_set("web", 2))
        nursery.start_soon(stand_in_replica_set, cluster, "web")
        await cluster.apply(hpa("web", target="web"))

        # 250 % of request against a 50 % target: scale up, at most max(2x, 4) a step
        await cluster.wait_for(lambda: replicas(cluster) > 2, timeout=60)
        assert replicas(cluster) == 4
        first = await wait_events(cluster, "SuccessfulRescale")
        assert [e.message for e in first] == [
            "New size: 4; reason: cpu resource utilization (percentage of request) above target"
        ]
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        assert (h.status.current_replicas, h.status.desired_replicas) == (2, 4)
        assert h.status.last_scale_time is not None
        (metric,) = h.status.current_metrics
        assert (metric.type, metric.resource.name) == ("Resource", "cpu")
        assert metric.resource.current.average_utilization == 250
        assert str(metric.resource.current.average_value) == "250m"
        assert conditions(cluster) == {
            "AbleToScale": ("True", "SucceededRescale"),
            "ScalingActive": ("True", "ValidMetricFound"),
            "ScalingLimited": ("True", "ScaleUpLimit"),
        }

        await cluster.wait_for(lambda: replicas(cluster) == 6, timeout=120)
        await cluster.wait_for(
            lambda: conditions(cluster).get("ScalingLimited") == ("True", "TooManyReplicas"),
            timeout=60,
        )

        # every pod idles BUSY_FOR seconds after it started; the last one sets the clock
        def all_started() -> list[Any] | None:
            pods = cluster.list_nowait("Pod", namespace=NS, label_selector="app=web")
            statuses = [p.status.container_statuses for p in pods]
            if len(pods) != 6 or not all(s and s[0].state.running for s in statuses):
                return None
            return [s[0].state.running.started_at for s in statuses]

        started = await cluster.wait_for(all_started, timeout=60)
        quiet_at = max(_seconds(t) for t in started) + BUSY_FOR
        await trio.sleep(max(0.0, quiet_at - trio.current_time()) + 200)
        assert replicas(cluster) == 6, "scaled down inside the 300 s stabilization window"
        await cluster.wait_for(lambda: replicas(cluster) < 6, timeout=200)
        waited = trio.current_time() - quiet_at
        assert 285 <= waited <= 360, waited
        # 10 % of request against 50 %: ceil(6 x 0.2) = 2, all at once (no behavior given)
        assert replicas(cluster) == 2
        rescales = await wait_events(cluster, "SuccessfulRescale", 3)
        assert sorted(e.message for e in rescales) == [
            "New size: 2; reason: All metrics below target",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target",
            "New size: 6; reason: cpu resource utilization (percentage of request) above target",
        ]
        nursery.cancel_scope.cancel()


def _seconds(wall: Any) -> float:
    return (wall - EPOCH).total_seconds()


async def test_within_tolerance_nothing_changes(autojump_clock):
    # idle pods use 10m of 100m: 10 % against a 10 % target (well within 10 % tolerance)
    async with hpa_cluster(seed=12) as (cluster, _), trio.open_nursery() as nursery:
        await cluster.apply(replica_set("web", 3, image="idle:1"))
        nursery.start_soon(stand_in_replica_set, cluster, "web")
        metric = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 10},
            },
        }
        await cluster.apply(hpa("web", target="web", metrics=[metric]))
        await cluster.wait_for(
            lambda: conditions(cluster).get("ScalingActive") == ("True", "ValidMetricFound"),
            timeout=120,
        )
        await trio.sleep(120)
        assert replicas(cluster) == 3
        assert events(cluster, "SuccessfulRescale") == []
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        assert (h.status.current_replicas, h.status.desired_replicas) == (3, 3)
        assert h.status.last_scale_time is None
        assert conditions(cluster)["ScalingLimited"] == ("False", "DesiredWithinRange")
        assert conditions(cluster)["AbleToScale"] == ("True", "ReadyForNewScale")
        nursery.cancel_scope.cancel()


async def test_memory_average_value_target_and_the_max_over_metrics(autojump_clock):
    # memory: 32Mi per pod against an averageValue of 8Mi -> 4x; cpu idle -> scale down.
    # The larger proposal wins.
    async with hpa_cluster(seed=13) as (cluster, _), trio.open_nursery() as nursery:
        await cluster.apply(replica_set("web", 1, image="idle:1"))
        nursery.start_soon(stand_in_replica_set, cluster, "web")
        metrics = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "8Mi"},
                },
            },
        ]
        await cluster.apply(hpa("web", target="web", metrics=metrics, max_replicas=10))
        await cluster.wait_for(lambda: replicas(cluster) == 4, timeout=60)
        (event,) = await wait_events(cluster, "SuccessfulRescale")
        assert event.message == "New size: 4; reason: memory resource above target"
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        cpu, memory = h.status.current_metrics
        assert cpu.resource.current.average_utilization == 10
        assert memory.resource.current.average_value.value() == 32 * MiB
        assert memory.resource.current.average_utilization is None
        nursery.cancel_scope.cancel()


async def test_behavior_policies_limit_the_scale_up_rate(autojump_clock):
    # spec.behavior with scaleUp: 1 pod per 60 s -> 2, then 3 no sooner than 60 s later
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    async with hpa_cluster(seed=14) as (cluster, _), trio.open_nursery() as nursery:
        await cluster.apply(replica_set("web", 1))
        nursery.start_soon(stand_in_replica_set, cluster, "web")
        await cluster.apply(hpa("web", target="web", behavior=behavior))
        await cluster.wait_for(lambda: replicas(cluster) == 2, timeout=60)
        first = trio.current_time()
        assert conditions(cluster)["ScalingLimited"] == ("True", "ScaleUpLimit")
        await cluster.wait_for(lambda: replicas(cluster) == 3, timeout=120)
        assert trio.current_time() - first >= 60
        nursery.cancel_scope.cancel()


async def test_missing_target_sets_failed_get_scale_and_changes_nothing(autojump_clock):
    async with hpa_cluster(seed=15) as (cluster, _):
        await cluster.apply(replica_set("other", 2, image="idle:1"))
        created = await cluster.apply(hpa("web", target="nope"))
        await cluster.wait_for(
            lambda: conditions(cluster).get("AbleToScale") == ("False", "FailedGetScale"),
            timeout=60,
        )
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        (condition,) = h.status.conditions
        assert condition.message == (
            "the HPA controller was unable to get the target's current scale: "
            'replicasets "nope" not found'
        )
        assert (h.status.current_replicas, h.status.desired_replicas) == (0, 0)
        assert h.spec == created.spec
        (warning,) = await wait_events(cluster, "FailedGetScale")
        assert (warning.type, warning.message) == ("Warning", 'replicasets "nope" not found')
        assert replicas(cluster, "other") == 2
        # another sync later: still failing quietly, the same single status
        rv = h.metadata.resource_version
        await trio.sleep(45)
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        assert h.metadata.resource_version == rv
        # the target appears: the HPA recovers
        await cluster.apply(replica_set("nope", 1, image="idle:1"))
        await cluster.wait_for(
            lambda: conditions(cluster).get("AbleToScale", ("", ""))[0] == "True", timeout=60
        )


async def test_no_metrics_sets_scaling_active_false(autojump_clock):
    # pods that never get scheduled (too big) have no metrics
    async with hpa_cluster(seed=16) as (cluster, _):
        rs = replica_set("web", 2, image="idle:1")
        containers = rs["spec"]["template"]["spec"]["containers"]
        containers[0]["resources"]["requests"]["cpu"] = "64"
        await cluster.apply(rs)
        await cluster.apply(hpa("web", target="web"))
        await cluster.wait_for(
            lambda: (
                conditions(cluster).get("ScalingActive", ("", ""))[1] == "FailedGetResourceMetric"
            ),
            timeout=60,
        )
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        active = next(c for c in h.status.conditions if c.type == "ScalingActive")
        assert active.status == "False"
        assert active.message == (
            "the HPA was unable to compute the replica count: failed to get cpu utilization: "
            "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
        )
        assert h.status.current_replicas == 2
        assert [m.type for m in h.status.current_metrics] == [""]
        assert await wait_events(cluster, "FailedGetResourceMetric")
        (failed,) = await wait_events(cluster, "FailedComputeMetricsReplicas")
        assert failed.message.startswith("invalid metrics (1 invalid out of 1), first error is:")
        assert replicas(cluster) == 2


async def test_replicas_outside_min_max_are_corrected_without_metrics(autojump_clock):
    async with hpa_cluster(seed=17) as (cluster, _):
        await cluster.apply(replica_set("web", 9, image="idle:1"))
        await cluster.apply(hpa("web", target="web", max_replicas=5, minReplicas=2))
        await cluster.wait_for(lambda: replicas(cluster) == 5, timeout=60)
        (event,) = await wait_events(cluster, "SuccessfulRescale")
        assert (
            event.message
            == "New size: 5; reason: Current number of replicas above Spec.MaxReplicas"
        )


async def test_factory_is_a_partial_the_manager_can_build() -> None:
    metrics = MetricsStore()
    factory = hpa_controller(metrics, sync_period=30.0)
    assert factory.func is HorizontalPodAutoscalerController
    assert factory.keywords == {"metrics": metrics, "sync_period": 30.0}
    assert math.isclose(factory.keywords["sync_period"], 30.0)


async def test_a_target_scaled_to_zero_disables_autoscaling(autojump_clock):
    async with hpa_cluster(seed=18) as (cluster, _):
        await cluster.apply(replica_set("web", 0, image="idle:1"))
        await cluster.apply(hpa("web", target="web"))
        await cluster.wait_for(
            lambda: conditions(cluster).get("ScalingActive") == ("False", "ScalingDisabled"),
            timeout=60,
        )
        await trio.sleep(60)
        assert replicas(cluster) == 0
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace=NS)
        assert (h.status.current_replicas, h.status.desired_replicas) == (0, 0)
        assert conditions(cluster)["AbleToScale"] == ("True", "SucceededGetScale")


async def test_a_deleted_hpa_stops_scaling(autojump_clock):
    async with hpa_cluster(seed=19) as (cluster, _):
        await cluster.apply(replica_set("web", 1, image="idle:1"))
        await cluster.apply(hpa("web", target="web", max_replicas=5, minReplicas=3))
        await cluster.wait_for(lambda: replicas(cluster) == 3, timeout=60)
        await cluster.client.delete("HorizontalPodAutoscaler", "web", namespace=NS)
        rs = cluster.get_nowait("ReplicaSet", "web", namespace=NS)
        await cluster.client.update(attrs.evolve(rs, spec=attrs.evolve(rs.spec, replicas=1)))
        await trio.sleep(60)
        assert replicas(cluster) == 1
        controller = cluster.controller_manager.controllers["horizontal-pod-autoscaler"]
        stats = controller.statistics()
        assert (stats.tracked, stats.rescales, stats.failed_rescales) == (0, 1, 0)


async def scale_up_digest(seed: int) -> tuple[str, int]:
    async with hpa_cluster(seed=seed) as (cluster, _), trio.open_nursery() as nursery:
        await cluster.apply(replica_set("web", 2))
        nursery.start_soon(stand_in_replica_set, cluster, "web")
        await cluster.apply(hpa("web", target="web"))
        await cluster.wait_for(lambda: replicas(cluster) == 6, timeout=120)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
        return cluster.history_digest(), replicas(cluster)


def test_same_seed_same_history() -> None:
    def run() -> tuple[str, int]:
        clock = trio.testing.MockClock(autojump_threshold=0)
        return trio.run(scale_up_digest, 21, clock=clock)

    assert run() == run()
