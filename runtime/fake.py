"""``FakeRuntime``: one machine's container engine, in memory, in virtual time.

Declarative programs (:class:`~runtime.programs.Program`, including every shell
command line) get no task: the engine computes their logs, probes and usage from
``now - started_at`` when asked and sets one callback on the shared
:class:`~actors.timers.TimerService` for the earliest of their natural exit, OOM kill,
SIGTERM exit and grace-period kill. User ``async def program(ctx)`` programs run as
tasks in the nursery owned by :meth:`FakeRuntime.run`.

Exit codes and reasons:

=====================================  =========  ============
what happened                          exit code  reason
=====================================  =========  ============
program ended                          its code   ``Completed`` (0) / ``Error``
SIGTERM, program exits                 143 (*)    ``Error``
grace period over, or kill_container   137        ``Error``
memory above ``memory_limit``          137        ``OOMKilled``
machine crashed (:meth:`crash`)        255        ``Unknown``
=====================================  =========  ============

(*) or the code the program chooses (a shell that traps TERM, a user program's return).
A shell or utility as PID 1 ignores SIGTERM, as in Docker, so stopping ``sleep 3600``
takes the whole grace period and ends in 137.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable, Mapping, Sequence

import structlog
import trio

from actors import Broadcast, Subscription
from actors.timers import Timer, TimerService
from runtime.cri import (
    ContainerConfig,
    ContainerExit,
    ContainerInfo,
    ContainerNotFound,
    ContainerState,
    ContainerStateError,
    ImageNotPresent,
    ImagePullError,
    ProbeResult,
    RuntimeDown,
    RuntimeError_,
    SandboxInfo,
    SandboxNotFound,
)
from runtime.images import Registry, normalize_image
from runtime.network import AddressInUse, Listener, Network
from runtime.programs import Program, ProgramContext, ProgramExit, ProgramFn

__all__ = ["EXIT_BUFFER", "FakeRuntime"]

log = structlog.get_logger(__name__)

EXIT_BUFFER = 4096
"""How many exits a subscriber may fall behind before it is closed with Lagged (a
machine runs ~100 containers; this covers a crash plus a long stall)."""

CRASH_EXIT_CODE = 255
CRASH_REASON = "Unknown"
KILL_EXIT_CODE = 137


def _reason(code: int) -> str:
    return "Completed" if code == 0 else "Error"


def _elapsed(c: _Container) -> float:
    """Seconds ``c`` has run (until now, or until it exited), plus a nanosecond of slack
    so that float rounding in ``now - started_at`` cannot put "ready after 5 s" or "log
    at 5 s" a hair late."""
    assert c.started_at is not None
    end = c.finished_at if c.finished_at is not None else trio.current_time()
    return end - c.started_at + 1e-9


class _Responder:
    """The handler a declarative server listens with: answers every request alike."""

    __slots__ = ("response",)

    def __init__(self, response: bytes) -> None:
        self.response = response

    def __call__(self, payload: bytes, src_ip: str) -> bytes:
        return self.response


class _Sandbox:
    __slots__ = ("containers", "info")

    def __init__(self, info: SandboxInfo) -> None:
        self.info = info
        self.containers: dict[str, None] = {}  # ids, in creation order


class _Pull:
    __slots__ = ("done", "error", "timer")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: str | None = None  # why it failed (each waiter raises its own error)
        self.timer: Timer | None = None


