"""The simulated network: per-host address ranges, listeners, request/response, faults.

Each host registered with :meth:`Network.add_host` gets a ``/24`` for its sandboxes
(the first 256 hosts get ``10.244.<n>.0/24`` like a kubeadm/flannel cluster; the range
continues through ``10.128.0.0/9``, room for 32,768 hosts) and a host IP in
``172.16.0.0/12``. Addresses are handed out like CNI host-local IPAM: ``.1`` is the
gateway, ``.2`` to ``.254`` go to sandboxes, continuing after the last one given so that a
released address is not reused at once.

A request is two messages (request, response) carried in the *caller's* task: each may
be delayed, dropped or cut off by a partition; a lost message shows up as
:class:`NetworkTimeout` when the caller's timeout ends, as on a real network. An address
nobody holds gives :class:`HostUnreachable` and a port nobody listens on
:class:`ConnectionRefused`, both at once.

Extension points: before delivery, :meth:`Network._route` passes the destination through
every translator added with :meth:`Network.add_translator` — where virtual IPs
(Services) and a proxy's DNAT plug in. Names are resolved by :meth:`Network.lookup` with
a stub resolver's rules (``resolv.conf``: search list, ``ndots:5``) against the resolver
set with :meth:`Network.set_resolver` — where a cluster DNS plugs in. None are built in.
"""

from __future__ import annotations

import inspect
import ipaddress
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

import attrs
import structlog
import trio

from runtime.cri import RuntimeError_

__all__ = [
    "DEFAULT_TIMEOUT",
    "NDOTS",
    "AddressInUse",
    "ConnectionRefused",
    "ConnectionReset",
    "Fault",
    "Handler",
    "HostInfo",
    "HostUnreachable",
    "Listener",
    "NameNotFound",
    "Network",
    "NetworkError",
    "NetworkTimeout",
    "Resolver",
    "Translator",
    "check_name",
    "search_candidates",
]

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = 10.0

NDOTS = 5
"""``options ndots:5``, what Kubernetes writes into every pod's ``resolv.conf``: a name
with fewer dots is tried with each search domain before it is tried as it is."""

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

Handler: TypeAlias = Callable[[bytes, str], bytes | Awaitable[bytes]]
"""``handler(payload, src_ip)`` returns the response (sync, or a coroutine)."""

Translator: TypeAlias = Callable[[str, str, int], tuple[str, int] | None]
"""``translate(src_ip, dst_ip, port)`` returns a new ``(dst_ip, port)`` or None."""

Resolver: TypeAlias = Callable[[str], list[str]]
"""``resolve(fqdn)`` returns the addresses of a fully qualified name (lowercase, no
trailing dot) or raises :class:`NameNotFound`."""


class NetworkError(RuntimeError_):
    """Root of the simulated network's errors."""


class ConnectionRefused(NetworkError):
    """The address is up but nothing listens on that port."""


class HostUnreachable(NetworkError):
    """No host holds that address (never assigned, or released)."""


class NetworkTimeout(NetworkError):
    """No response within the timeout (lost to a drop, a partition or a host that is
    down, or a slow handler)."""


class ConnectionReset(NetworkError):
    """The listening program failed while handling the request (``__cause__`` says how)."""


class NameNotFound(NetworkError):
    """The name does not resolve (NXDOMAIN), or is not a valid host name."""


class AddressInUse(NetworkError):
    """Something already listens on that address and port."""


@attrs.frozen
class HostInfo:
    """A host's place on the network: its sandbox range and its own address."""

    name: str
    cidr: str
    ip: str


@attrs.frozen
class _Rule:
    kind: str  # "drop" | "delay" | "partition" | "cut" | "duplicate"
    value: float
    src: frozenset[str | None] | None
    dst: frozenset[str | None] | None
    jitter: float = 0.0

    def matches(
        self, src: str | None, dst: str | None, src_ip: str | None = None, dst_ip: str | None = None
    ) -> bool:
        """Whether a message from host ``src`` (address ``src_ip``) to ``dst`` is hit;
        a rule's sets may name hosts or addresses (a pod's IP)."""
        a, b = self.src, self.dst
        in_a = a is None or src in a or (src_ip is not None and src_ip in a)
        if self.kind == "partition":
            assert a is not None
            d_in_a = dst in a or (dst_ip is not None and dst_ip in a)
            if b is None:  # `a` against everyone else
                return in_a != d_in_a
            s_in_b = src in b or (src_ip is not None and src_ip in b)
            d_in_b = dst in b or (dst_ip is not None and dst_ip in b)
            return (in_a and d_in_b) or (s_in_b and d_in_a)
        d_in_b = b is None or dst in b or (dst_ip is not None and dst_ip in b)
        if self.kind == "cut":  # one way; a missing side is "everyone outside the other"
            if a is None:
                assert b is not None
                return d_in_b and not (src in b or (src_ip is not None and src_ip in b))
            if b is None:
                return in_a and not (dst in a or (dst_ip is not None and dst_ip in a))
        return in_a and d_in_b


