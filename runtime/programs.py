"""What a container does: declarative programs driven by timers, and user async programs.

A *declarative* :class:`Program` is a frozen description — a :class:`Timeline` of log
lines and an optional exit, plus health (ready/started/live), resource use and how it
reacts to SIGTERM. The engine never gives it a task: it computes probes, usage and logs
from ``now - started_at`` when asked, and sets at most one shared-timer callback (the
earliest of exit, OOM kill and grace-period kill). That is what lets 150,000 containers
run in one process. One Program instance is shared by every container that runs it.

A *user program* is ``async def program(ctx: ProgramContext) -> int | None``; it gets a
task in the engine's nursery and talks to the world through its context.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import trio

from runtime.network import NameNotFound

if TYPE_CHECKING:
    from runtime.network import Handler, Listener, Network

__all__ = [
    "DATE_MARK",
    "DEFAULT_PROGRAM",
    "EPOCH",
    "MAX_LOG_LINES",
    "Curve",
    "MiB",
    "Program",
    "ProgramContext",
    "ProgramExit",
    "ProgramFn",
    "Timeline",
]

MiB = 1024 * 1024

DATE_MARK = "\x00date\x00"
"""Stands in a timeline's log line for the output of ``date``; rendered when read."""

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""trio time 0 as a wall-clock instant (what ``date`` prints); fixed, so reproducible."""

MAX_LOG_LINES = 1000
"""Logs keep the most recent lines only (like a rotated container log), so a chatty
``while true`` loop cannot grow memory without bound."""


def _sorted_points(points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    out = tuple((float(t), float(v)) for t, v in points)
    if not out:
        raise ValueError("a curve needs at least one point")
    if any(b[0] < a[0] for a, b in itertools.pairwise(out)):
        raise ValueError(f"curve points must be in time order, got {out!r}")
    return out


@attrs.frozen
class Curve:
    """A step function of time since start: ``points`` are ``(seconds, value)``; the value
    holds from its time until the next point (0 before the first point).

    Steps rather than interpolation so that "when does memory first exceed the limit"
    is one of the checkpoints — one timer, computed up front.
    """

    points: tuple[tuple[float, float], ...] = attrs.field(converter=_sorted_points)

    def at(self, elapsed: float) -> float:
        """The value ``elapsed`` seconds after start."""
        i = bisect.bisect_right(self.points, (elapsed, math.inf))
        return self.points[i - 1][1] if i else 0.0

    def first_above(self, limit: float) -> float | None:
        """The first time the value exceeds ``limit``, or None if it never does."""
        for t, v in self.points:
            if v > limit:
                return t
        return None


def _value_at(value: float | Curve, elapsed: float) -> float:
    return value.at(elapsed) if isinstance(value, Curve) else float(value)


def _first_above(value: float | Curve, limit: float) -> float | None:
    if isinstance(value, Curve):
        return value.first_above(limit)
    return 0.0 if value > limit else None


@attrs.frozen(kw_only=True)
class Timeline:
    """Log lines at offsets from start, then either an exit, a repeating loop, or nothing
    more (runs forever).

    Attributes:
      lines: ``(offset, line)`` in offset order.
      exit_at: when the program exits (offset), or None.
      exit_code / message: the exit's code and explanation (``sh: foo: not found``);
        a non-empty message is also the last log line.
      loop_lines / loop_start / loop_period: from ``loop_start`` on, ``loop_lines``
        (offsets within one iteration) repeat every ``loop_period`` seconds, forever.
    """

    lines: tuple[tuple[float, str], ...] = ()
    exit_at: float | None = None
    exit_code: int = 0
    message: str = ""
    loop_lines: tuple[tuple[float, str], ...] = ()
    loop_start: float = 0.0
    loop_period: float = 0.0

    def lines_until(
        self, elapsed: float, *, started_at: float = 0.0, limit: int = MAX_LOG_LINES
    ) -> list[str]:
        """The (at most ``limit`` most recent) lines printed in the first ``elapsed``
        seconds of a run that started at trio time ``started_at``."""
        out = [(t, line) for t, line in self.lines if t <= elapsed]
        if self.loop_lines and self.loop_period > 0 and elapsed >= self.loop_start:
            per = len(self.loop_lines)
            done = int((elapsed - self.loop_start) // self.loop_period)  # whole iterations
            first = max(0, done + 1 - (limit // per + 1))
            for i in range(first, done + 1):
                base = self.loop_start + i * self.loop_period
                out.extend((base + t, line) for t, line in self.loop_lines if base + t <= elapsed)
        return [_render(line, started_at + t) for t, line in out[-limit:]]


def _render(line: str, at: float) -> str:
    if DATE_MARK not in line:
        return line
    stamp = (EPOCH + timedelta(seconds=int(at))).strftime("%a %b %d %H:%M:%S UTC %Y")
    return line.replace(DATE_MARK, stamp)


FOREVER = Timeline()


@attrs.frozen(kw_only=True)
class Program:
    """A declarative container behaviour (see the module docstring).

    Attributes:
      timeline: logs and the exit; the default runs forever, silently.
      serve: listen on every container port (on the sandbox IP) and answer requests
        with ``response`` (default: ``b"<sandbox name>/<container name>"``).
      ready_after / started_after: the ready / started checks pass from that many
        seconds after start.
      live_for: the liveness check fails from that many seconds after start (None:
        always live).
      cpu / memory: use in cores / bytes, constant or a :class:`Curve`. Memory above
        the container's limit gets it OOMKilled (exit 137) at that checkpoint.
      term_exit_code: on SIGTERM it exits with this code after ``term_delay`` seconds;
        None: it ignores SIGTERM (a shell as PID 1 does) and is killed when the grace
        period ends (exit 137).
    """

    timeline: Timeline = FOREVER
    serve: bool = True
    response: bytes | None = None
    ready_after: float = 0.0
    started_after: float = 0.0
    live_for: float | None = None
    cpu: float | Curve = 0.001
    memory: float | Curve = 4 * MiB
    term_exit_code: int | None = 143
    term_delay: float = 0.0

    def usage_at(self, elapsed: float) -> tuple[float, int]:
        """(cpu cores, memory bytes) ``elapsed`` seconds after start."""
        return _value_at(self.cpu, elapsed), int(_value_at(self.memory, elapsed))

    def oom_at(self, memory_limit: int | None) -> float | None:
        """When (offset) memory first exceeds ``memory_limit``, or None."""
        if memory_limit is None:
            return None
        return _first_above(self.memory, memory_limit)

    def check(self, probe: str, elapsed: float) -> tuple[bool, str]:
        """Answer a ``live``/``ready``/``started`` check ``elapsed`` s after start."""
        if probe == "ready":
            ok = elapsed >= self.ready_after
            return ok, "" if ok else f"not ready until {self.ready_after:g}s after start"
        if probe == "started":
            ok = elapsed >= self.started_after
            return ok, "" if ok else f"not started until {self.started_after:g}s after start"
        if probe == "live":
            ok = self.live_for is None or elapsed < self.live_for
            return ok, "" if ok else f"liveness failing since {self.live_for:g}s after start"
        raise ValueError(f"probe: must be 'live', 'ready' or 'started', got {probe!r}")


DEFAULT_PROGRAM = Program()
"""What an image without a configured program runs: serves its ports forever, ready at
once, exits 143 promptly on SIGTERM."""


class ProgramExit(Exception):
    """Raised by :meth:`ProgramContext.exit` to end a user program with a code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ProgramContext:
    """What a user program sees of its container (a small, process-like view).

    Attributes:
      name / sandbox: the container's and its sandbox's names.
      env, ports, ip, host: its environment, declared ports, sandbox IP, machine.
      dns_search: the sandbox's search domains, used by :meth:`request` for names.
      terminating: set when the engine asks it to stop (SIGTERM); it is cancelled when
        the grace period ends unless it returned first.
    """

    __slots__ = (
        "_cpu",
        "_lines",
        "_listeners",
        "_live",
        "_memory",
        "_network",
        "_on_usage",
        "_ready",
        "_started",
        "dns_search",
        "env",
        "host",
        "ip",
        "name",
        "ports",
        "sandbox",
        "terminating",
    )

    def __init__(
        self,
        *,
        name: str,
        sandbox: str,
        env: Mapping[str, str],
        ports: tuple[int, ...],
        ip: str,
        host: str,
        network: Network,
        on_usage: Callable[[ProgramContext], None],
        dns_search: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.dns_search = dns_search
        self.sandbox = sandbox
        self.env = env
        self.ports = ports
        self.ip = ip
        self.host = host
        self.terminating = trio.Event()
        self._network = network
        self._on_usage = on_usage
        self._lines: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self._ready = True
        self._live = True
        self._started = True
        self._cpu = 0.0
        self._memory = 0
        self._listeners: list[Listener] = []

    def log(self, line: str) -> None:
        """Append a line to the container's log."""
        self._lines.append(line)

    def set_ready(self, ready: bool) -> None:
        """What the ``ready`` check answers from now on (initially True)."""
        self._ready = ready

    def set_live(self, live: bool) -> None:
        """What the ``live`` check answers from now on (initially True)."""
        self._live = live

    def set_started(self, started: bool) -> None:
        """What the ``started`` check answers from now on (initially True)."""
        self._started = started

    def set_usage(self, *, cpu: float | None = None, memory: int | None = None) -> None:
        """Report resource use (cores, bytes). Memory above the container's limit gets
        it OOMKilled at once (this task is then cancelled)."""
        if cpu is not None:
            self._cpu = cpu
        if memory is not None:
            self._memory = memory
        self._on_usage(self)

    def listen(self, port: int, handler: Handler) -> Listener:
        """Serve ``port`` on this container's IP; ``handler(payload, src_ip)`` returns
        (or awaits to) the response bytes. Closed when the container exits."""
        listener = self._network.listen(self.ip, port, handler)
        self._listeners.append(listener)
        return listener

    def lookup(self, name: str) -> list[str]:
        """The addresses ``name`` resolves to from this sandbox (its search list; see
        :meth:`runtime.network.Network.lookup`). Raises NameNotFound."""
        return self._network.lookup(name, search=self.dns_search)

    async def request(
        self,
        host: str,
        port: int,
        payload: bytes,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> bytes:
        """Send ``payload`` from this container to ``host:port`` and return the answer.

        ``host`` is an IP or a name, looked up with the sandbox's search list (see
        :meth:`runtime.network.Network.resolve_one`: one address, picked with the
        network's seeded rng when the name has several). Raises NameNotFound, and
        what :meth:`runtime.network.Network.request` raises.
        """
        try:
            dst_ip = self._network.resolve_one(host, search=self.dns_search)
        except NameNotFound:
            await trio.lowlevel.checkpoint()  # an async call checkpoints, failing or not
            raise
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return await self._network.request(self.ip, dst_ip, port, payload, **kwargs)

    def exit(self, code: int) -> None:
        """End the program now with ``code`` (raises :class:`ProgramExit`)."""
        raise ProgramExit(code)


ProgramFn: TypeAlias = Callable[[ProgramContext], Awaitable[int | None]]