class _Container:
    """One container's mutable record; everything shared lives in ``config`` and
    ``program``."""

    __slots__ = (
        "config",
        "created_at",
        "ctx",
        "due",
        "exit_code",
        "exited",
        "finished_at",
        "id",
        "listeners",
        "message",
        "notes",
        "program",
        "reason",
        "sandbox",
        "scope",
        "started_at",
        "state",
        "timer",
    )

    def __init__(
        self,
        id: str,
        sandbox: _Sandbox,
        config: ContainerConfig,
        program: Program | ProgramFn,
        now: float,
    ) -> None:
        self.id = id
        self.sandbox = sandbox
        self.config = config
        self.program = program
        self.state = ContainerState.CREATED
        self.created_at = now
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.message = ""
        # The earliest known way it ends: (at, exit code, reason, message), and the
        # timer set for it. Only declarative programs and grace-period kills use it.
        self.due: tuple[float, int, str, str] | None = None
        self.timer: Timer | None = None
        self.exited: trio.Event | None = None  # made when someone waits for the exit
        self.listeners: list[Listener] | None = None
        self.notes: list[str] | None = None  # lines the engine adds to the logs
        self.ctx: ProgramContext | None = None  # user programs
        self.scope: trio.CancelScope | None = None  # user programs

    def info(self) -> ContainerInfo:
        config = self.config
        return ContainerInfo(
            id=self.id,
            sandbox_id=self.sandbox.info.id,
            name=config.name,
            image=config.image,
            state=self.state,
            labels=config.labels,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            reason=self.reason,
            message=self.message,
        )


