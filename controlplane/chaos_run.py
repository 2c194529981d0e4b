"""Run one chaos scenario in virtual time and record what happened: :func:`run_scenario`.

The run: open a cluster from the scenario's seed, apply the workload, wait until it is up,
then start the invariant checker, the traffic, a sampler (the timeline's data) and a
convergence tracker, and let the :class:`~controlplane.chaos.runner.ChaosRunner` play
the schedule to its final heal-all. After it, the cluster must converge (desired =
observed) within the scenario's bound and traffic through every Service must succeed
again. Everything lands in a frozen :class:`RunResult` that the report, the timeline,
the campaign, the shrinker and the benchmark read. Times in it are virtual seconds from
the moment the chaos started.

The CLI calls this under ``trio.run(..., clock=MockClock(autojump_threshold=0))``; the
same seed, scenario and schedule give the same result, history digest included.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import structlog
import trio

from controlplane.api.frozen import FrozenDict, freeze
from controlplane.chaos import ChaosRunner, ScheduleError, generate_schedule, select_targets
from controlplane.chaos.kinds import FAULT_KINDS, candidates
from controlplane.chaos_scenario import Scenario, TrafficSpec
from controlplane.cluster import open_cluster
from controlplane.controllers.pods import is_ready
from controlplane.invariants import InvariantChecker
from controlplane.traffic import LoadGenerator, Sample

__all__ = [
    "FaultRecord",
    "Recovery",
    "RunResult",
    "TimelineSample",
    "TrafficBin",
    "TrafficSummary",
    "ViolationRecord",
    "bin_requests",
    "check_targets",
    "convergence_gaps",
    "fault_recoveries",
    "run_scenario",
    "traffic_recovery",
]

log = structlog.get_logger(__name__)

#: Requests sent this long after the cluster converged must all succeed: kube-proxy
#: applies a new endpoint set within its 1 s minimum sync period, plus slack.
PROXY_GRACE = 5.0
#: How long traffic keeps flowing after convergence, to show it succeeds again.
TRAFFIC_TAIL = 30.0
#: A fault that left the cluster converged from its injection until this long after its
#: heal had no visible impact: its recovery time is 0.
IMPACT_GRACE = 60.0
#: Timeline resolution when the scenario does not set ``sample_every``: about 240
#: samples per run, never finer than a second.
SAMPLES_PER_RUN = 240


@attrs.frozen
class FaultRecord:
    """One injected fault: kind, when (s from the chaos start), what it hit, when healed
    (None: still active at the end), and the runner's outcome: ``injected``,
    ``no-target`` (nothing matched when it came) or ``failed`` (``message`` says why)."""

    kind: str
    at: float
    targets: tuple[str, ...]
    healed_at: float | None
    duration: float | None = None
    outcome: str = "injected"
    message: str = ""


@attrs.frozen
class ViolationRecord:
    """An invariant broken at ``at`` (s from the chaos start) at store ``revision``."""

    invariant: str
    at: float
    revision: int
    message: str


@attrs.frozen
class Recovery:
    """How long the cluster took to heal after fault ``index`` (into ``faults``) was
    lifted: to converge again (None: not before the run ended), and to serve every
    Service's traffic again (None: requests still failed when the next fault came,
    ``traffic_window`` seconds after the heal, or when the run ended)."""

    index: int
    kind: str
    healed_at: float
    converged_after: float | None
    traffic_after: float | None
    traffic_window: float = 0.0


@attrs.frozen
class TimelineSample:
    """The cluster at one instant: pods by phase (``Terminating`` counted apart), ready
    endpoint addresses per Service (``namespace/name``), Ready nodes, faults active."""

    at: float
    pods: FrozenDict[str, int]
    endpoints: FrozenDict[str, int]
    nodes_ready: int
    active_faults: int


@attrs.frozen
class TrafficBin:
    """Requests sent in ``[at, at + width)`` and how many of them succeeded/failed."""

    at: float
    width: float
    ok: int
    failed: int


@attrs.frozen
class TrafficSummary:
    """One traffic stream's totals."""

    target: str
    rate: float
    sent: int
    ok: int
    failed: int
    errors: FrozenDict[str, int]
    p50: float | None
    p99: float | None


