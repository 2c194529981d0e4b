"""Shrinking a failing fault schedule: delta debugging (Zeller's ddmin).

A chaos run that breaks an invariant usually needed only a few of its dozens of faults.
:func:`ddmin` finds a 1-minimal subset -- removing any single remaining item makes the
run pass -- by trying chunks and their complements, coarse to fine, as Zeller and
Hildebrandt's "Simplifying and Isolating Failure-Inducing Input" (2002) describes. It is
pure: the caller's ``fails`` predicate does the runs (the CLI replays the scenario with
the same seed and the subset), so the algorithm is tested without a cluster. Subsets keep
the input's order; each distinct subset is tested at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import attrs

__all__ = ["ShrinkResult", "ddmin"]

T = TypeVar("T")


@attrs.frozen
class ShrinkResult(Generic[T]):
    """The smallest failing subset found, how many runs it took, and whether the
    ``max_tests`` budget ran out before it was proven 1-minimal."""

    items: tuple[T, ...]
    tests: int
    exhausted: bool = False


class _Budget(Exception):
    """The test budget ran out."""


def ddmin(
    items: Sequence[T],
    fails: Callable[[Sequence[T]], bool],
    *,
    max_tests: int | None = None,
) -> ShrinkResult[T]:
    """A 1-minimal subsequence of ``items`` for which ``fails`` still returns True.

    ``fails(items)`` itself is assumed True (not re-tested). ``fails`` is called on
    subsequences (in the original order), never twice on the same one; it may be slow
    (a whole chaos run). With ``max_tests``, stop after that many calls and return the
    smallest failing subset found so far (``exhausted`` True).

    Raises:
        ValueError: ``max_tests`` is negative.
    """
    if max_tests is not None and max_tests < 0:
        raise ValueError(f"max_tests: must be >= 0, got {max_tests!r}")
    seen: dict[tuple[int, ...], bool] = {}

    def test(indices: list[int]) -> bool:
        key = tuple(indices)
        if key not in seen:
            if max_tests is not None and len(seen) >= max_tests:
                raise _Budget
            seen[key] = bool(fails([items[i] for i in indices]))
        return seen[key]

    current = list(range(len(items)))
    exhausted = False
    try:
        if current and test([]):
            current = []
        n = 2
        while len(current) >= 2:
            chunks = _split(current, n)
            for chunk in chunks:
                if test(chunk):
                    current, n = chunk, 2
                    break
            else:
                for i in range(len(chunks)):
                    complement = [x for j, c in enumerate(chunks) if j != i for x in c]
                    if test(complement):
                        current, n = complement, max(n - 1, 2)
                        break
                else:
                    if n >= len(current):
                        break
                    n = min(len(current), 2 * n)
    except _Budget:
        exhausted = True
    return ShrinkResult(tuple(items[i] for i in current), len(seen), exhausted)


def _split(indices: list[int], n: int) -> list[list[int]]:
    """``indices`` in ``n`` contiguous chunks as equal as can be (the first ones longer)."""
    size, extra = divmod(len(indices), n)
    chunks, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        chunks.append(indices[start:end])
        start = end
    return [c for c in chunks if c]
