"""The kubelet's pod workers: one record per pod incarnation, and the sync that drives
it -- observe the runtime, run due probes, plan, act, report status.

Not a task per pod: :class:`PodWorkers` is plain state plus methods that the kubelet's
single worker task calls with one pod key at a time. The decisions are the pure
functions of :mod:`~controlplane.kubelet.plan` and :mod:`~controlplane.kubelet.status`;
this module performs them against the runtime and the API:

- a pod first passes node admission (a rejected pod is Failed, reason ``OutOf...``);
- each sync observes the pod's containers, runs the probes that are due (the runtime
  answers at once), plans, creates the sandbox / removes dead containers / starts
  containers inline and re-plans, hands pulls to the :class:`ImagePuller` and stops to
  short-lived tasks (a stop can take the whole grace period), records Events, sets the
  pod's one timer for the next back-off end or probe, and writes the status if it
  changed;
- a pod being deleted is stopped, torn down and confirmed with a grace-0 delete; a pod
  gone from the API (force delete, or replaced under the same name) has its containers
  killed and removed.

Cost per pod, for nodes with many pods: a pod that starts normally costs two syncs (bound;
image pulled) and two status writes (Pending, Running); the watch echo of our own status
write causes no sync. Admission keeps a running total of the admitted pods' requests
(:meth:`PodWorkers.recount`) instead of summing them per admission. Values that many pods
would each hold an equal copy of (conditions, plain waiting states, an empty
:class:`~controlplane.kubelet.model.PodMemory`, event sources and references) are shared
frozen objects: fewer long-lived objects make the cyclic GC cheaper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from actors.timers import Timer, TimerService
from controlplane import errors
from controlplane.api.core_pod import Pod, PodSpec, PodStatus
from controlplane.client.protocol import Client
from controlplane.events import EventRecorder
from controlplane.kubelet.admission import Rejection, Resources, check_fit, pod_requests
from controlplane.kubelet.backoff import next_image_backoff
from controlplane.kubelet.containers import container_config
from controlplane.kubelet.dns import pod_dns_search
from controlplane.kubelet.labels import parse_container_labels, sandbox_labels
from controlplane.kubelet.model import (
    NO_MEMORY,
    TERMINAL_PHASES,
    ObservedPod,
    PodMemory,
    PullFailure,
    is_sidecar,
)
from controlplane.kubelet.plan import Kill, Plan, Start, plan_pod
from controlplane.kubelet.probes import LABEL, RUNTIME_PROBE, new_container_probes
from controlplane.kubelet.puller import ImagePuller
from controlplane.kubelet.status import compute_status, rejected_status
from runtime.cri import (
    ContainerInfo,
    ContainerNotFound,
    ContainerRuntime,
    ContainerState,
    RuntimeDown,
    RuntimeError_,
    SandboxInfo,
    SandboxNotFound,
)

__all__ = ["MIN_KILL_GRACE", "PodWorker", "PodWorkers"]

log = structlog.get_logger(__name__)

#: Kubernetes never gives a container less than this to stop (``minimumGracePeriodInSeconds``).
MIN_KILL_GRACE = 2.0
#: The soonest a pod's timer may fire again.
WAKE_MIN_DELAY = 0.01


@attrs.define(eq=False)
class PodWorker:
    """The kubelet's record of one pod incarnation (by uid)."""

    key: str
    uid: str
    pod: Pod | None = None
    sandbox: SandboxInfo | None = None
    container_ids: dict[str, None] = attrs.Factory(dict)
    memory: PodMemory = NO_MEMORY
    admitted: bool = False
    rejection: Rejection | None = None
    timer: Timer | None = None
    timer_at: float | None = None
    last_status: PodStatus | None = None
    written_rv: int = -1
    deleted: bool = False
    #: What this pod adds to the node's admitted requests (None: nothing; see
    #: :meth:`PodWorkers.recount`), and the spec it was computed from.
    counted: Resources | None = None
    counted_spec: PodSpec | None = None


def _rv(obj: Any) -> int:
    try:
        return int(obj.metadata.resource_version or -1)
    except ValueError:
        return -1


_REQUESTS: dict[Resources, Resources] = {}


def _shared_requests(requests: Resources) -> Resources:
    """One shared (frozen) value per distinct request: pods stamped from one template
    all ask for the same."""
    shared = _REQUESTS.get(requests)
    if shared is None:
        if len(_REQUESTS) >= 1024:
            _REQUESTS.clear()
        shared = _REQUESTS[requests] = requests
    return shared


