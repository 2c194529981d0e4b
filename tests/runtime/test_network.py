"""The simulated network: addresses, requests, errors, faults, routing hook."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from runtime.network import (
    AddressInUse,
    ConnectionRefused,
    ConnectionReset,
    HostInfo,
    HostUnreachable,
    Network,
    NetworkError,
    NetworkTimeout,
)


def make_network(seed: int = 0) -> tuple[Network, str, str]:
    """A network with hosts a and b, one listener on each answering with its name."""
    net = Network(random.Random(seed))
    net.add_host("a")
    net.add_host("b")
    ip_a, ip_b = net.allocate_ip("a"), net.allocate_ip("b")
    net.listen(ip_a, 80, lambda payload, src: b"a:" + payload)
    net.listen(ip_b, 80, lambda payload, src: b"b:" + payload)
    return net, ip_a, ip_b


def test_hosts_get_ranges_and_addresses() -> None:
    net = Network(random.Random(0))
    assert net.add_host("n0") == HostInfo("n0", "10.244.0.0/24", "172.16.0.1")
    assert net.add_host("n1") == HostInfo("n1", "10.244.1.0/24", "172.16.0.2")
    assert net.add_host("n0").cidr == "10.244.0.0/24"  # idempotent
    for i in range(2, 300):
        net.add_host(f"n{i}")
    assert net.host("n256").cidr == "10.245.0.0/24"  # continues past 10.244.255.0
    assert net.host_of("10.244.1.7") is None  # not assigned yet
    with pytest.raises(NetworkError, match=r"^unknown host 'zz'$"):
        net.allocate_ip("zz")


def test_address_allocation_rotates_and_releases() -> None:
    net = Network(random.Random(0))
    net.add_host("a")
    first, second = net.allocate_ip("a"), net.allocate_ip("a")
    assert (first, second) == ("10.244.0.2", "10.244.0.3")
    assert net.host_of(first) == "a"
    net.release_ip(first)
    assert net.host_of(first) is None
    assert net.allocate_ip("a") == "10.244.0.4"  # not reused at once
    given = [net.allocate_ip("a") for _ in range(251)]
    assert given[-2:] == ["10.244.0.254", "10.244.0.2"]  # wraps to the released one
    with pytest.raises(NetworkError, match=r"^no free address in 10.244.0.0/24 on host 'a'$"):
        net.allocate_ip("a")
    net.release_ip("10.244.0.100")
    assert net.allocate_ip("a") == "10.244.0.100"


async def test_request_response_and_typed_errors(autojump_clock: trio.testing.MockClock) -> None:
    net, ip_a, ip_b = make_network()
    assert await net.request(ip_a, ip_b, 80, b"hi") == b"b:hi"
    with pytest.raises(ConnectionRefused, match=r"^connection refused: 10.244.1.2:81$"):
        await net.request(ip_a, ip_b, 81, b"hi")
    with pytest.raises(HostUnreachable, match=r"^no route to host 10.244.1.99$"):
        await net.request(ip_a, "10.244.1.99", 80, b"hi")
    with pytest.raises(AddressInUse, match=r"^address already in use: 10.244.1.2:80$"):
        net.listen(ip_b, 80, lambda p, s: b"")
    with pytest.raises(NetworkError, match=r"address not assigned$"):
        net.listen("10.244.1.200", 80, lambda p, s: b"")

    def broken(payload: bytes, src: str) -> bytes:
        raise KeyError("bug")

    net.listen(ip_b, 90, broken)
    with pytest.raises(ConnectionReset) as info:
        await net.request(ip_a, ip_b, 90, b"x")
    assert isinstance(info.value.__cause__, KeyError)


async def test_async_handler_and_slow_handler_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, ip_a, ip_b = make_network()

    async def slow(payload: bytes, src: str) -> bytes:
        await trio.sleep(3)
        return src.encode()

    net.listen(ip_b, 8080, slow)
    start = trio.current_time()
    assert await net.request(ip_a, ip_b, 8080, b"") == ip_a.encode()
    assert trio.current_time() - start == pytest.approx(3)
    with pytest.raises(NetworkTimeout, match=r"^request to 10.244.1.2:8080 timed out after 1s$"):
        await net.request(ip_a, ip_b, 8080, b"", timeout=1)


async def test_delay_is_per_message_and_removable(autojump_clock: trio.testing.MockClock) -> None:
    net, ip_a, ip_b = make_network()
    one_way = net.delay(0.25, src="a", dst="b")
    start = trio.current_time()
    await net.request(ip_a, ip_b, 80, b"")
    assert trio.current_time() - start == pytest.approx(0.25)  # only a -> b is delayed
    both = net.delay(0.5)
    start = trio.current_time()
    await net.request(ip_a, ip_b, 80, b"")
    assert trio.current_time() - start == pytest.approx(0.25 + 0.5 + 0.5)
    one_way.remove()
    both.remove()
    both.remove()  # idempotent
    assert not both.active
    start = trio.current_time()
    await net.request(ip_a, ip_b, 80, b"")
    assert trio.current_time() == start


async def test_partition_cuts_both_ways_until_removed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net, ip_a, ip_b = make_network()
    net.add_host("c")
    ip_c = net.allocate_ip("c")
    net.listen(ip_c, 80, lambda p, s: b"c")
    cut = net.partition("a", ["b"])
    for src, dst in ((ip_a, ip_b), (ip_b, ip_a)):
        with pytest.raises(NetworkTimeout):
            await net.request(src, dst, 80, b"", timeout=2)
    assert await net.request(ip_a, ip_c, 80, b"") == b"c"
    assert await net.request(ip_c, ip_b, 80, b"x") == b"b:x"
    cut.remove()
    assert await net.request(ip_a, ip_b, 80, b"x") == b"b:x"
    isolated = net.partition({"a"})  # a against everyone, outside traffic included
    with pytest.raises(NetworkTimeout):
        await net.request("203.0.113.9", ip_a, 80, b"", timeout=1)
    assert await net.request(ip_c, ip_b, 80, b"x") == b"b:x"
    isolated.remove()
    assert await net.request("203.0.113.9", ip_a, 80, b"x") == b"a:x"


async def test_drop_loses_a_seeded_fraction(autojump_clock: trio.testing.MockClock) -> None:
    async def outcomes(seed: int) -> list[bool]:
        net, ip_a, ip_b = make_network(seed)
        net.drop(0.3, dst="b")  # requests to b only; responses to a are not dropped
        results = []
        for _ in range(200):
            try:
                await net.request(ip_a, ip_b, 80, b"", timeout=0.1)
                results.append(True)
            except NetworkTimeout:
                results.append(False)
        return results

    first, again = await outcomes(5), await outcomes(5)
    assert first == again  # same seed, same losses
    assert 40 <= first.count(False) <= 80
    net, ip_a, ip_b = make_network()
    everything = net.drop(1.0)
    with pytest.raises(NetworkTimeout):
        await net.request(ip_a, ip_b, 80, b"", timeout=5)
    everything.remove()
    assert await net.request(ip_a, ip_b, 80, b"") == b"b:"
    with pytest.raises(ValueError, match=r"^fraction: must be between 0 and 1"):
        net.drop(1.5)


async def test_down_host_and_released_address(autojump_clock: trio.testing.MockClock) -> None:
    net, ip_a, ip_b = make_network()
    net.set_host_up("b", False)
    with pytest.raises(NetworkTimeout):
        await net.request(ip_a, ip_b, 80, b"", timeout=1)
    net.set_host_up("b", True)
    assert await net.request(ip_a, ip_b, 80, b"") == b"b:"
    net.release_ip(ip_b)
    assert not net.is_listening(ip_b, 80)
    with pytest.raises(HostUnreachable):
        await net.request(ip_a, ip_b, 80, b"")


async def test_translators_rewrite_destinations(autojump_clock: trio.testing.MockClock) -> None:
    net, ip_a, ip_b = make_network()

    def virtual_ip(src: str, dst: str, port: int) -> tuple[str, int] | None:
        return (ip_b, 80) if (dst, port) == ("10.96.0.10", 53) else None

    hook = net.add_translator(virtual_ip)
    assert await net.request(ip_a, "10.96.0.10", 53, b"q") == b"b:q"
    assert await net.request(ip_b, ip_a, 80, b"q") == b"a:q"
    hook.remove()
    with pytest.raises(HostUnreachable):
        await net.request(ip_a, "10.96.0.10", 53, b"q")
