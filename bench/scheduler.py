"""Scheduler benchmark, shaped like kube-scheduler's scheduler_perf ``SchedulingBasic``:
N nodes (4 CPU, 32 Gi, 110 pods), some initial pods scheduled first, then a measured
batch of pods (100m CPU, 500 Mi each) created and scheduled; reports pods bound per
second of wall time.

Run ``python bench/scheduler.py`` (``--quick`` for smaller sizes, ``--profile`` to print
a cProfile of the 5,000-node run). Prints one JSON line, then a human table. Runs under
``MockClock(autojump_threshold=0)``, so only CPU time counts; no assertions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import random
import sys
import time
from pathlib import Path

import structlog
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import WorkTracker
from controlplane.api.core import Container, Namespace, Pod, PodSpec
from controlplane.api.core_pod import ResourceRequirements
from controlplane.api.defaults import apply_defaults
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.client.local import LocalClient
from controlplane.nodes import NodeTemplate, node_object
from controlplane.scheduler import Scheduler
from controlplane.store import Store

NODE = NodeTemplate.build(cpu="4", memory="32Gi", pods=110)


def template() -> Pod:
    container = Container(
        name="pause",
        image="registry.k8s.io/pause:3.10",
        resources=ResourceRequirements(requests={"cpu": "100m", "memory": "500Mi"}),
    )
    return apply_defaults(
        Pod(metadata=ObjectMeta(namespace="default"), spec=PodSpec(containers=[container]))
    )


def pods(prefix: str, n: int, tmpl: Pod, *, owned: bool = False) -> list[Pod]:
    """``n`` pods sharing the template's spec; ``owned``: all controlled by one
    ReplicaSet, so the default spreading plugin scores them too."""
    owners = (
        (
            OwnerReference(
                api_version="apps/v1", kind="ReplicaSet", name="web", uid="rs-web", controller=True
            ),
        )
        if owned
        else ()
    )
    return [
        Pod(
            metadata=ObjectMeta(name=f"{prefix}-{i}", namespace="default", owner_references=owners),
            spec=tmpl.spec,
        )
        for i in range(n)
    ]


async def create_all(client: LocalClient, objs: list[Pod]) -> None:
    for obj in objs:
        await client.create(obj)


async def run_case(
    nodes: int, initial: int, measured: int, *, owned: bool = False
) -> dict[str, float]:
    """One SchedulingBasic run; returns timings (wall seconds) and throughput."""
    tracker = WorkTracker()
    store = Store(random.Random("bench"), work_tracker=tracker)
    tmpl = template()
    result: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        client = LocalClient(store, track_work=True)
        await client.create(Namespace(metadata=ObjectMeta(name="default")))
        for i in range(nodes):
            await client.create(node_object(f"node-{i}", NODE))
        scheduler = Scheduler(client, rng=random.Random(1), tracker=tracker)
        await nursery.start(scheduler.run)

        start = time.perf_counter()
        await create_all(client, pods("init", initial, tmpl, owned=owned))
        await tracker.wait_idle()
        result["initial_s"] = time.perf_counter() - start

        batch = pods("measure", measured, tmpl, owned=owned)
        start = time.perf_counter()
        await create_all(client, batch)
        await tracker.wait_idle()
        elapsed = time.perf_counter() - start
        bound = sum(1 for p in store.list_nowait("Pod") if p.spec.node_name)
        stats = scheduler.statistics()
        nursery.cancel_scope.cancel()

    # The store's own share: the same creates with no scheduler running.
    store2 = Store(random.Random("bench"))
    await store2.create(Namespace(metadata=ObjectMeta(name="default")))
    start = time.perf_counter()
    await create_all(LocalClient(store2), pods("measure", measured, tmpl, owned=owned))
    create_s = time.perf_counter() - start

    result.update(
        nodes=nodes,
        measured=measured,
        bound=bound,
        unschedulable=stats.unschedulable,
        measured_s=elapsed,
        pods_per_s=measured / elapsed,
        create_only_s=create_s,
        scheduling_pods_per_s=measured / max(elapsed - create_s, 1e-9),
    )
    return result


CASES = (
    ("500 nodes", 500, False),
    ("5000 nodes", 5000, False),
    ("5000 nodes, ReplicaSet pods (spreading)", 5000, True),
)


async def main(quick: bool, profile: bool) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    initial, measured = (500, 1000) if quick else (1000, 3000)
    results = {}
    for label, nodes, owned in CASES:
        profiler = cProfile.Profile() if profile and nodes == 5000 and not owned else None
        if profiler is not None:
            profiler.enable()
        results[label] = await run_case(nodes, initial, measured, owned=owned)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    line: dict[str, object] = {
        "bench": "scheduler",
        "initial_pods": initial,
        "measured_pods": measured,
    }
    for label, r in results.items():
        tag = label.split(",")[0].replace(" ", "_") + ("_spread" if "spreading" in label else "")
        line[f"pods_per_s_{tag}"] = round(r["pods_per_s"], 1)
        line[f"pods_per_s_excl_creates_{tag}"] = round(r["scheduling_pods_per_s"], 1)
        line[f"bound_{tag}"] = int(r["bound"])
    print(json.dumps(line))
    header = (
        f"{'case':<42} {'initial (s)':>11} {'wall (s)':>9} {'pods/s':>8}"
        f" {'creates (s)':>11} {'pods/s excl. creates':>21}"
    )
    print(f"SchedulingBasic-like: {initial} initial pods, then {measured} measured pods")
    print(header)
    for label, r in results.items():
        print(
            f"{label:<42} {r['initial_s']:>11.3f} {r['measured_s']:>9.3f} {r['pods_per_s']:>8.0f}"
            f" {r['create_only_s']:>11.3f} {r['scheduling_pods_per_s']:>21.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--profile", action="store_true", help="cProfile the 5,000-node run")
    args = parser.parse_args()
    trio.run(main, args.quick, args.profile, clock=trio.testing.MockClock(autojump_threshold=0))