class Fault:
    """A handle to an active fault (or translator); :meth:`remove` ends it (idempotent)."""

    __slots__ = ("_key", "_table")

    def __init__(self, table: dict[int, object], key: int) -> None:
        self._table = table
        self._key = key

    def remove(self) -> None:
        self._table.pop(self._key, None)

    @property
    def active(self) -> bool:
        return self._key in self._table


class Listener:
    """A program serving ``ip:port``; :meth:`close` stops it (idempotent)."""

    __slots__ = ("_network", "handler", "ip", "port")

    def __init__(self, network: Network, ip: str, port: int, handler: Handler) -> None:
        self._network = network
        self.ip = ip
        self.port = port
        self.handler = handler

    def close(self) -> None:
        listeners = self._network._listeners
        if listeners.get((self.ip, self.port)) is self:
            del listeners[(self.ip, self.port)]

    def __repr__(self) -> str:
        return f"<Listener {self.ip}:{self.port}>"


class _Host:
    __slots__ = ("allocated", "base", "cursor", "info", "up")

    def __init__(self, info: HostInfo, base: int) -> None:
        self.info = info
        self.base = base  # the /24's network address as an int
        self.allocated: set[int] = set()  # host parts (2..254) in use
        self.cursor = 1  # the last host part handed out
        self.up = True


def _as_set(hosts: str | Iterable[str] | None) -> frozenset[str | None] | None:
    if hosts is None:
        return None
    if isinstance(hosts, str):
        return frozenset({hosts})
    return frozenset(hosts)


