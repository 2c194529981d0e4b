"""Same seed + same workload -> same history; another seed -> another history."""

from __future__ import annotations

import trio
import trio.testing

from controlplane import open_cluster


async def workload(seed: int) -> tuple[str, list[str]]:
    async with open_cluster(nodes=2, seed=seed) as cluster:

        async def writer(prefix: str) -> None:
            for i in range(5):
                await cluster.apply(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"generateName": f"{prefix}-", "labels": {"i": str(i)}},
                    }
                )
                await trio.sleep(cluster.rng.random())

        async with trio.open_nursery() as nursery:
            for prefix in ("a", "b", "c"):
                nursery.start_soon(writer, prefix)
        names = [c.metadata.name for c in cluster.list_nowait("ConfigMap")]
        return cluster.history_digest(), names


def run(seed: int) -> tuple[str, list[str]]:
    return trio.run(workload, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_same_seed_same_history():
    first, second = run(7), run(7)
    assert first == second


def test_different_seed_different_history():
    (digest_a, names_a), (digest_b, names_b) = run(7), run(8)
    assert digest_a != digest_b
    assert names_a != names_b
