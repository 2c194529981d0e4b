"""``IdentityMemo``: remember a pure function's result per immutable input object.

Pods stamped from one template share their spec object (DESIGN.md, "Share structure"),
so defaulting and validating that spec once per template instead of once per pod takes
most of the admission cost off the write path. The key is the object's identity, not
its value: hashing or comparing a pod spec costs as much as validating it. The memo holds
a reference to each key, so an id is never reused while its entry lives; entries beyond
``capacity`` are dropped oldest first, which bounds the memory and only costs a recompute.

Sound only because API objects are frozen all the way down (tuples, read-only maps).
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["IdentityMemo"]

K = TypeVar("K")
V = TypeVar("V")


class IdentityMemo(Generic[K, V]):
    """A bounded map from an object (by identity) to a value computed from it."""

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int = 65536) -> None:
        if capacity < 1:
            raise ValueError(f"IdentityMemo capacity must be >= 1, not {capacity}")
        self._capacity = capacity
        self._entries: dict[int, tuple[K, V]] = {}

    def get(self, key: K) -> V | None:
        """The value stored for this very object, or None."""
        entry = self._entries.get(id(key))
        return None if entry is None else entry[1]

    def put(self, key: K, value: V) -> None:
        entries = self._entries
        if len(entries) >= self._capacity and id(key) not in entries:
            del entries[next(iter(entries))]
        entries[id(key)] = (key, value)

    def __len__(self) -> int:
        return len(self._entries)
