"""What to do next for one pod: the kubelet's ``computePodActions``, as a pure function.

Given the pod (spec, deletion state), what the runtime shows of it, what the kubelet
remembers (back-offs, pulls, probe verdicts), the images present and the time,
:func:`plan_pod` returns a :class:`Plan`: the runtime actions to take now, the memory to
keep, the events to record and when to look at the pod again. The actor performs the
plan and calls again; doing the same plan twice is harmless, because every decision is
made from the observed state (level-triggered).

Order of business, as in Kubernetes: a sandbox first; then init containers one at a time,
each to completion; then every regular container. A container that exited is restarted
per ``restartPolicy`` after its CrashLoopBackOff wait; one whose liveness (or startup)
probe failed is killed and then restarted the same way. A pod being deleted has every
container stopped with its deletion grace period, and is then torn down.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from controlplane.api.core_pod import Container, Pod
from controlplane.kubelet.backoff import next_crash_backoff, next_image_backoff
from controlplane.kubelet.labels import parse_container_labels
from controlplane.kubelet.model import (
    TERMINAL_PHASES,
    ObservedPod,
    PodMemory,
    PullFailure,
    active_deadline,
    before,
    deadline_exceeded,
    init_progress,
    is_sidecar,
    pull_policy,
    restart_count_of,
    should_restart,
)
from runtime.cri import ContainerInfo, ContainerState

__all__ = [
    "Kill",
    "Plan",
    "PlannedEvent",
    "Pull",
    "Start",
    "containers_finished",
    "format_duration",
    "plan_pod",
    "pod_ref",
]


@attrs.frozen
class Start:
    """Create and start a container for ``container`` with this restart count."""

    container: Container
    init: bool
    restart_count: int


@attrs.frozen
class Kill:
    """Stop a running container, giving it ``grace`` seconds (``reason``: deleting,
    liveness, startup, terminal)."""

    container_id: str
    name: str
    grace: float
    reason: str


@attrs.frozen
class Pull:
    container_name: str
    image: str


@attrs.frozen
class PlannedEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


@attrs.frozen(kw_only=True)
class Plan:
    memory: PodMemory
    create_sandbox: bool = False
    starts: tuple[Start, ...] = ()
    kills: tuple[Kill, ...] = ()
    pulls: tuple[Pull, ...] = ()
    #: Dead containers no longer needed for ``lastState``.
    removes: tuple[str, ...] = ()
    #: Everything is stopped and the pod is being deleted: remove what is left and
    #: confirm the deletion.
    teardown: bool = False
    events: tuple[PlannedEvent, ...] = ()
    #: When to sync the pod again (back-off over, probe due); None: only on a change.
    wake_at: float | None = None

    @property
    def acts_now(self) -> bool:
        """Whether the plan changes the runtime right away (then plan again after)."""
        return bool(self.create_sandbox or self.starts or self.removes)


def pod_ref(pod: Pod) -> str:
    """``name_namespace(uid)``, as Kubernetes names a pod in messages."""
    meta = pod.metadata
    return f"{meta.name}_{meta.namespace}({meta.uid})"


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration`` string for whole seconds: ``10s``, ``1m20s``, ``5m0s``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"


class _Builder:
    """Accumulates one plan; a small mutable helper local to :func:`plan_pod`."""

    def __init__(self, memory: PodMemory) -> None:
        self.memory = memory
        self.starts: list[Start] = []
        self.kills: list[Kill] = []
        self.pulls: list[Pull] = []
        self.removes: list[str] = []
        self.events: list[PlannedEvent] = []
        self.wake_at: float | None = None

    def wake(self, at: float | None) -> None:
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at

    def build(self, *, create_sandbox: bool = False, teardown: bool = False) -> Plan:
        return Plan(
            memory=self.memory,
            create_sandbox=create_sandbox,
            starts=tuple(self.starts),
            kills=tuple(self.kills),
            pulls=tuple(self.pulls),
            removes=tuple(self.removes),
            teardown=teardown,
            events=tuple(self.events),
            wake_at=self.wake_at,
        )


def _grace(pod: Pod) -> float:
    meta = pod.metadata
    if meta.deletion_grace_period_seconds is not None:
        return float(meta.deletion_grace_period_seconds)
    grace = pod.spec.termination_grace_period_seconds
    return float(grace if grace is not None else 30)


def _kill_running(
    b: _Builder, containers: Iterable[ContainerInfo], grace: float, reason: str
) -> bool:
    """Plan stopping every container not yet exited; True if any is still running."""
    alive = False
    for info in containers:
        if info.state is ContainerState.EXITED:
            continue
        alive = True
        if info.id in b.memory.killing:
            continue
        labels = parse_container_labels(info.labels)
        b.kills.append(Kill(info.id, labels.name if labels else info.name, grace, reason))
    return alive


def plan_pod(
    pod: Pod,
    observed: ObservedPod,
    memory: PodMemory,
    *,
    now: float,
    images_present: frozenset[str],
) -> Plan:
    """The next step for ``pod`` (see the module docstring).

    Args:
        pod: the pod as the kubelet last saw it in the API.
        observed: its sandbox and containers in the runtime.
        memory: what the kubelet remembers about this pod.
        now: trio time.
        images_present: which of the pod's images the runtime has.
    """
    b = _Builder(memory)
    if pod.metadata.deletion_timestamp is not None:
        if _kill_running(b, observed.containers, _grace(pod), "deleting"):
            return b.build()
        return b.build(teardown=True)
    if pod.status.phase in TERMINAL_PHASES or deadline_exceeded(pod, now):
        # Terminal in the API (or past activeDeadlineSeconds): never run again; stop
        # whatever still runs.
        _kill_running(b, observed.containers, _grace(pod), "terminal")
        return b.build()
    b.wake(active_deadline(pod))
    if observed.sandbox is None:
        if observed.running():
            # Containers without their sandbox (should not happen): stop them first.
            _kill_running(b, observed.containers, 0.0, "orphaned")
            return b.build()
        return b.build(create_sandbox=True)

    policy = pod.spec.restart_policy or "Always"
    progress = init_progress(pod, observed, memory)
    inits = pod.spec.init_containers
    if not progress.done:
        # Sidecars started before the current init container are kept running.
        for container in inits[: progress.current]:
            if is_sidecar(container):
                _plan_container(
                    b, pod, container, observed, "Always", now, images_present, init=True
                )
        if not progress.failed:
            container = inits[progress.current]
            init_policy = "Always" if is_sidecar(container) else policy
            _plan_container(
                b, pod, container, observed, init_policy, now, images_present, init=True
            )
        return b.build()
    for container in pod.spec.containers:
        _plan_container(b, pod, container, observed, policy, now, images_present, init=False)
    sidecars = [c for c in inits if is_sidecar(c)]
    if sidecars and containers_finished(pod, observed, policy):
        # Every container is done for good: the sidecars are stopped, not restarted.
        for container in sidecars:
            running = observed.history(container.name, init=True)[-1:]
            _kill_running(b, running, _grace(pod), "terminal")
        return b.build()
    for container in sidecars:
        _plan_container(b, pod, container, observed, "Always", now, images_present, init=True)
    return b.build()


def containers_finished(pod: Pod, observed: ObservedPod, policy: str) -> bool:
    """Whether every regular container exited and will not be restarted."""
    for container in pod.spec.containers:
        history = observed.history(container.name)
        if not history:
            return False
        current = history[-1]
        if current.state is not ContainerState.EXITED:
            return False
        if should_restart(policy, current.exit_code):
            return False
    return True


def _plan_container(
    b: _Builder,
    pod: Pod,
    container: Container,
    observed: ObservedPod,
    policy: str,
    now: float,
    images_present: frozenset[str],
    *,
    init: bool,
) -> None:
    name = container.name
    history = observed.history(name, init=init)
    current = history[-1] if history else None
    if current is not None and current.state is ContainerState.RUNNING:
        probes = b.memory.probes.get(current.id)
        if probes is not None:
            failed = probes.failed
            if failed is not None and current.id not in b.memory.killing:
                b.kills.append(Kill(current.id, name, _grace(pod), failed))
            b.wake(probes.next_at())
        return
    if current is not None and current.state is ContainerState.CREATED:
        # Created but never started (a start that was interrupted): replace it.
        b.removes.append(current.id)
        restart_count = restart_count_of(current)
    elif current is not None:  # exited
        sidecar = init and is_sidecar(container)
        if not should_restart(policy, current.exit_code, init=init and not sidecar):
            return
        entry = next_crash_backoff(
            b.memory.crash_backoff.get(name),
            container_id=current.id,
            started_at=current.started_at,
            finished_at=current.finished_at if current.finished_at is not None else now,
        )
        fresh = entry is not b.memory.crash_backoff.get(name)
        b.memory = b.memory.with_entry("crash_backoff", name, entry)
        if before(now, entry.until):
            if fresh:
                b.events.append(
                    PlannedEvent(
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {pod_ref(pod)}",
                    )
                )
            b.wake(entry.until)
            return
        restart_count = restart_count_of(current) + 1
    else:
        restart_count = 0

    create_error = b.memory.create_errors.get(name)
    if create_error is not None and before(now, create_error.backoff.until):
        b.wake(create_error.backoff.until)
        return
    if not _image_ready(b, pod, container, now, images_present):
        return
    # Keep only the newest dead container (it becomes lastState); drop older ones.
    b.removes.extend(
        info.id
        for info in history[:-1]
        if info.state is ContainerState.EXITED and info.id not in b.removes
    )
    b.starts.append(Start(container, init, restart_count))


def _image_ready(
    b: _Builder, pod: Pod, container: Container, now: float, images_present: frozenset[str]
) -> bool:
    """Whether the container's image is ready to start from; plans a pull if needed."""
    name = container.name
    image = container.image or ""
    if name in b.memory.pulling:
        return False
    failure = b.memory.pull_failures.get(name)
    if failure is not None and before(now, failure.backoff.until):
        b.wake(failure.backoff.until)
        shown_until = failure.failed_at + ERR_IMAGE_PULL_SHOWN
        if before(now, shown_until):
            b.wake(shown_until)
        elif not failure.reported and failure.reason == "ErrImagePull":
            b.events.append(PlannedEvent("Normal", "BackOff", f'Back-off pulling image "{image}"'))
            b.memory = b.memory.with_entry(
                "pull_failures", name, attrs.evolve(failure, reported=True)
            )
        return False
    policy = pull_policy(container)
    present = image in images_present
    if policy == "Never":
        if present:
            return True
        entry = next_image_backoff(failure.backoff if failure else None, failed_at=now)
        message = f'Container image "{image}" is not present with pull policy of Never'
        b.memory = b.memory.with_entry(
            "pull_failures", name, PullFailure("ErrImageNeverPull", message, now, entry)
        )
        b.events.append(PlannedEvent("Warning", "ErrImageNeverPull", message))
        b.wake(now + ERR_IMAGE_PULL_SHOWN)
        return False
    if policy == "Always" and name in b.memory.pulled:
        return True
    if policy != "Always" and present:
        return True
    b.pulls.append(Pull(name, image))
    b.memory = attrs.evolve(b.memory, pulling=b.memory.pulling | {name})
    return False


#: How long a failed pull shows ``ErrImagePull`` before ``ImagePullBackOff`` (the real
#: kubelet shows it until its next pod sync, which comes a few seconds later).
ERR_IMAGE_PULL_SHOWN = 1.0
