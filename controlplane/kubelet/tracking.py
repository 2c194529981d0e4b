"""Work accounting for a kubelet that can be paused.

The harness's ``settle()`` waits until no component has queued work. A paused kubelet
(chaos ``pause``: a hung node agent) has a backlog that will not move until someone
resumes it, so while paused its work is taken off the harness's count and put back on
resume -- ``settle()`` then means "everything that can make progress has".
"""

from __future__ import annotations

from controlplane.client.workqueue import WorkTrackerLike

__all__ = ["PausableTracker"]


class PausableTracker:
    """Forwards ``add``/``done`` to ``inner`` (if any) except while paused."""

    __slots__ = ("_inner", "_paused", "_pending")

    def __init__(self, inner: WorkTrackerLike | None) -> None:
        self._inner = inner
        self._pending = 0
        self._paused = False

    @property
    def pending(self) -> int:
        return self._pending

    def add(self, n: int = 1) -> None:
        self._pending += n
        if not self._paused and self._inner is not None:
            self._inner.add(n)

    def done(self, n: int = 1) -> None:
        self._pending -= n
        if not self._paused and self._inner is not None:
            self._inner.done(n)

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            if self._inner is not None and self._pending:
                self._inner.done(self._pending)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._inner is not None and self._pending:
                self._inner.add(self._pending)
