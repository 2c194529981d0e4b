"""Scenario: an HPA scales a real Deployment up under load and down after the window."""

from __future__ import annotations

import trio

from controlplane import open_cluster
from runtime.programs import Curve, Program

MiB = 1024 * 1024
#: 400m of cpu for the first 120 s of each pod's life, then 20m
LOAD = Program(cpu=Curve([(0, 0.4), (120, 0.02)]), memory=32 * MiB)

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "example.com/busy:1",
                        "resources": {"requests": {"cpu": "200m"}},
                    }
                ]
            },
        },
    },
}

HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50},
                },
            }
        ],
    },
}


async def test_load_scales_a_deployment_up_and_the_quiet_scales_it_down_after_300_s(
    autojump_clock,
):
    async with open_cluster(nodes=4, seed=41) as cluster, trio.open_nursery() as nursery:
        cluster.registry.add("example.com/busy:1", program=LOAD)
        await cluster.apply(DEPLOYMENT)
        await cluster.apply(HPA)
        sizes: list[tuple[float, int]] = []

        async def record_sizes():
            revision = cluster.store.revision
            while True:
                revision = await cluster.store.wait_changed(revision)
                d = cluster.get_nowait("Deployment", "web", namespace="default")
                if not sizes or sizes[-1][1] != d.spec.replicas:
                    sizes.append((trio.current_time(), d.spec.replicas))

        nursery.start_soon(record_sizes)

        def size() -> int:
            return cluster.get_nowait("Deployment", "web", namespace="default").spec.replicas

        # 200 % of the request against a 50 % target: up, by at most max(2x, 4) per 15 s
        await cluster.wait_for(lambda: size() > 2, timeout=60)
        peak = await cluster.wait_for(lambda: size() >= 8 and size(), timeout=300)
        ups = [t for (t, n), (_, prev) in zip(sizes[1:], sizes) if n > prev]
        # the load is gone 120 s after the newest pods started; the HPA waits 300 s more
        await cluster.wait_for(lambda: size() == 2, timeout=1200)
        (down_at, _) = next((t, n) for t, n in sizes if n < peak and t > ups[-1])
        assert down_at - ups[-1] >= 300, sizes
        await cluster.wait_for(
            lambda: (
                len(
                    [
                        p
                        for p in cluster.list_nowait("Pod", namespace="default")
                        if p.metadata.deletion_timestamp is None
                    ]
                )
                == 2
            ),
            timeout=120,
        )
        await cluster.wait_for(  # the HPA's next sync (every 15 s) reports it
            lambda: (
                (
                    h := cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace="default")
                ).status.current_replicas
                == h.status.desired_replicas
                == 2
            ),
            timeout=30,
        )
        rescales = [
            e.message
            for e in cluster.list_nowait("Event", namespace="default")
            if e.reason == "SuccessfulRescale"
        ]
        assert any("above target" in m for m in rescales)
        assert "New size: 2; reason: All metrics below target" in rescales
        nursery.cancel_scope.cancel()


async def test_an_hpa_for_a_missing_deployment_cannot_scale_and_changes_nothing(cluster):
    revision_before = cluster.store.revision
    await cluster.apply(HPA)

    def able_to_scale():
        h = cluster.get_nowait("HorizontalPodAutoscaler", "web", namespace="default")
        return next((c for c in h.status.conditions if c.type == "AbleToScale"), None)

    condition = await cluster.wait_for(able_to_scale, timeout=60)
    assert (condition.status, condition.reason) == ("False", "FailedGetScale")
    assert cluster.list_nowait("Deployment") == [] and cluster.list_nowait("Pod") == []
    assert cluster.store.revision > revision_before
