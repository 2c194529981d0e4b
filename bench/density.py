"""Density: N nodes, M pods, from create to all Running, in virtual time.

Like Kubernetes' density test (and KWOK-style fake-node runs), but every piece is real:
the scheduler binds each pod, each node's kubelet pulls images through the fake runtime,
starts containers and reports status. Measures wall seconds, peak RSS, and pod startup
latency in virtual time (create -> Running observed by a watcher), set against the
Kubernetes SLO (p99 <= 5 s).

Run ``python bench/density.py`` (1,000 x 30,000 and 5,000 x 150,000) or
``--nodes 100 --pods 2000`` for one size. Prints one JSON line per size, then a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane import open_cluster
from controlplane.api import from_dict

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"namespace": "default", "labels": {"app": "density"}},
    "spec": {
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.9",
                "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
            }
        ]
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def density(nodes: int, pods: int, seed: int, gc_mode: str = "default") -> dict[str, Any]:
    """``gc_mode="freeze"``: the application-level GC policy a long-running process with
    a large, long-lived heap would pick -- ``gc.freeze()`` every 2,000 pods created and
    every 5,000 Running, so full collections stop re-scanning the settled pods (Python's
    own advice for such heaps). ``"default"`` leaves CPython's cyclic GC as it is."""
    template = from_dict(POD)
    started_wall = time.perf_counter()
    async with open_cluster(nodes=nodes, seed=seed) as cluster:
        ready_wall = time.perf_counter()
        created: dict[str, float] = {}
        running: dict[str, float] = {}
        all_running = trio.Event()

        async def observe(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            async with cluster.client.watch("Pod", namespace="default") as events:
                task_status.started()
                while True:
                    for event in await events.receive_batch():
                        pod = event.object
                        name = pod.metadata.name
                        if pod.status.phase == "Running" and name not in running:
                            running[name] = trio.current_time()
                            if gc_mode == "freeze" and len(running) % 5000 == 0:
                                gc.freeze()
                            if len(running) == pods:
                                all_running.set()
                                return

        async with trio.open_nursery() as nursery:
            await nursery.start(observe)
            t0_virtual = trio.current_time()
            t0_wall = time.perf_counter()
            for i in range(pods):
                name = f"density-{i}"
                # one spec object shared by every pod, as a controller's template would
                obj = attrs.evolve(template, metadata=attrs.evolve(template.metadata, name=name))
                created[name] = trio.current_time()
                await cluster.client.create(obj)
                if gc_mode == "freeze" and i % 2000 == 1999:
                    gc.freeze()
            created_wall = time.perf_counter()
            await all_running.wait()
            end_wall = time.perf_counter()
            end_virtual = trio.current_time()
    latencies = [running[n] - created[n] for n in running]
    if gc_mode == "freeze":
        gc.unfreeze()
    return {
        "bench": "density",
        "nodes": nodes,
        "pods": pods,
        "gc": gc_mode,
        "cluster_start_wall_s": round(ready_wall - started_wall, 2),
        "create_wall_s": round(created_wall - t0_wall, 2),
        "all_running_wall_s": round(end_wall - t0_wall, 2),
        "all_running_virtual_s": round(end_virtual - t0_virtual, 2),
        "startup_p50_s": round(percentile(latencies, 0.50), 3),
        "startup_p99_s": round(percentile(latencies, 0.99), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--pods", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--gc", choices=["default", "freeze", "both"], default="both", help="cyclic GC policy"
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.nodes and args.pods:
        sizes = [(args.nodes, args.pods)]
    else:
        sizes = [(1000, 30_000), (5000, 150_000)]
    modes = ["default", "freeze"] if args.gc == "both" else [args.gc]
    results = []
    for nodes, pods in sizes:
        for mode in modes:
            result = trio.run(
                density,
                nodes,
                pods,
                args.seed,
                mode,
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    columns = [
        ("nodes", "nodes", "d"),
        ("pods", "pods", "d"),
        ("gc", "GC", "s"),
        ("cluster_start_wall_s", "start s", ".1f"),
        ("create_wall_s", "create s", ".1f"),
        ("all_running_wall_s", "all Running wall s", ".1f"),
        ("all_running_virtual_s", "virtual s", ".1f"),
        ("startup_p50_s", "p50 s", ".2f"),
        ("startup_p99_s", "p99 s", ".2f"),
        ("peak_rss_mb", "peak RSS MB", ".0f"),
    ]
    print("  ".join(title.rjust(max(len(title), 7)) for _, title, _ in columns))
    for r in results:
        print("  ".join(f"{r[key]:{max(len(title), 7)}{fmt}}" for key, title, fmt in columns))


if __name__ == "__main__":
    main()
