"""Supervisor: restarts with backoff, restart intensity, control by name, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel
from structlog.testing import capture_logs

from actors import (
    ActorError,
    ChildInfo,
    ChildState,
    ChildStoppedWhileStarting,
    DuplicateChild,
    NoSuchChild,
    RestartIntensityExceeded,
    Supervisor,
    open_supervisor,
)


class Boom(Exception):
    pass


class Script:
    """A child whose runs follow a script: each entry is how long that run lives before
    it raises Boom (None: run until cancelled). Records when each run started."""

    def __init__(self, *lifetimes: float | None) -> None:
        self.lifetimes = list(lifetimes)
        self.starts: list[float] = []
        self.cancelled_at: list[float] = []

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        task_status.started(len(self.starts))
        lifetime = self.lifetimes.pop(0) if self.lifetimes else None
        try:
            if lifetime is None:
                await trio.sleep_forever()
            await trio.sleep(lifetime)
        except trio.Cancelled:
            self.cancelled_at.append(trio.current_time())
            raise
        raise Boom(f"run {len(self.starts)}")


def crash_forever() -> Script:
    return Script(*[0.0] * 1000)


async def test_crashed_child_is_restarted(autojump_clock: trio.testing.MockClock) -> None:
    child = Script(0.0, 0.0)
    async with open_supervisor(backoff_initial=1.0, max_restarts=10) as sup:
        assert await sup.start_child("c", child.run) == 1
        await trio.sleep(100)
        assert child.starts == [0.0, 1.0, 3.0]
        assert sup.is_running("c")
        assert sup.children() == (
            ChildInfo(name="c", state=ChildState.RUNNING, restart="transient", restarts=2),
        )


async def test_backoff_doubles_up_to_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    child = crash_forever()
    async with open_supervisor(
        backoff_initial=1.0, backoff_factor=2.0, backoff_max=4.0, max_restarts=1000
    ) as sup:
        await sup.start_child("c", child.run)
        await trio.sleep(20)
        sup.kill_child("c")
    # Delays 1, 2, 4, then capped at 4.
    assert child.starts == [0.0, 1.0, 3.0, 7.0, 11.0, 15.0, 19.0]


async def test_backoff_resets_after_a_healthy_run(autojump_clock: trio.testing.MockClock) -> None:
    child = Script(0.0, 0.0, 10.0, 0.0)
    async with open_supervisor(
        backoff_initial=1.0, backoff_reset_after=10.0, max_restarts=1000
    ) as sup:
        await sup.start_child("c", child.run)
        await trio.sleep(30)
    # Delays 1, 2; then a 10 s run, so 1 again, then 2.
    assert child.starts == [0.0, 1.0, 3.0, 14.0, 16.0]


async def test_restart_intensity_exceeded(autojump_clock: trio.testing.MockClock) -> None:
    steady = Script(None)
    crasher = crash_forever()
    with capture_logs() as logs, pytest.raises(RestartIntensityExceeded) as info:
        async with open_supervisor(
            name="root", max_restarts=2, max_seconds=5.0, backoff_initial=1.0
        ) as sup:
            await sup.start_child("steady", steady.run)
            await sup.start_child("crasher", crasher.run)
            await trio.sleep_forever()
    # Crashes at 0, 1 and 3: the third within 5 s is one too many.
    assert trio.current_time() == 3.0
    assert crasher.starts == [0.0, 1.0, 3.0]
    assert steady.cancelled_at == [3.0]
    error = info.value
    assert str(error) == (
        "supervisor 'root': more than 2 restarts in 5s, last by child 'crasher'; giving up"
    )
    assert isinstance(error, ActorError)
    assert error.child == "crasher"
    assert isinstance(error.__cause__, Boom)
    assert str(error.__cause__) == "run 3"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "child_crashed",
        "child_crashed",
        "child_crashed",
        "restart_intensity_exceeded",
    ]


async def test_restart_intensity_window_slides(autojump_clock: trio.testing.MockClock) -> None:
    # A crash every 6 s never puts two restarts inside one 5 s window.
    child = Script(*[6.0] * 10)
    async with open_supervisor(
        max_restarts=1, max_seconds=5.0, backoff_initial=1.0, backoff_reset_after=5.0
    ) as sup:
        await sup.start_child("c", child.run)
        await trio.sleep(40)
        assert child.starts == [0.0, 7.0, 14.0, 21.0, 28.0, 35.0]


async def test_run_raises_intensity_error_to_its_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sup = Supervisor(name="root", max_restarts=0)
    with pytest.RaisesGroup(RestartIntensityExceeded):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child("c", crash_forever().run)
    with pytest.raises(RuntimeError, match=r"^supervisor 'root' already ran$"):
        await sup.run()


async def test_crash_is_logged_with_the_exception(autojump_clock: trio.testing.MockClock) -> None:
    with capture_logs() as logs:
        async with open_supervisor(name="root") as sup:
            await sup.start_child("c", Script(0.0).run)
            await trio.sleep(1)
    crashes = [e for e in logs if e["event"] == "child_crashed"]
    assert len(crashes) == 1
    crash = crashes[0]
    assert crash["child"] == "c"
    assert crash["supervisor"] == "root"
    assert crash["log_level"] == "error"
    assert crash["restart_in"] == 0.1
    assert isinstance(crash["exc_info"], Boom)


async def test_crash_in_a_childs_own_nursery_is_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()

        async def fail() -> None:
            await trio.sleep(1)
            raise Boom("inner")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fail)

    with capture_logs() as logs:
        async with open_supervisor(backoff_initial=1.0, max_restarts=10) as sup:
            await sup.start_child("c", child)
            await trio.sleep(3.5)
    assert starts == [0.0, 2.0]
    crash = next(e for e in logs if e["event"] == "child_crashed")
    assert isinstance(crash["exc_info"], ExceptionGroup)


async def test_normal_return_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    runs: list[float] = []

    async def once(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep(1)

    with capture_logs() as logs:
        async with open_supervisor() as sup:
            await sup.start_child("once", once)
            await trio.sleep(100)
            assert runs == [0.0]
            assert not sup.is_running("once")
            assert sup.children()[0].state is ChildState.EXITED
    assert [e["event"] for e in logs] == ["child_exited"]


async def test_permanent_child_is_restarted_after_returning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[float] = []

    async def once(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()

    async with open_supervisor(backoff_initial=1.0, max_restarts=100) as sup:
        await sup.start_child("p", once, restart="permanent")
        await trio.sleep(7.5)
    assert runs == [0.0, 1.0, 3.0, 7.0]


async def test_temporary_child_is_never_restarted_and_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Script(0.0)
    async with open_supervisor() as sup:
        await sup.start_child("t", child.run, restart="temporary")
        await trio.sleep(10)
        assert child.starts == [0.0]
        assert sup.child_names() == ()
        await sup.start_child("t", child.run, restart="temporary")  # the name is free again


async def test_stop_child_waits_for_cleanup_and_does_not_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[tuple[str, float]] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        events.append(("start", trio.current_time()))
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)
            events.append(("cleaned", trio.current_time()))

    with capture_logs() as logs:
        async with open_supervisor() as sup:
            await sup.start_child("c", child)
            await trio.sleep(5)
            await sup.stop_child("c")
            assert trio.current_time() == 6.0
            assert events == [("start", 0.0), ("cleaned", 6.0)]
            assert sup.children()[0].state is ChildState.STOPPED
            await trio.sleep(100)
            assert events == [("start", 0.0), ("cleaned", 6.0)]
            await sup.stop_child("c")  # already stopped: nothing happens
            assert await sup.restart_child("c") is None
            assert sup.is_running("c")
            assert events[-1] == ("start", 106.0)
    assert not [e for e in logs if e["event"] == "child_crashed"]


async def test_kill_child_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    child = Script(None, None)
    async with open_supervisor() as sup:
        await sup.start_child("c", child.run)
        sup.kill_child("c")
        assert not sup.is_running("c")
        assert sup.children()[0].state is ChildState.STOPPING
        await trio.sleep(100)
        assert child.cancelled_at == [0.0]
        assert child.starts == [0.0]
        assert sup.children()[0].state is ChildState.STOPPED
        assert await sup.restart_child("c") == 2
        assert sup.is_running("c")


async def test_kill_child_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    child = Script(0.0)
    async with open_supervisor(backoff_initial=10.0) as sup:
        await sup.start_child("c", child.run)
        await trio.sleep(1)
        assert sup.children()[0].state is ChildState.RESTARTING
        sup.kill_child("c")
        await trio.sleep(100)
        assert child.starts == [0.0]
        assert sup.children()[0].state is ChildState.STOPPED


async def test_error_while_stopping_is_logged_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            raise Boom("cleanup failed")

    with capture_logs() as logs:
        async with open_supervisor() as sup:
            await sup.start_child("c", child)
            await sup.stop_child("c")
            await trio.sleep(100)
            assert starts == [0.0]
            assert sup.children()[0].state is ChildState.STOPPED
    [crash] = [e for e in logs if e["event"] == "child_crashed"]
    assert crash["restart_in"] is None
    assert str(crash["exc_info"]) == "cleanup failed"


async def test_restart_child_restarts_a_running_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Script(None, None)
    async with open_supervisor() as sup:
        await sup.start_child("c", child.run)
        await trio.sleep(2)
        assert await sup.restart_child("c") == 2
        assert child.cancelled_at == [2.0]
        assert child.starts == [0.0, 2.0]


async def test_restart_child_soon_restarts_a_killed_child_without_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Script(None, None)
    async with open_supervisor() as sup:
        await sup.start_child("c", child.run)
        sup.kill_child("c")
        await trio.sleep(1)
        assert not sup.is_running("c")
        sup.restart_child_soon("c")  # not async: returns before the restart
        assert child.starts == [0.0]
        await trio.lowlevel.checkpoint()
        await trio.testing.wait_all_tasks_blocked()
        assert child.starts == [0.0, 1.0]
        assert sup.is_running("c")


async def test_restart_child_soon_logs_a_failed_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[int] = []

    async def fails_second_time(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        runs.append(1)
        if len(runs) == 2:
            raise Boom("cannot start")
        task_status.started()
        await trio.sleep_forever()

    with capture_logs() as logs:
        async with open_supervisor() as sup:
            await sup.start_child("c", fails_second_time)
            sup.restart_child_soon("c")
            await trio.sleep(1)
            assert not sup.is_running("c")
    failed = [e for e in logs if e["event"] == "child_restart_failed"]
    assert len(failed) == 1 and failed[0]["child"] == "c"


async def test_two_racing_restarts_leave_one_child_running_and_log_no_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """heal-all and a fault's own end can both restart one stopped child before it comes
    up: the first start is overtaken (a typed error, not trio's RuntimeError), the second
    one runs the child."""
    starts: list[float] = []

    async def slow_start(*, task_status: trio.TaskStatus[float] = trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        await trio.sleep(5)  # re-listing before it is ready
        task_status.started(trio.current_time())
        await trio.sleep_forever()

    with capture_logs() as logs:
        async with open_supervisor() as sup:
            await sup.start_child("c", slow_start)
            sup.kill_child("c")
            sup.restart_child_soon("c")
            sup.restart_child_soon("c")
            await trio.sleep(20)
            assert sup.is_running("c")
            assert len(starts) == 3
            overtaken: list[BaseException] = []

            async def first_restart() -> None:
                try:
                    await sup.restart_child("c")
                except ChildStoppedWhileStarting as exc:
                    overtaken.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_restart)
                await trio.sleep(1)
                assert await sup.restart_child("c") == 31.0  # the later restart wins
            assert [str(e) for e in overtaken] == [
                "supervisor 'supervisor': child 'c' was stopped while starting"
            ]
            assert sup.is_running("c") and len(starts) == 5
    assert not [e for e in logs if e["event"] == "child_restart_failed"]
    assert [e["child"] for e in logs if e["event"] == "child_restart_superseded"] == ["c"]


async def test_remove_child_frees_the_name(autojump_clock: trio.testing.MockClock) -> None:
    first, second = Script(None), Script(None)
    async with open_supervisor() as sup:
        await sup.start_child("c", first.run)
        await sup.remove_child("c")
        assert first.cancelled_at == [0.0]
        assert sup.child_names() == ()
        await sup.start_child("c", second.run)
        assert sup.is_running("c")
        await sup.remove_child("nope")  # unknown: nothing to do


async def test_unknown_and_duplicate_names(autojump_clock: trio.testing.MockClock) -> None:
    async with open_supervisor(name="root") as sup:
        unknown = r"^supervisor 'root': no such child 'nope'$"
        with pytest.raises(NoSuchChild, match=unknown):
            await sup.stop_child("nope")
        with pytest.raises(NoSuchChild, match=unknown):
            sup.kill_child("nope")
        with pytest.raises(NoSuchChild, match=unknown):
            await sup.restart_child("nope")
        with pytest.raises(KeyError):
            sup.is_running("nope")
        await sup.start_child("c", Script(None).run)
        with pytest.raises(DuplicateChild, match=r"^supervisor 'root': child 'c' already exists$"):
            await sup.start_child("c", Script(None).run)
        assert sup.child_names() == ("c",)


async def test_failure_before_started_raises_from_start_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(1)
        raise Boom("no config")

    async with open_supervisor() as sup:
        with pytest.raises(Boom, match=r"^no config$"):
            await sup.start_child("b", broken)
        assert sup.child_names() == ()
        await sup.start_child("b", Script(None).run)


async def test_cancelling_the_supervisor_is_not_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plain = Script(None)
    cancelled: list[float] = []

    async def with_nursery(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # Cancellation reaches it as a group of Cancelled from its own nursery.
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(trio.sleep_forever)
                task_status.started()
        finally:
            cancelled.append(trio.current_time())

    with capture_logs() as logs, trio.move_on_after(5) as scope:
        async with open_supervisor(max_restarts=0) as sup:
            await sup.start_child("plain", plain.run)
            await sup.start_child("nested", with_nursery)
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert plain.cancelled_at == [5.0]
    assert cancelled == [5.0]
    assert logs == []


async def test_cancel_stops_every_child_and_run_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = Script(None), Script(None)
    sup = Supervisor(max_restarts=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.start_child("a", a.run)
        await sup.start_child("b", b.run)
        await trio.sleep(2)
        sup.cancel()
    assert a.cancelled_at == b.cancelled_at == [2.0]
    assert [c.state for c in sup.children()] == [ChildState.STOPPED, ChildState.STOPPED]
    sup.cancel()  # not running any more: nothing happens


async def test_body_error_comes_out_as_itself(autojump_clock: trio.testing.MockClock) -> None:
    child = Script(None)
    with pytest.raises(Boom, match=r"^body$"):
        async with open_supervisor() as sup:
            await sup.start_child("c", child.run)
            await trio.sleep(1)
            raise Boom("body")
    assert child.cancelled_at == [1.0]


async def test_start_child_needs_a_running_supervisor() -> None:
    sup = Supervisor(name="root")
    with pytest.raises(RuntimeError, match=r"^supervisor 'root' is not running$"):
        await sup.start_child("c", Script(None).run)
