"""Fault points for chaos scripts: ``cluster.chaos``, the imperative form of every fault.

Control-plane faults no real chaos tool offers (RELIABILITY.md): make the store fail or
slow down a fraction of requests, conflict storms, force every watcher to re-watch or
re-list, crash the scheduler, the controller manager or a kubelet. Machine faults: crash,
restart, pause, drain and taint a node, skew its clock. Container faults: kill, OOM, a
failing probe, a failing image pull. Network faults: partition (both ways or one way),
delay with jitter, loss, duplication, between nodes or pods (by IP).

Most calls are synchronous so a chaos script reads as a list of faults; what they set in
motion (a kubelet restarting, containers exiting) happens as the cluster runs on. Calls
that write API objects (drain, taint) are async. Faults that last return a handle (or
have a named inverse); :meth:`Chaos.heal_all` ends every one of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from actors import ChildState
from controlplane import errors
from controlplane.api.core_node import Taint
from controlplane.clock import wall_now
from controlplane.kubelet.labels import CONTAINER_NAME, CONTAINER_TYPE, POD_UID
from runtime.cri import ContainerState
from runtime.fake import KILL_EXIT_CODE
from runtime.images import ImageSpec

if TYPE_CHECKING:
    from controlplane.controllers.manager import ControllerManager
    from controlplane.machines import Machines
    from controlplane.store import Store
    from runtime.images import Registry
    from runtime.network import Fault as NetworkFault
    from runtime.network import Network

__all__ = ["COMPONENTS", "PROBES", "Chaos"]

log = structlog.get_logger(__name__)

COMPONENTS = ("scheduler", "controller-manager")
"""The control-plane components :meth:`Chaos.crash_component` can stop by name (a
kubelet is ``kubelet/<node>``)."""

PROBES = {"liveness": "live", "readiness": "ready", "startup": "started"}
"""Kubernetes probe names and what the runtime calls them."""

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONFLICT_RETRIES = 5

API_TIMEOUT = 10.0
"""How long a request from a node cut off from the store hangs before failing (the
kubelet's lease client times out after its renew interval, 10 s)."""

Hosts = str | Iterable[str] | None


@attrs.define(eq=False)
class Chaos:
    """Every fault, imperatively. Built by the cluster harness from the store, the root
    supervisor and the machines (the network and registry are the machines')."""

    store: Store
    supervisor: Any
    machines: Machines
    controller_manager: ControllerManager | None = None
    _taints: dict[tuple[str, str, str], None] = attrs.field(factory=dict, init=False)
    _cordoned: dict[str, None] = attrs.field(factory=dict, init=False)
    _images: dict[str, ImageSpec] = attrs.field(factory=dict, init=False)
    _probe_heals: list[Callable[[], None]] = attrs.field(factory=list, init=False)
    _log: Any = attrs.field(factory=lambda: log.bind(component="chaos"), init=False)

    @property
    def network(self) -> Network:
        return self.machines.network

    @property
    def registry(self) -> Registry:
        return self.machines.registry

    # ----- control plane ---------------------------------------------------------------

    def compact(self) -> None:
        """Drop all retained watch history now: watches resuming from an older revision
        get ``Gone`` and must re-list."""
        self.store.compact()

    def close_watches(self) -> None:
        """End every open watch: clients must re-watch (from their last revision)."""
        self.store.close_watches()

    def store_fault(
        self,
        *,
        kind: str | type[Any] | None = None,
        verb: str | None = None,
        error: type[Exception] | None = None,
        latency: float | None = None,
        fraction: float = 1.0,
    ) -> Any:
        """Make a ``fraction`` of matching store requests fail with ``error``
        (``errors.TooManyRequests`` or ``errors.Timeout``) and/or take ``latency`` more
        virtual seconds. ``kind``/``verb`` of None match all. Returns a handle whose
        ``remove()`` lifts the fault; ``self.store.faults.clear()`` lifts all."""
        return self.store.faults.inject(
            kind=kind,
            verb=verb,
            error=error,  # type: ignore[arg-type]
            latency=latency,
            fraction=fraction,
        )

    def node_store_fault(
        self,
        node: str,
        *,
        kind: str | type[Any] | None = None,
        verb: str | None = None,
        error: type[Exception] | None = None,
        latency: float | None = None,
        fraction: float = 1.0,
    ) -> Any:
        """Like :meth:`store_fault`, for the requests of node ``node``'s kubelet and
        kube-proxy only (node↔store traffic). Returns a handle; ``remove()`` lifts it.

        Raises:
            errors.NotFound: no machine of that name. ValueError: as store_fault.
        """
        faults = self.machines.get(node).api_faults
        assert faults is not None
        return faults.inject(
            kind=kind,
            verb=verb,
            error=error,  # type: ignore[arg-type]
            latency=latency,
            fraction=fraction,
        )

    def cut_from_store(self, node: str) -> Any:
        """Node ``node`` cannot reach the store: each request of its kubelet and proxy
        hangs for :data:`API_TIMEOUT` seconds, then fails with Timeout (what a client
        behind a partition sees). Open watches keep delivering. Returns a handle."""
        return self.node_store_fault(node, error=errors.Timeout, latency=API_TIMEOUT)

    def conflict_storm(
        self, fraction: float = 0.5, *, kind: str | None = None
    ) -> Callable[[], None]:
        """Make ``fraction`` of updates and status updates (of ``kind``, None: all) fail
        with Conflict, as if someone else always wrote first. Returns the function that
        ends the storm.

        Raises:
            ValueError: a fraction outside 0..1.
        """
        handles = [
            self.store.faults.inject(kind=kind, verb=verb, error=errors.Conflict, fraction=fraction)
            for verb in ("update", "update_status")
        ]

        def heal() -> None:
            for handle in handles:
                handle.remove()

        return heal

    def crash_component(self, name: str) -> None:
        """Stop control-plane component ``name`` (``scheduler``, ``controller-manager``
        or ``kubelet/<node>``) at once; it stays down until :meth:`restart_component`
        (its informers re-list when it comes back).

        Raises:
            actors.NoSuchChild: no component of that name.
        """
        self.supervisor.kill_child(name)
        self._log.info("component_crashed", child=name)

    def component_stopped(self, name: str) -> bool:
        """Whether component ``name`` was stopped (:meth:`crash_component`, or its
        machine crashed) and not started again; False for an unknown name."""
        return any(
            child.name == name and child.state is ChildState.STOPPED
            for child in self.supervisor.children()
        )

    def restart_component(self, name: str) -> None:
        """Start component ``name`` again (soon, in the supervisor's nursery).

        Raises:
            actors.NoSuchChild: no component of that name.
        """
        self.supervisor.restart_child_soon(name)
        self._log.info("component_restarted", child=name)

    def crash_controller(self, name: str) -> None:
        """Stop one controller inside the controller manager (say
        ``replicaset-controller``) while the others keep working; it stays down until
        :meth:`restart_controller`, which builds it afresh.

        Raises:
            actors.NoSuchChild: no controller of that name.
            RuntimeError: the cluster runs no controller manager, or it is down.
        """
        self._manager().crash_controller(name)
        self._log.info("controller_crashed", controller=name)

    def controller_stopped(self, name: str) -> bool:
        """Whether controller ``name`` was crashed and not started again (False while
        the whole manager is down: it starts every controller when it comes back)."""
        return self.controller_manager is not None and self.controller_manager.controller_stopped(
            name
        )

    def restart_controller(self, name: str) -> None:
        """Start controller ``name`` again (soon), from scratch.

        Raises:
            actors.NoSuchChild: no controller of that name.
            RuntimeError: the cluster runs no controller manager, or it is down.
        """
        self._manager().restart_controller(name)
        self._log.info("controller_restarted", controller=name)

    def _manager(self) -> ControllerManager:
        if self.controller_manager is None:
            raise RuntimeError("this cluster runs no controller manager")
        return self.controller_manager

    # ----- nodes -----------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        """Power loss on node ``name``: its kubelet stops, its containers exit, its
        Lease is no longer renewed (the node goes NotReady once the lease expires).

        Raises:
            errors.NotFound: no machine of that name.
        """
        self.machines.crash(name)

    def restart_node(self, name: str) -> None:
        """Boot node ``name`` again: the engine comes back with its images and exited
        containers; a fresh kubelet adopts them and restarts pods per restartPolicy.

        Raises:
            errors.NotFound: no machine of that name.
        """
        self.machines.restart(name)

    def pause_node(self, name: str) -> None:
        """Hang node ``name``'s kubelet (no syncs, no lease renewals) and kube-proxy (no
        rule updates: it keeps routing with its last table) until :meth:`resume_node`;
        its containers keep running."""
        self.machines.pause(name)

    def resume_node(self, name: str) -> None:
        self.machines.resume(name)

    def set_clock_skew(self, name: str, seconds: float) -> None:
        """Make node ``name``'s clock run ``seconds`` ahead (negative: behind): the Node
        heartbeats and Lease renewTime its kubelet writes carry the skewed time. 0 heals.

        Raises:
            errors.NotFound: no machine of that name.
        """
        self.machines.get(name).kubelet.clock_skew = seconds

    async def drain_node(self, name: str) -> list[str]:
        """``kubectl drain``: cordon node ``name`` (``spec.unschedulable``), then evict
        (delete, with each pod's own grace period) every pod on it except DaemonSet and
        mirror pods. There are no PodDisruptionBudgets in kubetrio, so nothing blocks an
        eviction. Returns the evicted pods as ``namespace/name``.

        Raises:
            errors.NotFound: no such Node. Other store errors propagate.
        """
        await self._update_node(name, lambda spec: attrs.evolve(spec, unschedulable=True))
        self._cordoned[name] = None
        evicted = []
        for pod in self.store.list_nowait("Pod", field_selector=f"spec.nodeName={name}"):
            meta = pod.metadata
            ref = meta.controller_ref()
            if meta.deletion_timestamp is not None or MIRROR_ANNOTATION in meta.annotations:
                continue
            if ref is not None and ref.kind == "DaemonSet":
                continue
            try:
                await self.store.delete("Pod", meta.name, namespace=meta.namespace)
            except errors.NotFound:
                continue
            evicted.append(f"{meta.namespace}/{meta.name}")
        self._log.info("node_drained", node=name, evicted=len(evicted))
        return evicted

    async def uncordon_node(self, name: str) -> None:
        """``kubectl uncordon``: the node takes new pods again.

        Raises:
            errors.NotFound: no such Node.
        """
        self._cordoned.pop(name, None)
        await self._update_node(name, lambda spec: attrs.evolve(spec, unschedulable=None))

    async def taint_node(
        self, name: str, key: str, value: str = "", effect: str = "NoSchedule"
    ) -> None:
        """Add taint ``key=value:effect`` to node ``name`` (replacing one with the same
        key and effect); NoExecute evicts pods that do not tolerate it.

        Raises:
            errors.NotFound: no such Node. errors.Invalid: a bad key or effect.
        """
        taint = Taint(
            key=key,
            value=value or None,
            effect=effect,
            time_added=wall_now() if effect == "NoExecute" else None,
        )

        def add(spec: Any) -> Any:
            kept = tuple(t for t in spec.taints if (t.key, t.effect) != (key, effect))
            return attrs.evolve(spec, taints=(*kept, taint))

        await self._update_node(name, add)
        self._taints[(name, key, effect)] = None

    async def untaint_node(self, name: str, key: str, effect: str = "NoSchedule") -> None:
        """Remove the taint ``key:effect`` from node ``name`` (if present).

        Raises:
            errors.NotFound: no such Node.
        """
        self._taints.pop((name, key, effect), None)
        await self._update_node(
            name,
            lambda spec: attrs.evolve(
                spec, taints=tuple(t for t in spec.taints if (t.key, t.effect) != (key, effect))
            ),
        )

    async def _update_node(self, name: str, change: Callable[[Any], Any]) -> None:
        for attempt in range(CONFLICT_RETRIES):
            node = await self.store.get("Node", name)
            spec = change(node.spec)
            if spec == node.spec:
                return
            try:
                await self.store.update(attrs.evolve(node, spec=spec))
                return
            except errors.Conflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise

    # ----- containers ------------------------------------------------------------------

    def kill_container(self, namespace: str, pod: str, container: str | None = None) -> str:
        """``docker kill`` one running container of pod ``namespace/pod`` (exit 137);
        the kubelet sees it exit and applies the restartPolicy. ``container`` defaults
        to the pod's first container. Returns the runtime id of the killed container.

        Raises:
            errors.NotFound: no such pod, the pod is not on a machine, or no such
                container is running.
        """
        return self._kill(namespace, pod, container, reason=None)

    def oom_kill_container(self, namespace: str, pod: str, container: str | None = None) -> str:
        """The kernel's OOM killer on one running container of ``namespace/pod``: exit
        137 with reason ``OOMKilled`` (what ``lastState.terminated`` shows). Returns the
        runtime id. Raises as :meth:`kill_container`."""
        return self._kill(namespace, pod, container, reason="OOMKilled")

    def _kill(self, namespace: str, pod: str, container: str | None, *, reason: str | None) -> str:
        obj, node = self._placed_pod(namespace, pod)
        name = container or obj.spec.containers[0].name
        engine = self.machines.get(node).runtime
        for info in engine.list_containers():
            labels = info.labels
            if (
                labels.get(POD_UID) == obj.metadata.uid
                and labels.get(CONTAINER_NAME) == name
                and labels.get(CONTAINER_TYPE) != "init"
                and info.state is ContainerState.RUNNING
            ):
                engine.kill_container(
                    info.id,
                    KILL_EXIT_CODE,
                    reason=reason,
                    message="OOM killed by chaos" if reason else "killed",
                )
                return info.id
        raise errors.NotFound(
            f'container "{name}" of pod "{namespace}/{pod}" is not running',
            kind="Pod",
            namespace=namespace,
            name=pod,
        )

    def _placed_pod(self, namespace: str, pod: str) -> tuple[Any, str]:
        obj = self.store.get_nowait("Pod", pod, namespace=namespace)
        if obj is None:
            raise errors.NotFound(
                f'pods "{pod}" not found in namespace "{namespace}"',
                kind="Pod",
                namespace=namespace,
                name=pod,
            )
        node = obj.spec.node_name
        if not node or node not in self.machines:
            raise errors.NotFound(
                f'pod "{namespace}/{pod}" is not running on any machine',
                kind="Pod",
                namespace=namespace,
                name=pod,
            )
        return obj, node

    def fail_probe(
        self, namespace: str, pod: str, probe: str = "readiness", container: str | None = None
    ) -> Callable[[], None]:
        """Make ``probe`` (liveness, readiness, startup) of pod ``namespace/pod`` fail
        — every container, or only ``container`` — including containers restarted
        meanwhile, until the returned function is called (or :meth:`heal_all`).

        Raises:
            ValueError: an unknown probe. errors.NotFound: as :meth:`kill_container`.
        """
        if probe not in PROBES:
            raise ValueError(f"probe: must be one of {', '.join(PROBES)}, got {probe!r}")
        obj, node = self._placed_pod(namespace, pod)
        labels = {POD_UID: obj.metadata.uid}
        if container is not None:
            labels[CONTAINER_NAME] = container
        heal = self.machines.get(node).runtime.fail_probe(PROBES[probe], labels)
        self._probe_heals.append(heal)
        return heal

    def fail_image_pull(self, image: str) -> Callable[[], None]:
        """Make pulls of ``image`` fail (``ErrImagePull`` / ``ImagePullBackOff``) until
        the returned function is called (or :meth:`heal_all`); images already pulled
        on a node keep working there."""
        self._images.setdefault(image, self.registry.spec(image))
        self.registry.mark_missing(image)

        def heal() -> None:
            self._restore_image(image)

        return heal

    def _restore_image(self, image: str) -> None:
        spec = self._images.pop(image, None)
        if spec is not None and not spec.missing:
            self.registry.add(image, pull_seconds=spec.pull_seconds, program=spec.program)

    # ----- network ---------------------------------------------------------------------

    def partition(
        self, a: str | Iterable[str], b: Hosts = None, *, one_way: bool = False
    ) -> NetworkFault:
        """Cut the network between ``a`` and ``b`` (node names or pod IPs; ``b`` None:
        everyone else), both ways or only from ``a`` to ``b``. ``.remove()`` heals."""
        return self.network.partition(a, b, one_way=one_way)

    def delay(
        self, seconds: float, *, jitter: float = 0.0, src: Hosts = None, dst: Hosts = None
    ) -> NetworkFault:
        """Delay messages from ``src`` to ``dst`` by ``seconds`` ± ``jitter``."""
        return self.network.delay(seconds, jitter=jitter, src=src, dst=dst)

    def loss(self, fraction: float, *, src: Hosts = None, dst: Hosts = None) -> NetworkFault:
        """Lose ``fraction`` of the messages from ``src`` to ``dst``."""
        return self.network.drop(fraction, src=src, dst=dst)

    def duplicate(self, fraction: float, *, src: Hosts = None, dst: Hosts = None) -> NetworkFault:
        """Deliver ``fraction`` of the requests from ``src`` to ``dst`` twice."""
        return self.network.duplicate(fraction, src=src, dst=dst)

    # ----- healing ---------------------------------------------------------------------

    async def heal_all(self) -> None:
        """End every fault: store and network faults removed, crashed nodes booted,
        paused nodes resumed, clocks set right, stopped components and controllers
        restarted, probes
        and image pulls working again, chaos's taints and cordons removed.

        Raises:
            errors.ApiError: writing a Node failed (the rest is healed before).
        """
        self.store.faults.clear()
        self.network.clear_faults()
        for name in self.machines.names():
            faults = self.machines.get(name).api_faults
            if faults is not None:
                faults.clear()
        for heal in self._probe_heals:
            heal()
        self._probe_heals.clear()
        for image in list(self._images):
            self._restore_image(image)
        down = {name for name in self.machines.names() if not self.machines.get(name).runtime.up}
        for child in self.supervisor.children():
            # a crashed machine's kubelet and proxy come back with the machine below
            owner = child.name.partition("/")[2]
            if (
                child.state is ChildState.STOPPED
                and (child.name in COMPONENTS or child.name.startswith(("kubelet/", "proxy/")))
                and owner not in down
            ):
                self.supervisor.restart_child_soon(child.name)
        if self.controller_manager is not None:
            for name in self.controller_manager.names:
                if self.controller_manager.controller_stopped(name):
                    self.controller_manager.restart_controller(name)
        for name in self.machines.names():
            machine = self.machines.get(name)
            machine.kubelet.clock_skew = 0.0
            if name in down:
                self.machines.restart(name)
            elif machine.kubelet.paused:
                self.machines.resume(name)
        for node, key, effect in list(self._taints):
            await self._heal_node(self.untaint_node(node, key, effect))
        for node in list(self._cordoned):
            await self._heal_node(self.uncordon_node(node))
        self._log.info("chaos_healed_all")

    async def _heal_node(self, write: Any) -> None:
        with contextlib.suppress(errors.NotFound):  # the node is gone: nothing to heal
            await write
