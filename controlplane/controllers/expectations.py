"""Expectations: what a controller wrote and has not yet seen come back through its informer.

A ReplicaSet that created 3 pods must not create them again when it is synced before the
informer delivered them: the cache still shows too few pods. Like client-go's
``ControllerExpectations`` (``controller_utils.go``), a controller records how many
creations it expects and which pod uids it expects to see deleted; informer handlers lower
the counts as the changes arrive, and ``sync`` does nothing but status while
expectations are outstanding. A write that failed lowers the count at once (it will
never be observed). Expectations older than 5 minutes count as satisfied, so a lost
event cannot stall a controller forever.
"""

from __future__ import annotations

import attrs
import trio

__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations"]

#: client-go's ``ExpectationsTimeout``.
EXPECTATIONS_TIMEOUT = 300.0


@attrs.define
class _Expected:
    adds: int
    deletes: set[str]
    at: float


class Expectations:
    """Per-controller-key counts of expected creations and deletions."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self._timeout = timeout
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        """True when nothing is expected for ``key`` (or the expectation expired)."""
        expected = self._by_key.get(key)
        if expected is None:
            return True
        if expected.adds <= 0 and not expected.deletes:
            return True
        return trio.current_time() - expected.at > self._timeout

    def expect(self, key: str, *, adds: int = 0, deletes: tuple[str, ...] = ()) -> None:
        """Record that ``adds`` creations and the deletion of the pods with uids
        ``deletes`` are about to be written for ``key`` (replaces what was expected)."""
        self._by_key[key] = _Expected(adds, set(deletes), trio.current_time())

    def creation_observed(self, key: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.adds -= 1

    def deletion_observed(self, key: str, uid: str) -> None:
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deletes.discard(uid)

    def forget(self, key: str) -> None:
        """The owner is gone: drop what was expected for it."""
        self._by_key.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """``(creations, deletions)`` still expected for ``key``."""
        expected = self._by_key.get(key)
        return (0, 0) if expected is None else (max(expected.adds, 0), len(expected.deletes))
