"""The cluster's machines: for each node a container engine, a kubelet and a kube-proxy,
supervised.

A node is three supervised children, ``runtime/<node>`` (the engine, hosting user
programs), ``kubelet/<node>`` and ``proxy/<node>`` (its service routing), so a
kubelet that crashes and is restarted finds its containers still running -- as on a
real machine, where the container engine outlives a kubelet restart. Chaos acts on a
whole machine: ``crash`` takes them all down (containers exit, the lease stops being
renewed, the proxy's rules are lost), ``restart`` brings the engine back with what it
still knows, a kubelet that adopts it and a proxy that rebuilds its rules; ``pause``
hangs kubelet and proxy (the proxy keeps routing with its last table).
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import structlog

from actors import Supervisor, WorkTracker
from actors.timers import TimerService
from controlplane import errors
from controlplane.chaos.nodeclient import NodeClient
from controlplane.client.protocol import Client
from controlplane.kubelet import Kubelet
from controlplane.metrics import MetricsSink
from controlplane.nodes import NodeTemplate
from controlplane.proxy import Proxy, ProxyConfig, ProxyRouter
from controlplane.store.faults import Faults
from runtime.fake import FakeRuntime
from runtime.images import Registry
from runtime.network import Network

__all__ = ["Machine", "Machines"]

log = structlog.get_logger(__name__)


@attrs.define(eq=False)
class Machine:
    """One node's engine, kubelet and proxy (the same objects across restarts)."""

    name: str
    runtime: FakeRuntime
    kubelet: Kubelet
    proxy: Proxy
    #: fault points on this node's requests to the API (kubelet and proxy): chaos's
    #: node<->store faults (None: the machine talks to the API directly)
    api_faults: Faults | None = None

    @property
    def runtime_child(self) -> str:
        return f"runtime/{self.name}"

    @property
    def kubelet_child(self) -> str:
        return f"kubelet/{self.name}"

    @property
    def proxy_child(self) -> str:
        return f"proxy/{self.name}"


class Machines:
    """Adds, removes, crashes and restarts nodes; looks machines up by node name.

    Args:
        supervisor: where the machines' children run.
        client: the components' client (``track_work=True``).
        timers, network, registry: shared by every machine.
        seed: each machine draws from its own ``Random(f"{seed}:node:{name}")``, so adding
            a node does not shift the randomness of the others.
        tracker: the harness's work tracker (kubelets count their queued work on it).
        metrics: the resource metrics store kubelets report usage to (None: they do not
            report). Read when a machine is added, so setting the attribute affects the
            machines added afterwards.
        proxy_config: how every node's kube-proxy routes (random by default); each
            proxy draws from its own ``Random(f"{seed}:proxy:{name}")``. Read when a
            machine is added, like ``metrics``. ``proxies`` is the router all of them
            share (it installs one translator on ``network``).
    """

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        client: Client,
        timers: TimerService,
        network: Network,
        registry: Registry,
        seed: int,
        tracker: WorkTracker,
        metrics: MetricsSink | None = None,
        proxy_config: ProxyConfig | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._client = client
        self._timers = timers
        self._network = network
        self._registry = registry
        self._seed = seed
        self._tracker = tracker
        self.metrics = metrics
        self.proxy_config = proxy_config or ProxyConfig()
        self.proxies = ProxyRouter(network)
        self._machines: dict[str, Machine] = {}

    @property
    def network(self) -> Network:
        """The simulated network every machine is on."""
        return self._network

    @property
    def registry(self) -> Registry:
        """The image registry every machine pulls from."""
        return self._registry

    def __contains__(self, name: object) -> bool:
        return name in self._machines

    def names(self) -> list[str]:
        """The nodes with a machine, in the order they were added."""
        return list(self._machines)

    def get(self, name: str) -> Machine:
        """The machine of node ``name``.

        Raises:
            errors.NotFound: no such node was added (or it was removed).
        """
        try:
            return self._machines[name]
        except KeyError:
            raise errors.NotFound(
                f'node "{name}" has no machine in this cluster', kind="Node", name=name
            ) from None

    async def add(self, name: str, template: NodeTemplate) -> Any:
        """Boot a machine for node ``name``; returns the Node its kubelet registered.

        Raises:
            errors.AlreadyExists: a machine of that name is running.
        """
        if name in self._machines:
            raise errors.AlreadyExists(
                f'node "{name}" already has a machine', kind="Node", name=name
            )
        host = self._network.add_host(name)
        rng = random.Random(f"{self._seed}:node:{name}")
        api_faults = Faults(random.Random(f"{self._seed}:node-api:{name}"))
        client = NodeClient(self._client, api_faults)
        engine = FakeRuntime(
            name, registry=self._registry, network=self._network, timers=self._timers, rng=rng
        )
        kubelet = Kubelet(
            client,
            engine,
            self._timers,
            node_name=name,
            rng=rng,
            template=template,
            host_ip=host.ip,
            tracker=self._tracker,
            metrics=self.metrics,
        )
        proxy = Proxy(
            client,
            self.proxies,
            node_name=name,
            node_ip=host.ip,
            rng=random.Random(f"{self._seed}:proxy:{name}"),
            config=self.proxy_config,
            tracker=self._tracker,
        )
        machine = Machine(
            name=name, runtime=engine, kubelet=kubelet, proxy=proxy, api_faults=api_faults
        )
        self._machines[name] = machine
        try:
            await self._supervisor.start_child(machine.runtime_child, engine.run)
            await self._supervisor.start_child(machine.kubelet_child, kubelet.run)
            await self._supervisor.start_child(machine.proxy_child, proxy.run)
        except BaseException:
            await self._forget(machine)
            raise
        return await self._client.get("Node", name)

    async def remove(self, name: str) -> None:
        """Shut the machine down (kubelet, then engine) and forget it. The Node object
        is not touched here: deleting it is the caller's business."""
        await self._forget(self.get(name))

    async def _forget(self, machine: Machine) -> None:
        await self._supervisor.remove_child(machine.proxy_child)
        machine.proxy.flush()
        await self._supervisor.remove_child(machine.kubelet_child)
        await self._supervisor.remove_child(machine.runtime_child)
        self._network.remove_host(machine.name)
        self._machines.pop(machine.name, None)

    def crash(self, name: str) -> None:
        """Power loss: the kubelet and proxy stop at once (no cleanup beyond trio's),
        every container exits, the lease is no longer renewed, the proxy's rules are
        gone."""
        machine = self.get(name)
        self._supervisor.kill_child(machine.kubelet_child)
        self._supervisor.kill_child(machine.proxy_child)
        machine.proxy.flush()
        machine.runtime.crash()
        log.info("node_crashed", node=name)

    def restart(self, name: str) -> None:
        """Boot a crashed (or running) machine again: the engine comes back with its
        images and exited containers, and a kubelet starts that adopts them."""
        machine = self.get(name)
        machine.runtime.recover()
        machine.kubelet.resume()
        machine.proxy.resume()
        self._supervisor.restart_child_soon(machine.kubelet_child)
        self._supervisor.restart_child_soon(machine.proxy_child)
        log.info("node_restarted", node=name)

    def pause(self, name: str) -> None:
        """Hang the machine's kubelet and proxy until :meth:`resume`: containers keep
        running and the proxy keeps routing with the table it had."""
        machine = self.get(name)
        machine.kubelet.pause()
        machine.proxy.pause()

    def resume(self, name: str) -> None:
        machine = self.get(name)
        machine.kubelet.resume()
        machine.proxy.resume()
