"""Store benchmarks: create throughput (with and without indexed watchers), watch fan-out,
list with a label selector, memory per stored pod.

Run ``python bench/store.py`` (``--quick`` for smaller sizes). Prints one JSON line, then
a human table. Real clock (this measures wall time); no assertions.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.api.core import Container, Namespace, Pod, PodSpec
from controlplane.api.core_pod import ResourceRequirements
from controlplane.api.defaults import apply_defaults
from controlplane.api.meta import ObjectMeta
from controlplane.store import Store

LABELS = {"app": "web", "tier": "frontend"}


def template(*, defaulted: bool = True) -> Pod:
    """A small pod: one container, image, cpu/memory requests, labels."""
    container = Container(
        name="web",
        image="nginx:1.27",
        resources=ResourceRequirements(requests={"cpu": "100m", "memory": "128Mi"}),
    )
    pod = Pod(metadata=ObjectMeta(labels=LABELS), spec=PodSpec(containers=[container]))
    return apply_defaults(pod) if defaulted else pod


def pods(
    n: int, tmpl: Pod, *, namespaces: list[str], nodes: list[str] | None, seed: int
) -> list[Pod]:
    """``n`` pods named ``pod-<i>`` sharing the template's spec (one spec per node)."""
    rng = random.Random(seed)
    specs = {node: attrs.evolve(tmpl.spec, node_name=node) for node in nodes or ()}
    out = []
    for i in range(n):
        meta = attrs.evolve(
            tmpl.metadata, name=f"pod-{i}", namespace=namespaces[i % len(namespaces)]
        )
        spec = specs[rng.choice(nodes)] if nodes else tmpl.spec
        out.append(Pod(metadata=meta, spec=spec))
    return out


async def new_store(namespaces: list[str], **options: Any) -> Store:
    store = Store(random.Random("bench"), **options)
    for ns in namespaces:
        await store.create(Namespace(metadata=ObjectMeta(name=ns)))
    return store


async def create_all(store: Store, objs: list[Pod], concurrency: int) -> float:
    start = time.perf_counter()
    if concurrency == 1:
        for obj in objs:
            await store.create(obj)
    else:

        async def worker(chunk: list[Pod]) -> None:
            for obj in chunk:
                await store.create(obj)

        async with trio.open_nursery() as nursery:
            for k in range(concurrency):
                nursery.start_soon(worker, objs[k::concurrency])
    return time.perf_counter() - start


