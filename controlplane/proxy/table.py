"""kube-proxy's routing table, without I/O: Services + Endpoints in, one backend out.

This is what kube-proxy's iptables mode writes into the kernel, kept as dictionaries:

- ``KUBE-SERVICES``: ``(clusterIP, port, protocol)`` → the service port's chain;
- ``KUBE-NODEPORTS``: ``(nodePort, protocol)`` on this node's IP → the same chain;
- ``KUBE-SVC-*``: the service port's ready backends ``(ip, port)``, chosen at random
  (the ``statistic`` module's cascade of probabilities ``1/n, 1/(n-1), …`` is a uniform
  choice) or, as an option, round-robin (what the userspace and IPVS ``rr`` modes do);
- ``-m recent`` (sessionAffinity ClientIP): a client IP sticks to the backend it last
  used while that backend is still ready and the client used it within
  ``sessionAffinityConfig.clientIP.timeoutSeconds`` (10800 s by default);
- a service port without ready backends gets a ``REJECT`` rule: :data:`REFUSED`.

The table is updated per Service (:meth:`ProxyTable.update`, given the Service and its
Endpoints as the informer caches hold them): the cost is the size of that one service,
never of the whole table, and a lookup is one dictionary probe. Routes are kept even when
their Service is odd (no ports, an Endpoints port nobody names): such a port just has no
backends. Nothing here raises on what the API server might hold.

Backends are derived from the Endpoints object's ``subsets``: the ready ``addresses``
crossed with the subset's port of the *same name* (and protocol) as the service port —
exactly how kube-proxy matches a ``ServicePortName``; the service's ``targetPort`` was
already resolved by the endpoints controller. Many proxies derive the same backends from
the same object, so :class:`BackendMemo` lets them share one result.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "REFUSED",
    "Backend",
    "BackendMemo",
    "Backends",
    "Mode",
    "ProxyTable",
    "Refused",
    "RoutedPort",
    "service_ports",
]

#: ``sessionAffinityConfig.clientIP.timeoutSeconds`` when unset (3 hours).
DEFAULT_AFFINITY_TIMEOUT: Final = 10800.0

Backend = tuple[str, int]
Mode = Literal["random", "round-robin"]

#: Service types kube-proxy never programs (no virtual IP).
_UNPROXIED_TYPES = frozenset({"ExternalName"})
_NODE_PORT_TYPES = frozenset({"NodePort", "LoadBalancer"})


class Refused:
    """The answer for a service port with no ready backend (iptables ``REJECT``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED: Final = Refused()


@attrs.frozen
class RoutedPort:
    """One service port as kube-proxy programs it (a ``KUBE-SVC-*`` chain's inputs).

    ``addresses``: the ``(ip, port, protocol)`` virtual addresses (clusterIPs);
    ``node_port``: the nodePort (0: none); ``affinity_timeout``: seconds a client stays
    pinned (None: no session affinity).
    """

    name: str
    protocol: str
    addresses: tuple[tuple[str, int, str], ...]
    node_port: int
    affinity_timeout: float | None


def _affinity_timeout(spec: Any) -> float | None:
    if spec.session_affinity != "ClientIP":
        return None
    config = getattr(spec, "session_affinity_config", None)
    client_ip = getattr(config, "client_ip", None)
    seconds = getattr(client_ip, "timeout_seconds", None)
    if isinstance(seconds, int | float) and seconds > 0:
        return float(seconds)
    return DEFAULT_AFFINITY_TIMEOUT


def service_ports(service: Any) -> tuple[RoutedPort, ...]:
    """What kube-proxy programs for ``service``: nothing for ExternalName and headless
    services (or ones without a clusterIP), else one :class:`RoutedPort` per port with a
    valid port number. Never raises on odd input: unusable ports are skipped."""
    spec = service.spec
    if spec.type in _UNPROXIED_TYPES:
        return ()
    ips: list[str] = []
    for ip in (spec.cluster_ip, *spec.cluster_ips):
        if ip and ip != "None" and ip not in ips:
            ips.append(ip)
    if not ips:
        return ()
    timeout = _affinity_timeout(spec)
    node_ports = spec.type in _NODE_PORT_TYPES
    out = []
    for port in spec.ports:
        if not isinstance(port.port, int) or not 0 < port.port < 65536:
            continue
        protocol = port.protocol or "TCP"
        node_port = port.node_port if node_ports and port.node_port else 0
        out.append(
            RoutedPort(
                name=port.name or "",
                protocol=protocol,
                addresses=tuple((ip, port.port, protocol) for ip in ips),
                node_port=node_port if 0 < node_port < 65536 else 0,
                affinity_timeout=timeout,
            )
        )
    return tuple(out)


@attrs.frozen
class Backends:
    """A service port's ready backends, in order, and as a set (for affinity checks)."""

    ordered: tuple[Backend, ...]
    members: frozenset[Backend]


NO_BACKENDS: Final = Backends((), frozenset())


def endpoint_backends(endpoints: Any) -> Mapping[tuple[str, str], Backends]:
    """``{(port name, protocol): ready backends}`` of an Endpoints object, each list in
    the object's order without duplicates. Ports outside 1..65535 and addresses without
    an IP are skipped."""
    out: dict[tuple[str, str], dict[Backend, None]] = {}
    for subset in endpoints.subsets:
        for port in subset.ports:
            if not isinstance(port.port, int) or not 0 < port.port < 65536:
                continue
            bucket = out.setdefault((port.name or "", port.protocol or "TCP"), {})
            for address in subset.addresses:
                if address.ip:
                    bucket[(address.ip, port.port)] = None
    return {key: Backends(tuple(bucket), frozenset(bucket)) for key, bucket in out.items()}


class BackendMemo:
    """Shares :func:`endpoint_backends` and :func:`service_ports` results between the
    proxies of one cluster.

    Every proxy receives the very same objects from the store, and an object's kind,
    ``namespace/name`` and resourceVersion name its content; so each result is computed
    (and held in memory) once per change, not once per node. Bounded (least recently
    used out).
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 16384) -> None:
        self._size = size
        self._entries: OrderedDict[Any, Any] = OrderedDict()

    def backends(self, endpoints: Any) -> Mapping[tuple[str, str], Backends]:
        """:func:`endpoint_backends` of ``endpoints``, shared."""
        return self._get("Endpoints", endpoints, endpoint_backends)

    def ports(self, service: Any) -> tuple[RoutedPort, ...]:
        """:func:`service_ports` of ``service``, shared."""
        return self._get("Service", service, service_ports)

    def _get(self, kind: str, obj: Any, derive: Any) -> Any:
        meta = obj.metadata
        if not meta.resource_version:  # not from a store: content is not named
            return derive(obj)
        key = (kind, meta.namespace, meta.name, meta.resource_version)
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            entries.move_to_end(key)
            return found
        found = derive(obj)
        entries[key] = found
        if len(entries) > self._size:
            entries.popitem(last=False)
        return found


class _Chain:
    """One service port's ``KUBE-SVC-*`` chain: its backends and choice state."""

    __slots__ = ("affinity", "backends", "cursor", "members", "port", "service")

    def __init__(self, service: str, port: RoutedPort, backends: Backends) -> None:
        self.service = service
        self.port = port
        self.backends = backends.ordered
        self.members = backends.members
        self.cursor = 0
        # client ip -> (backend, last used); only with session affinity
        self.affinity: dict[str, tuple[Backend, float]] | None = (
            {} if port.affinity_timeout is not None else None
        )

    def set_backends(self, backends: Backends) -> None:
        """New ready backends; keep the round-robin position and the pins to backends
        still here (iptables keeps its ``recent`` lists across a resync)."""
        self.backends = backends.ordered
        self.members = members = backends.members
        self.cursor = self.cursor % len(self.backends) if self.backends else 0
        if self.affinity:
            self.affinity = {ip: pin for ip, pin in self.affinity.items() if pin[0] in members}

    def inherit(self, old: _Chain) -> None:
        """Keep ``old``'s round-robin position and the pins to backends still here."""
        self.cursor = old.cursor % len(self.backends) if self.backends else 0
        if self.affinity is not None and old.affinity:
            members = self.members
            self.affinity = {ip: pin for ip, pin in old.affinity.items() if pin[0] in members}


class ProxyTable:
    """One node's service routing table (see the module docstring).

    Args:
        rng: the proxy's own seeded randomness (random mode).
        mode: ``"random"`` (iptables) or ``"round-robin"``.
        memo: shared backend derivation (one per cluster); a private one if None.
    """

    def __init__(
        self, rng: random.Random, *, mode: Mode = "random", memo: BackendMemo | None = None
    ) -> None:
        if mode not in ("random", "round-robin"):
            raise ValueError(f"mode: must be 'random' or 'round-robin', got {mode!r}")
        self._rng = rng
        self._mode = mode
        self._memo = memo if memo is not None else BackendMemo()
        self._chains: dict[str, tuple[_Chain, ...]] = {}  # service key -> its chains
        # address -> chains claiming it, first one wins (two services asking for the
        # same clusterIP or nodePort is an allocator bug; never crash on it)
        self._vip_claims: dict[tuple[str, int, str], list[_Chain]] = {}
        self._node_port_claims: dict[tuple[int, str], list[_Chain]] = {}
        self._vips: dict[tuple[str, int, str], _Chain] = {}
        self._node_ports: dict[tuple[int, str], _Chain] = {}
        self._rules = 0

    # -- updates -----------------------------------------------------------------------

    def update(self, key: str, service: Any | None, endpoints: Any | None) -> None:
        """Reprogram service ``key`` (``namespace/name``) from its current Service and
        Endpoints (None: absent). Costs the size of this service only."""
        old_chains = self._chains.get(key)
        ports = self._memo.ports(service) if service is not None else ()
        if not ports:
            self._remove(key)
            return
        by_port = self._memo.backends(endpoints) if endpoints is not None else {}
        if old_chains is not None and ports == tuple(c.port for c in old_chains):
            # the usual case, an endpoints change: only the backends move
            for chain in old_chains:
                before = self._chain_rules(chain)
                port = chain.port
                chain.set_backends(by_port.get((port.name, port.protocol), NO_BACKENDS))
                self._rules += self._chain_rules(chain) - before
            return
        previous = {(c.port.name, c.port.protocol): c for c in old_chains or ()}
        self._remove(key)
        chains = tuple(
            _Chain(key, port, by_port.get((port.name, port.protocol), NO_BACKENDS))
            for port in ports
        )
        for chain in chains:
            # iptables keeps its `recent` lists and kernel state across a resync
            old = previous.get((chain.port.name, chain.port.protocol))
            if old is not None:
                chain.inherit(old)
        self._chains[key] = chains
        for chain in chains:
            for address in chain.port.addresses:
                self._claim(self._vip_claims, self._vips, address, chain)
            if chain.port.node_port:
                node_key = (chain.port.node_port, chain.port.protocol)
                self._claim(self._node_port_claims, self._node_ports, node_key, chain)
            self._rules += self._chain_rules(chain)

    def remove(self, key: str) -> None:
        """Forget service ``key`` (no-op if unknown)."""
        self._remove(key)

    def clear(self) -> None:
        """Forget everything (the machine lost its rules)."""
        for key in list(self._chains):
            self._remove(key)

    def _remove(self, key: str) -> None:
        chains = self._chains.pop(key, None)
        if chains is None:
            return
        for chain in chains:
            for address in chain.port.addresses:
                self._unclaim(self._vip_claims, self._vips, address, chain)
            if chain.port.node_port:
                node_key = (chain.port.node_port, chain.port.protocol)
                self._unclaim(self._node_port_claims, self._node_ports, node_key, chain)
            self._rules -= self._chain_rules(chain)

    @staticmethod
    def _chain_rules(chain: _Chain) -> int:
        # one jump per address (and nodePort), one rule per backend or one REJECT
        jumps = len(chain.port.addresses) + (1 if chain.port.node_port else 0)
        return jumps + max(1, len(chain.backends))

    @staticmethod
    def _claim(
        claims: dict[Any, list[_Chain]], table: dict[Any, _Chain], k: Any, c: _Chain
    ) -> None:
        owners = claims.setdefault(k, [])
        owners.append(c)
        if len(owners) == 1:
            table[k] = c

    @staticmethod
    def _unclaim(
        claims: dict[Any, list[_Chain]], table: dict[Any, _Chain], k: Any, c: _Chain
    ) -> None:
        owners = claims.get(k)
        if not owners:
            return
        if c in owners:
            owners.remove(c)
        if owners:
            table[k] = owners[0]
        else:
            del claims[k]
            table.pop(k, None)

    # -- lookups -----------------------------------------------------------------------

    def is_service_address(self, ip: str, port: int, protocol: str = "TCP") -> bool:
        """Whether ``ip:port`` is a clusterIP service port in this table."""
        return (ip, port, protocol) in self._vips

    def pick_vip(
        self, client_ip: str, ip: str, port: int, now: float, protocol: str = "TCP"
    ) -> Backend | Refused | None:
        """The backend for a new connection from ``client_ip`` to ``ip:port``:
        a backend, :data:`REFUSED` (no ready endpoint), or None (not a service)."""
        chain = self._vips.get((ip, port, protocol))
        return None if chain is None else self._pick(chain, client_ip, now)

    def pick_node_port(
        self, client_ip: str, port: int, now: float, protocol: str = "TCP"
    ) -> Backend | Refused | None:
        """Like :meth:`pick_vip` for ``<this node's IP>:port``."""
        chain = self._node_ports.get((port, protocol))
        return None if chain is None else self._pick(chain, client_ip, now)

    def _pick(self, chain: _Chain, client_ip: str, now: float) -> Backend | Refused:
        backends = chain.backends
        if not backends:
            return REFUSED
        affinity = chain.affinity
        if affinity is not None:
            pinned = affinity.get(client_ip)
            timeout = chain.port.affinity_timeout
            assert timeout is not None
            if pinned is not None and pinned[0] in chain.members and now - pinned[1] <= timeout:
                affinity[client_ip] = (pinned[0], now)
                return pinned[0]
        if self._mode == "random":
            backend = backends[self._rng.randrange(len(backends))]
        else:
            backend = backends[chain.cursor % len(backends)]
            chain.cursor = (chain.cursor + 1) % len(backends)
        if affinity is not None:
            affinity[client_ip] = (backend, now)
        return backend

    # -- introspection -----------------------------------------------------------------

    def backends(self, key: str, port_name: str = "") -> tuple[Backend, ...] | None:
        """The ready backends of service ``key``'s port ``port_name`` (None: no such
        proxied port)."""
        for chain in self._chains.get(key, ()):
            if chain.port.name == port_name:
                return chain.backends
        return None

    def service_keys(self) -> Iterable[str]:
        """The keys of the services with rules in the table."""
        return tuple(self._chains)

    @property
    def rules(self) -> int:
        """How many rules iptables would hold: a jump per clusterIP and nodePort, and a
        rule per backend (or one REJECT) per service port."""
        return self._rules

    @property
    def services(self) -> int:
        return len(self._chains)
