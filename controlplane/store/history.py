"""The revision log: every write the store made, in order, for watches that resume.

A watch from revision ``R`` replays the retained changes with revision ``> R`` and then
goes live. The log keeps at most ``limit`` changes and drops those older than
``max_age`` seconds when :meth:`History.expire` is called (the store's ``run`` does so on
a timer), like etcd's compaction. A watch from a revision that is no longer covered gets
``errors.Gone`` and the client re-lists.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any

from controlplane import errors

__all__ = ["Change", "History"]


class Change:
    """One write: its revision, event type, kind, and the object before and after.

    ``new`` is the object as stored by the write; for ``DELETED`` it is the last state
    stamped with the deletion's resourceVersion. ``old`` is the previous state (``None``
    for ``ADDED``); watchers with selectors need it to turn transitions into
    ADDED/DELETED. ``time`` is the trio time of the write (for age-based compaction).
    """

    __slots__ = ("kind", "new", "old", "revision", "time", "type")

    def __init__(
        self, revision: int, type: str, kind: str, old: Any, new: Any, time: float
    ) -> None:
        self.revision = revision
        self.type = type
        self.kind = kind
        self.old = old
        self.new = new
        self.time = time

    def __repr__(self) -> str:
        meta = self.new.metadata
        return f"Change({self.revision}, {self.type}, {self.kind} {meta.namespace}/{meta.name})"


class History:
    """A bounded log of :class:`Change` with consecutive revisions."""

    def __init__(self, *, limit: int, max_age: float) -> None:
        if limit < 1:
            raise ValueError("history limit must be at least 1")
        self.limit = limit
        self.max_age = max_age
        self._changes: deque[Change] = deque(maxlen=limit)
        #: Every change with a revision <= this one is gone from the log.
        self._floor = 0

    def __len__(self) -> int:
        return len(self._changes)

    @property
    def floor(self) -> int:
        """The oldest revision a watch may resume from (changes after it are all kept)."""
        return self._floor

    def oldest_time(self) -> float | None:
        return self._changes[0].time if self._changes else None

    def append(self, change: Change) -> None:
        changes = self._changes
        if len(changes) == self.limit:
            self._floor = changes[0].revision
        changes.append(change)

    def compact(self, revision: int) -> None:
        """Forget every change up to and including ``revision``."""
        changes = self._changes
        while changes and changes[0].revision <= revision:
            changes.popleft()
        if revision > self._floor:
            self._floor = revision

    def expire(self, now: float) -> float | None:
        """Drop changes older than ``max_age``; return when the next one expires, if any."""
        changes = self._changes
        max_age = self.max_age
        # Compare ``time + max_age`` -- the very float the caller sleeps until -- not
        # ``now - max_age``: (1.13 + 300) - 300 < 1.13, and a change that never quite
        # expires would make the expiry loop spin with virtual time frozen.
        while changes and changes[0].time + max_age <= now:
            self._floor = changes.popleft().revision
        return changes[0].time + max_age if changes else None

    def since(self, revision: int, current: int) -> Iterator[Change]:
        """The retained changes with revision ``> revision``, oldest first.

        Raises:
            errors.Gone: changes after ``revision`` were compacted away.
        """
        if revision < self._floor:
            raise errors.Gone(f"too old resource version: {revision} ({self._floor})")
        changes = self._changes
        if not changes or revision >= current:
            return iter(())
        skip = revision - changes[0].revision + 1
        return itertools.islice(changes, max(skip, 0), None)