def _has_probes(pod: Pod) -> bool:
    """Whether any container of ``pod`` has a probe."""
    spec = pod.spec
    for container in (*spec.init_containers, *spec.containers):
        if container.liveness_probe or container.readiness_probe or container.startup_probe:
            return True
    return False


class PodWorkers:
    """The pods of one node and how to sync them.

    Args:
        client, runtime, timers: as the kubelet's.
        events: the kubelet's event recorder.
        puller: the node's image puller (its ``on_done`` must call :meth:`pull_done`).
        enqueue: puts a pod key on the kubelet's work queue (sync).
        spawn: starts a task in the kubelet's nursery (``nursery.start_soon``).
        hold / release: count one unit of outstanding work up / down.
        node_name, host_ip: this node.
    """

    def __init__(
        self,
        *,
        client: Client,
        runtime: ContainerRuntime,
        timers: TimerService,
        events: EventRecorder,
        puller: ImagePuller,
        enqueue: Callable[[str], None],
        spawn: Callable[..., Any],
        hold: Callable[[], None],
        release: Callable[[], None],
        node_name: str,
        host_ip: str,
    ) -> None:
        self._client = client
        self._runtime = runtime
        self._timers = timers
        self._events = events
        self._puller = puller
        self._enqueue = enqueue
        self._spawn = spawn
        self._hold = hold
        self._release = release
        self.node_name = node_name
        self._host_ip = host_ip
        self._log = log.bind(component="kubelet", node=node_name)
        #: What the node may hand out (set once the Node is registered).
        self.allocatable = Resources()
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.by_key: dict[str, dict[str, PodWorker]] = {}  # key -> uid -> worker
        self.container_uid: dict[str, str] = {}  # container id -> pod uid
        self.status_writes = 0
        #: The sum of ``counted`` over the workers: the requests of the pods admitted
        #: and not terminal, kept as workers change rather than summed per admission.
        self.admitted_requests = Resources()

    def cancel_timers(self) -> None:
        for worker in self.workers.values():
            if worker.timer is not None:
                worker.timer.cancel()

    def is_own_write(self, pod: Pod) -> bool:
        """Whether ``pod`` is exactly what our last status write stored (the store hands
        the same instance to watchers): its watch event needs no sync."""
        worker = self.workers.get(pod.metadata.uid)
        return worker is not None and worker.pod is pod

    def key_of_container(self, container_id: str) -> str | None:
        uid = self.container_uid.get(container_id)
        worker = self.workers.get(uid) if uid is not None else None
        return worker.key if worker is not None else None

    async def sync_key(self, key: str, pod: Pod | None) -> None:
        """Sync the pod ``key`` given its current API object (None: it is gone)."""
        uid = pod.metadata.uid if pod is not None else None
        for worker in list(self.by_key.get(key, {}).values()):
            if worker.uid != uid:
                await self._sync_gone(worker)
        if pod is None or pod.spec.node_name != self.node_name:
            return
        worker = self.worker(key, pod.metadata.uid)
        try:
            await self._sync_pod(pod, worker)
        finally:
            self.recount(worker)

    def recount(self, worker: PodWorker) -> None:
        """Bring ``worker``'s share of :attr:`admitted_requests` up to date. Called after
        anything that changes what it counts on: admitted, rejection, the pod (phase,
        spec); forgetting a worker takes its share away."""
        pod = worker.pod
        if (
            worker.admitted
            and worker.rejection is None
            and pod is not None
            and pod.status.phase not in TERMINAL_PHASES
        ):
            spec = pod.spec
            if worker.counted is not None and worker.counted_spec is spec:
                return
            share: Resources | None = _shared_requests(pod_requests(pod))
        else:
            spec = None
            share = None
            if worker.counted is None:
                return
        if worker.counted is not None:
            self.admitted_requests = self.admitted_requests - worker.counted
        if share is not None:
            self.admitted_requests = self.admitted_requests + share
        worker.counted = share
        worker.counted_spec = spec

    def worker(self, key: str, uid: str) -> PodWorker:
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(key=key, uid=uid)
            self.workers[uid] = worker
            self.by_key.setdefault(key, {})[uid] = worker
        return worker

    def _forget(self, worker: PodWorker) -> None:
        if worker.counted is not None:
            self.admitted_requests = self.admitted_requests - worker.counted
            worker.counted = worker.counted_spec = None
        if worker.timer is not None:
            worker.timer.cancel()
        for cid in worker.container_ids:
            self.container_uid.pop(cid, None)
        self.workers.pop(worker.uid, None)
        by_uid = self.by_key.get(worker.key)
        if by_uid is not None:
            by_uid.pop(worker.uid, None)
            if not by_uid:
                del self.by_key[worker.key]

    def request_pull(self, worker: PodWorker, container_name: str, image: str) -> None:
        self._puller.request(worker.uid, container_name, image)
        if worker.pod is not None:
            self._events.record(
                worker.pod,
                "Normal",
                "Pulling",
                f'Pulling image "{image}"',
                field_path=f"spec.containers{{{container_name}}}",
            )

    def pull_done(
        self, uid: str, name: str, image: str, error: Exception | None, took: float
    ) -> None:
        worker = self.workers.get(uid)
        if worker is None:
            return
        now = trio.current_time()
        memory = worker.memory
        field_path = f"spec.containers{{{name}}}"
        if error is None:
            memory = attrs.evolve(
                memory, pulling=memory.pulling - {name}, pulled=memory.pulled | {name}
            )
            memory = memory.with_entry("pull_failures", name, None)
            if worker.pod is not None:
                self._events.record(
                    worker.pod,
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in {took:.3f}s'
                    f" ({took:.3f}s including waiting)",
                    field_path=field_path,
                )
        else:
            memory = attrs.evolve(memory, pulling=memory.pulling - {name})
            previous = memory.pull_failures.get(name)
            entry = next_image_backoff(previous.backoff if previous else None, failed_at=now)
            message = str(error)
            failure = PullFailure("ErrImagePull", message, now, entry)
            memory = memory.with_entry("pull_failures", name, failure)
            if worker.pod is not None:
                self._events.record(
                    worker.pod,
                    "Warning",
                    "Failed",
                    f'Failed to pull image "{image}": {message}',
                    field_path=field_path,
                )
                self._events.record(
                    worker.pod, "Warning", "Failed", "Error: ErrImagePull", field_path=field_path
                )
        worker.memory = memory
        self._enqueue(worker.key)

    async def _sync_gone(self, worker: PodWorker) -> None:
        """The pod left the API (deleted, or replaced by a new incarnation): stop and
        remove whatever of it still runs, then forget it."""
        observed = self._observe(worker)
        running = [c for c in observed.containers if c.state is not ContainerState.EXITED]
        if running:
            pod = worker.pod
            grace = 0.0
            if pod is not None and pod.metadata.deletion_grace_period_seconds is not None:
                grace = float(pod.metadata.deletion_grace_period_seconds)
            for info in running:
                if info.id not in worker.memory.killing:
                    labels = parse_container_labels(info.labels)
                    name = labels.name if labels is not None else info.name
                    self._kill(worker, Kill(info.id, name, grace, "deleting"))
            return
        await self._remove_all(worker, observed)
        self._forget(worker)

    async def _remove_all(self, worker: PodWorker, observed: ObservedPod) -> None:
        for info in observed.containers:
            with contextlib.suppress(ContainerNotFound):
                await self._runtime.remove_container(info.id)
            worker.container_ids.pop(info.id, None)
            self.container_uid.pop(info.id, None)
        if worker.sandbox is not None:
            with contextlib.suppress(SandboxNotFound):
                await self._runtime.remove_sandbox(worker.sandbox.id)
            worker.sandbox = None

    def _observe(self, worker: PodWorker) -> ObservedPod:
        infos: list[ContainerInfo] = []
        for cid in list(worker.container_ids):
            try:
                infos.append(self._runtime.inspect(cid))
            except ContainerNotFound:
                worker.container_ids.pop(cid, None)
                self.container_uid.pop(cid, None)
        return ObservedPod(worker.sandbox, tuple(infos))

    def admitted_pods(self) -> list[Pod]:
        """The pods that count against the node's allocatable (admitted, not rejected,
        not terminal); :attr:`admitted_requests` is the sum of their requests."""
        return [
            w.pod
            for w in self.workers.values()
            if w.admitted
            and w.rejection is None
            and w.pod is not None
            and w.pod.status.phase not in TERMINAL_PHASES
        ]

    async def _sync_pod(self, pod: Pod, worker: PodWorker) -> None:
        worker.pod = pod
        now = trio.current_time()
        if worker.rejection is not None:
            if pod.status.phase != "Failed":
                await self._write_rejection(pod, worker, worker.rejection, now)
            return
        if worker.last_status is not None and worker.written_rv >= _rv(pod):
            # The informer has not caught up with our own last write: plan from it.
            pod = attrs.evolve(pod, status=worker.last_status)
        if not worker.admitted:
            adopted = worker.sandbox is not None or bool(worker.container_ids)
            if pod.status.phase in (*TERMINAL_PHASES, "Running") or adopted:
                worker.admitted = True
            else:
                # This worker is not admitted yet, so it is not in the running total.
                rejection = check_fit(pod_requests(pod), self.admitted_requests, self.allocatable)
                if rejection is not None:
                    worker.rejection = rejection
                    self._log.info("pod_rejected", pod=worker.key, reason=rejection.reason)
                    self._events.record(pod, "Warning", rejection.reason, rejection.message)
                    await self._write_rejection(pod, worker, rejection, now)
                    return
                worker.admitted = True

        observed = self._observe(worker)
        plan: Plan | None = None
        for _ in range(4):
            self._run_probes(pod, worker, observed, now)
            plan = plan_pod(pod, observed, worker.memory, now=now, images_present=self._images(pod))
            worker.memory = plan.memory
            for event in plan.events:
                self._events.record(pod, event.type, event.reason, event.message)
            for kill in plan.kills:
                self._kill(worker, kill)
            for pull in plan.pulls:
                self.request_pull(worker, pull.container_name, pull.image)
            if plan.teardown:
                await self._teardown(pod, worker, observed)
                return
            if not plan.acts_now:
                break
            await self._act(pod, worker, plan)
            observed = self._observe(worker)
        assert plan is not None
        self._wake_at(worker, plan.wake_at)
        status = compute_status(pod, observed, worker.memory, now=now, host_ip=self._host_ip)
        await self._write_status(pod, worker, status)

    async def _write_rejection(
        self, pod: Pod, worker: PodWorker, rejection: Rejection, now: float
    ) -> None:
        status = rejected_status(pod, rejection.reason, rejection.message, now=now)
        await self._write_status(pod, worker, status)

    def _images(self, pod: Pod) -> frozenset[str]:
        present = set()
        for container in (*pod.spec.init_containers, *pod.spec.containers):
            image = container.image or ""
            if image and self._runtime.has_image(image):
                present.add(image)
        return frozenset(present)

    def _run_probes(self, pod: Pod, worker: PodWorker, observed: ObservedPod, now: float) -> None:
        """Run the probes that are due on running containers; drop the probe state of
        containers that are gone."""
        memory = worker.memory
        if not memory.probes and not _has_probes(pod):
            return  # the common case: nothing to probe, nothing to forget
        specs = {c.name: c for c in pod.spec.containers}
        sidecars = {c.name: c for c in pod.spec.init_containers if is_sidecar(c)}
        alive: set[str] = set()
        for info in observed.containers:
            if info.state is not ContainerState.RUNNING:
                continue
            labels = parse_container_labels(info.labels)
            if labels is None:
                continue
            container = (sidecars if labels.init else specs).get(labels.name)
            if container is None:
                continue
            probes = memory.probes.get(info.id)
            if probes is None:
                if not (
                    container.liveness_probe or container.readiness_probe or container.startup_probe
                ):
                    continue
                started_at = info.started_at if info.started_at is not None else now
                probes = new_container_probes(container, info.id, started_at)
            alive.add(info.id)
            for kind in probes.due(now):
                result = self._runtime.probe(info.id, RUNTIME_PROBE[kind])
                probes = probes.with_outcome(kind, result.success, now)
                if not result.success:
                    self._events.record(
                        pod,
                        "Warning",
                        "Unhealthy",
                        f"{LABEL[kind]} probe failed: {result.message}".rstrip(": "),
                        field_path=f"spec.containers{{{labels.name}}}",
                    )
            memory = memory.with_entry("probes", info.id, probes)
        for cid in [cid for cid in memory.probes if cid not in alive]:
            memory = memory.with_entry("probes", cid, None)
        worker.memory = memory

    async def _act(self, pod: Pod, worker: PodWorker, plan: Plan) -> None:
        if plan.create_sandbox:
            name = f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}"
            try:
                worker.sandbox = await self._runtime.create_sandbox(
                    name, sandbox_labels(pod), dns_search=pod_dns_search(pod)
                )
            except RuntimeDown:
                raise
            except RuntimeError_ as exc:
                self._events.record(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {exc}",
                )
                raise
        for cid in plan.removes:
            with contextlib.suppress(ContainerNotFound):
                await self._runtime.remove_container(cid)
            worker.container_ids.pop(cid, None)
            self.container_uid.pop(cid, None)
        for start in plan.starts:
            await self._start(pod, worker, start)

    async def _start(self, pod: Pod, worker: PodWorker, start: Start) -> None:
        assert worker.sandbox is not None
        container = start.container
        name = container.name
        field_path = f"spec.{'initContainers' if start.init else 'containers'}{{{name}}}"
        memory = worker.memory
        if name not in memory.pulled:
            self._events.record(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{container.image}" already present on machine',
                field_path=field_path,
            )
        config = container_config(
            pod, container, init=start.init, restart_count=start.restart_count
        )
        try:
            cid = await self._runtime.create_container(worker.sandbox.id, config)
        except (RuntimeDown, SandboxNotFound):
            raise
        except RuntimeError_ as exc:
            now = trio.current_time()
            previous = memory.create_errors.get(name)
            entry = next_image_backoff(previous.backoff if previous else None, failed_at=now)
            failure = PullFailure("CreateContainerError", str(exc), now, entry)
            worker.memory = memory.with_entry("create_errors", name, failure)
            self._events.record(pod, "Warning", "Failed", f"Error: {exc}", field_path=field_path)
            return
        worker.container_ids[cid] = None
        self.container_uid[cid] = worker.uid
        self._events.record(
            pod, "Normal", "Created", f"Created container {name}", field_path=field_path
        )
        await self._runtime.start_container(cid)
        self._events.record(
            pod, "Normal", "Started", f"Started container {name}", field_path=field_path
        )
        memory = worker.memory
        if name in memory.pulled:
            memory = attrs.evolve(memory, pulled=memory.pulled - {name})
        worker.memory = memory.with_entry("create_errors", name, None).compact()

    def _kill(self, worker: PodWorker, kill: Kill) -> None:
        worker.memory = attrs.evolve(
            worker.memory, killing=worker.memory.killing | {kill.container_id}
        )
        pod = worker.pod
        if pod is not None:
            if kill.reason in ("liveness", "startup"):
                message = f"Container {kill.name} failed {kill.reason} probe, will be restarted"
            else:
                message = f"Stopping container {kill.name}"
            self._events.record(
                pod, "Normal", "Killing", message, field_path=f"spec.containers{{{kill.name}}}"
            )
        self._hold()
        self._spawn(self._stop, worker, kill)

    async def _stop(self, worker: PodWorker, kill: Kill) -> None:
        try:
            grace = max(kill.grace, MIN_KILL_GRACE)
            await self._runtime.stop_container(kill.container_id, grace)
        except RuntimeError_ as exc:
            self._log.info("stop_failed", container=kill.container_id, error=str(exc))
        finally:
            memory = worker.memory
            memory = attrs.evolve(memory, killing=memory.killing - {kill.container_id})
            worker.memory = memory.compact()
            self._enqueue(worker.key)
            self._release()

    async def _teardown(self, pod: Pod, worker: PodWorker, observed: ObservedPod) -> None:
        """Every container of a pod being deleted has stopped: report the final status,
        remove the containers and sandbox, and confirm the deletion (grace 0)."""
        now = trio.current_time()
        status = compute_status(
            pod, observed, worker.memory, now=now, host_ip=self._host_ip, stopped=True
        )
        await self._write_status(pod, worker, status)
        await self._remove_all(worker, observed)
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        meta = pod.metadata
        try:
            await self._client.delete(
                Pod,
                meta.name,
                namespace=meta.namespace,
                grace_period_seconds=0,
                preconditions_uid=meta.uid,
            )
        except errors.NotFound:
            pass
        except errors.Conflict:
            pass  # a new pod with the same name: ours is gone already
        if not worker.deleted:
            worker.deleted = True
            self._log.info("pod_deleted", pod=worker.key)

    def _wake_at(self, worker: PodWorker, at: float | None) -> None:
        if at is not None:
            # Never a deadline in the past: a plan that keeps asking for "now" would
            # spin the worker without letting virtual time advance.
            at = max(at, trio.current_time() + WAKE_MIN_DELAY)
        if at == worker.timer_at and worker.timer is not None and not worker.timer.cancelled:
            return
        if worker.timer is not None:
            worker.timer.cancel()
        worker.timer = None
        worker.timer_at = at
        if at is not None:
            worker.timer = self._timers.call_at(at, self._enqueue, worker.key)

    async def _write_status(self, pod: Pod, worker: PodWorker, status: PodStatus) -> None:
        """Write ``status`` unless the API already has it (our last write counts)."""
        if status == pod.status:
            worker.last_status = status
            return
        if status == worker.last_status and worker.written_rv >= _rv(pod):
            return
        if self._events.pending:
            # Events first, so whoever sees the new status also finds what led to it.
            await self._events.flush_or_reschedule()
        meta = attrs.evolve(pod.metadata, resource_version="")
        try:
            stored = await self._client.update_status(
                attrs.evolve(pod, metadata=meta, status=status)
            )
        except errors.NotFound:
            return  # deleted meanwhile: the informer will tell us
        self.status_writes += 1
        worker.last_status = stored.status
        worker.written_rv = _rv(stored)
        worker.pod = stored
