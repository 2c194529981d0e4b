"""Erlang-style one_for_one supervision of named trio tasks.

A :class:`Supervisor` owns a nursery (inside :meth:`Supervisor.run`) and runs each child in
its own task. A child that raises is logged and restarted after an exponential backoff;
if children crash more than ``max_restarts`` times within ``max_seconds``, the supervisor
gives up loudly with :class:`RestartIntensityExceeded`. Children can be stopped, killed
and restarted by name, which is what chaos code uses.

To nest supervisors, make the child a function that opens its own supervisor and starts
its children, so that a restart builds a fresh one::

    async def workers(*, task_status=trio.TASK_STATUS_IGNORED):
        async with open_supervisor(name="workers") as sup:
            await sup.start_child("a", run_a)
            task_status.started(sup)
            await trio.sleep_forever()

    await root.start_child("workers", workers, restart="permanent")
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import structlog
import trio

from actors.backoff import Backoff
from actors.errors import (
    ChildStoppedWhileStarting,
    DuplicateChild,
    NoSuchChild,
    RestartIntensityExceeded,
)

log = structlog.get_logger(__name__)

#: A child: ``async def run(*, task_status=trio.TASK_STATUS_IGNORED)`` that calls
#: ``task_status.started(value)`` once it is ready. Bind arguments with functools.partial.
ChildFn = Callable[..., Awaitable[object]]

#: When a child that ended is started again (Erlang's restart types):
#: ``"permanent"`` always; ``"transient"`` only if it raised; ``"temporary"`` never (and it
#: is forgotten once it ends, so its name can be reused).
Restart = Literal["permanent", "transient", "temporary"]


class ChildState(enum.Enum):
    """Where a supervised child is in its life."""

    RUNNING = "running"  # its function is executing (started or still starting)
    RESTARTING = "restarting"  # it ended and waits out its backoff before running again
    STOPPING = "stopping"  # stop_child/kill_child cancelled it; its cleanup is running
    STOPPED = "stopped"  # stopped, killed or cancelled; restart_child brings it back
    EXITED = "exited"  # ended and its restart type says not to run it again


@attrs.frozen
class ChildInfo:
    """A snapshot of one child, as returned by :meth:`Supervisor.children`."""

    name: str
    state: ChildState
    restart: Restart
    restarts: int  # automatic restarts since it was last started by a caller


@attrs.define(eq=False)
class _Child:
    name: str
    fn: ChildFn
    restart: Restart
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    exited: trio.Event = attrs.Factory(trio.Event)


class _ChildStatus:
    """The ``task_status`` handed to one run of a child; forwards the first run's
    ``started()`` to whoever is waiting in ``start_child``/``restart_child``."""

    __slots__ = ("_forward", "called")

    def __init__(self, forward: trio.TaskStatus[Any] | None) -> None:
        self._forward = forward
        self.called = False

    def started(self, value: object = None) -> None:
        if self.called:
            raise RuntimeError("called 'started' twice on the same task status")
        self.called = True
        if self._forward is not None:
            self._forward.started(value)


def _cancel_requested() -> bool:
    # True iff the current task sits in a cancelled scope: it was stopped or killed, or
    # the supervisor itself is being cancelled.
    return trio.current_effective_deadline() == -math.inf


class Supervisor:
    """Runs named children, restarting each one that crashes (one_for_one).

    Args:
      name: for logs and error messages.
      max_restarts: how many restarts (of all children together) are tolerated within
        any window of ``max_seconds``; one more and the supervisor fails with
        :class:`RestartIntensityExceeded`.
      max_seconds: the sliding window for ``max_restarts``.
      backoff_initial, backoff_factor, backoff_max: a child's first restart waits
        ``backoff_initial`` seconds, each further one ``backoff_factor`` times longer,
        at most ``backoff_max``.
      backoff_reset_after: a child that ran this long before ending starts again at
        ``backoff_initial``.

    What counts as a crash: the child raising an :class:`Exception` (an ExceptionGroup
    from the child's own nursery included) after it called ``task_status.started()``.
    ``trio.Cancelled`` — alone or inside a group — never does; neither do other
    BaseExceptions such as KeyboardInterrupt, which propagate. The restart intensity
    counts the restarts of all children together, as in Erlang. An exception a child
    raises while it is being cancelled (stopped, killed, or the supervisor cancelled) is
    logged as ``child_crashed`` and the child is not restarted.

    Use it with ``await nursery.start(supervisor.run)``, or through
    :func:`open_supervisor`. A supervisor runs once. The control methods must be called
    from outside the child they act on.
    """

    def __init__(
        self,
        *,
        name: str = "supervisor",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_factor: float = 2.0,
        backoff_max: float = 10.0,
        backoff_reset_after: float = 10.0,
    ) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts: must be >= 0, got {max_restarts!r}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds: must be > 0, got {max_seconds!r}")
        self.name = name
        self._max_restarts = max_restarts
        self._max_seconds = max_seconds
        self._backoff = Backoff(
            initial=backoff_initial,
            factor=backoff_factor,
            maximum=backoff_max,
            reset_after=backoff_reset_after,
        )
        self._log = log.bind(supervisor=name)
        self._children: dict[str, _Child] = {}
        # Restart times inside the intensity window; holds at most max_restarts + 1.
        self._restart_times: deque[float] = deque()
        self._nursery: trio.Nursery | None = None
        self._ran = False
        self._failure: RestartIntensityExceeded | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise children until :meth:`cancel` or cancellation from outside; call
        ``task_status.started()`` once children can be started.

        Either way every child is cancelled (never counted as a crash) and has finished
        before it returns; :meth:`cancel` makes it return, outside cancellation raises
        ``trio.Cancelled`` as usual.

        Raises:
          RestartIntensityExceeded: after too many restarts; all children have been
            cancelled (and have finished) by the time it is raised.
          RuntimeError: if this supervisor already ran.
        """
        if self._ran:
            raise RuntimeError(f"supervisor {self.name!r} already ran")
        self._ran = True
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
        if self._failure is not None:
            raise self._failure

    def cancel(self) -> None:
        """Cancel every child and make :meth:`run` return. Does not wait; does nothing if
        the supervisor is not running."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def start_child(self, name: str, fn: ChildFn, *, restart: Restart = "transient") -> Any:
        """Start ``fn`` as the child ``name``; return once it called
        ``task_status.started(value)``, with that value.

        Raises:
          DuplicateChild: if ``name`` is already taken (even by a stopped child).
          RuntimeError: if the supervisor is not running.
          Exception: whatever ``fn`` raised before calling ``task_status.started()``;
            the child is then not kept.
        """
        nursery = self._running_nursery()
        if name in self._children:
            raise DuplicateChild(name, self.name)
        child = _Child(name=name, fn=fn, restart=restart)
        self._children[name] = child
        try:
            return await self._launch(nursery, child)
        except BaseException:
            if self._children.get(name) is child:
                del self._children[name]
            raise

    async def stop_child(self, name: str) -> None:
        """Cancel the child ``name`` and wait until it has finished its cleanup.

        It stays stopped (not restarted) until :meth:`restart_child`. Stopping a child
        that is not running does nothing.

        Raises:
          NoSuchChild: if there is no child ``name``.
        """
        child = self._lookup(name)
        self.kill_child(name)
        if child.exited.is_set():
            await trio.lowlevel.checkpoint()
        else:
            await child.exited.wait()

    def kill_child(self, name: str) -> None:
        """Cancel the child ``name`` now, without waiting for it to finish.

        It stays stopped (not restarted) until :meth:`restart_child`. trio cannot skip
        ``finally`` blocks, so the child's cleanup still runs after this returns — every
        unshielded ``await`` in it is cancelled at once, shielded cleanup runs to the
        end. Only the waiting differs from :meth:`stop_child`. Killing a child that is
        not running does nothing.

        Raises:
          NoSuchChild: if there is no child ``name``.
        """
        child = self._lookup(name)
        if not child.exited.is_set():
            child.state = ChildState.STOPPING
            child.scope.cancel()

    async def restart_child(self, name: str) -> Any:
        """Stop the child ``name`` if it runs, start it again, and return the value it
        passed to ``task_status.started()``.

        Works on a stopped or exited child too. Its backoff and restart count start over.

        Raises:
          NoSuchChild: if there is no child ``name``.
          RuntimeError: if the supervisor is not running.
          ChildStoppedWhileStarting: if the child was stopped (say by a second restart)
            before it called ``task_status.started()``.
          Exception: whatever the child raised before calling ``task_status.started()``.
        """
        child = self._lookup(name)
        nursery = self._running_nursery()
        await self.stop_child(name)
        while not child.exited.is_set():
            # Another restart launched it while this one waited: stop that start too, so
            # that exactly one task runs the child (the last restart asked wins).
            await self.stop_child(name)
        # A temporary child forgets itself when it ends; it comes back under its name.
        if self._children.setdefault(name, child) is not child:
            raise DuplicateChild(name, self.name)
        return await self._launch(nursery, child)

    def restart_child_soon(self, name: str) -> None:
        """:meth:`restart_child` without waiting for it: for callers that are not async
        (a chaos script's ``restart_node``). The restart runs in the supervisor's own
        nursery; if the child fails to start, that is logged and it stays stopped. A
        restart overtaken by a later one (both asked before the first came up) is logged
        at debug level: the later one is the one that counts.

        Raises:
          NoSuchChild: if there is no child ``name``.
          RuntimeError: if the supervisor is not running.
        """
        self._lookup(name)
        self._running_nursery().start_soon(self._restart_logged, name)

    async def _restart_logged(self, name: str) -> None:
        try:
            await self.restart_child(name)
        except ChildStoppedWhileStarting:
            self._log.debug("child_restart_superseded", child=name)
        except Exception as exc:
            self._log.error("child_restart_failed", child=name, exc_info=exc)

    async def remove_child(self, name: str) -> None:
        """Stop the child ``name`` (waiting for its cleanup) and forget it, so the name
        can be used again. Removing an unknown name does nothing."""
        if name not in self._children:
            await trio.lowlevel.checkpoint()
            return
        await self.stop_child(name)
        self._children.pop(name, None)

    def children(self) -> tuple[ChildInfo, ...]:
        """A snapshot of every child, in the order they were first started."""
        return tuple(
            ChildInfo(name=c.name, state=c.state, restart=c.restart, restarts=c.restarts)
            for c in self._children.values()
        )

    def child_names(self) -> tuple[str, ...]:
        """The names of every child, in the order they were first started."""
        return tuple(self._children)

    def is_running(self, name: str) -> bool:
        """Whether the child ``name``'s function is executing right now (not waiting out
        a backoff, stopping, stopped or exited).

        Raises:
          NoSuchChild: if there is no child ``name``.
        """
        return self._lookup(name).state is ChildState.RUNNING

    def _lookup(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            raise NoSuchChild(name, self.name) from None

    def _running_nursery(self) -> trio.Nursery:
        if self._nursery is None or self._nursery.cancel_scope.cancel_called:
            raise RuntimeError(f"supervisor {self.name!r} is not running")
        return self._nursery

    async def _launch(self, nursery: trio.Nursery, child: _Child) -> Any:
        scope = child.scope = trio.CancelScope()
        child.exited = trio.Event()
        child.state = ChildState.RUNNING
        child.restarts = 0
        try:
            return await nursery.start(self._supervise, child)
        except RuntimeError:
            # trio's "child exited without calling task_status.started()": because the
            # child's scope was cancelled under it (a stop or another restart), or because
            # the child itself returned early -- a bug worth trio's own message.
            if scope.cancel_called:
                raise ChildStoppedWhileStarting(child.name, self.name) from None
            raise

    async def _supervise(self, child: _Child, *, task_status: trio.TaskStatus[Any]) -> None:
        # One task per child, alive until the child is stopped or not restarted. Crashes
        # are caught in here, in the child's own task, so they never reach the nursery.
        try:
            with child.scope:
                await self._run_restarting(child, task_status)
        finally:
            if child.state is not ChildState.EXITED:
                child.state = ChildState.STOPPED
            child.exited.set()
            if child.restart == "temporary" and self._children.get(child.name) is child:
                del self._children[child.name]

    async def _run_restarting(self, child: _Child, task_status: trio.TaskStatus[Any]) -> None:
        forward: trio.TaskStatus[Any] | None = task_status
        delay: float | None = None
        while True:
            status = _ChildStatus(forward)
            child.state = ChildState.RUNNING
            began = trio.current_time()
            crash: Exception | None = None
            try:
                await child.fn(task_status=status)
            except Exception as exc:
                # Cancelled is a BaseException, and so is any group holding one: neither
                # is caught here, so cancellation is never mistaken for a crash.
                if forward is not None and not status.called:
                    raise  # failed while starting: start_child raises it
                crash = exc
            if forward is not None and not status.called:
                return  # returned without started(): trio reports that to start_child
            forward = None

            if _cancel_requested():
                # Stopped, killed, or the supervisor is going away: never restart.
                self._log_end(child, crash, restart_in=None)
                return
            wanted = crash is not None or child.restart == "permanent"
            if child.restart == "temporary" or not wanted:
                self._log_end(child, crash, restart_in=None)
                child.state = ChildState.EXITED
                return
            if self._too_many_restarts():
                self._log_end(child, crash, restart_in=None)
                self._give_up(child, crash)
                return
            delay = self._backoff.next_delay(delay, trio.current_time() - began)
            self._log_end(child, crash, restart_in=delay)
            child.state = ChildState.RESTARTING
            await trio.sleep(delay)
            child.restarts += 1

    def _log_end(self, child: _Child, crash: Exception | None, restart_in: float | None) -> None:
        if crash is not None:
            self._log.error(
                "child_crashed", child=child.name, restart_in=restart_in, exc_info=crash
            )
        else:
            self._log.info("child_exited", child=child.name, restart_in=restart_in)

    def _too_many_restarts(self) -> bool:
        now = trio.current_time()
        times = self._restart_times
        times.append(now)
        while times[0] <= now - self._max_seconds:
            times.popleft()
        return len(times) > self._max_restarts

    def _give_up(self, child: _Child, crash: Exception | None) -> None:
        if self._failure is None:
            failure = RestartIntensityExceeded(
                child.name, self.name, self._max_restarts, self._max_seconds
            )
            failure.__cause__ = crash
            self._failure = failure
            self._log.error(
                "restart_intensity_exceeded",
                child=child.name,
                max_restarts=self._max_restarts,
                max_seconds=self._max_seconds,
            )
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_supervisor(
    *,
    name: str = "supervisor",
    max_restarts: int = 3,
    max_seconds: float = 5.0,
    backoff_initial: float = 0.1,
    backoff_factor: float = 2.0,
    backoff_max: float = 10.0,
    backoff_reset_after: float = 10.0,
) -> AsyncIterator[Supervisor]:
    """Run a :class:`Supervisor` for the duration of an ``async with`` block.

    The arguments are :class:`Supervisor`'s. Leaving the block (or
    :meth:`Supervisor.cancel`) cancels every child and waits for them to finish: unlike a
    nursery, it does not wait for children to return on their own. If the supervisor
    gives up, the block is cancelled.

    Raises:
      RestartIntensityExceeded: if the supervisor gave up.
      Exception: whatever the block raised, as itself. Only when more than one error
        happened (the block failed and the supervisor gave up) do they come out
        together in an ExceptionGroup.
    """
    supervisor = Supervisor(
        name=name,
        max_restarts=max_restarts,
        max_seconds=max_seconds,
        backoff_initial=backoff_initial,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_reset_after=backoff_reset_after,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield supervisor
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery is an implementation detail: hide it when only one error happened.
        if len(group.exceptions) != 1 or isinstance(group.exceptions[0], BaseExceptionGroup):
            raise
        error = group.exceptions[0]
    else:
        return
    raise error
