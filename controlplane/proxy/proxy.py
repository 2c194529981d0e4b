"""kube-proxy: one actor per node keeping that node's service routing table current.

Each :class:`Proxy` watches Services and core/v1 Endpoints in all namespaces through its
own informers (as every kube-proxy watches the API server on its own), marks the
changed services dirty in its event handlers — a set insertion, nothing more — and its
sync loop reprograms just those services in its :class:`~controlplane.proxy.table.ProxyTable`.
Syncs are rate limited like kube-proxy's ``BoundedFrequencyRunner``: a change after a
quiet spell is applied at once, further ones at most every ``min_sync_period`` (1 s, the
``--iptables-min-sync-period`` default). kube-proxy's periodic full resync
(``--iptables-sync-period``, 30 s) repairs rules someone else flushed; nothing can
tamper with these tables, so there is none.

Deviation: modern kube-proxy reads EndpointSlices; this one reads the Endpoints object
(one per Service, same name), which carries the same ready addresses and ports.

The data plane: a :class:`ProxyRouter` (one per cluster network) installs a single
translator on the :class:`~runtime.network.Network` and dispatches each request to the
proxy of the *source's* node for a clusterIP (``network.host_of(src_ip)``: its pods and
its own host IP), and to the proxy of the *destination's* node for
``<node IP>:<nodePort>`` (from anywhere, as ``KUBE-NODEPORTS`` matches traffic arriving at
the node). So a request costs a few dictionary probes whatever the number of nodes. A
service port without ready backends answers like iptables' ``REJECT``: the request is
sent to port 0 of the deciding node's own address, where nothing can ever listen, and
the caller gets :class:`~runtime.network.ConnectionRefused`.

Node faults (driven by ``controlplane.machines``): a paused proxy keeps routing with its
last table and applies nothing until resumed, like a hung kube-proxy whose iptables
rules stay in the kernel; a crashed machine loses its rules (:meth:`Proxy.flush`) and a
restarted one rebuilds them from a fresh list. A proxy whose actor crashed and is
restarted by its supervisor keeps routing with the old rules until its first sync.
Network partitions (``cluster.network.partition``) cut only the data plane here — the
store is in-process — so a partitioned node's proxy still sees every change; to cut a
node off the API server and watch it route with a stale table, pause it
(``cluster.chaos.pause_node``).

Not implemented: ``internalTrafficPolicy``/``externalTrafficPolicy: Local`` (kube-proxy
DROPs when there is no local endpoint, and the network has no drop target yet),
externalIPs and load-balancer IPs, UDP/SCTP (the network carries TCP-like requests only:
the table keeps those ports, the translator asks for TCP).
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs
import structlog
import trio

from controlplane.api.meta import object_key
from controlplane.client.informer import Informer
from controlplane.client.protocol import Client
from controlplane.client.workqueue import WorkTrackerLike
from controlplane.kubelet.tracking import PausableTracker
from controlplane.proxy.table import REFUSED, Backend, BackendMemo, Mode, ProxyTable
from runtime.network import Fault, Network

__all__ = ["REJECT_PORT", "Proxy", "ProxyConfig", "ProxyRouter", "ProxyStatistics"]

log = structlog.get_logger(__name__)

#: The port a rejected connection is sent to: ``Network.listen`` refuses port 0, so a
#: request there always fails with ConnectionRefused.
REJECT_PORT = 0


@attrs.frozen(kw_only=True)
class ProxyConfig:
    """How every proxy of a cluster behaves.

    ``mode``: ``"random"`` (iptables mode, the default) or ``"round-robin"``;
    ``min_sync_period``: the least time between two syncs (kube-proxy's
    ``--iptables-min-sync-period``, 1 s).
    """

    mode: Mode = attrs.field(default="random")
    min_sync_period: float = 1.0

    @mode.validator
    def _check_mode(self, attribute: Any, value: str) -> None:
        if value not in ("random", "round-robin"):
            raise ValueError(f"mode: must be 'random' or 'round-robin', got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not self.min_sync_period >= 0:
            raise ValueError(f"min_sync_period: must be >= 0, got {self.min_sync_period!r}")


@attrs.frozen
class ProxyStatistics:
    """A snapshot of one proxy: ``services`` and ``rules`` in its table, ``syncs`` done,
    ``last_sync`` (trio time, None before the first), ``pending`` services changed but
    not applied yet, ``paused``."""

    node: str
    services: int
    rules: int
    syncs: int
    last_sync: float | None
    pending: int
    paused: bool


class ProxyRouter:
    """The network side of every proxy in a cluster: one translator, O(1) dispatch.

    Args:
        network: where to install the translator (at construction).
        memo: shared backend derivation for the proxies built with this router.
    """

    def __init__(self, network: Network, *, memo: BackendMemo | None = None) -> None:
        self.network = network
        self.memo = memo if memo is not None else BackendMemo()
        self._proxies: dict[str, Proxy] = {}
        self._handle: Fault = network.add_translator(self.translate)

    def attach(self, proxy: Proxy) -> None:
        """Route through ``proxy`` for its node (replacing any earlier one)."""
        self._proxies[proxy.node_name] = proxy

    def detach(self, proxy: Proxy) -> None:
        """Stop routing through ``proxy`` (no-op if it is not the attached one)."""
        if self._proxies.get(proxy.node_name) is proxy:
            del self._proxies[proxy.node_name]

    def close(self) -> None:
        """Remove the translator from the network."""
        self._handle.remove()

    def translate(self, src_ip: str, dst_ip: str, port: int) -> tuple[str, int] | None:
        """The network's translator: see the module docstring."""
        host_of = self.network.host_of
        src_node = host_of(src_ip)
        if src_node is not None:
            proxy = self._proxies.get(src_node)
            if proxy is not None and proxy.table.is_service_address(dst_ip, port):
                return proxy.route(src_ip, dst_ip, port)
        dst_node = host_of(dst_ip)
        if dst_node is not None:
            proxy = self._proxies.get(dst_node)
            if proxy is not None and dst_ip == proxy.node_ip:
                return proxy.route(src_ip, dst_ip, port)
        return None