class FakeRuntime:
    """A machine's container engine (implements :class:`runtime.cri.ContainerRuntime`).

    Args:
      host: the machine's name; it must have been added to ``network``.
      registry: where images come from (shared by all machines).
      network: the simulated network (shared).
      timers: the shared timer service; it must be running for programs to move on.
      rng: randomness for pull jitter and ids.

    Calls fail with :class:`~runtime.cri.RuntimeDown` between :meth:`crash` and
    :meth:`recover`. User async programs need :meth:`run` to be running.
    """

    def __init__(
        self,
        host: str,
        *,
        registry: Registry,
        network: Network,
        timers: TimerService,
        rng: random.Random,
    ) -> None:
        self.host = host
        self._registry = registry
        self._network = network
        self._timers = timers
        self._rng = rng
        self._log = log.bind(component="runtime", host=host)
        self._up = True
        self._images: set[str] = set()
        self._pulls: dict[str, _Pull] = {}
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._exits: Broadcast[ContainerExit] = Broadcast(name=f"exits@{host}")
        self._nursery: trio.Nursery | None = None
        # injected probe failures: id -> (probe, labels a container must carry)
        self._probe_faults: dict[int, tuple[str, dict[str, str]]] = {}
        self._probe_fault_seq = 0
        network.host(host)  # fail early on a machine the network does not know

    # ----- lifecycle -----

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host user programs' tasks until cancelled; containers still running then
        exit with 255 ``Unknown``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    @property
    def up(self) -> bool:
        """False between :meth:`crash` and :meth:`recover`."""
        return self._up

    def crash(self) -> None:
        """The machine goes down: every running container exits at once (255,
        ``Unknown``; published on :meth:`exits`), in-flight pulls fail with RuntimeDown,
        the machine's addresses stop answering, and every call raises RuntimeDown until
        :meth:`recover`. Does nothing if it is already down."""
        if not self._up:
            return
        self._up = False
        self._network.set_host_up(self.host, False)
        now = trio.current_time()
        running = [c for c in self._containers.values() if c.state is ContainerState.RUNNING]
        for container in running:
            self._finish(container, now, CRASH_EXIT_CODE, CRASH_REASON, "machine went down")
        pulls, self._pulls = self._pulls, {}
        for image, pull in pulls.items():
            if pull.timer is not None:
                pull.timer.cancel()
            pull.error = f"runtime on {self.host!r} went down pulling {image!r}"
            pull.done.set()
        self._log.info("runtime_crashed", containers_lost=len(running))

    def recover(self) -> None:
        """The engine is up again: exited containers are still listed and inspectable,
        sandboxes keep their addresses, pulled images stay cached; nothing restarts on
        its own. Does nothing if it is up."""
        if self._up:
            return
        self._up = True
        self._network.set_host_up(self.host, True)
        self._log.info("runtime_recovered")

    def _check_up(self) -> None:
        if not self._up:
            raise RuntimeDown(f"container runtime on {self.host!r} is down")

    # ----- images -----

    async def pull_image(self, image: str) -> None:
        """Fetch ``image``; concurrent pulls of one image on this machine share one
        download. Raises ImagePullError (``NotFound`` for an image marked missing) or
        RuntimeDown.

        A timer wakes the waiting task (not a ``trio.sleep`` per caller), so coalesced
        pulls cost one timer, and a crash can fail them at once.
        """
        await trio.lowlevel.checkpoint()
        self._check_up()
        ref = normalize_image(image)
        if ref in self._images:
            return
        pull = self._pulls.get(ref)
        if pull is None:
            spec = self._registry.spec(ref)
            if spec.missing:
                self._log.info("image_pull_failed", image=image, reason="NotFound")
                raise ImagePullError(image, "NotFound", "manifest unknown")
            pull = self._pulls[ref] = _Pull()
            seconds = self._registry.pull_duration(ref, self._rng)
            pull.timer = self._timers.call_later(seconds, self._pull_done, ref, pull)
            self._log.debug("image_pull_started", image=image, seconds=round(seconds, 3))
        await pull.done.wait()
        if pull.error is not None:
            raise RuntimeDown(pull.error)

    def _pull_done(self, ref: str, pull: _Pull) -> None:
        if self._pulls.get(ref) is pull:
            del self._pulls[ref]
            self._images.add(ref)
        pull.done.set()

    def has_image(self, image: str) -> bool:
        """Whether ``image`` is cached on this machine."""
        self._check_up()
        return normalize_image(image) in self._images

    # ----- sandboxes -----

    async def create_sandbox(
        self, name: str, labels: Mapping[str, str], *, dns_search: Sequence[str] = ()
    ) -> SandboxInfo:
        """A network identity for a group of containers (an address from the machine's
        range); its programs look names up with the ``dns_search`` list. Raises
        RuntimeDown, NetworkError when the range is full."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        ip = self._network.allocate_ip(self.host)
        info = SandboxInfo(
            id=self._new_id(self._sandboxes),
            name=name,
            ip=ip,
            labels=labels,
            created_at=trio.current_time(),
            dns_search=tuple(dns_search),
        )
        self._sandboxes[info.id] = _Sandbox(info)
        self._log.debug("sandbox_created", sandbox=name, sandbox_id=info.id, ip=ip)
        return info

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Release the sandbox and its address. Raises SandboxNotFound, and
        ContainerStateError while it still has containers."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        sandbox = self._sandbox(sandbox_id)
        if sandbox.containers:
            raise ContainerStateError(
                f"sandbox {sandbox_id} ({sandbox.info.name}) still has containers: "
                + ", ".join(sandbox.containers)
            )
        del self._sandboxes[sandbox_id]
        self._network.release_ip(sandbox.info.ip)
        self._log.debug("sandbox_removed", sandbox=sandbox.info.name, sandbox_id=sandbox_id)

    def list_sandboxes(self) -> list[SandboxInfo]:
        self._check_up()
        return [s.info for s in self._sandboxes.values()]

    # ----- containers -----

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """Create (not start) a container from a pulled image; returns its id. Raises
        SandboxNotFound, ImageNotPresent, RuntimeDown."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        sandbox = self._sandbox(sandbox_id)
        if normalize_image(config.image) not in self._images:
            raise ImageNotPresent(
                f"container {config.name!r}: image {config.image!r} is not present on "
                f"{self.host!r}; pull it first"
            )
        program = self._registry.program_for(config.image, config.command, config.args, config.env)
        cid = self._new_id(self._containers)
        self._containers[cid] = _Container(cid, sandbox, config, program, trio.current_time())
        sandbox.containers[cid] = None
        return cid

    async def start_container(self, container_id: str) -> None:
        """Start a created container. Raises ContainerNotFound, ContainerStateError
        (started before), RuntimeDown, or RuntimeError_ for a user program while
        :meth:`run` is not running."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        c = self._container(container_id)
        if c.state is not ContainerState.CREATED:
            raise ContainerStateError(
                f"container {container_id} ({c.config.name}) cannot be started: it is "
                f"{c.state.value}, and a container starts only once"
            )
        program = c.program
        if not isinstance(program, Program) and self._nursery is None:
            raise RuntimeError_(
                f"container {container_id} ({c.config.name}) runs an async program, "
                f"but FakeRuntime.run is not running for {self.host!r}"
            )
        now = trio.current_time()
        c.state = ContainerState.RUNNING
        c.started_at = now
        self._log.debug("container_started", container=c.config.name, container_id=c.id)
        if isinstance(program, Program):
            self._start_declarative(c, program, now)
        else:
            assert self._nursery is not None
            # The context exists before the task runs, so a stop right away is seen.
            c.ctx = self._context(c)
            c.listeners = c.ctx._listeners
            self._nursery.start_soon(self._run_user_program, c, program, name=c.config.name)

    def _start_declarative(self, c: _Container, program: Program, now: float) -> None:
        config = c.config
        if program.serve and config.ports:
            response = program.response
            if response is None:
                response = f"{c.sandbox.info.name}/{config.name}".encode()
            responder = _Responder(response)
            c.listeners = []
            for port in config.ports:
                try:
                    c.listeners.append(self._network.listen(c.sandbox.info.ip, port, responder))
                except AddressInUse as exc:
                    self._note(c, f"listen tcp :{port}: bind: address already in use")
                    self._set_due(c, (now, 1, "Error", str(exc)))
                    return
        timeline = program.timeline
        if timeline.exit_at is not None:
            code = timeline.exit_code
            self._set_due(c, (now + timeline.exit_at, code, _reason(code), timeline.message))
        oom = program.oom_at(config.memory_limit)
        if oom is not None:
            _, memory = program.usage_at(oom)
            message = f"memory use {memory} bytes exceeded the limit of {config.memory_limit}"
            self._set_due(c, (now + oom, KILL_EXIT_CODE, "OOMKilled", message))

    def _context(self, c: _Container) -> ProgramContext:
        config = c.config
        return ProgramContext(
            name=config.name,
            sandbox=c.sandbox.info.name,
            env=config.env,
            ports=config.ports,
            ip=c.sandbox.info.ip,
            host=self.host,
            network=self._network,
            dns_search=c.sandbox.info.dns_search,
            on_usage=lambda ctx: self._on_usage(c, ctx),
        )

    async def _run_user_program(self, c: _Container, program: ProgramFn) -> None:
        ctx = c.ctx
        assert ctx is not None
        config = c.config
        code, message = 0, ""
        ended = False  # the program returned, exited or raised (was not cancelled)
        try:
            with trio.CancelScope() as scope:
                c.scope = scope
                try:
                    result = await program(ctx)
                    code = 0 if result is None else int(result)
                except ProgramExit as exc:
                    code = exc.code
                except Exception as exc:
                    code, message = 1, f"program raised {exc!r}"
                    for chunk in traceback.format_exception(exc):
                        for line in chunk.rstrip("\n").split("\n"):
                            ctx.log(line)
                    self._log.warning(
                        "program_crashed", container=config.name, container_id=c.id, error=repr(exc)
                    )
                ended = True
        finally:
            # After a kill, OOM or crash the container has already finished (a no-op);
            # if the engine's nursery is cancelled, the program dies with the engine.
            now = trio.current_time()
            if ended:
                self._finish(c, now, code, _reason(code), message)
            else:
                self._finish(c, now, CRASH_EXIT_CODE, CRASH_REASON, "engine stopped")

    def _on_usage(self, c: _Container, ctx: ProgramContext) -> None:
        limit = c.config.memory_limit
        if c.state is ContainerState.RUNNING and limit is not None and ctx._memory > limit:
            message = f"memory use {ctx._memory} bytes exceeded the limit of {limit}"
            self._finish(c, trio.current_time(), KILL_EXIT_CODE, "OOMKilled", message)

    async def stop_container(self, container_id: str, grace: float) -> None:
        """Send SIGTERM; kill (137) after ``grace`` seconds unless it exits first.
        Returns once it has exited (at once if it is not running). Raises
        ContainerNotFound, RuntimeDown."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            return
        now = trio.current_time()
        self._log.debug("container_stopping", container=c.config.name, grace=grace)
        kill = (now + max(grace, 0.0), KILL_EXIT_CODE, "Error", "killed after the grace period")
        program = c.program
        if isinstance(program, Program):
            term = program.term_exit_code
            if term is not None and program.term_delay < grace:
                kill = (now + program.term_delay, term, _reason(term), "exited on SIGTERM")
        elif c.ctx is not None:
            c.ctx.terminating.set()
        self._set_due(c, kill)
        if c.exited is None:
            c.exited = trio.Event()
        await c.exited.wait()

    def kill_container(
        self,
        container_id: str,
        exit_code: int = KILL_EXIT_CODE,
        *,
        reason: str | None = None,
        message: str = "killed",
    ) -> None:
        """Kill a running container now (like ``docker kill``); its exit is published
        with ``reason`` (default ``Error``, or ``Completed`` for 0: ``OOMKilled`` models
        the kernel's OOM killer). Raises ContainerNotFound, ContainerStateError (not
        running), RuntimeDown."""
        self._check_up()
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {container_id} ({c.config.name}) is not running: {c.state.value}"
            )
        self._finish(c, trio.current_time(), exit_code, reason or _reason(exit_code), message)

    async def remove_container(self, container_id: str) -> None:
        """Forget a container that is not running. Raises ContainerNotFound,
        ContainerStateError (running: stop it first), RuntimeDown."""
        await trio.lowlevel.checkpoint()
        self._check_up()
        c = self._container(container_id)
        if c.state is ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {container_id} ({c.config.name}) is running; stop it first"
            )
        del self._containers[container_id]
        c.sandbox.containers.pop(container_id, None)

    def inspect(self, container_id: str) -> ContainerInfo:
        self._check_up()
        return self._container(container_id).info()

    def list_containers(self, sandbox_id: str | None = None) -> list[ContainerInfo]:
        """Every container (in creation order), or those of one sandbox (raises
        SandboxNotFound for an unknown one)."""
        self._check_up()
        if sandbox_id is None:
            return [c.info() for c in self._containers.values()]
        ids = self._sandbox(sandbox_id).containers
        return [self._containers[cid].info() for cid in ids]

    def logs(self, container_id: str) -> list[str]:
        """What the container printed so far (the most recent
        :data:`~runtime.programs.MAX_LOG_LINES`)."""
        self._check_up()
        c = self._container(container_id)
        if c.ctx is not None:
            lines = list(c.ctx._lines)
        elif c.started_at is not None and isinstance(c.program, Program):
            lines = c.program.timeline.lines_until(_elapsed(c), started_at=c.started_at)
        else:
            lines = []
        return lines + c.notes if c.notes else lines

    def probe(self, container_id: str, probe: str) -> ProbeResult:
        """Whether the program is ``live``, ``ready`` or ``started`` now; a container
        that is not running fails every probe. Raises ContainerNotFound, ValueError for
        another probe name."""
        self._check_up()
        c = self._container(container_id)
        if probe not in ("live", "ready", "started"):
            raise ValueError(f"probe: must be 'live', 'ready' or 'started', got {probe!r}")
        if c.state is not ContainerState.RUNNING:
            return ProbeResult(False, f"container {c.config.name} is {c.state.value}")
        for failing, labels in self._probe_faults.values():
            if failing == probe and all(c.config.labels.get(k) == v for k, v in labels.items()):
                return ProbeResult(False, f"injected {probe} probe failure")
        if c.ctx is not None:
            ok = {"live": c.ctx._live, "ready": c.ctx._ready, "started": c.ctx._started}[probe]
            if ok and probe == "ready" and c.config.ports and not c.listeners:
                # a server that declares ports but listens on none yet (still warming
                # up) is not ready: a tcpSocket or httpGet probe would be refused
                return ProbeResult(False, f"dial tcp :{c.config.ports[0]}: connection refused")
            return ProbeResult(ok, "" if ok else f"program reports not {probe}")
        assert isinstance(c.program, Program)  # user programs have a context once started
        ok, message = c.program.check(probe, _elapsed(c))
        return ProbeResult(ok, message)

    def fail_probe(self, probe: str, labels: Mapping[str, str]) -> Callable[[], None]:
        """Make ``probe`` (``live``, ``ready`` or ``started``) fail for every container,
        present or future, whose labels include ``labels``, until the returned function
        is called (idempotent). A fault, not program behaviour: chaos uses it."""
        if probe not in ("live", "ready", "started"):
            raise ValueError(f"probe: must be 'live', 'ready' or 'started', got {probe!r}")
        self._probe_fault_seq += 1
        key = self._probe_fault_seq
        self._probe_faults[key] = (probe, dict(labels))

        def heal() -> None:
            self._probe_faults.pop(key, None)

        return heal

    def usage(self, container_id: str) -> tuple[float, int]:
        """(cpu cores, memory bytes) now; (0.0, 0) unless running. CPU is capped at the
        container's ``cpu_limit`` (throttled)."""
        self._check_up()
        c = self._container(container_id)
        if c.state is not ContainerState.RUNNING:
            return 0.0, 0
        if c.ctx is not None:
            cpu, memory = c.ctx._cpu, c.ctx._memory
        elif isinstance(c.program, Program):
            cpu, memory = c.program.usage_at(_elapsed(c))
        else:
            cpu, memory = 0.0, 0
        limit = c.config.cpu_limit
        return (cpu if limit is None else min(cpu, limit)), memory

    def exits(self) -> Subscription[ContainerExit]:
        """A new subscription to every container exit on this machine from now on
        (buffer :data:`EXIT_BUFFER`). It stays open across crash/recover."""
        self._check_up()
        return self._exits.subscribe(EXIT_BUFFER, name=f"exits@{self.host}")

    # ----- internals -----

    def _set_due(self, c: _Container, due: tuple[float, int, str, str]) -> None:
        """Make ``due`` the way ``c`` ends if it comes before the one already set."""
        if c.due is not None and c.due[0] <= due[0]:
            return
        c.due = due
        if c.timer is not None:
            c.timer.cancel()
        c.timer = self._timers.call_at(due[0], self._on_due, c)

    def _on_due(self, c: _Container) -> None:
        c.timer = None
        if c.due is not None:
            at, code, reason, message = c.due
            self._finish(c, at, code, reason, message)

    def _finish(self, c: _Container, at: float, code: int, reason: str, message: str) -> None:
        """Record that ``c`` exited and tell everyone; a no-op unless it is running."""
        if c.state is not ContainerState.RUNNING:
            return
        c.state = ContainerState.EXITED
        c.finished_at = at
        c.exit_code = code
        c.reason = reason
        c.message = message
        c.due = None
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None
        if c.listeners:
            for listener in c.listeners:
                listener.close()
        c.listeners = None
        if c.scope is not None:
            c.scope.cancel()
        if c.exited is not None:
            c.exited.set()
        self._log.debug(
            "container_exited",
            container=c.config.name,
            container_id=c.id,
            exit_code=code,
            reason=reason,
        )
        self._exits.publish_nowait(
            ContainerExit(
                container_id=c.id,
                sandbox_id=c.sandbox.info.id,
                exit_code=code,
                reason=reason,
                at=at,
            )
        )

    def _note(self, c: _Container, line: str) -> None:
        if c.notes is None:
            c.notes = []
        c.notes.append(line)

    def _new_id(self, taken: Mapping[str, object]) -> str:
        while True:
            new = f"{self._rng.getrandbits(64):016x}"
            if new not in taken:
                return new

    def _container(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerNotFound(f"no container {container_id!r} on {self.host!r}")
        return c

    def _sandbox(self, sandbox_id: str) -> _Sandbox:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r} on {self.host!r}")
        return sandbox
