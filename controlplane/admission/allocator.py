"""Allocators for Service cluster IPs and node ports: Kubernetes' ``ipallocator`` and
``portallocator`` over an in-memory bitmap.

A free value is drawn at random from the seeded ``random.Random`` given (so a run
replays), with a static subrange (KEP-3070 for IPs, KEP-3668 for node ports,
``randomScanStrategyWithOffset``): first from the upper part of the range, from a random
start scanning forward with wrap-around, and only when that part is full from the lower
part, which is thereby left to values users ask for (the ``kubernetes`` Service's first
IP). Random rather than sequential, as Kubernetes does, so a just-released IP is not
handed straight to the next Service while proxies may still route it. Errors carry
Kubernetes' messages.
"""

from __future__ import annotations

import ipaddress
import random

__all__ = ["NODE_PORT_RANGE", "SERVICE_CIDR", "AllocationError", "IPAllocator", "PortAllocator"]

#: ``--service-cluster-ip-range`` default (kubeadm).
SERVICE_CIDR = "10.96.0.0/12"
#: ``--service-node-port-range`` default.
NODE_PORT_RANGE = "30000-32767"


class AllocationError(Exception):
    """Why a value could not be allocated (the allocators' ``ErrAllocated`` etc.)."""


def _range_offset(size: int, lower: int, upper: int, step: int) -> int:
    """``calculateRangeOffset``: the size of the lower, static band,
    ``min(max(lower, size / step), upper)`` (0 for a tiny range)."""
    if size <= lower:
        return 0
    return min(max(lower, size // step), upper)


class _Bitmap:
    """Offsets ``0 .. size-1``, allocated at random with a static subrange
    (``randomScanStrategyWithOffset``): a random start in ``[offset, size)`` scanning
    forward with wrap-around, then the same in ``[0, offset)``."""

    def __init__(self, size: int, offset: int, rng: random.Random) -> None:
        self.size = size
        self.offset = offset
        self._rng = rng
        self._used: set[int] = set()

    def __len__(self) -> int:
        return len(self._used)

    def __contains__(self, i: int) -> bool:
        return i in self._used

    def allocate(self, i: int) -> bool:
        if i in self._used:
            return False
        self._used.add(i)
        return True

    def allocate_next(self) -> int | None:
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            span = hi - lo
            if span <= 0:
                continue
            start = self._rng.randrange(span)
            for k in range(span):
                at = lo + (start + k) % span
                if at not in self._used:
                    self._used.add(at)
                    return at
        return None

    def release(self, i: int) -> None:
        self._used.discard(i)


class IPAllocator:
    """Cluster IPs from one IPv4 CIDR, network and broadcast addresses excluded.

    Args:
        cidr: the service range (``10.96.0.0/12``).
        rng: the seeded stream random picks come from.

    Raises:
        ValueError: ``cidr`` is not an IPv4 network with room for an address.
    """

    def __init__(self, cidr: str, rng: random.Random) -> None:
        net = ipaddress.IPv4Network(cidr)
        if net.num_addresses < 4:
            raise ValueError(f"service range {cidr} is too small")
        self.cidr = str(net)
        self._net = net
        self._base = int(net.network_address) + 1
        self._bits = _Bitmap(
            net.num_addresses - 2, _range_offset(net.num_addresses, 16, 256, 16), rng
        )

    @property
    def first(self) -> str:
        """The range's first address: the ``kubernetes`` Service's IP."""
        return str(ipaddress.IPv4Address(self._base))

    @property
    def used(self) -> int:
        return len(self._bits)

    def _offset(self, ip: str) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        offset = int(addr) - self._base
        if addr.version != 4 or not 0 <= offset < self._bits.size:
            return None
        return offset

    def has(self, ip: str) -> bool:
        offset = self._offset(ip)
        return offset is not None and offset in self._bits

    def allocate(self, ip: str) -> None:
        """Reserve ``ip``. Raises :class:`AllocationError` if it is outside the range or
        taken."""
        offset = self._offset(ip)
        if offset is None:
            raise AllocationError(
                f"provided IP is not in the valid range. The range of valid IPs is {self.cidr}"
            )
        if not self._bits.allocate(offset):
            raise AllocationError("provided IP is already allocated")

    def allocate_next(self) -> str:
        """Reserve a free IP (see the module docstring). Raises :class:`AllocationError`
        if the range is full."""
        offset = self._bits.allocate_next()
        if offset is None:
            raise AllocationError("range is full")
        return str(ipaddress.IPv4Address(self._base + offset))

    def release(self, ip: str) -> None:
        """Give ``ip`` back; a no-op for a free or out-of-range IP."""
        offset = self._offset(ip)
        if offset is not None:
            self._bits.release(offset)


class PortAllocator:
    """Node ports from ``"30000-32767"`` (inclusive).

    Raises:
        ValueError: ``port_range`` is not ``"first-last"`` with ``first <= last``.
    """

    def __init__(self, port_range: str, rng: random.Random) -> None:
        first, sep, last = port_range.partition("-")
        base, top = int(first), int(last or first)
        if not sep or top < base:
            raise ValueError(f"invalid port range {port_range!r}")
        self.port_range = f"{base}-{top}"
        self._base = base
        size = top - base + 1
        self._bits = _Bitmap(size, _range_offset(size, 16, 128, 32), rng)

    @property
    def used(self) -> int:
        return len(self._bits)

    def _offset(self, port: int) -> int | None:
        offset = port - self._base
        return offset if 0 <= offset < self._bits.size else None

    def has(self, port: int) -> bool:
        offset = self._offset(port)
        return offset is not None and offset in self._bits

    def allocate(self, port: int) -> None:
        """Reserve ``port``. Raises :class:`AllocationError` if outside or taken."""
        offset = self._offset(port)
        if offset is None:
            raise AllocationError(
                "provided port is not in the valid range."
                f" The range of valid ports is {self.port_range}"
            )
        if not self._bits.allocate(offset):
            raise AllocationError("provided port is already allocated")

    def allocate_next(self) -> int:
        """Reserve a free port. Raises :class:`AllocationError` if the range is full."""
        offset = self._bits.allocate_next()
        if offset is None:
            raise AllocationError("range is full")
        return self._base + offset

    def release(self, port: int) -> None:
        offset = self._offset(port)
        if offset is not None:
            self._bits.release(offset)
