"""The pod status the kubelet reports: phase, conditions, container statuses, IPs.

A pure function of the pod, what the runtime shows of it and what the kubelet remembers,
mirroring Kubernetes' ``generateAPIPodStatus`` / ``getPhase`` /
``convertToAPIContainerStatuses``:

- a container not yet created is *waiting* (ContainerCreating, PodInitializing,
  ErrImagePull, ImagePullBackOff, ErrImageNeverPull, CreateContainerError); one waiting
  out its restart back-off is waiting with CrashLoopBackOff and its last run in
  ``lastState``; a running one is *running*, *ready* per its readiness probe (or once
  started if it has none); an exited one that will not restart is *terminated*;
- the phase is Pending until init containers are done and every container has run once,
  Running while any runs (or will be restarted), then Succeeded or Failed;
- conditions PodReadyToStartContainers, Initialized, Ready, ContainersReady and
  PodScheduled keep their ``lastTransitionTime`` unless their status changes.

Timestamps are trio times turned into virtual wall-clock times (``controlplane.clock``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from controlplane.api.core_pod import (
    Container,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    HostIP,
    Pod,
    PodCondition,
    PodIP,
    PodStatus,
)
from controlplane.clock import to_wall
from controlplane.kubelet.model import (
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    TERMINAL_PHASES,
    ObservedPod,
    PodMemory,
    before,
    deadline_exceeded,
    init_progress,
    is_sidecar,
    restart_count_of,
    should_restart,
)
from controlplane.kubelet.plan import (
    ERR_IMAGE_PULL_SHOWN,
    containers_finished,
    format_duration,
    pod_ref,
)
from runtime.cri import ContainerInfo
from runtime.cri import ContainerState as RuntimeState

__all__ = [
    "CONTAINER_ID_SCHEME",
    "compute_phase",
    "compute_status",
    "container_id_of",
    "qos_class",
    "rejected_status",
]

#: containerID in statuses is ``<runtime>://<id>`` (``containerd://...`` on real nodes).
CONTAINER_ID_SCHEME = "kubetrio"


def container_id_of(info: ContainerInfo) -> str:
    return f"{CONTAINER_ID_SCHEME}://{info.id}"


def _wall(t: float | None) -> datetime | None:
    return None if t is None else to_wall(t)


# Frozen values that every pod's status would otherwise allocate anew: the empty state
# (``lastState`` of a container that never restarted) and the plain waiting states.
# Sharing them keeps thousands of identical objects out of the heap (and out of the
# cyclic GC's work).
_NO_STATE = ContainerStatus().last_state
_PLAIN_WAITING: dict[str, ContainerState] = {
    reason: ContainerState(waiting=ContainerStateWaiting(reason=reason))
    for reason in ("ContainerCreating", "PodInitializing")
}


def _terminated(info: ContainerInfo) -> ContainerState:
    code = info.exit_code if info.exit_code is not None else 0
    reason = info.reason or ("Completed" if code == 0 else "Error")
    return ContainerState(
        terminated=ContainerStateTerminated(
            exit_code=code,
            reason=reason,
            message=info.message or None,
            started_at=_wall(info.started_at),
            finished_at=_wall(info.finished_at),
            container_id=container_id_of(info),
        )
    )


def _waiting(reason: str, message: str | None = None) -> ContainerState:
    if message is None:
        shared = _PLAIN_WAITING.get(reason)
        if shared is not None:
            return shared
    return ContainerState(waiting=ContainerStateWaiting(reason=reason, message=message))


def _pending_reason(
    container: Container, memory: PodMemory, now: float, *, initializing: bool
) -> ContainerState:
    """Why a container that should start has not: an image problem, a create error, or
    simply not yet (ContainerCreating / PodInitializing)."""
    name = container.name
    failure = memory.pull_failures.get(name)
    if failure is not None and name not in memory.pulling:
        if failure.reason != "ErrImagePull" or before(
            now, failure.failed_at + ERR_IMAGE_PULL_SHOWN
        ):
            return _waiting(failure.reason, failure.message)
        return _waiting("ImagePullBackOff", f'Back-off pulling image "{container.image}"')
    error = memory.create_errors.get(name)
    if error is not None:
        return _waiting(error.reason, error.message)
    return _waiting("PodInitializing" if initializing else "ContainerCreating")


def _container_status(
    pod: Pod,
    container: Container,
    observed: ObservedPod,
    memory: PodMemory,
    now: float,
    *,
    init: bool,
    initializing: bool,
    stopping: bool,
) -> ContainerStatus:
    history = observed.history(container.name, init=init)
    current = history[-1] if history else None
    previous = history[-2] if len(history) > 1 else None
    sidecar = init and is_sidecar(container)
    name = container.name
    image = container.image or ""
    if current is None:
        state = _pending_reason(container, memory, now, initializing=initializing)
        return ContainerStatus(name=name, image=image, state=state, started=False)
    restart_count = restart_count_of(current)
    container_id = container_id_of(current)
    last = _terminated(previous) if previous is not None else _NO_STATE
    if current.state is RuntimeState.RUNNING:
        probes = memory.probes.get(current.id)
        has_gates = container.startup_probe is not None or container.readiness_probe is not None
        started = probes.started if probes is not None else container.startup_probe is None
        ready = probes.ready if probes is not None else not has_gates
        if init and not sidecar:
            ready = False
        return ContainerStatus(
            name=name,
            image=image,
            state=_running(current.started_at),
            last_state=last,
            ready=ready,
            started=started,
            restart_count=restart_count,
            image_id=current.image,
            container_id=container_id,
        )
    if current.state is RuntimeState.CREATED:
        return ContainerStatus(
            name=name,
            image=image,
            state=_waiting("ContainerCreating"),
            last_state=last,
            started=False,
            restart_count=restart_count,
            image_id=current.image,
            container_id=container_id,
        )
    # exited
    policy = "Always" if sidecar else pod.spec.restart_policy or "Always"
    restarting = (
        not stopping
        and pod.status.phase not in TERMINAL_PHASES
        and should_restart(policy, current.exit_code, init=init and not sidecar)
    )
    if not restarting:
        return ContainerStatus(
            name=name,
            image=image,
            state=_terminated(current),
            last_state=last,
            ready=init and not sidecar and current.exit_code == 0,
            started=False,
            restart_count=restart_count,
            image_id=current.image,
            container_id=container_id,
        )
    entry = memory.crash_backoff.get(name)
    if entry is not None and entry.cause == current.id and before(now, entry.until):
        message = (
            f"back-off {format_duration(entry.delay)} restarting failed"
            f" container={name} pod={pod_ref(pod)}"
        )
        state = _waiting("CrashLoopBackOff", message)
    else:
        state = _pending_reason(container, memory, now, initializing=False)
    return ContainerStatus(
        name=name,
        image=image,
        state=state,
        last_state=_terminated(current),
        started=False,
        restart_count=restart_count,
        image_id=current.image,
        container_id=container_id,
    )


def compute_phase(
    pod: Pod, statuses: Sequence[ContainerStatus], *, init_done: bool, init_failed: bool
) -> str:
    """Kubernetes' ``getPhase`` for a pod the kubelet runs."""
    if init_failed:
        return "Failed"
    if not init_done:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status.state
        if state.running is not None:
            running += 1
        elif state.terminated is not None:
            stopped += 1
            if state.terminated.exit_code == 0:
                succeeded += 1
        elif status.last_state.terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        policy = pod.spec.restart_policy or "Always"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    previous: Sequence[PodCondition],
    type_: str,
    ok: bool,
    wall_now: datetime,
    reason: str | None = None,
    message: str | None = None,
) -> PodCondition:
    status = "True" if ok else "False"
    since = wall_now
    if ok:
        reason = message = None
    for old in previous:
        if old.type == type_ and old.status == status:
            if (
                old.last_transition_time is not None
                and old.reason == reason
                and old.message == message
                and old.last_probe_time is None
            ):
                return old  # unchanged: keep the very object
            since = old.last_transition_time or wall_now
            break
    return _shared_condition(type_, status, since, reason, message)


