"""Controllers at scale: Deployments from apply to all Available, then a rolling update.

A cluster of N nodes (1,000 by default) gets D Deployments (100) of R replicas (50),
everything real: the Deployment controller creates ReplicaSets, the ReplicaSet
controller pods, the scheduler binds them, the kubelets run them. Then every Deployment
gets a new image and rolls (25 % surge / 25 % unavailable). Reported per phase: virtual
and wall seconds, and store writes per pod created, by kind (Kubernetes' own figure for
a pod's life through a Deployment is roughly 5-6 writes: create, bind, 2-3 status
updates, plus its controllers' status writes and events amortised).

Run ``python bench/controllers.py`` or ``--nodes 100 --deployments 10 --replicas 20``.
Prints one JSON line, then a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane import open_cluster

COUNTED = ("Pod", "ReplicaSet", "Deployment", "Event")


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
                        }
                    ]
                },
            },
        },
    }


def complete(d: Any) -> bool:
    s = d.status
    want = d.spec.replicas
    return (
        s.observed_generation >= d.metadata.generation
        and s.updated_replicas == s.replicas == s.available_replicas == want
    )


async def run(nodes: int, deployments: int, replicas: int, seed: int) -> dict[str, Any]:
    boot = time.perf_counter()
    async with open_cluster(nodes=nodes, seed=seed) as cluster, trio.open_nursery() as nursery:
        boot_wall = time.perf_counter() - boot
        writes: Counter[str] = Counter()
        created_pods = [0]
        done: set[str] = set()
        all_done = trio.Event()

        async def count(kind: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with cluster.client.watch(kind, namespace="default") as events:
                task_status.started()
                while True:
                    for event in await events.receive_batch():
                        if event.type == "BOOKMARK":
                            continue
                        writes[kind] += 1
                        if kind == "Pod" and event.type == "ADDED":
                            created_pods[0] += 1
                        if kind == "Deployment":
                            name = event.object.metadata.name
                            if event.type != "DELETED" and complete(event.object):
                                done.add(name)
                            else:
                                done.discard(name)
                            if len(done) == deployments:
                                all_done.set()

        for kind in COUNTED:
            await nursery.start(count, kind)

        async def phase(image: str) -> dict[str, Any]:
            nonlocal all_done
            all_done = trio.Event()
            done.clear()
            before_writes, before_pods = Counter(writes), created_pods[0]
            revision = cluster.store.revision
            t_virtual, t_wall = trio.current_time(), time.perf_counter()
            for i in range(deployments):
                await cluster.apply(deployment(f"app-{i}", replicas, image))
            await all_done.wait()
            await cluster.settle()
            pods = created_pods[0] - before_pods
            delta = {k: writes[k] - before_writes[k] for k in COUNTED}
            return {
                "virtual_s": round(trio.current_time() - t_virtual, 1),
                "wall_s": round(time.perf_counter() - t_wall, 2),
                "pods_created": pods,
                "store_writes": cluster.store.revision - revision,
                **{f"{k.lower()}_writes_per_pod": round(delta[k] / pods, 2) for k in COUNTED},
                "workload_writes_per_pod": round(sum(delta.values()) / pods, 2),
            }

        apply = await phase("example.com/app:1")
        rolling = await phase("example.com/app:2")
        nursery.cancel_scope.cancel()
    return {
        "bench": "controllers",
        "nodes": nodes,
        "deployments": deployments,
        "replicas": replicas,
        "cluster_start_wall_s": round(boot_wall, 2),
        "apply": apply,
        "rolling_update": rolling,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = trio.run(
        run,
        args.nodes,
        args.deployments,
        args.replicas,
        args.seed,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    print(json.dumps(result), flush=True)
    rows = [
        ("phase", "virtual s", "wall s", "pods", "writes/pod", "pod", "rs", "deploy", "event"),
    ]
    for name in ("apply", "rolling_update"):
        r = result[name]
        rows.append(
            (
                name,
                f"{r['virtual_s']:.1f}",
                f"{r['wall_s']:.1f}",
                str(r["pods_created"]),
                f"{r['workload_writes_per_pod']:.2f}",
                f"{r['pod_writes_per_pod']:.2f}",
                f"{r['replicaset_writes_per_pod']:.2f}",
                f"{r['deployment_writes_per_pod']:.2f}",
                f"{r['event_writes_per_pod']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    print(
        f"nodes {result['nodes']}, {result['deployments']} x {result['replicas']} replicas;"
        f" cluster start {result['cluster_start_wall_s']:.1f} s;"
        f" peak RSS {result['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
