"""The harness users embed in their tests: ``open_cluster`` and the ``Cluster`` it yields.

This is the one composition root (STYLE.md point 7): it builds the store, the client and
every component, passes dependencies in, and runs them under one supervisor. Nothing
here decides anything a component should decide; it wires, waits and reports.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from actors import WorkTracker, open_supervisor
from actors.timers import TimerService
from controlplane import errors
from controlplane.admission import default_admission_steps
from controlplane.admission.serviceip import kubernetes_service
from controlplane.api import from_dict, load_yaml
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.chaos import Chaos
from controlplane.client.local import LocalClient
from controlplane.controllers import ControllerFactory, ControllerManager, default_controllers
from controlplane.determinism import seeded_scheduler
from controlplane.dns import ClusterDNS
from controlplane.kubelet.dns import cluster_search
from controlplane.machines import Machines
from controlplane.metrics import MetricsStore
from controlplane.nodes import NodeTemplate
from controlplane.proxy import ProxyConfig
from controlplane.scheduler import Scheduler
from controlplane.store import Store
from controlplane.traffic import LoadGenerator, Response
from controlplane.traffic import request as traffic_request
from runtime.images import Registry
from runtime.network import Network

__all__ = ["Cluster", "open_cluster"]

log = structlog.get_logger(__name__)

#: The namespaces every Kubernetes cluster starts with.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

Manifest = str | Mapping[str, Any] | object


def _objects_of(manifest: Manifest | Iterable[Manifest]) -> list[Any]:
    """Normalise what ``apply`` accepts (YAML text, a dict, an object, or a list of them)."""
    if isinstance(manifest, str):
        return load_yaml(manifest)
    if isinstance(manifest, Mapping):
        return [from_dict(manifest)]
    if isinstance(manifest, list | tuple):
        return [obj for item in manifest for obj in _objects_of(item)]
    if hasattr(manifest, "metadata") and hasattr(type(manifest), "kind"):
        return [manifest]
    raise TypeError(
        f"cannot apply {type(manifest).__name__}: expected YAML text, a dict, an API object"
        " or a list of them"
    )


@attrs.define(eq=False)
class Cluster:
    """A running in-process cluster. Get one from :func:`open_cluster`.

    ``client`` is what components and tests write through (the Kubernetes API);
    the ``*_nowait`` reads, ``wait_for`` and ``settle`` are test conveniences that read the
    store's current state directly. ``registry`` configures images (pull times, missing
    images, programs), ``network`` the simulated pod network (faults), and ``metrics`` is
    the resource metrics the kubelets report (what ``kubectl top`` and the HPA read).
    """

    store: Store
    client: LocalClient
    chaos: Chaos
    rng: random.Random
    seed: int
    registry: Registry
    network: Network
    timers: TimerService
    machines: Machines
    scheduler: Scheduler
    controller_manager: ControllerManager
    metrics: MetricsStore
    dns: ClusterDNS
    _tracker: WorkTracker

    async def apply(self, manifest: Manifest | Iterable[Manifest]) -> Any:
        """Create or update each object in ``manifest``; return what was stored.

        ``manifest`` is YAML text (one or many documents), a dict, an API object or a list
        of these. Like ``kubectl apply``, an object that exists is updated — its spec,
        labels and annotations replaced by the manifest's, its status kept. Returns the
        stored object for a single object, else a list.

        Raises:
            errors.ApiError: the first rejected object; objects before it stay applied
                (like ``kubectl apply -f`` on a multi-document file).
        """
        objs = _objects_of(manifest)
        stored = [await self._apply_one(obj) for obj in objs]
        single = not isinstance(manifest, list | tuple) and len(stored) == 1
        return stored[0] if single else stored

    async def _apply_one(self, obj: Any) -> Any:
        meta = obj.metadata
        if not meta.name:
            return await self.client.create(obj)
        try:
            current = await self.client.get(type(obj), meta.name, namespace=meta.namespace)
        except errors.NotFound:
            return await self.client.create(obj)
        merged_meta = attrs.evolve(
            current.metadata,
            labels=meta.labels,
            annotations=meta.annotations,
            owner_references=meta.owner_references or current.metadata.owner_references,
            finalizers=meta.finalizers or current.metadata.finalizers,
        )
        update = attrs.evolve(obj, metadata=merged_meta)
        return await self.client.update(update)

    def get_nowait(self, kind: str | type[Any], name: str, *, namespace: str = "") -> Any:
        """The current stored object, or None if there is none. Does not block."""
        return self.store.get_nowait(kind, name, namespace=namespace)

    def list_nowait(
        self,
        kind: str | type[Any],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Any]:
        """The current stored objects of ``kind`` matching the selectors. Does not block."""
        return self.store.list_nowait(
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 60,  # noqa: ASYNC109 - `timeout=` is the public API (DESIGN.md)
        description: str | None = None,
    ) -> Any:
        """Wait until ``predicate()`` returns something truthy; return that value.

        The predicate is checked now and again after every store change — never on a
        timer — so it should read current state (``get_nowait``, ``list_nowait``).
        ``timeout`` is in (virtual) seconds.

        Raises:
            TimeoutError: the predicate stayed falsy for ``timeout`` seconds; the message
                names what was waited for (``description``, else the predicate's name).
        """
        with trio.move_on_after(timeout):
            return await self.store.wait_until(predicate)
        what = description or getattr(predicate, "__qualname__", repr(predicate))
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")

    async def settle(self) -> None:
        """Return once no component has queued work (events to handle, keys to reconcile).

        Work scheduled for later (a requeue after 10 s, a backoff) does not count.
        """
        await self._tracker.wait_idle()

    def history_digest(self) -> str:
        """A digest of every write so far: same seed + same workload → same digest."""
        return self.store.history_digest()

    def _client_ip(self, via: str | None) -> str:
        """The host IP requests from outside leave from: node ``via``, else the first
        node by name (its kube-proxy routes Service IPs, as on a real node)."""
        names = sorted(self.machines.names()) if via is None else [via]
        if not names:
            raise RuntimeError("no node to send from: add a node first")
        return self.network.host(names[0]).ip

    async def request(
        self,
        host: str,
        port: int,
        payload: bytes = b"",
        *,
        namespace: str = "default",
        via: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a client's timeout: part of the API
    ) -> Response:
        """Send ``payload`` to ``host:port`` from node ``via`` (default: the first node)
        and return what happened: ``Response(ok, body, error, latency, backend)``,
        ``backend`` naming the pod that answered. ``host`` is an IP or a name resolved
        by the cluster DNS with ``namespace``'s search list (``web``, ``web.prod``,
        ``web.prod.svc.cluster.local``). Network failures (refused, unreachable, timed
        out, unknown name) are reported in the Response, not raised.

        Raises:
            RuntimeError: the cluster has no node to send from.
        """
        return await traffic_request(
            self.network,
            host,
            port,
            payload,
            src_ip=self._client_ip(via),
            search=cluster_search(namespace),
            timeout=timeout,
        )

    def load_generator(
        self,
        host: str,
        port: int,
        *,
        rate: float,
        namespace: str = "default",
        via: str | None = None,
        **options: Any,
    ) -> LoadGenerator:
        """A :class:`controlplane.traffic.LoadGenerator` sending ``rate`` requests per
        second to ``host:port`` as :meth:`request` does; start it with
        ``await nursery.start(generator.run)``; ``options``: payload, timeout, count,
        duration, max_in_flight.

        Raises:
            RuntimeError: the cluster has no node to send from.
            ValueError: a bad rate or option.
        """
        return LoadGenerator(
            self.network,
            host,
            port,
            rate=rate,
            src_ip=self._client_ip(via),
            search=cluster_search(namespace),
            **options,
        )

    async def add_node(
        self,
        name: str,
        *,
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Any] = (),
    ) -> Any:
        """Boot a machine whose kubelet registers Node ``name`` with this capacity;
        returns the stored Node.

        Raises:
            errors.Invalid: a bad quantity or taint (nothing is started).
            errors.AlreadyExists: the node exists already.
        """
        template = NodeTemplate.build(
            cpu=cpu, memory=memory, pods=pods, labels=labels, taints=taints
        )
        return await self.machines.add(name, template)

    async def remove_node(self, name: str) -> None:
        """Shut node ``name``'s machine down and delete its Node object (its pods are
        left to the controllers, as when a machine is decommissioned).

        Raises:
            errors.NotFound: there is no such node.
        """
        if name in self.machines:
            await self.machines.remove(name)
        await self.client.delete("Node", name)


@asynccontextmanager
async def open_cluster(
    *,
    nodes: int = 0,
    seed: int = 0,
    node_template: NodeTemplate | None = None,
    store_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    controllers: Iterable[ControllerFactory] | None = None,
    admission: Callable[[Store], Iterable[Any]] | None = None,
    proxy_config: ProxyConfig | None = None,
) -> AsyncIterator[Cluster]:
    """Start an in-process cluster; yield a :class:`Cluster`; stop everything on exit.

    Args:
        nodes: how many machines to boot (``node-1`` … ``node-N``); each one's kubelet
            registers its Node with ``node_template``'s capacity (4 CPU, 16 Gi,
            110 pods by default).
        seed: the root of all randomness (uids, generated names, faults, trio's task
            scheduling): the same seed and workload give the same history.
        store_options: keyword arguments for :class:`controlplane.store.Store`
            (history limits, watch buffer sizes, bookmark interval).
        registry: the images machines pull (default: any image pulls in about a second
            and runs forever); also reachable as ``cluster.registry``.
        controllers: ``(name, factory)`` pairs the controller manager runs (default:
            :func:`controlplane.controllers.default_controllers`; ``()`` runs none, to
            test a controller of your own against a bare cluster).
        admission: builds the store's admission steps from the store (default:
            :func:`controlplane.admission.default_admission_steps`; ``lambda store: ()``
            runs only defaulting and validation).
        proxy_config: how every node's kube-proxy balances (random like iptables
            mode by default, or round-robin).

    Runs under any trio clock; under ``MockClock(autojump_threshold=0)`` it runs in
    virtual time. The supervisor fails the block loudly if a component keeps crashing.
    """
    template = node_template or NodeTemplate()
    with seeded_scheduler(seed):
        rng = random.Random(f"{seed}:cluster")
        tracker = WorkTracker()
        store = Store(
            random.Random(f"{seed}:store"),
            fault_rng=random.Random(f"{seed}:faults"),
            work_tracker=tracker,
            **dict(store_options or {}),
        )
        build_admission = admission or functools.partial(default_admission_steps, seed=seed)
        for step in build_admission(store):
            store.add_admission_step(step)
        async with open_supervisor(name="cluster") as supervisor:
            await supervisor.start_child("store", store.run)
            timers = TimerService()
            await supervisor.start_child("timers", timers.run)
            client = LocalClient(store)
            # Components' watches count as work for settle(); the user's do not.
            components = LocalClient(store, track_work=True)
            for ns in SYSTEM_NAMESPACES:
                await client.create(Namespace(metadata=ObjectMeta(name=ns)))
            await client.create(kubernetes_service())  # default/kubernetes, 10.96.0.1
            scheduler = Scheduler(
                components, rng=random.Random(f"{seed}:scheduler"), tracker=tracker
            )
            await supervisor.start_child("scheduler", scheduler.run)
            # metrics-server: kubelets report pod usage here, the HPA reads it
            metrics = MetricsStore()
            controller_manager = ControllerManager(
                components,
                default_controllers(metrics) if controllers is None else tuple(controllers),
                seed=seed,
                tracker=tracker,
            )
            await supervisor.start_child("controller-manager", controller_manager.run)
            network = Network(random.Random(f"{seed}:network"))
            dns = ClusterDNS(components, tracker=tracker)
            await supervisor.start_child("cluster-dns", dns.run)
            network.set_resolver(dns.resolve)
            registry = registry or Registry()
            machines = Machines(
                supervisor=supervisor,
                client=components,
                timers=timers,
                network=network,
                registry=registry,
                seed=seed,
                tracker=tracker,
                metrics=metrics,
                proxy_config=proxy_config,
            )
            cluster = Cluster(
                store=store,
                client=client,
                chaos=Chaos(
                    store=store,
                    supervisor=supervisor,
                    machines=machines,
                    controller_manager=controller_manager,
                ),
                rng=rng,
                seed=seed,
                registry=registry,
                network=network,
                timers=timers,
                machines=machines,
                scheduler=scheduler,
                controller_manager=controller_manager,
                metrics=metrics,
                dns=dns,
                tracker=tracker,
            )
            for i in range(1, nodes + 1):
                await machines.add(f"node-{i}", template)
            log.debug("cluster_started", seed=seed, nodes=nodes)
            try:
                yield cluster
            finally:
                supervisor.cancel()