@attrs.frozen(kw_only=True)
class RunResult:
    """Everything one run recorded (times: virtual seconds from the chaos start).

    ``schedule`` is the ``Schedule`` played (generated or given: ``schedule_given``);
    ``invariants`` maps each checked invariant to whether it held; ``violations`` are in
    the order found; ``checked`` is False when no invariant checker was available (the
    report says so); ``heal_all_at`` is when the final heal-all ran and
    ``converged_after`` how long after it the cluster converged (None: not within
    ``converge_within``); ``digest`` is the store's history digest.
    """

    scenario: str
    seed: int
    duration: float
    nodes: int
    schedule: Any
    schedule_given: bool
    faults: tuple[FaultRecord, ...]
    invariants: FrozenDict[str, bool]
    violations: tuple[ViolationRecord, ...]
    checked: bool
    checker_summary: FrozenDict[str, Any]
    traffic: tuple[TrafficSummary, ...]
    traffic_bins: tuple[TrafficBin, ...]
    recoveries: tuple[Recovery, ...]
    heal_all_at: float
    converge_within: float
    converged_after: float | None
    not_converged: tuple[str, ...]
    traffic_recovered_after: float | None
    samples: tuple[TimelineSample, ...]
    digest: str
    wall_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """An invariant was violated."""
        return bool(self.violations)

    @property
    def first_violation(self) -> ViolationRecord | None:
        return min(self.violations, key=lambda v: (v.at, v.revision), default=None)


# ----- pure decisions ----------------------------------------------------------------


def convergence_gaps(
    *,
    nodes: Iterable[Any],
    workloads: Iterable[tuple[Any, Any]],
    services: Iterable[tuple[Any, Any, Sequence[Any]]],
    first_only: bool = False,
) -> list[str]:
    """Why the cluster has not converged (desired != observed); empty when it has.

    Args:
      nodes: every Node (each must be Ready).
      workloads: ``(desired, stored)`` pairs for the scenario's replicated workloads
        (Deployment, ReplicaSet, ReplicationController, StatefulSet): the stored one
        must have observed its generation and have exactly ``spec.replicas`` pods, all
        ready (a Deployment's all updated and available). ``stored`` None: deleted.
      services: ``(service, endpoints, pods)`` for the scenario's Services with a
        selector: the ready endpoint addresses must be exactly the ready, non-terminating
        ``pods`` matching the selector.
      first_only: stop at the first gap (the iterables are consumed lazily, so a
        caller that only needs a yes/no pays for no more than that).
    """
    gaps: list[str] = []
    for node in nodes:
        if not _node_ready(node):
            gaps.append(f"node {node.metadata.name} not Ready")
            if first_only:
                return gaps
    for desired, stored in workloads:
        if first_only and gaps:
            return gaps
        what = f"{desired.kind} {desired.metadata.namespace or 'default'}/{desired.metadata.name}"
        if stored is None:
            gaps.append(f"{what} is gone")
            continue
        want = stored.spec.replicas if stored.spec.replicas is not None else 1
        status = stored.status
        if status.observed_generation < stored.metadata.generation:
            gaps.append(f"{what}: generation {stored.metadata.generation} not observed yet")
            continue
        ready = getattr(status, "ready_replicas", 0) or 0
        if status.replicas != want or ready != want:
            gaps.append(f"{what}: {ready}/{want} ready, {status.replicas} pods")
            continue
        if desired.kind == "Deployment" and (
            status.updated_replicas != want or status.available_replicas != want
        ):
            gaps.append(
                f"{what}: {status.updated_replicas} updated, {status.available_replicas}"
                f" available of {want}"
            )
    for service, endpoints, pods in services:
        if first_only and gaps:
            return gaps
        what = f"Service {service.metadata.namespace}/{service.metadata.name}"
        want = sorted(
            p.status.pod_ip
            for p in pods
            if p.metadata.deletion_timestamp is None and is_ready(p) and p.status.pod_ip
        )
        have = sorted(
            a.ip for s in (endpoints.subsets if endpoints is not None else ()) for a in s.addresses
        )
        if sorted(set(have)) != sorted(set(want)):
            gaps.append(f"{what}: {len(set(have))} ready endpoints, {len(set(want))} ready pods")
    return gaps


