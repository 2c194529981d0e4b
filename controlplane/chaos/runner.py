"""``ChaosRunner``: play a :class:`~controlplane.chaos.schedule.Schedule` on a cluster.

One task and one timer at a time: the runner sleeps until the next event (an injection
at its ``at``, or the heal of an earlier fault ``duration`` seconds after it), acts, and
records every injection as an :class:`InjectedFault`. Targets are drawn when a fault is
injected, from the runner's seeded rng (``Random(f"{cluster.seed}:chaos")`` by default),
so the same seed, cluster and schedule replay the same faults under ``MockClock``.

A fault whose target matches nothing is recorded with outcome ``no-target``; one the
cluster refuses (a container that is not running, a store error while draining) with
outcome ``failed`` and the error's message. Neither stops the run: chaos does not crash
on what chaos caused.
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Literal

import attrs
import structlog
import trio

from actors.errors import ActorError
from controlplane import errors
from controlplane.chaos.kinds import FAULT_KINDS, Heal, candidates
from controlplane.chaos.schedule import Fault, Schedule
from controlplane.chaos.targets import select_targets
from runtime.cri import RuntimeError_

__all__ = ["FAULT_KINDS", "ChaosRunner", "InjectedFault"]

log = structlog.get_logger(__name__)

#: What an injection may fail with without failing the run (the cluster said no).
INJECTION_ERRORS = (errors.ApiError, RuntimeError_, ActorError)

Outcome = Literal["injected", "no-target", "failed"]


@attrs.frozen
class InjectedFault:
    """One fault as it happened. ``at`` and ``healed_at`` are trio times (virtual
    seconds, the clock invariant violations are stamped with); ``healed_at`` is None
    while the fault lasts, and equals ``at`` for instant kinds, heal-all and faults
    that hit nothing or failed. ``targets``: node names or ``namespace/name`` pods."""

    fault: Fault
    at: float
    targets: tuple[str, ...]
    healed_at: float | None
    outcome: Outcome = "injected"
    message: str = ""


class ChaosRunner:
    """Injects a schedule's faults into ``cluster`` and heals them.

    Args:
        cluster: a running :class:`~controlplane.cluster.Cluster` (uses ``chaos`` and
            ``seed``).
        schedule: what to inject; validated here.
        rng: where target draws come from (default ``Random(f"{cluster.seed}:chaos")``).

    Raises:
        ScheduleError: the schedule is invalid (before anything runs).
    """

    def __init__(
        self, cluster: Any, schedule: Schedule, *, rng: random.Random | None = None
    ) -> None:
        schedule.validate()
        self._cluster = cluster
        self._chaos = cluster.chaos
        self.schedule = schedule
        self.rng = rng if rng is not None else random.Random(f"{cluster.seed}:chaos")
        self.injected: list[InjectedFault] = []
        self.started_at: float | None = None
        self._heals: dict[int, Heal] = {}  # index into `injected` -> its heal
        self._log = log.bind(component="chaos")

    def outstanding(self) -> list[InjectedFault]:
        """The faults injected and not healed yet."""
        return [entry for entry in self.injected if entry.healed_at is None]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Play the schedule from now: returns after its last event (normally the final
        heal-all). Faults without a duration stay until a heal-all; if the schedule has
        none they are still in place when this returns."""
        start = self.started_at = trio.current_time()
        # (when, heals before injections at one instant, sequence, action, index)
        events: list[tuple[float, int, int, str, int]] = []
        for seq, (index, fault) in enumerate(
            sorted(enumerate(self.schedule.faults), key=lambda item: item[1].at)
        ):
            events.append((start + fault.at, 1, seq, "inject", index))
        heapq.heapify(events)
        seq = len(events)
        task_status.started()
        while events:
            when, _, _, action, index = heapq.heappop(events)
            await trio.sleep_until(when)
            if action == "heal":
                await self._heal(index)
                continue
            fault = self.schedule.faults[index]
            entry = await self._inject(fault)
            if entry in self._heals and fault.duration is not None:
                seq += 1
                heapq.heappush(
                    events, (trio.current_time() + fault.duration, 0, seq, "heal", entry)
                )

    async def _inject(self, fault: Fault) -> int:
        now = trio.current_time()
        kind = FAULT_KINDS[fault.kind]
        spec = kind.spec
        params = spec.resolved(fault.params)
        targets: tuple[str, ...] = ()
        if spec.target != "none":
            pods = spec.target == "pods" or (
                fault.target is not None and fault.target.namespace is not None
            )
            namespace = fault.target.namespace if fault.target is not None else None
            pool = candidates(self._chaos, pods=pods, namespace=namespace)
            targets = select_targets(fault.target, pool, self.rng)
            if not targets:
                self._log.info("fault_no_target", kind=fault.kind)
                return self._record(InjectedFault(fault, now, (), now, "no-target"))
        try:
            heal = await kind.inject(self._chaos, targets, params)
        except INJECTION_ERRORS as exc:
            self._log.info("fault_failed", kind=fault.kind, targets=targets, error=str(exc))
            return self._record(InjectedFault(fault, now, targets, now, "failed", str(exc)))
        self._log.info("fault_injected", kind=fault.kind, targets=targets)
        if fault.kind == "heal-all":
            self._healed_all(now)
        if heal is None:
            return self._record(InjectedFault(fault, now, targets, now))
        index = self._record(InjectedFault(fault, now, targets, None))
        self._heals[index] = heal
        return index

    def _record(self, entry: InjectedFault) -> int:
        self.injected.append(entry)
        return len(self.injected) - 1

    def _healed_all(self, now: float) -> None:
        for index in list(self._heals):
            self.injected[index] = attrs.evolve(self.injected[index], healed_at=now)
        self._heals.clear()

    async def _heal(self, index: int) -> None:
        heal = self._heals.pop(index, None)
        if heal is None:
            await trio.lowlevel.checkpoint()
            return  # healed by a heal-all meanwhile
        entry = self.injected[index]
        try:
            await heal()
        except INJECTION_ERRORS as exc:
            # left outstanding: the next heal-all ends it
            self._heals[index] = heal
            self.injected[index] = attrs.evolve(entry, message=f"heal failed: {exc}")
            self._log.info("fault_heal_failed", kind=entry.fault.kind, error=str(exc))
            return
        self.injected[index] = attrs.evolve(entry, healed_at=trio.current_time())
        self._log.info("fault_healed", kind=entry.fault.kind, targets=entry.targets)
