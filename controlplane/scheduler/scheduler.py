"""The scheduler actor: informers feed the queue and the snapshot; one task schedules.

Wiring (``kube-scheduler``'s ``Scheduler`` + ``eventhandlers.go``):

- a Node informer keeps the snapshot's nodes; a node added, or changed in what scheduling
  reads (allocatable, labels, taints, unschedulable), moves unschedulable pods back;
- one Pod informer over all pods: assigned pods go into the snapshot (confirming an
  assumed one), and their deletion (or reaching Succeeded/Failed) moves unschedulable
  pods back; unassigned pods of this scheduler (``spec.schedulerName``, absent meaning
  ``default-scheduler``) that are not terminating go into the queue. Pods with a preset
  ``spec.nodeName`` are already assigned: not our business, even if that node does not
  exist;
- one task pops a pod, re-reads its current version from the informer cache
  (level-triggered), runs the framework, *assumes* the pod on the chosen node, binds it
  (``pods/binding``) and records a ``Scheduled`` event. When nothing fits, the pod gets
  ``PodScheduled=False`` (reason Unschedulable) and a ``FailedScheduling`` Warning event
  saying why, and goes to the unschedulable queue.

Failures never crash the actor: a bind Conflict or NotFound (the pod was bound, deleted
or re-created meanwhile) drops the assumption and lets the informer tell what happened;
any other API error (TooManyRequests, Timeout from chaos...) drops the assumption and
retries the pod with backoff (reason SchedulerError). Status and event writes are best
effort. No task per pod, no polling: the task sleeps until the informers kick it or the
queue's next backoff deadline.
"""

from __future__ import annotations

import random

import attrs
import structlog
import trio

from controlplane import errors
from controlplane.api.core_node import Node
from controlplane.api.core_pod import Pod, PodCondition
from controlplane.client.informer import Informer
from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkTrackerLike
from controlplane.clock import to_wall
from controlplane.events import EventRecorder
from controlplane.scheduler.framework import FitError, Framework
from controlplane.scheduler.messages import scheduled_message
from controlplane.scheduler.plugins import default_filters, default_scorers
from controlplane.scheduler.queue import QueuedPod, SchedulingQueue
from controlplane.scheduler.snapshot import PodUsage, Snapshot

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler", "SchedulerConfig", "SchedulerStatistics"]

log = structlog.get_logger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"


@attrs.frozen(kw_only=True)
class SchedulerConfig:
    """Tunables, with kube-scheduler's defaults.

    ``percentage_of_nodes_to_score`` 0 is the adaptive default; backoffs are per pod
    (``podInitialBackoffSeconds`` 1, ``podMaxBackoffSeconds`` 10);
    ``max_in_unschedulable`` is ``podMaxInUnschedulablePodsDuration`` (5 min).
    """

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    percentage_of_nodes_to_score: int = attrs.field(
        default=0, validator=[attrs.validators.ge(0), attrs.validators.le(100)]
    )
    pod_initial_backoff: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    pod_max_backoff: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    max_in_unschedulable: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))


@attrs.frozen
class SchedulerStatistics:
    """Counters since the scheduler was built: pods bound, cycles that found no node,
    bind errors, and the queue's current sizes."""

    scheduled: int
    unschedulable: int
    errors: int
    active: int
    backoff: int
    pending_unschedulable: int


def _key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _counts(pod: Pod) -> bool:
    return pod.status.phase not in ("Succeeded", "Failed")


def _node_changed(old: Node, new: Node) -> bool:
    """Whether a node update can make a pod fit that did not (heartbeats cannot)."""
    return (
        old.spec != new.spec
        or old.metadata.labels != new.metadata.labels
        or old.status.allocatable != new.status.allocatable
    )


