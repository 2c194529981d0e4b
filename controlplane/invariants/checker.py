"""The invariant checker: safety checks run after every store change, liveness
conditions with deadlines, and the record of what held and what did not.

:class:`InvariantChecker` registers itself as a store observer (``Store.add_observer``)
while :meth:`InvariantChecker.run` runs, so every check sees every committed write, in
revision order, synchronously -- no change can slip between two checks, and a check reads
exactly the state that write produced. Checks never raise into the write path: an
exception from a check is recorded as a violation of that check.

Liveness ("eventually within T") needs time to pass without changes, so ``run`` owns one
timer loop over a heap of deadlines (no polling): it sleeps until the earliest deadline or
until a new, earlier one is added.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from controlplane.invariants.builtin import BuiltinChecks
from controlplane.invariants.convergence import await_convergence
from controlplane.invariants.watchaudit import WatchAuditor
from controlplane.store.history import Change

__all__ = ["InvariantChecker", "Violation"]

log = structlog.get_logger(__name__)

#: At most this many :class:`Violation` objects are kept per invariant (all are counted).
MAX_RECORDED = 100


@attrs.frozen
class Violation:
    """One time an invariant did not hold.

    ``at`` is the virtual time, ``revision`` the store revision of the violating change
    (for a liveness deadline: the revision when the deadline passed); ``kind`` and
    ``name`` (``namespace/name``) name the object of that change or the one at fault.
    """

    invariant: str
    at: float
    revision: int
    message: str
    kind: str = ""
    name: str = ""


@attrs.define
class _Record:
    """The running tally of one invariant."""

    kind: str  # "builtin" | "user" | "eventually" | "convergence"
    count: int = 0
    first: Violation | None = None
    pending: bool = False  # a liveness condition still waiting for its deadline


@attrs.define(eq=False)
class _Eventually:
    name: str
    condition: Callable[[Any], bool]
    start: float
    deadline: float
    done: bool = False


class InvariantChecker:
    """Checks invariants of ``cluster`` after every store change while :meth:`run` runs.

    Args:
        cluster: a :class:`controlplane.cluster.Cluster` (reads ``store``, ``machines``,
            ``request``, ``settle``).
        builtin: check the built-in invariants (:mod:`controlplane.invariants.builtin`,
            listed in :data:`BUILTIN`).
        faults: a callable telling whether a fault is active now (e.g. from the chaos
            runner); :meth:`faults_active` sets the same thing imperatively. Store
            faults (``cluster.chaos.store_fault``) count as active faults by themselves.
            While a fault is active, ``rollout-availability`` is not enforced and
            ``endpoints-match`` deadlines are deferred.
        endpoints_bound: virtual seconds after the last relevant change within which a
            Service's Endpoints must list exactly its ready pods.
        orphan_bound: virtual seconds a pod may stay bound to a node that does not exist
            (PodGC collects after a 40 s quarantine on a 20 s period; 120 s leaves room).
        watch_kinds: kinds the watch auditor follows with real watches.
    """

    def __init__(
        self,
        cluster: Any,
        *,
        builtin: bool = True,
        faults: Callable[[], bool] | None = None,
        endpoints_bound: float = 5.0,
        orphan_bound: float = 120.0,
        watch_kinds: tuple[str, ...] = ("Pod",),
    ) -> None:
        if endpoints_bound <= 0 or orphan_bound <= 0:
            raise ValueError("endpoints_bound and orphan_bound must be > 0")
        self.cluster = cluster
        self._store = cluster.store
        self._fault_source = faults
        self._faults_flag = False
        self.violations: list[Violation] = []
        self._records: dict[str, _Record] = {}
        self._checks: dict[str, Callable[[Any], str | None]] = {}
        self._eventually: list[_Eventually] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._running = False
        #: changes observed (one per store revision while running)
        self.changes_checked = 0
        self._builtin: BuiltinChecks | None = None
        self._auditor: WatchAuditor | None = None
        if builtin:
            self._builtin = BuiltinChecks(
                self,
                endpoints_bound=endpoints_bound,
                orphan_bound=orphan_bound,
            )
            self._auditor = WatchAuditor(self, watch_kinds)
            for name in self._builtin.names + self._auditor.names:
                self._records[name] = _Record("builtin")

    # ----- registration ----------------------------------------------------------------

    def add(self, name: str, check: Callable[[Any], str | None]) -> None:
        """Check ``check(cluster)`` after every store change: it returns a message saying
        what is wrong, or None if the invariant holds.

        Raises:
            ValueError: ``name`` is already an invariant of this checker.
        """
        self._claim(name, "user")
        self._checks[name] = check

    def eventually(
        self,
        name: str,
        condition: Callable[[Any], bool],
        *,
        within: float,
        after: float | None = None,
    ) -> None:
        """A liveness condition: ``condition(cluster)`` must be true at some store change
        (or at the deadline) between ``after`` (a trio time; default now) and
        ``after + within``. It is checked on every change in that window and once at the
        deadline; if it never held, a violation is recorded at the deadline.

        Raises:
            ValueError: a negative ``within`` or a duplicate ``name``.
        """
        if within < 0:
            raise ValueError(f"eventually {name!r}: within must be >= 0, got {within}")
        self._claim(name, "eventually")
        start = trio.current_time() if after is None else after
        item = _Eventually(name, condition, start, start + within)
        self._records[name].pending = True
        self._eventually.append(item)
        if start > trio.current_time():
            self.schedule(start, lambda: self._check_eventually(item))
        else:
            self._check_eventually(item)
        self.schedule(item.deadline, lambda: self._eventually_deadline(item))

    def expect_convergence(self, *, within: float, traffic: bool = True) -> None:
        """After heal-all: within ``within`` virtual seconds the cluster must converge
        (every Deployment complete, every ReplicaSet/RC's pods ready, no pending pod
        that a Ready node could fit) and, if ``traffic``, a request to each Service
        port that has ready endpoints must succeed (ports nobody listens on, answered
        with ConnectionRefused, are skipped). Recorded as invariant ``convergence``
        (``convergence-2``... for later calls).

        Raises:
            RuntimeError: :meth:`run` is not running (the check needs its nursery).
            ValueError: a negative ``within``.
        """
        if within < 0:
            raise ValueError(f"expect_convergence: within must be >= 0, got {within}")
        if self._nursery is None:
            raise RuntimeError("expect_convergence needs InvariantChecker.run() running")
        name = "convergence"
        n = 1
        while name in self._records:
            n += 1
            name = f"convergence-{n}"
        self._claim(name, "convergence")
        self._records[name].pending = True
        self._nursery.start_soon(
            await_convergence, self, name, trio.current_time() + within, traffic
        )

    def faults_active(self, active: bool) -> None:
        """Tell the checker whether a fault is active now (the chaos runner calls this
        as it injects and heals); see the class docstring for what it relaxes."""
        self._faults_flag = active

    @property
    def in_fault(self) -> bool:
        """Whether a fault is active now (flag, callable or store faults)."""
        if self._faults_flag or self._store.faults.active:
            return True
        return self._fault_source is not None and bool(self._fault_source())

    def _claim(self, name: str, kind: str) -> None:
        if not name:
            raise ValueError("an invariant needs a non-empty name")
        if name in self._records:
            raise ValueError(f"invariant {name!r} is already registered")
        self._records[name] = _Record(kind)

    # ----- results ---------------------------------------------------------------------

    def report(
        self,
        invariant: str,
        message: str,
        *,
        change: Change | None = None,
        kind: str = "",
        name: str = "",
    ) -> Violation:
        """Record a violation of ``invariant`` (for checks; tests rarely need this)."""
        if change is not None:
            meta = change.new.metadata
            kind = kind or change.kind
            name = name or (f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name)
            revision = change.revision
        else:
            revision = self._store.revision
        violation = Violation(invariant, trio.current_time(), revision, message, kind, name)
        record = self._records.get(invariant)
        if record is None:
            record = self._records[invariant] = _Record("builtin")
        record.count += 1
        if record.first is None:
            record.first = violation
            log.warning(
                "invariant_violated",
                component="invariants",
                invariant=invariant,
                revision=revision,
                message=message,
            )
        if record.count <= MAX_RECORDED:
            self.violations.append(violation)
        return violation

    def resolve(self, name: str) -> None:
        """Mark liveness condition ``name`` as satisfied (no longer pending)."""
        self._records[name].pending = False

    def held(self) -> dict[str, bool]:
        """Each invariant's name and whether it held so far (a liveness condition whose
        deadline has not passed yet counts as held)."""
        return {name: record.count == 0 for name, record in self._records.items()}

    def first_violation(self) -> Violation | None:
        """The earliest violation of any invariant, or None."""
        return self.violations[0] if self.violations else None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: per invariant ``held``, ``violations`` (count),
        ``pending`` (liveness not decided yet) and ``first`` (the first violation as a
        dict); plus the number of changes checked and the first violation overall."""
        invariants: dict[str, Any] = {}
        for name, record in self._records.items():
            invariants[name] = {
                "type": record.kind,
                "held": record.count == 0,
                "violations": record.count,
                "pending": record.pending,
                "first": attrs.asdict(record.first) if record.first else None,
            }
        first = self.first_violation()
        return {
            "changes_checked": self.changes_checked,
            "violations": sum(r.count for r in self._records.values()),
            "held": all(r.count == 0 for r in self._records.values()),
            "first_violation": attrs.asdict(first) if first else None,
            "invariants": invariants,
        }

    # ----- the actor -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Observe every store change and run the deadline timers until cancelled.

        Reads the current state first (indexes for the incremental checks), so it can
        start on a cluster that already has objects. Only one ``run`` at a time.

        Raises:
            RuntimeError: ``run`` is already running.
        """
        if self._running:
            raise RuntimeError("InvariantChecker.run() is already running")
        self._running = True
        store = self._store
        if self._builtin is not None:
            self._builtin.seed(store)
        store.add_observer(self._on_change)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._auditor is not None:
                    self._auditor.start(nursery, store.revision)
                task_status.started()
                await self._timer_loop()
        finally:
            store.remove_observer(self._on_change)
            self._nursery = None
            self._running = False

    def schedule(self, deadline: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (sync) at virtual time ``deadline`` from :meth:`run`."""
        heap = self._heap
        if not heap or deadline < heap[0][0]:
            self._wake.set()
        heapq.heappush(heap, (deadline, next(self._seq), callback))

    async def _timer_loop(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, callback = heapq.heappop(heap)
                self._guarded("timer", callback)
            self._wake = trio.Event()
            if heap:
                with trio.move_on_at(heap[0][0]):
                    await self._wake.wait()
            else:
                await self._wake.wait()

    def _guarded(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # a check must never break the write path
            self.report(name, f"check raised {type(exc).__name__}: {exc}")
            return None

    def _on_change(self, change: Change) -> None:
        """The store observer: every builtin and user check, then the pending liveness
        conditions. Never raises (see :meth:`_guarded`)."""
        self.changes_checked += 1
        if self._builtin is not None:
            try:
                self._builtin.on_change(change)
            except Exception as exc:
                self.report("builtin", f"check raised {type(exc).__name__}: {exc}", change=change)
            if self._auditor is not None:
                self._auditor.on_change(change)
        cluster = self.cluster
        for name, check in self._checks.items():
            try:
                message = check(cluster)
            except Exception as exc:
                message = f"check raised {type(exc).__name__}: {exc}"
            if message:
                self.report(name, message, change=change)
        if self._eventually:
            now = trio.current_time()
            for item in tuple(self._eventually):
                if item.start <= now:
                    self._check_eventually(item)

    def _check_eventually(self, item: _Eventually) -> None:
        if item.done:
            return
        try:
            ok = bool(item.condition(self.cluster))
        except Exception as exc:
            item.done = True
            self._eventually.remove(item)
            self._records[item.name].pending = False
            self.report(item.name, f"condition raised {type(exc).__name__}: {exc}")
            return
        if ok:
            item.done = True
            self._eventually.remove(item)
            self._records[item.name].pending = False

    def _eventually_deadline(self, item: _Eventually) -> None:
        self._check_eventually(item)
        if item.done:
            return
        item.done = True
        self._eventually.remove(item)
        self._records[item.name].pending = False
        within = item.deadline - item.start
        self.report(item.name, f"did not hold within {within:g}s")
