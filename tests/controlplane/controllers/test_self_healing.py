"""Scenario: a node dies and its pods come back elsewhere, on Kubernetes' schedule."""

from __future__ import annotations

import trio

from controlplane import open_cluster


def replica_set(replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    }


async def test_a_dead_nodes_pods_are_replaced_after_the_grace_period_and_eviction(
    autojump_clock,
):
    async with open_cluster(nodes=3, seed=31) as cluster, trio.open_nursery() as nursery:
        await cluster.apply(replica_set(6))
        await cluster.wait_for(
            lambda: (
                cluster.get_nowait("ReplicaSet", "web", namespace="default").status.ready_replicas
                == 6
            )
        )
        pods = cluster.list_nowait("Pod", namespace="default")
        victim = max(
            {p.spec.node_name for p in pods}, key=lambda n: sum(p.spec.node_name == n for p in pods)
        )
        doomed = {p.metadata.name for p in pods if p.spec.node_name == victim}
        assert doomed
        worst = []

        async def count_on_every_change():
            revision = cluster.store.revision
            while True:
                revision = await cluster.store.wait_changed(revision)
                pods = cluster.list_nowait("Pod", namespace="default")
                terminating_on_dead = sum(
                    1
                    for p in pods
                    if p.spec.node_name == victim and p.metadata.deletion_timestamp is not None
                )
                worst.append(len(pods) - terminating_on_dead)

        nursery.start_soon(count_on_every_change)
        crashed_at = trio.current_time()
        cluster.chaos.crash_node(victim)

        def replaced():
            running = [
                p
                for p in cluster.list_nowait("Pod", namespace="default")
                if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
            ]
            return (
                len(running) == 6
                and all(p.metadata.name not in doomed for p in running)
                and running
            )

        # the node is Unknown after 40 s; its pods tolerate that for 300 s, then go
        await cluster.wait_for(
            lambda: any(
                t.key == "node.kubernetes.io/unreachable"
                for t in cluster.get_nowait("Node", victim).spec.taints
            ),
            timeout=120,
        )
        assert 40 <= trio.current_time() - crashed_at <= 60
        running = await cluster.wait_for(replaced, timeout=900)
        assert 340 <= trio.current_time() - crashed_at <= 370
        assert all(p.spec.node_name != victim for p in running)
        # never more than the replicas, apart from the pods stuck terminating on the dead
        # node (its kubelet is gone and cannot confirm their end)
        assert max(worst) <= 6
        nursery.cancel_scope.cancel()
