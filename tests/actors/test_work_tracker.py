"""WorkTracker: counting outstanding work and waiting for none."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import WorkTracker


async def test_wait_idle_returns_at_once_when_idle(autojump_clock: trio.testing.MockClock) -> None:
    tracker = WorkTracker()
    await tracker.wait_idle()
    assert trio.current_time() == 0.0
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await tracker.wait_idle()  # a checkpoint even when idle


async def test_wait_idle_blocks_until_done(autojump_clock: trio.testing.MockClock) -> None:
    tracker = WorkTracker()
    idle_at: list[float] = []

    async def waiter() -> None:
        await tracker.wait_idle()
        idle_at.append(trio.current_time())

    tracker.add(2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        tracker.done()
        assert tracker.pending == 1
        await trio.sleep(1)
        assert idle_at == []
        tracker.done()
    assert idle_at == [2.0]
    assert tracker.pending == 0


async def test_work_added_again_before_the_waiter_runs_keeps_it_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = WorkTracker()
    idle_at: list[float] = []

    async def waiter() -> None:
        await tracker.wait_idle()
        idle_at.append(trio.current_time())

    tracker.add()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        tracker.done()
        tracker.add()  # busy again before the waiter got to run
        await trio.sleep(3)
        assert idle_at == []
        tracker.done()
    assert idle_at == [3.0]


def test_underflow_raises_and_leaves_the_count() -> None:
    tracker = WorkTracker()
    tracker.add(2)
    with pytest.raises(ValueError, match=r"^work tracker: done\(3\) with only 2 pending$"):
        tracker.done(3)
    assert tracker.pending == 2
    with pytest.raises(ValueError, match=r"^work tracker: add\(-1\): n must be >= 0$"):
        tracker.add(-1)
    with pytest.raises(ValueError, match=r"^work tracker: done\(-1\): n must be >= 0$"):
        tracker.done(-1)
