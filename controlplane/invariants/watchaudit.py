"""The watch auditor: real watches compared against the change feed (etcd's watch
guarantees, checked from a client's side).

For each audited kind, one all-namespaces watch with bookmarks runs from the revision the
checker started at. The store observer appends each change of that kind to an expected
queue; every event the watch delivers must be exactly the next expected change (same
revision, same type): an earlier revision is a duplicate or out of order, a later one
means changes were skipped. A bookmark promises every change up to its revision was
delivered. When the watch ends (``close_watches``, a lagging reader), the auditor
re-watches from the last revision it saw -- the first event after that must again be
the true next change (*resumable*). When the history is gone (410) it re-lists, which
is allowed, and continues from the list's revision.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from actors import Lagged
from controlplane import errors
from controlplane.store.history import Change

if TYPE_CHECKING:
    from controlplane.invariants.checker import InvariantChecker

__all__ = ["WatchAuditor"]

#: Seconds before re-watching after a transient store error (injected faults).
RETRY_DELAY = 1.0


class WatchAuditor:
    """Audits real watches of ``kinds`` against the feed; invariant ``watch-resumable``."""

    names = ("watch-resumable",)

    def __init__(self, checker: InvariantChecker, kinds: tuple[str, ...]) -> None:
        self._checker = checker
        self._kinds = kinds
        self._expected: dict[str, deque[tuple[int, str]]] = {k: deque() for k in kinds}
        #: how many times a watch was re-opened (resumed or re-listed)
        self.rewatches = 0
        self.relists = 0
        self.events_checked = 0

    def start(self, nursery: trio.Nursery, revision: int) -> None:
        for kind in self._kinds:
            nursery.start_soon(self._audit, kind, revision)

    def on_change(self, change: Change) -> None:
        expected = self._expected.get(change.kind)
        if expected is not None:
            expected.append((change.revision, change.type))

    def _report(self, kind: str, message: str) -> None:
        self._checker.report("watch-resumable", message, kind=kind)

    async def _audit(self, kind: str, revision: int) -> None:
        store = self._checker.cluster.store
        expected = self._expected[kind]
        while True:
            try:
                async with store.watch(
                    kind, resource_version=str(revision), allow_bookmarks=True
                ) as events:
                    while True:
                        try:
                            batch = await events.receive_batch()
                        except trio.EndOfChannel:
                            break
                        for event in batch:
                            revision = self._check_event(kind, expected, event, revision)
            except Lagged:
                pass
            except errors.Gone:
                listed = await self._relist(kind)
                if listed is None:
                    continue
                revision = listed
                while expected and expected[0][0] <= revision:
                    expected.popleft()
                continue
            except (errors.TooManyRequests, errors.Timeout):
                await trio.sleep(RETRY_DELAY)
            self.rewatches += 1

    async def _relist(self, kind: str) -> int | None:
        self.relists += 1
        try:
            result = await self._checker.cluster.store.list(kind)
        except (errors.TooManyRequests, errors.Timeout):
            await trio.sleep(RETRY_DELAY)
            return None
        return int(result.resource_version)

    def _check_event(
        self, kind: str, expected: deque[tuple[int, str]], event: object, revision: int
    ) -> int:
        rv = int(event.object.metadata.resource_version)  # type: ignore[attr-defined]
        etype = event.type  # type: ignore[attr-defined]
        if etype == "BOOKMARK":
            if expected and expected[0][0] <= rv:
                self._report(
                    kind,
                    f"bookmark at {rv} before change {expected[0][0]} was delivered",
                )
                while expected and expected[0][0] <= rv:
                    expected.popleft()
            return max(revision, rv)
        self.events_checked += 1
        if rv <= revision:
            self._report(kind, f"{etype} at revision {rv} after {revision}: duplicate or reordered")
            return revision
        skipped: list[int] = []
        while expected and expected[0][0] < rv:
            skipped.append(expected.popleft()[0])
        if skipped:
            self._report(
                kind,
                f"watch skipped {len(skipped)} change(s) (first {skipped[0]}) before {rv}",
            )
        if not expected or expected[0][0] != rv:
            self._report(kind, f"{etype} at revision {rv} is not in the change feed")
            return rv
        want = expected.popleft()[1]
        if want != etype:
            self._report(kind, f"revision {rv} delivered as {etype}, written as {want}")
        return rv