#: Conditions by value. Pods synced at the same (virtual) moment get equal conditions --
#: a node starting thirty pods at once writes thirty identical ``Initialized`` ones --
#: so equal conditions are one shared frozen object. Bounded: cleared when full.
_CONDITIONS: dict[tuple[Any, ...], PodCondition] = {}
_SHARED_LIMIT = 4096


def _shared_condition(
    type_: str, status: str, since: datetime, reason: str | None, message: str | None
) -> PodCondition:
    # The offset too: equal instants in different zones compare equal, print differently.
    key = (type_, status, since, since.tzinfo, reason, message)
    condition = _CONDITIONS.get(key)
    if condition is None:
        if len(_CONDITIONS) >= _SHARED_LIMIT:
            _CONDITIONS.clear()
        condition = _CONDITIONS[key] = PodCondition(
            type=type_,
            status=status,
            last_transition_time=since,
            reason=reason,
            message=message,
        )
    return condition


#: Running states by start time, shared the same way.
_RUNNING: dict[float | None, ContainerState] = {}


def _running(started_at: float | None) -> ContainerState:
    state = _RUNNING.get(started_at)
    if state is None:
        if len(_RUNNING) >= _SHARED_LIMIT:
            _RUNNING.clear()
        state = _RUNNING[started_at] = ContainerState(
            running=ContainerStateRunning(started_at=_wall(started_at))
        )
    return state


def _names(statuses: Sequence[ContainerStatus], pred: object) -> str:
    return " ".join(s.name for s in statuses if pred(s))  # type: ignore[operator]


