import pytest
import trio
import trio.testing

from actors.timers import TimerService


async def test_timers_fire_in_deadline_order_at_their_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[tuple[str, float]] = []
    timers = TimerService()

    def note(label: str) -> None:
        fired.append((label, trio.current_time()))

    timers.call_later(3, note, "c")  # set before the service runs
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timers.call_later(1, note, "a")
        timers.call_later(2, note, "b")
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert fired == [("a", pytest.approx(1)), ("b", pytest.approx(2)), ("c", pytest.approx(3))]


async def test_an_earlier_timer_wakes_a_sleeping_service(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[float] = []
    timers = TimerService()
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timers.call_later(100, fired.append, "late")
        await trio.sleep(1)  # the service is now asleep until t=100
        timers.call_later(1, lambda: fired.append(trio.current_time()))
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert fired == [pytest.approx(2), "late"]


async def test_deadlines_are_quantised_up_and_ties_keep_insertion_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fired: list[tuple[str, float]] = []
    timers = TimerService(resolution=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        start = trio.current_time()
        for label, delay in [("x", 0.4), ("y", 0.1), ("z", 0.5)]:
            timers.call_at(start + delay, lambda lb: fired.append((lb, trio.current_time())), label)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    # all three round up to start+0.5 and fire together, in the order they were set
    assert [label for label, _ in fired] == ["x", "y", "z"]
    assert [at for _, at in fired] == [pytest.approx(start + 0.5)] * 3


async def test_cancelled_timer_does_not_fire(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[str] = []
    timers = TimerService()
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timer = timers.call_later(1, fired.append, "no")
        timers.call_later(2, fired.append, "yes")
        timer.cancel()
        await trio.sleep(3)
        timer.cancel()  # idempotent
        nursery.cancel_scope.cancel()
    assert fired == ["yes"]


async def test_a_callback_may_set_timers(autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    timers = TimerService()

    def tick(n: int) -> None:
        fired.append(trio.current_time())
        if n:
            timers.call_later(10, tick, n - 1)

    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timers.call_later(10, tick, 2)
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    assert fired == [pytest.approx(10), pytest.approx(20), pytest.approx(30)]


def test_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError, match="resolution must be > 0"):
        TimerService(resolution=0)
