"""Pick a fault's targets the way Chaos Mesh does: filter, then draw by mode.

Pure: the caller passes the candidates (a key and its labels) and the seeded rng. The
candidates are sorted by key before any draw, so the same cluster state and the same rng
state give the same targets whatever order the cluster listed them in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping

from controlplane.api.labels import parse_selector
from controlplane.chaos.schedule import Target

__all__ = ["Candidate", "select_targets"]

Candidate = tuple[str, str, Mapping[str, str]]
"""(key, name, labels): key is what the fault acts on (``node-1``, ``default/web-0``),
name what ``Target.names`` matches (``web-0``)."""


def select_targets(
    target: Target | None, candidates: Iterable[Candidate], rng: random.Random
) -> tuple[str, ...]:
    """The keys of the chosen candidates, sorted; empty if nothing matches.

    ``target`` None means ``Target()``: one candidate at random. Modes (Chaos Mesh's):
    ``one``; ``all``; ``fixed`` (``value`` of them, all if fewer); ``fixed-percent``
    (``value`` % rounded down, at least one when any match); ``random-max-percent`` (a
    uniform count from 1 up to ``value`` % rounded down, at least one). Draws one
    ``rng`` sample whenever it chooses (none for ``all`` or when nothing matches).
    Assumes ``target`` was validated (:meth:`Schedule.validate`).
    """
    target = target or Target()
    selector = parse_selector(target.selector) if target.selector else None
    names = set(target.names)
    matching = sorted(
        key
        for key, name, labels in candidates
        if (not names or name in names) and (selector is None or selector.matches(labels))
    )
    if not matching:
        return ()
    count = _count(target, len(matching), rng)
    if count >= len(matching):
        return tuple(matching)
    return tuple(sorted(rng.sample(matching, count)))


def _count(target: Target, n: int, rng: random.Random) -> int:
    mode, value = target.mode, target.value
    if mode == "one":
        return 1
    if mode == "all":
        return n
    assert value is not None
    if mode == "fixed":
        return min(value, n)
    most = max(1, math.floor(n * value / 100))
    if mode == "fixed-percent":
        return most
    if mode == "random-max-percent":
        return rng.randint(1, most)
    raise ValueError(f"mode: unknown {mode!r}")
