"""Probe bookkeeping for one container: when each probe runs next and what it concluded.

Kubernetes semantics (``pkg/kubelet/prober``): a startup probe, if any, runs first and
gates the others; liveness starts out passing and fails after ``failureThreshold``
consecutive failures (the container is then killed); readiness starts out failing and
passes after ``successThreshold`` consecutive successes. Defaults: initialDelaySeconds 0,
periodSeconds 10, timeoutSeconds 1, successThreshold 1, failureThreshold 3.

Pure values and functions; the kubelet asks the runtime (``probe(id, "live")``...) when a
probe is due and feeds the outcome to :func:`observe`. The runtime answers at once, so
``timeoutSeconds`` has nothing to bound here.
"""

from __future__ import annotations

from typing import Literal

import attrs

from controlplane.api.core_pod import Container, Probe

__all__ = [
    "RUNTIME_PROBE",
    "ContainerProbes",
    "ProbeKind",
    "ProbeSpec",
    "ProbeState",
    "new_container_probes",
    "observe",
]

ProbeKind = Literal["startup", "liveness", "readiness"]

#: The question each probe asks the runtime's program.
RUNTIME_PROBE: dict[str, str] = {"startup": "started", "liveness": "live", "readiness": "ready"}

LABEL: dict[str, str] = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}


@attrs.frozen
class ProbeSpec:
    """A probe's timings with Kubernetes' defaults filled in."""

    kind: ProbeKind
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, kind: ProbeKind, probe: Probe) -> ProbeSpec:
        return cls(
            kind=kind,
            initial_delay=float(probe.initial_delay_seconds or 0),
            period=float(probe.period_seconds or 10),
            timeout=float(probe.timeout_seconds or 1),
            # liveness and startup must use 1 (validation enforces it); be lenient here
            success_threshold=(probe.success_threshold or 1) if kind == "readiness" else 1,
            failure_threshold=probe.failure_threshold or 3,
        )


@attrs.frozen
class ProbeState:
    """``passing`` is the probe's verdict; ``successes``/``failures`` count the current
    run of equal outcomes; ``next_at`` is the trio time the probe runs next."""

    spec: ProbeSpec
    passing: bool
    next_at: float
    successes: int = 0
    failures: int = 0


def observe(state: ProbeState, success: bool, now: float) -> ProbeState:
    """The state after one probe outcome at ``now``; the next run is a period later."""
    spec = state.spec
    if success:
        successes, failures = state.successes + 1, 0
        passing = state.passing or successes >= spec.success_threshold
    else:
        successes, failures = 0, state.failures + 1
        passing = state.passing and failures < spec.failure_threshold
    return ProbeState(spec, passing, now + spec.period, successes, failures)


@attrs.frozen
class ContainerProbes:
    """The probes of one running container (by runtime id)."""

    container_id: str
    started_at: float
    startup: ProbeState | None
    liveness: ProbeState | None
    readiness: ProbeState | None

    @property
    def started(self) -> bool:
        """Whether the startup probe (if any) has passed: the container is ``started``
        and its other probes run."""
        return self.startup is None or self.startup.passing

    @property
    def ready(self) -> bool:
        """Whether the container counts as ready (no readiness probe: once started)."""
        if not self.started:
            return False
        return self.readiness is None or self.readiness.passing

    @property
    def failed(self) -> ProbeKind | None:
        """Which probe says the container must be restarted: liveness after
        ``failureThreshold`` failures, or a startup probe that gave up."""
        if self.startup is not None and not self.startup.passing:
            if self.startup.failures >= self.startup.spec.failure_threshold:
                return "startup"
            return None
        if self.liveness is not None and not self.liveness.passing:
            return "liveness"
        return None

    def active(self) -> tuple[ProbeState, ...]:
        """The probes that run now: the startup probe until it passes, then the others."""
        if not self.started:
            return (self.startup,) if self.startup is not None else ()
        return tuple(p for p in (self.liveness, self.readiness) if p is not None)

    def due(self, now: float) -> tuple[ProbeKind, ...]:
        return tuple(p.spec.kind for p in self.active() if p.next_at <= now + 1e-6)

    def next_at(self) -> float | None:
        """When the earliest active probe runs next (None: no probes to run)."""
        times = [p.next_at for p in self.active()]
        return min(times) if times else None

    def with_outcome(self, kind: ProbeKind, success: bool, now: float) -> ContainerProbes:
        """The probes after ``kind`` answered ``success`` at ``now``. When the startup
        probe passes, liveness and readiness begin (after their initial delay, counted
        from the container's start)."""
        state = getattr(self, kind)
        assert state is not None, kind
        new = attrs.evolve(self, **{kind: observe(state, success, now)})
        if kind == "startup" and new.started and not self.started:
            new = attrs.evolve(
                new,
                liveness=_restart_clock(new.liveness, self.started_at, now),
                readiness=_restart_clock(new.readiness, self.started_at, now),
            )
        return new


def _restart_clock(state: ProbeState | None, started_at: float, now: float) -> ProbeState | None:
    if state is None:
        return None
    return attrs.evolve(state, next_at=max(now, started_at + state.spec.initial_delay))


def new_container_probes(
    container: Container, container_id: str, started_at: float
) -> ContainerProbes:
    """Fresh probe states for a container that started at ``started_at``: liveness
    passing, readiness and startup not yet; each first runs after its initial delay."""

    def make(kind: ProbeKind, probe: Probe | None, passing: bool) -> ProbeState | None:
        if probe is None:
            return None
        spec = ProbeSpec.of(kind, probe)
        return ProbeState(spec, passing, started_at + spec.initial_delay)

    return ContainerProbes(
        container_id=container_id,
        started_at=started_at,
        startup=make("startup", container.startup_probe, False),
        liveness=make("liveness", container.liveness_probe, True),
        readiness=make("readiness", container.readiness_probe, False),
    )