class Scheduler:
    """The default scheduler. Start it with ``await nursery.start(scheduler.run)``.

    Args:
        client: the API (a ``LocalClient(store, track_work=True)`` in a cluster).
        rng: the seeded source of every random choice (ties between nodes).
        tracker: optional work counter: pods waiting to be scheduled now count as
            outstanding work (backoff and unschedulable ones do not).
        config: tunables (:class:`SchedulerConfig`).
        framework: the plugins; defaults to the default profile.
    """

    def __init__(
        self,
        client: Client,
        *,
        rng: random.Random,
        tracker: WorkTrackerLike | None = None,
        config: SchedulerConfig | None = None,
        framework: Framework | None = None,
    ) -> None:
        self._client = client
        self._rng = rng
        self._tracker = tracker
        self.config = config or SchedulerConfig()
        self._framework = framework
        self._log = log.bind(component="scheduler")
        self.events = EventRecorder(
            client,
            component=self.config.scheduler_name,
            rng=random.Random(rng.getrandbits(64)),
            tracker=tracker,
        )
        self._wakeup: trio.Event | None = None
        self._scheduled = 0
        self._unschedulable = 0
        self._errors = 0
        self._running = False
        # Built per run (a restarted scheduler starts from a fresh list, like a new
        # process): see _setup.
        self.snapshot = Snapshot()
        self.queue = SchedulingQueue()
        self.framework = framework or self._default_framework()
        self._pods: Informer | None = None
        self._nodes: Informer | None = None

    def _default_framework(self) -> Framework:
        return Framework(
            default_filters(),
            default_scorers(),
            percentage_of_nodes_to_score=self.config.percentage_of_nodes_to_score,
        )

    def statistics(self) -> SchedulerStatistics:
        q = self.queue.statistics()
        return SchedulerStatistics(
            scheduled=self._scheduled,
            unschedulable=self._unschedulable,
            errors=self._errors,
            active=q.active + q.in_flight,
            backoff=q.backoff,
            pending_unschedulable=q.unschedulable,
        )

    # -- the actor -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Schedule pods until cancelled; ``task_status.started()`` once nodes and pods
        are listed.

        Raises:
            RuntimeError: the scheduler is already running.
            errors.ApiError: a non-transient error from listing/watching (informers).
        """
        if self._running:
            raise RuntimeError("scheduler is already running")
        self._running = True
        self._setup()
        assert self._nodes is not None and self._pods is not None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._nodes.run)
                await nursery.start(self._pods.run)
                await nursery.start(self.events.run)
                self._log.info(
                    "scheduler_started", nodes=len(self.snapshot), pending=len(self.queue)
                )
                task_status.started()
                await self._loop()
        finally:
            self.queue.close()
            self._running = False

    def _setup(self) -> None:
        cfg = self.config
        self.snapshot = Snapshot()
        self.queue = SchedulingQueue(
            initial_backoff=cfg.pod_initial_backoff,
            max_backoff=cfg.pod_max_backoff,
            max_unschedulable=cfg.max_in_unschedulable,
            tracker=self._tracker,
        )
        self.framework = self._framework or self._default_framework()
        self._nodes = Informer(self._client, "Node", tracker=self._tracker)
        self._nodes.add_event_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self._pods = Informer(self._client, "Pod", tracker=self._tracker)
        self._pods.add_event_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    async def _loop(self) -> None:
        queue = self.queue
        while True:
            entry = queue.pop(trio.current_time())
            if entry is None:
                self._wakeup = wakeup = trio.Event()
                with trio.move_on_at(queue.next_deadline()):
                    await wakeup.wait()
                self._wakeup = None
                continue
            await self._schedule_one(entry)

    def _kick(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # -- one pod ---------------------------------------------------------------------

    async def _schedule_one(self, entry: QueuedPod) -> None:
        queue = self.queue
        assert self._pods is not None
        pod = self._pods.cache.get_by_key(entry.key)
        if pod is None or not self._is_pending(pod) or pod.metadata.uid != entry.pod.metadata.uid:
            queue.done(entry)  # gone, bound or terminating: the informer said so, or will
            await trio.lowlevel.checkpoint()
            return
        entry.pod = pod
        info = entry.info
        result = self.framework.schedule(info, self.snapshot, self._rng)
        now = trio.current_time()
        if isinstance(result, FitError):
            self._unschedulable += 1
            message = result.message
            self._log.debug(
                "pod_unschedulable",
                namespace=info.namespace,
                name=info.name,
                attempts=entry.attempts,
                message=message,
            )
            # Report first, requeue after: the pod counts as work until its status and
            # event are written, so a harness's settle() sees them.
            await self._report_failure(pod, "Unschedulable", message)
            queue.requeue(entry, now, unschedulable=True)
            return
        node_name = result.node_name
        self.snapshot.assume(entry.key, node_name, PodUsage(info.requests, info.spread_key))
        try:
            await self._client.bind(info.name, node_name, namespace=info.namespace, uid=info.uid)
        except errors.ApiError as exc:
            self.snapshot.forget(entry.key)
            self._errors += 1
            await self._bind_failed(entry, pod, node_name, exc)
            return
        self._scheduled += 1
        self._log.debug(
            "pod_bound",
            namespace=info.namespace,
            name=info.name,
            node=node_name,
            evaluated=result.evaluated_nodes,
            feasible=result.feasible_nodes,
        )
        self.events.record(
            pod,
            "Normal",
            "Scheduled",
            scheduled_message(info.namespace, info.name, node_name),
            action="Binding",
        )
        queue.done(entry)

    async def _bind_failed(
        self, entry: QueuedPod, pod: Pod, node_name: str, exc: errors.ApiError
    ) -> None:
        now = trio.current_time()
        self._log.info(
            "pod_bind_failed",
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            node=node_name,
            reason=exc.reason,
            error=str(exc),
        )
        if isinstance(exc, errors.Conflict | errors.NotFound):
            assert self._pods is not None
            current = self._pods.cache.get_by_key(entry.key)
            if current is None or not self._is_pending(current):
                self.queue.done(entry)  # bound or deleted meanwhile: nothing to retry
                return
        await self._report_failure(pod, "SchedulerError", f"binding rejected: {exc}")
        self.queue.requeue(entry, now, unschedulable=False)

    async def _report_failure(self, pod: Pod, reason: str, message: str) -> None:
        """Record a FailedScheduling event and set ``PodScheduled=False`` (if it says
        something new). Both are best effort."""
        assert self._pods is not None
        self.events.record(pod, "Warning", "FailedScheduling", message, action="Scheduling")
        current = self._pods.cache.get_by_key(f"{pod.metadata.namespace}/{pod.metadata.name}")
        if current is not None and self._is_pending(current):
            condition = next(
                (c for c in current.status.conditions if c.type == "PodScheduled"), None
            )
            if (
                condition is None
                or condition.status != "False"
                or condition.reason != reason
                or condition.message != message
            ):
                await self._set_condition(current, condition, reason, message)
                return
        await trio.lowlevel.checkpoint()

    async def _set_condition(
        self, pod: Pod, old: PodCondition | None, reason: str, message: str
    ) -> None:
        wall = to_wall(trio.current_time())
        transition = old.last_transition_time if old is not None and old.status == "False" else wall
        new = PodCondition(
            type="PodScheduled",
            status="False",
            reason=reason,
            message=message,
            last_transition_time=transition,
        )
        conditions = tuple(c for c in pod.status.conditions if c.type != "PodScheduled")
        status = attrs.evolve(pod.status, conditions=(*conditions, new))
        try:
            await self._client.update_status(attrs.evolve(pod, status=status))
        except errors.ApiError as exc:
            # Conflict: the pod changed; the next attempt writes the condition again.
            self._log.info(
                "pod_condition_not_written",
                namespace=pod.metadata.namespace,
                name=pod.metadata.name,
                reason=exc.reason,
                error=str(exc),
            )

    # -- informer handlers (sync, cheap) ---------------------------------------------

    def _is_pending(self, pod: Pod) -> bool:
        """Unassigned, not terminating, and for this scheduler."""
        spec = pod.spec
        return (
            not spec.node_name
            and pod.metadata.deletion_timestamp is None
            and (spec.scheduler_name or DEFAULT_SCHEDULER_NAME) == self.config.scheduler_name
        )

    def _on_pod_add(self, pod: Pod) -> None:
        if pod.spec.node_name:
            self.snapshot.set_pod(pod)
            self.queue.delete(f"{pod.metadata.namespace}/{pod.metadata.name}")
        elif self._is_pending(pod):
            self.queue.add(pod, trio.current_time())
            self._kick()
        else:
            self.queue.delete(f"{pod.metadata.namespace}/{pod.metadata.name}")

    def _on_pod_update(self, old: Pod, new: Pod) -> None:
        if new.spec.node_name:
            if (
                old.spec is new.spec
                and _counts(old) == _counts(new)
                and old.metadata.deletion_timestamp == new.metadata.deletion_timestamp
                and old.metadata.owner_references == new.metadata.owner_references
                and self.snapshot.node_of(_key(new)) == new.spec.node_name
            ):
                return  # a status update (kubelet): nothing the snapshot keeps changed
            freed = bool(old.spec.node_name) and _counts(old) and not _counts(new)
            self.snapshot.set_pod(new)
            self.queue.delete(f"{new.metadata.namespace}/{new.metadata.name}")
            if freed and self.queue.move_all(trio.current_time()):
                self._kick()
        else:
            self._on_pod_add(new)

    def _on_pod_delete(self, pod: Pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.queue.delete(key)
        if pod.spec.node_name or self.snapshot.node_of(key) is not None:
            self.snapshot.remove_pod(pod)
            if self.queue.move_all(trio.current_time()):
                self._kick()

    def _on_node_add(self, node: Node) -> None:
        self.snapshot.set_node(node)
        if self.queue.move_all(trio.current_time()):
            self._kick()

    def _on_node_update(self, old: Node, new: Node) -> None:
        self.snapshot.set_node(new)
        if _node_changed(old, new) and self.queue.move_all(trio.current_time()):
            self._kick()

    def _on_node_delete(self, node: Node) -> None:
        self.snapshot.remove_node(node.metadata.name)
