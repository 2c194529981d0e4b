"""``kubetrio demo``: pods on an in-process cluster doing what pods do, in virtual time.

Applies a handful of pods -- two web servers, one that crash-loops, a batch step that
completes, one too big for any node, one that leaks memory past its limit, one with a
mistyped image -- lets five virtual minutes pass (well under a second of wall time), and
prints what ``kubectl get pods`` and ``kubectl describe`` would: the STATUS column and the
events that explain it. ``--nodes``/``--pods`` add load pods to show it at scale.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from importlib.resources import files
from typing import Any, TextIO

import attrs
import trio

from controlplane import errors
from controlplane.api import from_dict, load_yaml
from controlplane.clock import wall_now
from controlplane.cluster import open_cluster
from controlplane.printers import (
    describe_containers,
    describe_event_rows,
    format_table,
    pod_rows,
    pod_status_reason,
)
from runtime.programs import Curve, MiB, Program

DEMO_PODS = files("controlplane.demo").joinpath("pods.yaml").read_text()

#: What the demo's ``leaky`` pod runs: 16 MiB, then 256 MiB after 20 s.
MEMORY_HOG = Program(memory=Curve([(0, 16 * MiB), (20, 256 * MiB)]))
MISSING_IMAGE = "registry.example.com/ngnix:1.27"

LOAD_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"namespace": "default", "labels": {"app": "load"}},
    "spec": {
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.9",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ]
    },
}

BAD_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "bad", "namespace": "default"},
    "spec": {
        "containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "5x"}}}]
    },
}

Progress = Callable[[float, Counter[str]], None]


def _statuses(pods: list[Any]) -> Counter[str]:
    return Counter(pod_status_reason(p)[0] for p in pods)


async def run_demo(
    out: TextIO,
    *,
    seed: int = 7,
    nodes: int = 3,
    pods: int = 0,
    minutes: float = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the demo, print its report to ``out``, return a summary (for tests).

    ``progress(elapsed_virtual_seconds, pods_by_status)`` is called every ten virtual
    seconds while the cluster runs.
    """
    async with open_cluster(nodes=nodes, seed=seed) as cluster:
        cluster.registry.add("kubetrio.example/memory-hog:1", program=MEMORY_HOG)
        cluster.registry.mark_missing(MISSING_IMAGE)
        demo = await cluster.apply(load_yaml(DEMO_PODS))
        names = [p.metadata.name for p in demo]
        template = from_dict(LOAD_POD)
        for i in range(pods):
            meta = attrs.evolve(template.metadata, name=f"load-{i}")
            await cluster.client.create(attrs.evolve(template, metadata=meta))
        try:
            await cluster.apply(BAD_POD)
            refusal = ""
        except errors.ApiError as exc:
            refusal = f"{type(exc).__name__}: {exc}"

        start = trio.current_time()
        end = start + minutes * 60
        while trio.current_time() < end:
            await trio.sleep(min(10, end - trio.current_time()))
            if progress is not None:
                progress(trio.current_time() - start, _statuses(cluster.list_nowait("Pod")))

        now = wall_now()
        shown = [cluster.get_nowait("Pod", n, namespace="default") for n in names]
        load = cluster.list_nowait("Pod", namespace="default", label_selector="app=load")
        out.write(
            f"kubetrio demo: {nodes} nodes, seed {seed}, {minutes:g} minutes of virtual time\n\n"
        )
        out.write("$ kubectl get pods -o wide\n")
        out.write(format_table(pod_rows(shown, now)))
        if load:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(_statuses(load).items()))
            out.write(f"... and {len(load)} load pods: {counts}\n")
        out.write("\nWhy -- the events of each pod (kubectl describe pod):\n")
        events = cluster.list_nowait("Event", namespace="default")
        for pod in shown:
            name = pod.metadata.name
            mine = [e for e in events if e.involved_object.name == name]
            out.write(f"\n{name}:\n")
            for line in describe_containers(pod):
                out.write(f"  {line}\n")
            for line in format_table(describe_event_rows(mine, now)).splitlines():
                out.write(f"  {line}\n")
        out.write(f"\nA bad manifest is refused and changes nothing:\n  {refusal}\n")
        return {
            "statuses": {p.metadata.name: pod_status_reason(p)[0] for p in shown},
            "load": dict(_statuses(load)),
            "refusal": refusal,
            "digest": cluster.history_digest(),
        }