def _node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def bin_requests(
    samples: Iterable[Sample], *, start: float, width: float, count: int
) -> tuple[TrafficBin, ...]:
    """Requests per interval: ``count`` bins of ``width`` seconds from ``start`` (trio
    time), each counting the requests *sent* in it by outcome. Requests sent outside
    the bins are left out."""
    ok = [0] * count
    failed = [0] * count
    for sample in samples:
        index = int((sample.start - start) // width)
        if 0 <= index < count:
            if sample.ok:
                ok[index] += 1
            else:
                failed[index] += 1
    return tuple(TrafficBin(i * width, width, ok[i], failed[i]) for i in range(count))


def traffic_recovery(samples: Sequence[Sample], since: float) -> float | None:
    """Seconds after ``since`` until traffic succeeded again: the send time of the first
    request after the last failure sent since then (0 if none of those failed; None if
    the last one sent failed: it never recovered). ``samples`` in the order sent."""
    last_failure: int | None = None
    after = [s for s in samples if s.start >= since]
    for i, sample in enumerate(after):
        if not sample.ok:
            last_failure = i
    if last_failure is None:
        return 0.0
    if last_failure == len(after) - 1:
        return None
    return max(0.0, after[last_failure + 1].start - since)


def fault_recoveries(
    faults: Sequence[FaultRecord],
    transitions: Sequence[tuple[float, bool]],
    traffic: Sequence[Sequence[Sample]],
    *,
    end: float,
    grace: float = IMPACT_GRACE,
) -> tuple[Recovery, ...]:
    """Per healed fault, how long after its heal the cluster converged and traffic
    succeeded again.

    ``transitions``: ``(time, converged)`` whenever convergence changed, the first one
    the state at the start. A fault during which (from injection to ``grace`` after
    its heal) the cluster never left convergence had no visible impact: 0. Otherwise
    the recovery ends at the first return to convergence after the heal (None if none
    came before ``end``). Traffic: per stream, as :func:`traffic_recovery` limited to
    requests sent before the next fault's injection; the slowest stream counts.
    """
    recoveries: list[Recovery] = []
    starts = sorted(f.at for f in faults)
    for index, fault in enumerate(faults):
        if fault.healed_at is None or fault.kind == "heal-all" or fault.outcome != "injected":
            continue
        healed = fault.healed_at
        converged_after: float | None
        state_at_injection = _state_at(transitions, fault.at)
        impacted = not state_at_injection or any(
            not state for t, state in transitions if fault.at <= t <= healed + grace
        )
        if not impacted:
            converged_after = 0.0
        else:
            back = next((t for t, state in transitions if state and t > healed), None)
            if (
                back is None
                and _state_at(transitions, healed)
                and not any(not state for t, state in transitions if t > healed)
            ):
                back = healed
            converged_after = None if back is None or back > end else back - healed
        window_end = next((s for s in starts if s > healed), end)
        worst: float | None = 0.0
        for stream in traffic:
            window = [s for s in stream if s.start < window_end]
            took = traffic_recovery(window, healed)
            if took is None:
                worst = None
                break
            worst = max(worst, took)
        recoveries.append(
            Recovery(index, fault.kind, healed, converged_after, worst, window_end - healed)
        )
    return tuple(recoveries)


def _state_at(transitions: Sequence[tuple[float, bool]], at: float) -> bool:
    state = transitions[0][1] if transitions else True
    for t, value in transitions:
        if t > at:
            break
        state = value
    return state


def check_targets(schedule: Any, chaos: Any) -> None:
    """Refuse a schedule naming targets that do not exist: every fault whose target
    gives ``names`` or a ``selector`` must match at least one node or pod now (when the
    workload is up, before the first fault), and a ``controller-crash`` must name a
    controller the cluster runs.

    Raises:
        ScheduleError: naming the first such entry (``faults[2].target: ...``).
    """
    for index, fault in enumerate(schedule.faults):
        controller = fault.params.get("controller") if fault.kind == "controller-crash" else None
        manager = chaos.controller_manager
        if controller is not None and (manager is None or controller not in manager.names):
            known = ", ".join(manager.names) if manager is not None else "none"
            raise ScheduleError(
                f"faults[{index}].params.controller: the cluster runs no controller"
                f" {controller!r}; it runs: {known}"
            )
        target = fault.target
        if target is None or not (target.names or target.selector):
            continue
        spec = FAULT_KINDS[fault.kind].spec
        pods = spec.target == "pods" or target.namespace is not None
        pool = candidates(chaos, pods=pods, namespace=target.namespace)
        everything = attrs.evolve(target, mode="all", value=None)
        if not select_targets(everything, pool, random.Random(0)):
            what = "pod" if pods else "node"
            where = f" in namespace {target.namespace}" if target.namespace else ""
            criteria = ", ".join(
                part
                for part in (
                    f"names {list(target.names)}" if target.names else "",
                    f"selector {target.selector!r}" if target.selector else "",
                )
                if part
            )
            raise ScheduleError(
                f"faults[{index}].target: no running {what}{where} matches {criteria}"
            )


def default_sample_every(duration: float) -> float:
    """About :data:`SAMPLES_PER_RUN` samples over the chaos and its recovery, at least 1 s."""
    return max(1.0, round(duration / SAMPLES_PER_RUN))


# ----- the run -----------------------------------------------------------------------

_REPLICATED = frozenset({"Deployment", "ReplicaSet", "ReplicationController", "StatefulSet"})


class _Observer:
    """Reads the cluster's convergence and timeline numbers from the store."""

    def __init__(self, cluster: Any, scenario: Scenario) -> None:
        self._cluster = cluster
        self._workloads = [o for o in scenario.workload if type(o).kind in _REPLICATED]
        self._services = [
            o for o in scenario.workload if type(o).kind == "Service" and o.spec.selector
        ]
        self._selectors = {
            id(s): ",".join(f"{k}={v}" for k, v in sorted(s.spec.selector.items()))
            for s in self._services
        }

    def _ns(self, obj: Any) -> str:
        return obj.metadata.namespace or "default"

    def gaps(self, *, first_only: bool = False) -> list[str]:
        c = self._cluster
        return convergence_gaps(
            nodes=c.list_nowait("Node"),
            workloads=(
                (w, c.get_nowait(type(w).kind, w.metadata.name, namespace=self._ns(w)))
                for w in self._workloads
            ),
            services=(
                (
                    s,
                    c.get_nowait("Endpoints", s.metadata.name, namespace=self._ns(s)),
                    c.list_nowait(
                        "Pod", namespace=self._ns(s), label_selector=self._selectors[id(s)]
                    ),
                )
                for s in self._services
            ),
            first_only=first_only,
        )

    def converged(self) -> bool:
        return not self.gaps(first_only=True)

    def sample(self, at: float, active_faults: int) -> TimelineSample:
        c = self._cluster
        phases: Counter[str] = Counter()
        for pod in c.list_nowait("Pod"):
            if pod.metadata.deletion_timestamp is not None:
                phases["Terminating"] += 1
            else:
                phases[pod.status.phase or "Pending"] += 1
        endpoints = {}
        for s in self._services:
            key = f"{self._ns(s)}/{s.metadata.name}"
            e = c.get_nowait("Endpoints", s.metadata.name, namespace=self._ns(s))
            endpoints[key] = sum(len(sub.addresses) for sub in e.subsets) if e else 0
        ready = sum(1 for n in c.list_nowait("Node") if _node_ready(n))
        return TimelineSample(
            at, freeze(dict(sorted(phases.items()))), freeze(endpoints), ready, active_faults
        )


#: The kinds whose writes can change convergence (a Lease renewal cannot).
_CONVERGENCE_KINDS = frozenset({"Node", "Pod", "Endpoints", *_REPLICATED})


class _ConvergenceTracker:
    """Records each change of "converged" as it happens: re-checked after every store
    write of a kind that matters (a store observer marks it dirty; ``Store.wait_until``
    wakes on the write), never on a timer."""

    def __init__(self, cluster: Any, observer: _Observer) -> None:
        self._store = cluster.store
        self._observer = observer
        self._dirty = True
        self.transitions: list[tuple[float, bool]] = []

    def _on_change(self, change: Any) -> None:
        if change.kind in _CONVERGENCE_KINDS:
            self._dirty = True

    def _flipped(self, state: bool) -> tuple[bool] | None:
        """``(new state,)`` if it differs from ``state`` (truthy even when the new state
        is False); None while unchanged."""
        if not self._dirty:
            return None
        self._dirty = False
        now = self._observer.converged()
        return (now,) if now != state else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        state = self._observer.converged()
        self._dirty = False
        self.transitions.append((trio.current_time(), state))
        self._store.add_observer(self._on_change)
        try:
            task_status.started()
            while True:
                (state,) = await self._store.wait_until(functools.partial(self._flipped, state))
                self.transitions.append((trio.current_time(), state))
        finally:
            self._store.remove_observer(self._on_change)


class _Sampler:
    """A timer: every ``every`` virtual seconds, one :class:`TimelineSample` (and a
    progress callback, if given)."""

    def __init__(
        self,
        observer: _Observer,
        every: float,
        active: Callable[[], int],
        progress: Callable[[float, float], None] | None,
        duration: float,
    ) -> None:
        self._observer = observer
        self._every = every
        self._active = active
        self._progress = progress
        self._duration = duration
        self.samples: list[TimelineSample] = []

    async def run(
        self, t0: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        tick = 0
        while True:
            now = trio.current_time()
            self.samples.append(self._observer.sample(now - t0, self._active()))
            if self._progress is not None:
                self._progress(now - t0, self._duration)
            tick += 1
            await trio.sleep_until(t0 + tick * self._every)


async def run_scenario(
    scenario: Scenario,
    *,
    seed: int,
    duration: float | None = None,
    schedule: Any = None,
    progress: Callable[[float, float], None] | None = None,
) -> RunResult:
    """Run ``scenario`` once from ``seed`` and return what happened.

    Args:
      seed: the root of all randomness (the cluster's and the generated schedule's).
      duration: virtual seconds of chaos (default: the schedule's ``duration``, else
        its last fault's ``at`` for a given schedule, else the scenario's).
      schedule: a ``Schedule`` to play (default: the scenario's inline one, else one
        generated from ``seed``, ``duration`` and the scenario's intensity and mix).
      progress: called with (virtual seconds done, total) at every timeline sample.

    Raises:
      controlplane.chaos.schedule.ScheduleError: the schedule does not fit the cluster
        (a target that matches nothing); nothing ran yet.
      TimeoutError: the workload did not come up within ``scenario.ready_within``.
    """
    given = schedule is not None or scenario.schedule is not None
    if schedule is None:
        schedule = scenario.schedule
    if duration is None:
        if schedule is None:
            duration = scenario.duration
        elif schedule.duration is not None:
            duration = schedule.duration
        else:  # a hand-written schedule: it lasts until its last fault
            duration = max((f.at for f in schedule.faults), default=scenario.duration)
    if schedule is None:
        schedule = generate_schedule(
            seed=seed,
            duration=duration,
            mix=dict(scenario.mix) if scenario.mix is not None else None,
            intensity=scenario.intensity,
            namespace=scenario.fault_namespace,
        )
    every = scenario.sample_every or default_sample_every(duration)
    log.info("chaos_run_started", scenario=scenario.name, seed=seed, duration=duration)
    async with open_cluster(
        nodes=scenario.nodes, seed=seed, node_template=scenario.node_template
    ) as cluster:
        observer = _Observer(cluster, scenario)
        await cluster.apply(list(scenario.workload))
        await cluster.wait_for(
            observer.converged,
            timeout=scenario.ready_within,
            description=f"the workload to come up ({'; '.join(observer.gaps())})",
        )
        await cluster.settle()
        check_targets(schedule, cluster.chaos)
        runner = ChaosRunner(cluster, schedule, rng=random.Random(f"{seed}:chaos"))

        def faults_active() -> bool:
            return any(f.healed_at is None for f in runner.injected)

        checker = InvariantChecker(
            cluster, builtin=scenario.enabled("builtin"), faults=faults_active
        )
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            await nursery.start(checker.run)
            tracker = _ConvergenceTracker(cluster, observer)
            await nursery.start(tracker.run)
            generators = [_generator(cluster, spec) for spec in scenario.traffic]
            for generator in generators:
                await nursery.start(generator.run)

            def active() -> int:
                return sum(1 for f in runner.injected if f.healed_at is None)

            sampler = _Sampler(observer, every, active, progress, duration)
            await nursery.start(sampler.run, t0)
            await runner.run()
            heal_alls = [f.at for f in runner.injected if f.fault.kind == "heal-all"]
            heal_all_at = (heal_alls[-1] if heal_alls else trio.current_time()) - t0
            deadline = t0 + heal_all_at + scenario.converge_within
            liveness = None
            liveness_deadline = trio.current_time() + scenario.converge_within
            if scenario.enabled("converges"):
                liveness = _expect_convergence(checker, scenario)
            converged_after: float | None = None
            checked_at = trio.current_time()
            with trio.move_on_at(deadline):
                await cluster.store.wait_until(observer.converged)
                at = trio.current_time()
                if at == checked_at:  # converged already: since its last transition
                    at = max((t for t, state in tracker.transitions if state), default=at)
                converged_after = max(0.0, at - t0 - heal_all_at)
            not_converged = tuple(observer.gaps()) if converged_after is None else ()
            if liveness is not None:
                # the checker's own verdict: wait for it (to its deadline at most)
                with trio.move_on_at(liveness_deadline + 1):
                    await cluster.store.wait_until(liveness)
            if generators:
                await trio.sleep(TRAFFIC_TAIL)
            for generator in generators:
                generator.stop()
            end = trio.current_time() - t0
            # the last samples and the traffic's requests in flight are recorded; stop
            nursery.cancel_scope.cancel()
        violations, held, summary = _checker_findings(checker, t0)
        digest = cluster.history_digest()

    faults = tuple(_fault_record(f, t0) for f in runner.injected)
    streams = [_relative(g.results, t0) for g in generators]
    tail_recovery = _worst_recovery(streams, heal_all_at)
    if scenario.enabled("traffic_recovers") and generators:
        bound = heal_all_at + scenario.converge_within
        late = _late_failures(streams, heal_all_at, converged_after)
        ok = tail_recovery is not None and heal_all_at + tail_recovery <= bound and not late
        held["traffic_recovers"] = ok
        if not ok:
            detail = (
                f"{len(late)} requests failed after the cluster converged (first:"
                f" {late[0].error} at {late[0].start:.1f}s)"
                if late
                else f"requests still failing {scenario.converge_within:g}s after heal-all"
            )
            violations.append(
                ViolationRecord("traffic_recovers", late[0].start if late else bound, 0, detail)
            )
    count = int(end // every) + 1
    result = RunResult(
        scenario=scenario.name,
        seed=seed,
        duration=duration,
        nodes=scenario.nodes,
        schedule=schedule,
        schedule_given=given,
        faults=faults,
        invariants=freeze(held),
        violations=tuple(violations),
        checked=scenario.enabled("builtin"),
        checker_summary=freeze(summary),
        traffic=tuple(
            _summary(g, spec) for g, spec in zip(generators, scenario.traffic, strict=True)
        ),
        traffic_bins=bin_requests(
            [s for stream in streams for s in stream], start=0.0, width=every, count=count
        ),
        recoveries=fault_recoveries(
            faults,
            [(t - t0, state) for t, state in tracker.transitions],
            streams,
            end=end,
        ),
        heal_all_at=heal_all_at,
        converge_within=scenario.converge_within,
        converged_after=converged_after,
        not_converged=not_converged,
        traffic_recovered_after=tail_recovery if generators else None,
        samples=tuple(sampler.samples),
        digest=digest,
    )
    log.info(
        "chaos_run_finished",
        scenario=scenario.name,
        seed=seed,
        faults=len(faults),
        violations=len(result.violations),
    )
    return result


def _generator(cluster: Any, spec: TrafficSpec) -> LoadGenerator:
    return cluster.load_generator(spec.host, spec.port, rate=spec.rate, namespace=spec.namespace)


def _expect_convergence(checker: Any, scenario: Scenario) -> Callable[[], bool]:
    """Ask the checker for its convergence liveness check (desired = observed and, with
    ``traffic_recovers``, a request to every Service answered); return a predicate
    telling when it has decided."""
    before = set(checker.held())
    checker.expect_convergence(
        within=scenario.converge_within, traffic=scenario.enabled("traffic_recovers")
    )
    (name,) = set(checker.held()) - before

    def decided() -> bool:
        return not checker.summary()["invariants"][name]["pending"]

    return decided


def _checker_findings(
    checker: Any, t0: float
) -> tuple[list[ViolationRecord], dict[str, bool], dict[str, Any]]:
    violations = [
        ViolationRecord(v.invariant, v.at - t0, v.revision, v.message) for v in checker.violations
    ]
    return violations, dict(checker.held()), dict(checker.summary())


def _fault_record(injected: Any, t0: float) -> FaultRecord:
    fault = injected.fault
    return FaultRecord(
        kind=fault.kind,
        at=injected.at - t0,
        targets=tuple(injected.targets),
        healed_at=None if injected.healed_at is None else injected.healed_at - t0,
        duration=fault.duration,
        outcome=injected.outcome,
        message=injected.message,
    )


def _relative(samples: Sequence[Sample], t0: float) -> list[Sample]:
    return [attrs.evolve(s, start=s.start - t0) for s in samples]


def _worst_recovery(streams: Sequence[Sequence[Sample]], since: float) -> float | None:
    worst: float | None = 0.0
    for stream in streams:
        took = traffic_recovery(stream, since)
        if took is None:
            return None
        worst = max(worst, took)
    return worst


def _late_failures(
    streams: Sequence[Sequence[Sample]], heal_all_at: float, converged_after: float | None
) -> list[Sample]:
    """Requests that failed though sent well after the cluster converged."""
    if converged_after is None:
        return []
    cutoff = heal_all_at + converged_after + PROXY_GRACE
    return sorted(
        (s for stream in streams for s in stream if s.start >= cutoff and not s.ok),
        key=lambda s: s.start,
    )


def _summary(generator: LoadGenerator, spec: TrafficSpec) -> TrafficSummary:
    stats = generator.statistics()
    return TrafficSummary(
        target=f"{spec.namespace}/{spec.service}:{spec.port}",
        rate=spec.rate,
        sent=stats.sent,
        ok=stats.ok,
        failed=stats.failed,
        errors=freeze(dict(stats.errors)),
        p50=stats.p50,
        p99=stats.p99,
    )