class Network:
    """One simulated network shared by every host.

    Args:
      rng: the only source of randomness (which messages a ``drop`` fault loses).
      cluster_cidr: where hosts' ``/24`` ranges come from.
      first_host_subnet: the ``/24`` the first host gets; later hosts follow, wrapping
        around inside ``cluster_cidr``.
      host_cidr: where the hosts' own addresses come from.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        cluster_cidr: str = "10.128.0.0/9",
        first_host_subnet: str = "10.244.0.0",
        host_cidr: str = "172.16.0.0/12",
    ) -> None:
        self._rng = rng
        self._log = log.bind(component="network")
        cluster = ipaddress.IPv4Network(cluster_cidr)
        if cluster.prefixlen > 24:
            raise ValueError(f"cluster_cidr: must be /24 or larger, got {cluster_cidr!r}")
        first = ipaddress.IPv4Address(first_host_subnet)
        if first not in cluster:
            raise ValueError(f"first_host_subnet: {first_host_subnet!r} not in {cluster_cidr!r}")
        self._cluster_base = int(cluster.network_address)
        self._subnets = 1 << (24 - cluster.prefixlen)
        self._first = (int(first) - self._cluster_base) >> 8
        self._host_net = ipaddress.IPv4Network(host_cidr)
        self._hosts: dict[str, _Host] = {}
        self._next_index = 0
        self._ips: dict[str, _Host] = {}  # every assigned address -> its host
        self._listeners: dict[tuple[str, int], Listener] = {}
        self._rules: dict[int, object] = {}  # id -> _Rule, in the order added
        self._translators: dict[int, object] = {}  # id -> Translator, in the order added
        self._resolver: Resolver | None = None
        self._seq = 0

    # ----- hosts and addresses -----

    def add_host(self, host: str) -> HostInfo:
        """Give ``host`` its address range and address (again the same ones if it was
        added before). Raises NetworkError when the cluster range is used up."""
        existing = self._hosts.get(host)
        if existing is not None:
            return existing.info
        index = self._next_index
        if index >= self._subnets or index + 2 >= self._host_net.num_addresses:
            raise NetworkError(f"no address range left for host {host!r}")
        self._next_index += 1
        base = self._cluster_base + (((self._first + index) % self._subnets) << 8)
        host_ip = str(self._host_net.network_address + index + 1)
        info = HostInfo(host, f"{ipaddress.IPv4Address(base)}/24", host_ip)
        state = _Host(info, base)
        self._hosts[host] = state
        self._ips[host_ip] = state
        self._log.debug("host_added", host=host, cidr=info.cidr, ip=host_ip)
        return info

    def remove_host(self, host: str) -> None:
        """Forget ``host``: its addresses stop answering (HostUnreachable) and its
        listeners close. Its range is not reused. Does nothing for an unknown host."""
        state = self._hosts.pop(host, None)
        if state is None:
            return
        for ip in [ip for ip, owner in self._ips.items() if owner is state]:
            self._drop_ip(ip)

    def host(self, host: str) -> HostInfo:
        """The network identity of ``host``. Raises NetworkError if it was never added."""
        return self._host(host).info

    def set_host_up(self, host: str, up: bool) -> None:
        """Take ``host`` off the network (its machine is down: every message to or from
        it is lost) or bring it back."""
        self._host(host).up = up

    def allocate_ip(self, host: str) -> str:
        """A free sandbox address on ``host``. Raises NetworkError when none is left."""
        state = self._host(host)
        for step in range(1, 254):
            part = (state.cursor - 2 + step) % 253 + 2  # cycles through 2..254
            if part not in state.allocated:
                state.allocated.add(part)
                state.cursor = part
                ip = str(ipaddress.IPv4Address(state.base + part))
                self._ips[ip] = state
                return ip
        raise NetworkError(f"no free address in {state.info.cidr} on host {host!r}")

    def release_ip(self, ip: str) -> None:
        """Give a sandbox address back; its listeners close. Idempotent."""
        state = self._ips.get(ip)
        if state is None or ip == state.info.ip:
            return
        state.allocated.discard(int(ipaddress.IPv4Address(ip)) - state.base)
        self._drop_ip(ip)

    def host_of(self, ip: str) -> str | None:
        """The host holding ``ip`` (sandbox or host address), or None."""
        state = self._ips.get(ip)
        return None if state is None else state.info.name

    def _drop_ip(self, ip: str) -> None:
        del self._ips[ip]
        for key in [key for key in self._listeners if key[0] == ip]:
            del self._listeners[key]

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            raise NetworkError(f"unknown host {host!r}")
        return state

    # ----- listening and requests -----

    def listen(self, ip: str, port: int, handler: Handler) -> Listener:
        """Serve ``ip:port`` with ``handler``. Raises NetworkError if ``ip`` is not
        assigned or the port is invalid, AddressInUse if it is taken."""
        if ip not in self._ips:
            raise NetworkError(f"cannot listen on {ip}:{port}: address not assigned")
        if not 0 < port < 65536:
            raise NetworkError(f"cannot listen on {ip}:{port}: invalid port")
        if (ip, port) in self._listeners:
            raise AddressInUse(f"address already in use: {ip}:{port}")
        listener = Listener(self, ip, port, handler)
        self._listeners[(ip, port)] = listener
        return listener

    def is_listening(self, ip: str, port: int) -> bool:
        """Whether something serves ``ip:port`` (what a TCP check would see)."""
        return (ip, port) in self._listeners

    async def request(
        self,
        src_ip: str,
        dst_ip: str,
        port: int,
        payload: bytes,
        *,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - a socket timeout: part of the API
    ) -> bytes:
        """Send ``payload`` from ``src_ip`` to ``dst_ip:port`` and return the response.

        ``src_ip`` need not be assigned (traffic from outside the hosts). Raises
        HostUnreachable, ConnectionRefused, NetworkTimeout (after ``timeout`` seconds)
        or ConnectionReset (the handler raised).
        """
        await trio.lowlevel.checkpoint()
        dst_ip, port = self._route(src_ip, dst_ip, port)
        with trio.move_on_after(timeout):
            return await self._exchange(src_ip, dst_ip, port, payload)
        raise NetworkTimeout(f"request to {dst_ip}:{port} timed out after {timeout:g}s")

    async def _exchange(self, src_ip: str, dst_ip: str, port: int, payload: bytes) -> bytes:
        dst = self._ips.get(dst_ip)
        if dst is None:
            raise HostUnreachable(f"no route to host {dst_ip}")
        src = self._ips.get(src_ip)
        copies = await self._carry(src, dst, src_ip, dst_ip)
        listener = self._listeners.get((dst_ip, port))
        if listener is None:
            await self._carry(dst, src, dst_ip, src_ip)
            raise ConnectionRefused(f"connection refused: {dst_ip}:{port}")
        try:
            for _ in range(copies):
                # a duplicated request reaches the handler twice; the caller reads the
                # last response (the first one is lost on the reused connection)
                response = listener.handler(payload, src_ip)
                if inspect.isawaitable(response):
                    response = await response
        except Exception as exc:
            raise ConnectionReset(f"connection reset by {dst_ip}:{port}: {exc!r}") from exc
        await self._carry(dst, src, dst_ip, src_ip)
        return response

    async def _carry(
        self,
        src: _Host | None,
        dst: _Host | None,
        src_ip: str | None = None,
        dst_ip: str | None = None,
    ) -> int:
        """Deliver one message from ``src`` to ``dst`` (None: outside every host):
        returns after its delay how many copies arrive (2 if duplicated), or never if
        it is lost."""
        if (src is not None and not src.up) or (dst is not None and not dst.up):
            await trio.sleep_forever()
        s = None if src is None else src.info.name
        d = None if dst is None else dst.info.name
        delay = 0.0
        copies = 1
        for rule in self._rules.values():
            assert isinstance(rule, _Rule)
            if not rule.matches(s, d, src_ip, dst_ip):
                continue
            if rule.kind in ("partition", "cut"):
                await trio.sleep_forever()
            elif rule.kind == "drop":
                if self._rng.random() < rule.value:
                    await trio.sleep_forever()
            elif rule.kind == "duplicate":
                if self._rng.random() < rule.value:
                    copies = 2
            else:
                delay += rule.value
                if rule.jitter:
                    delay += self._rng.uniform(-rule.jitter, rule.jitter)
        if delay > 0:
            await trio.sleep(delay)
        return copies

    # ----- faults -----

    def drop(
        self,
        fraction: float,
        *,
        src: str | Iterable[str] | None = None,
        dst: str | Iterable[str] | None = None,
    ) -> Fault:
        """Lose ``fraction`` of the messages from hosts ``src`` to hosts ``dst`` (None:
        any, including outside traffic), chosen with the network's rng."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction: must be between 0 and 1, got {fraction!r}")
        return self._add_rule(_Rule("drop", fraction, _as_set(src), _as_set(dst)))

    def delay(
        self,
        seconds: float,
        *,
        src: str | Iterable[str] | None = None,
        dst: str | Iterable[str] | None = None,
        jitter: float = 0.0,
    ) -> Fault:
        """Delay each message from ``src`` to ``dst`` by ``seconds`` plus a uniform draw
        in ``[-jitter, +jitter]`` (never below zero in total; one way: a request whose
        both directions match takes twice that longer). ``src``/``dst`` name hosts or
        addresses (a pod's IP); None matches any."""
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0, got {seconds!r}")
        if jitter < 0:
            raise ValueError(f"jitter: must be >= 0, got {jitter!r}")
        return self._add_rule(_Rule("delay", seconds, _as_set(src), _as_set(dst), jitter))

    def duplicate(
        self,
        fraction: float,
        *,
        src: str | Iterable[str] | None = None,
        dst: str | Iterable[str] | None = None,
    ) -> Fault:
        """Deliver ``fraction`` of the requests from ``src`` to ``dst`` twice: the
        handler runs twice (what a retransmitted, non-idempotent request does); the
        caller gets the second response. A duplicated response would be invisible to a
        request/response caller, so only requests are duplicated."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction: must be between 0 and 1, got {fraction!r}")
        return self._add_rule(_Rule("duplicate", fraction, _as_set(src), _as_set(dst)))

    def partition(
        self,
        a: str | Iterable[str],
        b: str | Iterable[str] | None = None,
        *,
        one_way: bool = False,
    ) -> Fault:
        """Cut every message between hosts ``a`` and hosts ``b``, both ways (``b`` None:
        between ``a`` and everything else, outside traffic included). ``one_way``: cut
        only messages from ``a`` to ``b`` (so requests from ``a`` time out, and requests
        from ``b`` reach ``a`` but their responses are lost). Hosts or addresses."""
        side_a = _as_set(a)
        assert side_a is not None
        return self._add_rule(_Rule("cut" if one_way else "partition", 0.0, side_a, _as_set(b)))

    def cut(self, src: str | Iterable[str] | None, dst: str | Iterable[str] | None) -> Fault:
        """Lose every message from ``src`` to ``dst`` (one way); None on one side means
        everyone outside the other side (outside traffic included). Hosts or
        addresses."""
        if src is None and dst is None:
            raise ValueError("cut: give src, dst or both")
        return self._add_rule(_Rule("cut", 0.0, _as_set(src), _as_set(dst)))

    def clear_faults(self) -> None:
        """Remove every fault rule (not the translators): the network is healthy."""
        self._rules.clear()
        self._log.info("network_faults_cleared")

    def _add_rule(self, rule: _Rule) -> Fault:
        self._seq += 1
        self._rules[self._seq] = rule
        self._log.info("network_fault_added", fault=rule.kind, value=rule.value)
        return Fault(self._rules, self._seq)

    # ----- routing (extension point) -----

    def add_translator(self, translate: Translator) -> Fault:
        """Route requests through ``translate(src_ip, dst_ip, port)``: it returns a new
        destination, or None to leave it. Translators run in the order added; remove
        with the returned handle. This is where virtual IPs plug in."""
        self._seq += 1
        self._translators[self._seq] = translate
        return Fault(self._translators, self._seq)

    def _route(self, src_ip: str, dst_ip: str, port: int) -> tuple[str, int]:
        for translate in self._translators.values():
            assert callable(translate)
            out = translate(src_ip, dst_ip, port)
            if out is not None:
                dst_ip, port = out
        return dst_ip, port

    # ----- names (extension point) -----

    def set_resolver(self, resolve: Resolver | None) -> None:
        """Answer name lookups with ``resolve(fqdn)`` (None: no names resolve). It gets
        a lowercase, fully qualified name without the trailing dot and returns its
        addresses in a stable order, or raises NameNotFound; it must not block."""
        self._resolver = resolve

    def lookup(self, name: str, *, search: Iterable[str] = ()) -> list[str]:
        """The addresses ``name`` resolves to, as a stub resolver with ``search`` and
        ``ndots:5`` in its ``resolv.conf`` finds them.

        An IP literal is returned as it is. A name ending in a dot is absolute and tried
        alone; a name with fewer than :data:`NDOTS` dots is tried with each search
        domain in turn, then as it is; one with more is tried as it is first. The first
        candidate with addresses wins. Names are case-insensitive.

        Raises NameNotFound when no candidate resolves or ``name`` is not a valid host
        name (empty label, a label over 63 characters or starting or ending with ``-``,
        a character other than letters, digits and ``-``, more than 253 characters).
        """
        if isinstance(name, str):
            try:
                return [str(ipaddress.ip_address(name))]
            except ValueError:
                pass
        for candidate in search_candidates(name, search):
            if self._resolver is None:
                break
            try:
                addresses = self._resolver(candidate)
            except NameNotFound:
                continue
            if addresses:
                return list(addresses)
        why = "" if self._resolver is not None else " (no resolver set)"
        raise NameNotFound(f"name not found: {name!r}{why}")

    def resolve_one(self, name: str, *, search: Iterable[str] = ()) -> str:
        """One address for ``name`` (see :meth:`lookup`): when it has several (a headless
        service's pods), one picked with the network's seeded rng, as a client taking the
        first record of CoreDNS's shuffled (``loadbalance``) answer would. Raises
        NameNotFound."""
        addresses = self.lookup(name, search=search)
        if len(addresses) == 1:
            return addresses[0]  # no draw: single answers leave the rng alone
        return addresses[self._rng.randrange(len(addresses))]


def check_name(name: str) -> str:
    """``name`` in canonical form (lowercase, no trailing dot), or NameNotFound saying
    what is wrong with it (RFC 1123 host name syntax)."""
    if not isinstance(name, str):
        raise NameNotFound(f"invalid name {name!r}: not a string")
    canonical = name.lower().removesuffix(".")
    if not canonical:
        raise NameNotFound(f"invalid name {name!r}: empty")
    if len(canonical) > MAX_NAME_LENGTH:
        raise NameNotFound(f"invalid name {name!r}: longer than {MAX_NAME_LENGTH} characters")
    for label in canonical.split("."):
        if not label:
            raise NameNotFound(f"invalid name {name!r}: empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise NameNotFound(
                f"invalid name {name!r}: label {label!r} longer than {MAX_LABEL_LENGTH} characters"
            )
        if not _LABEL.match(label):
            raise NameNotFound(
                f"invalid name {name!r}: label {label!r} must be letters, digits and '-',"
                " starting and ending with a letter or digit"
            )
    return canonical


def search_candidates(name: str, search: Iterable[str] = (), ndots: int = NDOTS) -> list[str]:
    """The fully qualified names a stub resolver tries for ``name``, in order (glibc's
    ``res_search``): absolute names alone; fewer than ``ndots`` dots: each search domain,
    then the name; otherwise the name, then each search domain. Candidates longer than
    253 characters and invalid search domains are skipped. Raises NameNotFound for an
    invalid ``name``."""
    canonical = check_name(name)
    if name.endswith("."):
        return [canonical]
    domains = []
    for domain in search:
        try:
            domains.append(check_name(domain))
        except NameNotFound:
            continue  # glibc ignores a bad search entry rather than failing every lookup
    expanded = [
        f"{canonical}.{domain}"
        for domain in domains
        if len(canonical) + 1 + len(domain) <= MAX_NAME_LENGTH
    ]
    if canonical.count(".") >= ndots:
        return [canonical, *expanded]
    return [*expanded, canonical]
