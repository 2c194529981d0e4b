"""The inputs of the kubelet's decisions: what the runtime shows of a pod, and what the
kubelet remembers about it.

``ObservedPod`` is a snapshot of the runtime (sandbox and containers, found by their
labels); ``PodMemory`` is the kubelet's own in-memory state per pod -- back-offs, pending
pulls, probe results -- which a restarted kubelet starts over with, as the real one does.
Both are frozen; the pure functions in ``plan`` and ``status`` read them and return new
values.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from controlplane.api.core_pod import Container, Pod
from controlplane.api.defaults import default_image_pull_policy
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.clock import EPOCH
from controlplane.kubelet.backoff import BackoffEntry
from controlplane.kubelet.labels import parse_container_labels
from controlplane.kubelet.probes import ContainerProbes
from runtime.cri import ContainerInfo, ContainerState, SandboxInfo

__all__ = [
    "DEADLINE_MESSAGE",
    "DEADLINE_REASON",
    "EPSILON",
    "NO_MEMORY",
    "TERMINAL_PHASES",
    "InitProgress",
    "ObservedPod",
    "PodMemory",
    "PullFailure",
    "active_deadline",
    "before",
    "deadline_exceeded",
    "init_progress",
    "is_sidecar",
    "pull_policy",
    "restart_count_of",
    "should_restart",
    "sidecar_started",
]

TERMINAL_PHASES = ("Succeeded", "Failed")

#: Times closer than this count as equal: timers fire at deadlines rounded to the timer
#: service's resolution, a hair before an unrounded float deadline.
EPSILON = 1e-6


def before(now: float, deadline: float) -> bool:
    """Whether ``now`` is (meaningfully) earlier than ``deadline``."""
    return now + EPSILON < deadline


def restart_count_of(info: ContainerInfo) -> int:
    labels = parse_container_labels(info.labels)
    return labels.restart_count if labels is not None else 0


def _sort_key(info: ContainerInfo) -> tuple[int, float, str]:
    return (restart_count_of(info), info.created_at, info.id)


@attrs.frozen
class ObservedPod:
    """One pod's sandbox and containers as the runtime reports them."""

    sandbox: SandboxInfo | None = None
    containers: tuple[ContainerInfo, ...] = ()
    #: (name, init) -> containers oldest first; built once, on first use.
    _by_name: dict[tuple[str, bool], list[ContainerInfo]] | None = attrs.field(
        default=None, eq=False, repr=False, alias="_by_name"
    )

    def history(self, name: str, *, init: bool = False) -> list[ContainerInfo]:
        """The containers created for spec container ``name``, oldest first (by restart
        count): the last is the current one, the one before it gives ``lastState``."""
        index = self._by_name
        if index is None:
            index = {}
            for info in self.containers:
                labels = parse_container_labels(info.labels)
                if labels is not None:
                    index.setdefault((labels.name, labels.init), []).append(info)
            for found in index.values():
                found.sort(key=_sort_key)
            object.__setattr__(self, "_by_name", index)  # a cache, not state
        return list(index.get((name, init), ()))

    def running(self) -> list[ContainerInfo]:
        return [c for c in self.containers if c.state is not ContainerState.EXITED]


@attrs.frozen
class PullFailure:
    """The last failed attempt to prepare a container: ``reason`` is ErrImagePull,
    ErrImageNeverPull or CreateContainerError; no new attempt before ``backoff.until``."""

    reason: str
    message: str
    failed_at: float
    backoff: BackoffEntry
    #: Whether the ``BackOff`` event for this wait was recorded.
    reported: bool = False


_NO_NAMES: frozenset[str] = frozenset()


def _freeze_set(value: object) -> frozenset[str]:
    # Every empty set is the one shared empty set (sets cost the cyclic GC, and most
    # pods' memory ends up empty again once their containers run).
    frozen = frozenset(value)  # type: ignore[call-overload]
    return frozen if frozen else _NO_NAMES


