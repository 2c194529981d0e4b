"""Micro-benchmark of actors.Broadcast: pushes/s and delivered items/s.

Run from the repository root: ``python -m bench.broadcast [--items N]`` (or
``python bench/broadcast.py`` once kubetrio is installed). Prints one JSON line, then a table.
Wall-clock time is measured here on purpose: this is a benchmark, not the core.
"""

from __future__ import annotations

import argparse
import json
import time

import trio
import trio.testing

from actors import Broadcast, Subscription


async def _push_only(items: int, subscribers: int) -> float:
    # publish_nowait with nobody waiting: the producer-side cost alone.
    broadcast: Broadcast[int] = Broadcast()
    for _ in range(subscribers):
        broadcast.subscribe(items)
    start = time.perf_counter()
    for item in range(items):
        broadcast.publish_nowait(item)
    return time.perf_counter() - start


async def _end_to_end(items: int, subscribers: int, chunk: int) -> tuple[float, int]:
    # Publish in chunks; one consumer task per subscriber drains with receive_batch.
    broadcast: Broadcast[int] = Broadcast()
    subscriptions = [broadcast.subscribe(chunk) for _ in range(subscribers)]
    delivered = 0

    async def consume(subscription: Subscription[int]) -> None:
        nonlocal delivered
        while True:
            try:
                batch = await subscription.receive_batch()
            except trio.EndOfChannel:
                return
            delivered += len(batch)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for subscription in subscriptions:
            nursery.start_soon(consume, subscription)
        for first in range(0, items, chunk):
            for item in range(first, min(first + chunk, items)):
                broadcast.publish_nowait(item)
            await trio.testing.wait_all_tasks_blocked()
        broadcast.close()
    return time.perf_counter() - start, delivered


async def main(items: int) -> None:
    rows = []
    for subscribers, n in ((1, items), (1000, max(items // 1000, 100))):
        push_seconds = await _push_only(n, subscribers)
        e2e_seconds, delivered = await _end_to_end(n, subscribers, chunk=min(n, 1000))
        assert delivered == n * subscribers
        rows.append(
            {
                "subscribers": subscribers,
                "items": n,
                "publishes_per_s": round(n / push_seconds),
                "pushes_per_s": round(n * subscribers / push_seconds),
                "delivered_per_s": round(delivered / e2e_seconds),
            }
        )
    print(json.dumps({"bench": "broadcast", "results": rows}))
    header = ("subscribers", "items", "publishes/s", "pushes/s", "delivered/s")
    print(f"{header[0]:>11} {header[1]:>9} {header[2]:>12} {header[3]:>12} {header[4]:>12}")
    for r in rows:
        print(
            f"{r['subscribers']:>11} {r['items']:>9} {r['publishes_per_s']:>12,} "
            f"{r['pushes_per_s']:>12,} {r['delivered_per_s']:>12,}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    trio.run(main, parser.parse_args().items)