async def drain(
    store: Store,
    counter: list[int],
    namespace: str | None = None,
    field_selector: str | None = None,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    async with store.watch("Pod", namespace=namespace, field_selector=field_selector) as events:
        task_status.started()
        while True:
            try:
                batch = await events.receive_batch()
            except trio.EndOfChannel:
                return
            counter[0] += len(batch)


async def bench_creates(
    n: int,
    concurrency: int,
    *,
    watchers: int = 0,
    defaulted: bool = True,
    interested: bool = True,
) -> float:
    """Create ``n`` pods; with ``watchers``, one ``spec.nodeName`` watcher per node and
    each pod on a random node (``interested``) or on a node nobody watches."""
    nodes = [f"node-{i}" for i in range(watchers)] if watchers else None
    placement = nodes if interested or not watchers else ["unwatched"]
    objs = pods(n, template(defaulted=defaulted), namespaces=["default"], nodes=placement, seed=1)
    store = await new_store(["default"])
    counter = [0]
    async with trio.open_nursery() as nursery:
        for node in nodes or ():
            await nursery.start(drain, store, counter, None, f"spec.nodeName={node}")
        elapsed = create_all(store, objs, concurrency)
        elapsed_s = await elapsed
        await trio.testing.wait_all_tasks_blocked()
        store.close_watches()
    if watchers:
        assert counter[0] == (n if interested else 0), (counter[0], n)
    return n / elapsed_s


async def bench_fanout(n: int, namespaces: int) -> dict[str, float]:
    names = [f"ns-{i}" for i in range(namespaces)]
    objs = pods(n, template(), namespaces=names, nodes=None, seed=2)
    store = await new_store(names)
    counter = [0]
    async with trio.open_nursery() as nursery:
        for ns in names:
            await nursery.start(drain, store, counter, ns)
        await nursery.start(drain, store, counter)
        start = time.perf_counter()
        await create_all(store, objs, 100)
        await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        store.close_watches()
    assert counter[0] == 2 * n, (counter[0], n)
    return {"events_per_s": counter[0] / elapsed, "creates_per_s": n / elapsed}


async def bench_list(n: int) -> dict[str, float]:
    objs = pods(n, template(), namespaces=["default"], nodes=None, seed=3)
    # One pod in 100 carries the selected label.
    objs = [
        attrs.evolve(p, metadata=attrs.evolve(p.metadata, labels={**LABELS, "shard": "a"}))
        if i % 100 == 0
        else p
        for i, p in enumerate(objs)
    ]
    store = await new_store(["default"])
    for obj in objs:
        await store.create(obj)
    start = time.perf_counter()
    selected = await store.list("Pod", label_selector="shard=a")
    selective = time.perf_counter() - start
    start = time.perf_counter()
    everything = await store.list("Pod", label_selector="app=web")
    broad = time.perf_counter() - start
    assert len(selected.items) == n // 100 and len(everything.items) == n
    return {"list_selective_s": selective, "list_all_match_s": broad}


async def bench_memory(n: int) -> dict[str, float]:
    objs = pods(
        n, template(), namespaces=["default"], nodes=[f"node-{i}" for i in range(100)], seed=4
    )
    store = await new_store(["default"], history_limit=1000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for obj in objs:
        await store.create(obj)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # The input objects were built before tracing; what is traced is what the store made
    # and keeps: stamped metadata, uid/resourceVersion strings, indexes, history entries.
    return {"bytes_per_pod": (after - before) / n}


async def bench_digest(n: int) -> float:
    store = await new_store(["default"])
    for obj in pods(1000, template(), namespaces=["default"], nodes=None, seed=5):
        await store.create(obj)
    obj = store.get_nowait("Pod", "pod-1", namespace="default")
    digest = store._digest
    start = time.perf_counter()
    for i in range(n):
        digest.record(i, "MODIFIED", "Pod", obj)
    return (time.perf_counter() - start) / n * 1e6


async def bench_gc_off(n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        return await bench_creates(n, 1)
    finally:
        gc.enable()


async def bench_store_only(n: int, concurrency: int, watchers: int = 0) -> float:
    """The store's own cost: defaulting and validation replaced by identity functions
    (they run on every write; this separates their cost from the store's)."""
    from controlplane.store import admission

    saved = admission.defaults.apply_defaults, admission.validation.validate
    admission.defaults.apply_defaults = lambda obj: obj  # type: ignore[assignment]
    admission.validation.validate = lambda obj, old=None: []  # type: ignore[assignment]
    try:
        return await bench_creates(n, concurrency, watchers=watchers)
    finally:
        admission.defaults.apply_defaults, admission.validation.validate = saved


async def main(quick: bool) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    n = 20_000 if quick else 100_000
    results: dict[str, float] = {}
    results["creates_per_s_seq"] = await bench_creates(n, 1)
    results["creates_per_s_seq_gc_off"] = await bench_gc_off(n)
    results["creates_per_s_100"] = await bench_creates(n, 100)
    results["store_only_creates_per_s_seq"] = await bench_store_only(n, 1)
    results["store_only_creates_per_s_100"] = await bench_store_only(n, 100)
    results["store_only_creates_per_s_100_5000_node_watchers"] = await bench_store_only(
        n, 100, 5000
    )
    results["creates_per_s_seq_undefaulted"] = await bench_creates(n, 1, defaulted=False)
    results["creates_per_s_seq_5000_node_watchers"] = await bench_creates(n, 1, watchers=5000)
    results["creates_per_s_100_5000_node_watchers"] = await bench_creates(n, 100, watchers=5000)
    results["creates_per_s_seq_5000_node_watchers_none_interested"] = await bench_creates(
        n, 1, watchers=5000, interested=False
    )
    fanout = await bench_fanout(n, 1000)
    results["fanout_events_per_s"] = fanout["events_per_s"]
    results["fanout_creates_per_s"] = fanout["creates_per_s"]
    results.update(await bench_list(100_000))
    results.update(await bench_memory(20_000 if quick else 50_000))
    results["digest_us_per_write"] = await bench_digest(100_000)
    print(json.dumps({"bench": "store", "n": n, **{k: round(v, 3) for k, v in results.items()}}))
    rows = [
        ("creates/s, 1 caller, no watchers", results["creates_per_s_seq"]),
        ("creates/s, 1 caller, no watchers, cyclic GC off", results["creates_per_s_seq_gc_off"]),
        ("creates/s, 100 callers, no watchers", results["creates_per_s_100"]),
        (
            "store only (no defaults/validation): creates/s, 1 caller",
            results["store_only_creates_per_s_seq"],
        ),
        ("store only: creates/s, 100 callers", results["store_only_creates_per_s_100"]),
        (
            "store only: creates/s, 100 callers, 5,000 node watchers",
            results["store_only_creates_per_s_100_5000_node_watchers"],
        ),
        (
            "creates/s, 1 caller, template not pre-defaulted",
            results["creates_per_s_seq_undefaulted"],
        ),
        (
            "creates/s, 1 caller, 5,000 node watchers",
            results["creates_per_s_seq_5000_node_watchers"],
        ),
        (
            "creates/s, 1 caller, 5,000 node watchers, none interested",
            results["creates_per_s_seq_5000_node_watchers_none_interested"],
        ),
        (
            "creates/s, 100 callers, 5,000 node watchers",
            results["creates_per_s_100_5000_node_watchers"],
        ),
        ("events/s delivered, 1,000 ns watchers + 1 global", results["fanout_events_per_s"]),
        ("list 100k pods, selector matches 1%  (s)", results["list_selective_s"]),
        ("list 100k pods, selector matches all (s)", results["list_all_match_s"]),
        ("bytes per stored pod (tracemalloc)", results["bytes_per_pod"]),
        ("digest cost per write (us)", results["digest_us_per_write"]),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(
            f"{label:<{width}}  {value:>12,.3f}"
            if value < 100
            else f"{label:<{width}}  {value:>12,.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    trio.run(main, parser.parse_args().quick)