def compute_status(
    pod: Pod,
    observed: ObservedPod,
    memory: PodMemory,
    *,
    now: float,
    host_ip: str,
    stopped: bool = False,
) -> PodStatus:
    """The status to report for ``pod``.

    Args:
        now: trio time (back-off messages, timestamps).
        host_ip: the node's address.
        stopped: the pod is being deleted and all its containers have stopped: the
            phase becomes terminal (Succeeded if every container succeeded, else Failed).
    """
    previous = pod.status
    wall_now = to_wall(now)
    stopping = stopped or pod.metadata.deletion_timestamp is not None
    progress = init_progress(pod, observed, memory)
    policy = pod.spec.restart_policy or "Always"
    # Sidecars stop (and are not restarted) once every container is done for good.
    sidecars_stopping = stopping or (progress.done and containers_finished(pod, observed, policy))
    init_statuses = tuple(
        _container_status(
            pod,
            c,
            observed,
            memory,
            now,
            init=True,
            initializing=True,
            stopping=sidecars_stopping if is_sidecar(c) else stopping,
        )
        for c in pod.spec.init_containers
    )
    statuses = tuple(
        _container_status(
            pod,
            c,
            observed,
            memory,
            now,
            init=False,
            initializing=not progress.done,
            stopping=stopping,
        )
        for c in pod.spec.containers
    )
    if previous.phase in TERMINAL_PHASES:
        phase = previous.phase
    elif stopped:
        all_ok = all(
            s.state.terminated is not None and s.state.terminated.exit_code == 0 for s in statuses
        )
        phase = "Succeeded" if all_ok and statuses else "Failed"
    elif deadline_exceeded(pod, now):
        phase = "Failed"
    else:
        phase = compute_phase(pod, statuses, init_done=progress.done, init_failed=progress.failed)

    old = previous.conditions
    completed = phase == "Succeeded"
    sidecar_names = {c.name for c in pod.spec.init_containers if is_sidecar(c)}
    unready = _names(
        (*(s for s in init_statuses if s.name in sidecar_names), *statuses),
        lambda s: not s.ready,
    )
    containers_ready = not unready and not completed
    not_ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    not_ready_message = None if completed else f"containers with unready status: [{unready}]"
    incomplete = _names(
        init_statuses,
        lambda s: s.state.terminated is None or s.state.terminated.exit_code != 0,
    )
    initialized = progress.done
    sandbox_ready = observed.sandbox is not None and not stopped
    conditions = [
        _condition(old, "PodReadyToStartContainers", sandbox_ready, wall_now),
        _condition(
            old,
            "Initialized",
            initialized,
            wall_now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{incomplete}]",
        ),
        _condition(old, "Ready", containers_ready, wall_now, not_ready_reason, not_ready_message),
        _condition(
            old, "ContainersReady", containers_ready, wall_now, not_ready_reason, not_ready_message
        ),
    ]
    scheduled = [c for c in old if c.type == "PodScheduled"]
    conditions.extend(scheduled)
    ours = {cond.type for cond in conditions}
    others = [c for c in old if c.type not in ours]
    conditions.extend(others)

    pod_ip = observed.sandbox.ip if observed.sandbox is not None else previous.pod_ip
    pod_ips = previous.pod_ips
    if not pod_ip:
        pod_ips = ()
    elif len(pod_ips) != 1 or pod_ips[0].ip != pod_ip:
        pod_ips = (PodIP(ip=pod_ip),)
    reason, message = previous.reason, previous.message
    if phase == "Failed" and previous.phase not in TERMINAL_PHASES and deadline_exceeded(pod, now):
        reason, message = DEADLINE_REASON, DEADLINE_MESSAGE
    return attrs.evolve(
        previous,
        reason=reason,
        message=message,
        phase=phase,
        conditions=tuple(conditions),
        host_ip=host_ip or None,
        host_ips=_host_ips(host_ip),
        pod_ip=pod_ip,
        pod_ips=pod_ips,
        start_time=previous.start_time or wall_now,
        qos_class=previous.qos_class or qos_class(pod),
        init_container_statuses=init_statuses,
        container_statuses=statuses,
    )


@functools.lru_cache(maxsize=8192)
def _host_ips(host_ip: str) -> tuple[HostIP, ...]:
    """``hostIPs`` of a node: one shared value per node rather than one per pod."""
    return (HostIP(ip=host_ip),) if host_ip else ()


def qos_class(pod: Pod) -> str:
    """Kubernetes' QoS class: Guaranteed when every container has cpu and memory limits
    equal to its requests, BestEffort when none asks for anything, else Burstable."""
    containers = (*pod.spec.init_containers, *pod.spec.containers)
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.resources
        if resources.requests or resources.limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = resources.limits.get(name)
            request = resources.requests.get(name, limit)
            if limit is None or request != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def rejected_status(pod: Pod, reason: str, message: str, *, now: float) -> PodStatus:
    """The status of a pod the node did not admit: Failed, with the reason."""
    return attrs.evolve(
        pod.status,
        phase="Failed",
        reason=reason,
        message=message,
        start_time=pod.status.start_time or to_wall(now),
    )
