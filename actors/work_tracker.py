"""A quiescence counter: how much queued work is outstanding, and waiting for none."""

from __future__ import annotations

import trio


class WorkTracker:
    """Counts outstanding units of work so someone can wait until there are none.

    Producers call :meth:`add` when they queue work and :meth:`done` when it is finished;
    :meth:`wait_idle` wakes through a :class:`trio.Event`, never by polling.
    """

    __slots__ = ("_idle", "_pending")

    def __init__(self) -> None:
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Units of work added and not yet done."""
        return self._pending

    def add(self, n: int = 1) -> None:
        """Record ``n`` new units of work.

        Raises:
          ValueError: if ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"work tracker: add({n}): n must be >= 0")
        if n and not self._pending:
            self._idle = trio.Event()
        self._pending += n

    def done(self, n: int = 1) -> None:
        """Record that ``n`` units of work have finished.

        Raises:
          ValueError: if ``n`` is negative or more than :attr:`pending`; the count is
            left unchanged.
        """
        if n < 0:
            raise ValueError(f"work tracker: done({n}): n must be >= 0")
        if n > self._pending:
            raise ValueError(f"work tracker: done({n}) with only {self._pending} pending")
        self._pending -= n
        if not self._pending:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until :attr:`pending` is 0.

        Always checkpoints, even if already idle. When it returns, nothing is pending.
        """
        await trio.lowlevel.checkpoint()
        while self._pending:
            await self._idle.wait()
