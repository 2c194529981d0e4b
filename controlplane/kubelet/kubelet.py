"""The kubelet: one actor per node that runs the pods bound to it.

It registers its Node, renews its Lease, watches only its own pods (field selector
``spec.nodeName=<node>``, routed by the store's node index) and drives each one through
the runtime with the pure decisions of :mod:`~controlplane.kubelet.plan` and
:mod:`~controlplane.kubelet.status`. The actor itself is thin I/O around them:

- **one worker task** processes a de-duplicating queue of keys (pod ``namespace/name``
  keys, plus ``@lease``, ``@node`` and ``@events``), like the real kubelet's pod workers
  but without a task per pod (the per-pod sync is in
  :mod:`~controlplane.kubelet.pod_workers`, the node's writes in
  :mod:`~controlplane.kubelet.heartbeat`). Every sync is level-triggered: it reads the
  pod from the informer cache and the containers from the runtime, plans, acts, and
  reports status (only when it changed);
- **timers** from the shared :class:`~actors.timers.TimerService` re-enqueue keys when a
  back-off ends or a probe is due; the Lease renewal is such a timer too;
- **container exits** arrive on the runtime's ``exits()`` subscription and enqueue the
  pod's key; nothing polls;
- **slow runtime calls** stay off the worker: image pulls go through one puller task per
  node, serialised (Kubernetes' default ``serializeImagePulls``); stopping a container
  (which may take its whole grace period) runs in a short-lived task per container being
  stopped, in the kubelet's nursery.

Store errors (TooManyRequests, Timeout, Conflict) and runtime errors retry the key with
back-off (0.5 s doubling to 30 s); nothing a user or chaos can do crashes the actor.

**Chaos hooks.** *crash*: cancel :meth:`Kubelet.run` (the supervisor kills the child) and
call ``runtime.crash()``. *restart*: ``runtime.recover()``, then run the kubelet again —
the same instance or a new one with the same arguments: every ``run`` starts with empty
memory, rebuilds its view of the node from the runtime's labels, adopts the containers
it finds (restart counts come from their labels) and restarts those that died per
``restartPolicy``. *pause*: :meth:`Kubelet.pause` / :meth:`Kubelet.resume`; while paused
no key is processed (no status, no Lease renewals, no restarts); queued keys wait and,
until :meth:`Kubelet.resume`, do not count as work for the harness's ``settle()``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from actors import Lagged
from actors.timers import Timer, TimerService
from controlplane import errors
from controlplane.api.core_node import Node
from controlplane.api.core_pod import Pod
from controlplane.api.meta import object_key
from controlplane.client.informer import Informer
from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkQueue, WorkTrackerLike
from controlplane.events import EventRecorder
from controlplane.kubelet.admission import Resources
from controlplane.kubelet.heartbeat import LeaseMissing, NodeHeartbeat
from controlplane.kubelet.labels import parse_container_labels, pod_key_of
from controlplane.kubelet.node import LEASE_RENEW_SECONDS, NODE_STATUS_REPORT_SECONDS
from controlplane.kubelet.pod_workers import PodWorkers
from controlplane.kubelet.puller import ImagePuller
from controlplane.kubelet.resource_metrics import UsageCollector
from controlplane.kubelet.tracking import PausableTracker
from controlplane.metrics import MetricsSink
from controlplane.nodes import NodeTemplate
from runtime.cri import (
    ContainerRuntime,
    RuntimeDown,
    RuntimeError_,
)

__all__ = ["Kubelet", "KubeletStatistics"]

log = structlog.get_logger(__name__)

LEASE_KEY = "@lease"
NODE_KEY = "@node"
EVENTS_KEY = "@events"
METRICS_KEY = "@metrics"

#: Store errors worth retrying; the rest are bugs or mean the object is gone.
STORE_RETRY = (errors.TooManyRequests, errors.Timeout, errors.Conflict)
#: Retries of a failed sync: 0.5 s doubling to 30 s.
RETRY_INITIAL = 0.5
RETRY_MAX = 30.0


class _Retry(Exception):
    """A sync could not finish for a transient reason; retry the key with back-off."""


@attrs.frozen
class KubeletStatistics:
    node: str
    pods: int
    containers: int
    syncs: int
    status_writes: int
    paused: bool


class Kubelet:
    """The node agent of one node.

    Args:
        client: the API (components use a ``LocalClient(store, track_work=True)``).
        runtime: this node's container engine.
        timers: the cluster's timer service (must be running for delays to fire).
        node_name: the Node to register and run pods for.
        template: capacity, labels and taints of the machine (default: 4 CPU, 16 Gi).
        rng: for names of Events (deterministic per seed).
        host_ip: the node's InternalIP (pods' ``hostIP``).
        tracker: the harness's work tracker (``settle()``): queued keys, pulls and
            stops in progress count as work (except while paused).
        record_events: write Events (Pulling, Started, BackOff...); benchmarks that
            only measure pod startup may turn them off (they are ~4 writes per pod).
        metrics: where to report the running containers' cpu and memory usage, once at
            start and then every ``metrics_resolution`` seconds (metrics-server's scrape
            of ``/metrics/resource``; see :mod:`controlplane.metrics`). None: no
            reporting, no cost.
        metrics_resolution: the report period (metrics-server's 15 s default).
    """

    def __init__(
        self,
        client: Client,
        runtime: ContainerRuntime,
        timers: TimerService,
        *,
        node_name: str,
        rng: random.Random,
        template: NodeTemplate | None = None,
        host_ip: str = "",
        tracker: WorkTrackerLike | None = None,
        record_events: bool = True,
        metrics: MetricsSink | None = None,
        metrics_resolution: float = 15.0,
    ) -> None:
        self.node_name = node_name
        self._client = client
        self._runtime = runtime
        self._timers = timers
        self._rng = rng
        self._template = template or NodeTemplate()
        self._host_ip = host_ip
        self._tracker = tracker
        # What this kubelet queues; muted while paused (see ``tracking``).
        self._work_tracker = PausableTracker(tracker)
        self._record_events = record_events
        self._metrics = metrics
        self._metrics_resolution = metrics_resolution
        self._log = log.bind(component="kubelet", node=node_name)
        self._paused = False
        self._resumed = trio.Event()
        self._resumed.set()
        self._running = False
        self._syncs = 0
        self._clock_skew = 0.0
        self._reset()

    # -- control -----------------------------------------------------------------------

    def pause(self) -> None:
        """Stop processing keys (after the current one) until :meth:`resume`."""
        if not self._paused:
            self._paused = True
            self._resumed = trio.Event()
            self._work_tracker.pause()
            self._log.info("kubelet_paused")

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._resumed.set()
            self._work_tracker.resume()
            # Post node status at once: while we hung, the node lifecycle controller may
            # have set Ready=Unknown (a real kubelet sees that within 10 s).
            self._queue.add(NODE_KEY)
            self._log.info("kubelet_resumed")

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def clock_skew(self) -> float:
        """Seconds this node's clock runs ahead (negative: behind): the Node heartbeat
        and Lease renewTime it writes are skewed by it (kept across restarts)."""
        return self._clock_skew

    @clock_skew.setter
    def clock_skew(self, seconds: float) -> None:
        changed = seconds != self._clock_skew
        self._clock_skew = seconds
        self._heartbeat.clock_skew = seconds
        if changed and self._running:
            # a clock set right (or wrong) posts node status with it at once, as the
            # kubelet's 10 s status check would once its Node looks stale
            self._queue.add(NODE_KEY)

    @property
    def node(self) -> Node | None:
        """The Node as last written by this kubelet."""
        return self._heartbeat.node

    def statistics(self) -> KubeletStatistics:
        return KubeletStatistics(
            node=self.node_name,
            pods=len(self._pods.workers),
            containers=len(self._pods.container_uid),
            syncs=self._syncs,
            status_writes=self._pods.status_writes,
            paused=self._paused,
        )

    # -- the actor -----------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget everything: a (re)started kubelet knows only what the API and the
        runtime tell it."""
        self._queue: WorkQueue[str] = WorkQueue(tracker=self._work_tracker, name=self.node_name)
        self._failures: dict[str, int] = {}  # key -> consecutive failed syncs
        self._retry_timers: dict[str, Timer] = {}
        self._lease_timer: Timer | None = None
        self._node_timer: Timer | None = None
        self._metrics_timer: Timer | None = None
        self._usage = UsageCollector(
            self._runtime, node=self.node_name, window=self._metrics_resolution
        )
        self._runtime_down = False
        self._informer: Informer | None = None
        self._nursery: trio.Nursery | None = None
        self._puller = ImagePuller(
            self._runtime,
            on_done=lambda *args: self._pods.pull_done(*args),
            on_busy=self._hold_work,
            on_idle=self._release_work,
        )
        self._heartbeat = NodeHeartbeat(
            self._client,
            node_name=self.node_name,
            template=self._template,
            host_ip=self._host_ip,
        )
        self._heartbeat.clock_skew = self._clock_skew
        self._work_held = 0
        self._events = EventRecorder(
            self._client,
            component="kubelet",
            host=self.node_name,
            rng=self._rng,
            on_pending=lambda: self._queue.add(EVENTS_KEY),
            enabled=self._record_events,
        )
        self._pods = PodWorkers(
            client=self._client,
            runtime=self._runtime,
            timers=self._timers,
            events=self._events,
            puller=self._puller,
            enqueue=self._queue.add,
            spawn=self._spawn,
            hold=self._hold_work,
            release=self._release_work,
            node_name=self.node_name,
            host_ip=self._host_ip,
        )

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._nursery is not None, "the kubelet is not running"
        self._nursery.start_soon(fn, *args)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register the node, adopt what the runtime runs, and run pods until cancelled.

        Calls ``task_status.started()`` once the Node is registered and the pod informer
        has synced. Can be called again after it ended (a kubelet restart).

        Raises:
            RuntimeError: it is already running.
        """
        if self._running:
            raise RuntimeError(f"kubelet {self.node_name!r} is already running")
        self._running = True
        self._reset()
        try:
            await self._register()
            informer = Informer(
                self._client,
                Pod,
                field_selector=f"spec.nodeName={self.node_name}",
                tracker=self._tracker,
            )
            self._informer = informer
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(informer.run)
                await self._adopt()
                queue = self._queue
                pods = self._pods

                def on_update(old: Pod, new: Pod) -> None:
                    if not pods.is_own_write(new):  # the echo of our own status write
                        queue.add(object_key(new))

                informer.add_event_handler(
                    lambda obj: queue.add(object_key(obj)),
                    on_update,
                    lambda obj: queue.add(object_key(obj)),
                )
                nursery.start_soon(self._watch_exits)
                nursery.start_soon(self._puller.run)
                queue.add(LEASE_KEY)
                if self._metrics is not None:
                    queue.add(METRICS_KEY)
                self._log.info("kubelet_started", pods=len(informer.cache))
                task_status.started()
                await self._work()
        finally:
            self._shutdown()
            self._running = False

    def _shutdown(self) -> None:
        self._pods.cancel_timers()
        timers = (self._lease_timer, self._node_timer, self._metrics_timer)
        for timer in (*self._retry_timers.values(), *timers):
            if timer is not None:
                timer.cancel()
        self._queue.shut_down()
        self._release_work(self._work_held)
        self._nursery = None

    def _hold_work(self) -> None:
        self._work_held += 1
        self._work_tracker.add(1)

    def _release_work(self, n: int = 1) -> None:
        n = min(n, self._work_held)
        if n <= 0:
            return
        self._work_held -= n
        self._work_tracker.done(n)

    async def _work(self) -> None:
        queue = self._queue
        while True:
            key = await queue.get()
            try:
                if self._paused:
                    await self._resumed.wait()
                await self._process(key)
            finally:
                queue.done(key)

    async def _process(self, key: str) -> None:
        self._syncs += 1
        try:
            if key == LEASE_KEY:
                await self._renew_lease()
            elif key == NODE_KEY:
                await self._report_node()
            elif key == EVENTS_KEY:
                if await self._events.flush():
                    raise _Retry("events")
            elif key == METRICS_KEY:
                self._report_metrics()
            else:
                assert self._informer is not None
                await self._pods.sync_key(key, self._informer.cache.get_by_key(key))
        except (*STORE_RETRY, RuntimeError_, _Retry) as exc:
            self._retry(key, exc)
        else:
            if self._failures.pop(key, None) and key == LEASE_KEY:
                # Back in touch with the API after failed renewals: the node lifecycle
                # controller may have set Ready=Unknown meanwhile; a real kubelet sees
                # its Node differ within nodeStatusUpdateFrequency (10 s) and posts.
                self._queue.add(NODE_KEY)
            if self._runtime_down and not key.startswith("@"):
                self._runtime_down = False  # a pod sync went through the runtime again
                self._queue.add(NODE_KEY)

    def _retry(self, key: str, exc: BaseException) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(RETRY_INITIAL * 2 ** (failures - 1), RETRY_MAX)
        if key == LEASE_KEY:
            delay = min(delay, LEASE_RENEW_SECONDS)
        self._log.info("sync_retry", key=key, delay=delay, error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, RuntimeDown) and not self._runtime_down:
            self._runtime_down = True
            self._queue.add(NODE_KEY)
        old = self._retry_timers.get(key)
        if old is not None:
            old.cancel()
        self._retry_timers[key] = self._timers.call_later(delay, self._queue.add, key)

    # -- node and lease ------------------------------------------------------------------

    async def _register(self) -> None:
        """Create our Node, or adopt the existing one; retry transient errors."""
        delay = RETRY_INITIAL
        while True:
            try:
                node = await self._heartbeat.register()
                break
            except STORE_RETRY as exc:
                self._log.info("register_retry", delay=delay, error=str(exc))
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        self._pods.allocatable = Resources.of_allocatable(node.status.allocatable)
        self._schedule_node_report()

    def _schedule_node_report(self) -> None:
        if self._node_timer is not None:
            self._node_timer.cancel()
        self._node_timer = self._timers.call_later(
            NODE_STATUS_REPORT_SECONDS, self._queue.add, NODE_KEY
        )

    async def _report_node(self) -> None:
        ready = not self._runtime_down
        await self._heartbeat.report(
            ready=ready, message=None if ready else "container runtime is down"
        )
        self._schedule_node_report()

    async def _renew_lease(self) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        self._lease_timer = self._timers.call_later(LEASE_RENEW_SECONDS, self._queue.add, LEASE_KEY)
        try:
            await self._heartbeat.renew_lease()
        except LeaseMissing as exc:
            raise _Retry(str(exc)) from None

    def _report_metrics(self) -> None:
        """Push one resource metrics batch and set the timer for the next one. A down
        runtime reports nothing (the node's samples go stale, as a failed scrape makes
        metrics-server drop them)."""
        assert self._metrics is not None
        if self._metrics_timer is not None:
            self._metrics_timer.cancel()
        self._metrics_timer = self._timers.call_later(
            self._metrics_resolution, self._queue.add, METRICS_KEY
        )
        now = trio.current_time()
        try:
            samples = self._usage.collect(now)
        except RuntimeDown:
            return
        self._metrics.report(self.node_name, samples, now)

    # -- adoption ------------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Rebuild the view of the node from the runtime: every sandbox and container
        the kubelet's labels point at becomes part of its pod's worker again."""
        while True:
            try:
                sandboxes = self._runtime.list_sandboxes()
                containers = self._runtime.list_containers()
                break
            except RuntimeDown as exc:
                self._log.info("runtime_down_at_start", error=str(exc))
                await trio.sleep(RETRY_INITIAL)
        pods = self._pods
        # Pods a previous kubelet admitted keep their place before new ones are judged.
        assert self._informer is not None
        for pod in self._informer.cache:
            if pod.status.phase == "Running":
                worker = pods.worker(object_key(pod), pod.metadata.uid)
                worker.admitted = True
                worker.pod = pod
        for sandbox in sandboxes:
            key = pod_key_of(sandbox.labels)
            uid = sandbox.labels.get("io.kubernetes.pod.uid")
            if key is None or uid is None:
                continue
            worker = pods.worker(key, uid)
            worker.sandbox = sandbox
            worker.admitted = True
        for info in containers:
            labels = parse_container_labels(info.labels)
            if labels is None:
                continue
            worker = pods.worker(labels.pod_key, labels.pod_uid)
            worker.admitted = True
            worker.container_ids[info.id] = None
            pods.container_uid[info.id] = labels.pod_uid
        for worker in pods.workers.values():
            pods.recount(worker)
        for key in pods.by_key:
            self._queue.add(key)
        if pods.workers:
            self._log.info(
                "runtime_adopted", pods=len(pods.workers), containers=len(pods.container_uid)
            )

    # -- exits and pulls -----------------------------------------------------------------

    async def _watch_exits(self) -> None:
        """Enqueue the pod of every container that exits."""
        while True:
            try:
                subscription = self._runtime.exits()
            except RuntimeDown:
                return  # the machine is down; a restarted kubelet subscribes again
            with subscription:
                try:
                    while True:
                        for exit_ in await subscription.receive_batch():
                            key = self._pods.key_of_container(exit_.container_id)
                            if key is not None:
                                self._queue.add(key)
                except Lagged:
                    self._log.info("exits_lagged")
                    for key in self._pods.by_key:
                        self._queue.add(key)
                    continue
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return

    # -- pod sync ------------------------------------------------------------------------