@attrs.frozen(kw_only=True)
class PodMemory:
    """What the kubelet remembers about one pod incarnation (by uid), keyed by container
    name (probes by container id)."""

    crash_backoff: FrozenDict[str, BackoffEntry] = attrs.field(default=EMPTY, converter=freeze)
    pull_failures: FrozenDict[str, PullFailure] = attrs.field(default=EMPTY, converter=freeze)
    #: Containers whose image was pulled for their next start (imagePullPolicy Always).
    pulled: frozenset[str] = attrs.field(default=frozenset(), converter=_freeze_set)
    #: Containers waiting for a pull in flight.
    pulling: frozenset[str] = attrs.field(default=frozenset(), converter=_freeze_set)
    #: Container ids being stopped right now.
    killing: frozenset[str] = attrs.field(default=frozenset(), converter=_freeze_set)
    #: The last failed container create per container (reason CreateContainerError).
    create_errors: FrozenDict[str, PullFailure] = attrs.field(default=EMPTY, converter=freeze)
    probes: FrozenDict[str, ContainerProbes] = attrs.field(default=EMPTY, converter=freeze)

    def with_entry(self, field: str, key: str, value: object | None) -> PodMemory:
        """A copy with ``field[key] = value`` (or the key removed if ``value`` is None)."""
        current: Mapping[str, object] = getattr(self, field)
        if value is None:
            if key not in current:
                return self
            updated = {k: v for k, v in current.items() if k != key}
        else:
            if current.get(key) is value:
                return self
            updated = {**current, key: value}
        return attrs.evolve(self, **{field: updated})

    def compact(self) -> PodMemory:
        """This memory, or the shared :data:`NO_MEMORY` if it remembers nothing (the
        usual state of a pod whose containers run: one shared value, not one per pod)."""
        if self is NO_MEMORY or self != NO_MEMORY:
            return self
        return NO_MEMORY


#: The memory of a pod the kubelet has nothing to remember about (frozen, shared).
NO_MEMORY = PodMemory()


def active_deadline(pod: Pod) -> float | None:
    """The trio time at which the pod has run for ``activeDeadlineSeconds`` (counted
    from ``status.startTime``), or None if it has no deadline or has not started."""
    seconds = pod.spec.active_deadline_seconds
    start = pod.status.start_time
    if seconds is None or start is None:
        return None
    return (start - EPOCH).total_seconds() + seconds


def deadline_exceeded(pod: Pod, now: float) -> bool:
    deadline = active_deadline(pod)
    return deadline is not None and not before(now, deadline)


DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def should_restart(restart_policy: str, exit_code: int | None, *, init: bool = False) -> bool:
    """Whether a container that exited with ``exit_code`` is started again. Init
    containers are never restarted after success; under ``Always`` they restart like
    ``OnFailure``."""
    if init:
        return restart_policy != "Never" and exit_code != 0
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


def pull_policy(container: Container) -> str:
    return container.image_pull_policy or default_image_pull_policy(container.image)


@attrs.frozen
class InitProgress:
    """How far a pod's init containers got: ``done`` when all succeeded (or regular
    containers already exist), ``failed`` when one failed for good (restartPolicy
    Never), else ``current`` is the index of the one to run now."""

    done: bool
    failed: bool = False
    current: int = 0


_INIT_DONE = InitProgress(done=True)


def is_sidecar(container: Container) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always`` (Kubernetes 1.29+).
    It starts in init order, keeps running beside the containers and is always
    restarted when it exits."""
    return container.restart_policy == "Always"


def sidecar_started(container: Container, info: ContainerInfo, memory: PodMemory) -> bool:
    """Whether a running sidecar counts as started (its startup probe, if any, passed),
    so the next init container may run."""
    if info.state is not ContainerState.RUNNING:
        return False
    if container.startup_probe is None:
        return True
    probes = memory.probes.get(info.id)
    return probes is not None and probes.started


def init_progress(pod: Pod, observed: ObservedPod, memory: PodMemory | None = None) -> InitProgress:
    """How far the init containers got (see :class:`InitProgress`). A sidecar counts as
    done once it runs and has started; a regular init container once it succeeded."""
    inits = pod.spec.init_containers
    if not inits:
        return _INIT_DONE
    if any(observed.history(c.name) for c in pod.spec.containers):
        return _INIT_DONE  # initialised before (e.g. by an earlier kubelet)
    policy = pod.spec.restart_policy or "Always"
    memory = memory if memory is not None else NO_MEMORY
    for index, container in enumerate(inits):
        history = observed.history(container.name, init=True)
        current = history[-1] if history else None
        if is_sidecar(container):
            if current is not None and sidecar_started(container, current, memory):
                continue
            return InitProgress(done=False, current=index)
        if current is None or current.state is not ContainerState.EXITED:
            return InitProgress(done=False, current=index)
        if current.exit_code == 0:
            continue
        if not should_restart(policy, current.exit_code, init=True):
            return InitProgress(done=False, failed=True, current=index)
        return InitProgress(done=False, current=index)
    return _INIT_DONE