class Proxy:
    """kube-proxy for node ``node_name`` (see the module docstring).

    Args:
        client: the components' client.
        router: the cluster's :class:`ProxyRouter` (this proxy attaches itself when it
            first syncs).
        node_name, node_ip: the node and its address (where nodePorts are served).
        rng: this proxy's own seeded randomness (backend choice).
        config: :class:`ProxyConfig`.
        tracker: the harness's work tracker: pending changes count as work, so
            ``cluster.settle()`` returns once every proxy applied what it saw.

    The same object serves across restarts (its table is the machine's iptables state).
    Start with ``await nursery.start(proxy.run)``.
    """

    def __init__(
        self,
        client: Client,
        router: ProxyRouter,
        *,
        node_name: str,
        node_ip: str,
        rng: random.Random,
        config: ProxyConfig | None = None,
        tracker: WorkTrackerLike | None = None,
    ) -> None:
        self._client = client
        self._router = router
        self.node_name = node_name
        self.node_ip = node_ip
        self.config = config or ProxyConfig()
        self.table = ProxyTable(rng, mode=self.config.mode, memo=router.memo)
        self._tracker = tracker
        self._work = PausableTracker(tracker)
        self._dirty: set[str] = set()
        self._wakeup = trio.Event()
        self._paused = False
        self._running = False
        self._services: Informer | None = None
        self._endpoints: Informer | None = None
        self._syncs = 0
        self._last_sync: float | None = None
        self._synced = trio.Event()
        self._log = log.bind(component="proxy", node=node_name)

    # -- data plane --------------------------------------------------------------------

    def route(self, src_ip: str, dst_ip: str, port: int) -> tuple[str, int] | None:
        """Where this node sends a new TCP connection from ``src_ip`` to ``dst_ip:port``.

        Returns the chosen backend ``(ip, port)`` for a clusterIP service port or for
        this node's IP and a nodePort; ``(node_ip, REJECT_PORT)`` — which refuses — when
        that service port has no ready backend; None when ``dst_ip:port`` is not a
        service address here. The source need not be on this node: the harness sends
        outside traffic through a node this way.
        """
        now = trio.current_time()
        table = self.table
        picked = table.pick_vip(src_ip, dst_ip, port, now)
        if picked is None and dst_ip == self.node_ip:
            picked = table.pick_node_port(src_ip, port, now)
        if picked is None:
            return None
        if picked is REFUSED:
            return (self.node_ip, REJECT_PORT)
        assert isinstance(picked, tuple)
        return picked

    def backends(self, namespace: str, name: str, port_name: str = "") -> tuple[Backend, ...]:
        """The ready backends this proxy currently routes service port
        ``namespace/name:port_name`` to (empty if none or not proxied)."""
        return self.table.backends(f"{namespace}/{name}", port_name) or ()

    # -- control -----------------------------------------------------------------------

    def pause(self) -> None:
        """Stop applying changes until :meth:`resume`; routing goes on with the current
        table (a hung kube-proxy's rules stay in the kernel)."""
        if not self._paused:
            self._paused = True
            self._work.pause()
            self._log.info("proxy_paused")

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._work.resume()
            self._wakeup.set()
            self._log.info("proxy_resumed")

    @property
    def paused(self) -> bool:
        return self._paused

    def flush(self) -> None:
        """The machine lost its rules (power loss, removal): forget the table and stop
        routing for this node until the proxy runs and syncs again."""
        self._router.detach(self)
        self.table.clear()
        self._log.info("proxy_flushed")

    def statistics(self) -> ProxyStatistics:
        return ProxyStatistics(
            node=self.node_name,
            services=self.table.services,
            rules=self.table.rules,
            syncs=self._syncs,
            last_sync=self._last_sync,
            pending=len(self._dirty),
            paused=self._paused,
        )

    async def wait_synced(self) -> None:
        """Wait until the proxy has programmed its table from a full list (returns at
        once if it has, even if it was restarted since)."""
        await self._synced.wait()

    # -- the actor -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """List and watch Services and Endpoints, program the table, and keep it current
        until cancelled. ``task_status.started()`` once the first full sync is done and
        the proxy routes for its node. Can run again after it ended (a restart).

        Raises:
            RuntimeError: it is already running.
        """
        if self._running:
            raise RuntimeError(f"proxy {self.node_name!r} is already running")
        self._running = True
        self._dirty.clear()
        self._wakeup = trio.Event()
        services = Informer(self._client, "Service", tracker=self._tracker)
        endpoints = Informer(self._client, "Endpoints", tracker=self._tracker)
        self._services, self._endpoints = services, endpoints
        mark = self._mark

        def on_change(obj: Any) -> None:
            mark(object_key(obj))

        def on_service_update(old: Any, new: Any) -> None:
            if old.spec != new.spec:  # labels, annotations, status: nothing to program
                mark(object_key(new))

        def on_endpoints_update(old: Any, new: Any) -> None:
            if old.subsets is not new.subsets:
                mark(object_key(new))

        services.add_event_handler(on_change, on_service_update, on_change)
        endpoints.add_event_handler(on_change, on_endpoints_update, on_change)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(services.run)
                await nursery.start(endpoints.run)
                # services deleted while we were not running are in the table, not the
                # caches: resync those too
                for key in self.table.service_keys():
                    mark(key)
                self._sync()
                self._router.attach(self)
                self._synced.set()
                self._log.info("proxy_started", services=self.table.services)
                task_status.started()
                await self._sync_loop()
        finally:
            if self._dirty:
                self._dirty.clear()
                self._work.done(1)
            self._running = False

    def _mark(self, key: str) -> None:
        dirty = self._dirty
        if key in dirty:
            return
        if not dirty:
            self._work.add(1)  # one unit while anything waits to be applied
            self._wakeup.set()
        dirty.add(key)

    async def _sync_loop(self) -> None:
        while True:
            if not self._dirty or self._paused:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            last = -math.inf if self._last_sync is None else self._last_sync
            wait = last + self.config.min_sync_period - trio.current_time()
            if wait > 0:
                await trio.sleep(wait)
                continue
            self._sync()

    def _sync(self) -> None:
        """Reprogram every dirty service from the caches."""
        assert self._services is not None and self._endpoints is not None
        dirty, self._dirty = self._dirty, set()
        services = self._services.cache
        endpoints = self._endpoints.cache
        update = self.table.update
        for key in sorted(dirty):
            update(key, services.get_by_key(key), endpoints.get_by_key(key))
        self._syncs += 1
        self._last_sync = trio.current_time()
        if dirty:
            self._work.done(1)
        self._log.debug(
            "proxy_synced", changed=len(dirty), services=self.table.services, rules=self.table.rules
        )
