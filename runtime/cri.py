"""The container runtime interface: what a node agent needs from a container engine.

Modelled on Kubernetes' CRI (image service + runtime service + an event stream of
container exits), cut down to what the node agent uses. The node agent depends on this
protocol only, so the fake engine in :mod:`runtime.fake` can be swapped for one that runs
real processes. No Kubernetes words here: a *sandbox* is the shared network identity
(one IP) a group of containers runs in; *labels* are opaque to the runtime and let the
caller find its own containers again after it restarts.

All durations and timestamps are trio time (virtual under a mock clock).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from actors import Subscription

__all__ = [
    "ContainerConfig",
    "ContainerExit",
    "ContainerInfo",
    "ContainerNotFound",
    "ContainerRuntime",
    "ContainerState",
    "ContainerStateError",
    "ImageNotPresent",
    "ImagePullError",
    "ProbeResult",
    "RuntimeDown",
    "RuntimeError_",
    "SandboxInfo",
    "SandboxNotFound",
]


class RuntimeError_(Exception):
    """Base of every error a runtime raises (the trailing underscore keeps it apart from
    the builtin ``RuntimeError``)."""


class ImagePullError(RuntimeError_):
    """The image could not be pulled. ``reason`` is short and stable (``NotFound``,
    ``Unauthorized``, ``Timeout``); ``str()`` is the message for people."""

    def __init__(self, image: str, reason: str, message: str) -> None:
        super().__init__(f"failed to pull image {image!r}: {reason}: {message}")
        self.image = image
        self.reason = reason


class ContainerNotFound(RuntimeError_):
    """No container with that id (never created, or removed)."""


class SandboxNotFound(RuntimeError_):
    """No sandbox with that id (never created, or removed)."""


class ImageNotPresent(RuntimeError_):
    """A container was created from an image this machine has not pulled."""


class ContainerStateError(RuntimeError_):
    """The container's state does not allow the call: starting one that was already
    started, removing or killing one that is not in the right state, removing a sandbox
    that still has containers."""


class RuntimeDown(RuntimeError_):
    """The engine is not running (its machine crashed); every call fails until it is
    started again."""


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


@attrs.frozen(kw_only=True)
class ContainerConfig:
    """What to run. ``command``/``args`` follow the image-entrypoint rules of Docker:
    an empty ``command`` means the image's default program.

    ``memory_limit`` is bytes and ``cpu_limit`` cores (None: unlimited); a container whose
    memory use exceeds its limit is killed with exit code 137 and reason ``OOMKilled``.
    """

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict)
    ports: tuple[int, ...] = ()
    memory_limit: int | None = None
    cpu_limit: float | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SandboxInfo:
    """A sandbox: its address, and ``dns_search``, the search domains names looked up
    from inside it are tried with (its ``resolv.conf``)."""

    id: str
    name: str
    ip: str
    labels: Mapping[str, str]
    created_at: float
    dns_search: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ContainerInfo:
    """A snapshot of one container (``inspect``/``list_containers``).

    ``reason`` is set once it exited: ``Completed`` (exit 0), ``Error`` (non-zero),
    ``OOMKilled`` (137 from the memory limit), ``Unknown`` (255: the machine went down
    under it); ``message`` says more (e.g. the shell's ``sh: foo: not found``).
    """

    id: str
    sandbox_id: str
    name: str
    image: str
    state: ContainerState
    labels: Mapping[str, str]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""


@attrs.frozen(kw_only=True)
class ContainerExit:
    """Pushed on :meth:`ContainerRuntime.exits` when a container stops for any reason
    (its program ended, it was stopped or killed, OOM, the engine went down)."""

    container_id: str
    sandbox_id: str
    exit_code: int
    reason: str
    at: float


@attrs.frozen
class ProbeResult:
    """The outcome of a health check the program answered (exec, HTTP and TCP checks all
    map onto the program's health); ``message`` explains a failure."""

    success: bool
    message: str = ""


class ContainerRuntime(Protocol):
    """One node's container engine."""

    # -- images --
    async def pull_image(self, image: str) -> None:
        """Fetch ``image`` (takes the registry's pull time). Raises ImagePullError."""
        ...

    def has_image(self, image: str) -> bool: ...

    # -- sandboxes --
    async def create_sandbox(
        self, name: str, labels: Mapping[str, str], *, dns_search: Sequence[str] = ()
    ) -> SandboxInfo:
        """A network identity for a group of containers: allocates an IP from the
        machine's range. ``dns_search`` is the search list for names its programs look
        up (CRI's ``DNSConfig.searches``)."""
        ...

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Release the sandbox and its IP; its containers must have been removed."""
        ...

    def list_sandboxes(self) -> list[SandboxInfo]: ...

    # -- containers --
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """Create (not start) a container; returns its id. The image must be present."""
        ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, grace: float) -> None:
        """Ask the program to stop (SIGTERM); kill it after ``grace`` seconds if it has
        not exited. Returns once it has exited."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    def inspect(self, container_id: str) -> ContainerInfo: ...

    def list_containers(self, sandbox_id: str | None = None) -> list[ContainerInfo]: ...

    def logs(self, container_id: str) -> list[str]: ...

    def probe(self, container_id: str, probe: str) -> ProbeResult:
        """Ask the running program whether it is ``"live"``, ``"ready"`` or
        ``"started"``. A container that is not running fails every probe."""
        ...

    def usage(self, container_id: str) -> tuple[float, int]:
        """(cpu cores, memory bytes) the container uses now; ``(0.0, 0)`` unless it is
        running (what a resource metrics scrape reads)."""
        ...

    def exits(self) -> Subscription[ContainerExit]:
        """A new subscription to container exits on this engine."""
        ...
