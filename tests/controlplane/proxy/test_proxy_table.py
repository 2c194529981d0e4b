"""The pure routing table: what kube-proxy programs for Services + Endpoints, and how it
picks a backend (random, round-robin, ClientIP affinity, REJECT)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs
import pytest

from controlplane.api.core import (
    EndpointAddress,
    EndpointPort,
    Endpoints,
    EndpointSubset,
    Service,
    ServicePort,
    ServiceSpec,
)
from controlplane.api.meta import ObjectMeta
from controlplane.proxy.table import (
    DEFAULT_AFFINITY_TIMEOUT,
    REFUSED,
    BackendMemo,
    ProxyTable,
    service_ports,
)

VIP = "10.96.0.10"
KEY = "default/web"


def service(
    *,
    name: str = "web",
    cluster_ip: str | None = VIP,
    ports: tuple[ServicePort, ...] = (ServicePort(port=80, protocol="TCP", target_port=8080),),
    **spec: Any,
) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace="default"),
        spec=ServiceSpec(cluster_ip=cluster_ip, ports=ports, **spec),
    )


def endpoints(
    ips: tuple[str, ...],
    *,
    port: int = 8080,
    port_name: str | None = None,
    not_ready: tuple[str, ...] = (),
    rv: str = "",
    name: str = "web",
) -> Endpoints:
    return Endpoints(
        metadata=ObjectMeta(name=name, namespace="default", resource_version=rv),
        subsets=(
            EndpointSubset(
                addresses=tuple(EndpointAddress(ip=ip) for ip in ips),
                not_ready_addresses=tuple(EndpointAddress(ip=ip) for ip in not_ready),
                ports=(EndpointPort(port=port, name=port_name, protocol="TCP"),),
            ),
        ),
    )


PODS = ("10.244.0.2", "10.244.0.3", "10.244.1.2")


def table(mode: Any = "random", seed: int = 1) -> ProxyTable:
    return ProxyTable(random.Random(seed), mode=mode)


def test_random_mode_spreads_within_ten_percent_of_even():
    t = table()
    t.update(KEY, service(), endpoints(PODS))
    counts = Counter(t.pick_vip("10.244.2.9", VIP, 80, now=0.0) for _ in range(3000))
    assert set(counts) == {(ip, 8080) for ip in PODS}
    for n in counts.values():
        assert 900 <= n <= 1100


def test_random_mode_replays_from_the_seed():
    def picks(seed: int) -> list[Any]:
        t = table(seed=seed)
        t.update(KEY, service(), endpoints(PODS))
        return [t.pick_vip("10.244.2.9", VIP, 80, now=0.0) for _ in range(50)]

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_round_robin_is_exactly_even_and_in_order():
    t = table("round-robin")
    t.update(KEY, service(), endpoints(PODS))
    picks = [t.pick_vip("10.244.2.9", VIP, 80, now=0.0) for _ in range(3000)]
    assert picks[:4] == [(PODS[0], 8080), (PODS[1], 8080), (PODS[2], 8080), (PODS[0], 8080)]
    assert set(Counter(picks).values()) == {1000}


def test_round_robin_keeps_its_place_across_an_endpoints_change():
    t = table("round-robin")
    t.update(KEY, service(), endpoints(PODS))
    assert t.pick_vip("c", VIP, 80, now=0.0) == (PODS[0], 8080)
    t.update(KEY, service(), endpoints((*PODS, "10.244.1.3")))
    assert t.pick_vip("c", VIP, 80, now=0.0) == (PODS[1], 8080)


def test_client_ip_affinity_pins_each_client_and_expires_after_the_timeout():
    t = table()
    t.update(KEY, service(session_affinity="ClientIP"), endpoints(PODS))
    first = t.pick_vip("10.244.2.9", VIP, 80, now=0.0)
    # used again and again: the pin is refreshed on each use
    for step in range(1, 100):
        assert t.pick_vip("10.244.2.9", VIP, 80, now=step * 100.0) == first
    # another client gets its own pick (not necessarily the same backend)
    others = {t.pick_vip(f"10.244.3.{i}", VIP, 80, now=0.0) for i in range(2, 40)}
    assert len(others) == 3
    # idle longer than the timeout: a fresh pick, which can land elsewhere
    last_use = 99 * 100.0
    later = [
        t.pick_vip("10.244.2.9", VIP, 80, now=last_use + DEFAULT_AFFINITY_TIMEOUT + 1 + i * 1e6)
        for i in range(30)
    ]
    assert set(later) == {(ip, 8080) for ip in PODS}


def test_affinity_survives_unrelated_endpoint_changes_and_moves_off_a_removed_backend():
    t = table()
    t.update(KEY, service(session_affinity="ClientIP"), endpoints(PODS))
    pinned = t.pick_vip("c", VIP, 80, now=0.0)
    assert pinned is not None and pinned is not REFUSED
    t.update(KEY, service(session_affinity="ClientIP"), endpoints((*PODS, "10.244.1.3")))
    assert t.pick_vip("c", VIP, 80, now=1.0) == pinned
    rest = tuple(ip for ip in PODS if ip != pinned[0])
    t.update(KEY, service(session_affinity="ClientIP"), endpoints(rest))
    moved = t.pick_vip("c", VIP, 80, now=2.0)
    assert moved != pinned and moved in {(ip, 8080) for ip in rest}
    assert all(t.pick_vip("c", VIP, 80, now=3.0 + i) == moved for i in range(20))


def test_affinity_timeout_comes_from_session_affinity_config():
    @attrs.frozen
    class ClientIPConfig:
        timeout_seconds: int

    @attrs.frozen
    class AffinityConfig:
        client_ip: ClientIPConfig

    @attrs.frozen
    class Spec:
        type: str = "ClusterIP"
        cluster_ip: str = VIP
        cluster_ips: tuple[str, ...] = ()
        ports: tuple[ServicePort, ...] = (ServicePort(port=80, protocol="TCP"),)
        session_affinity: str = "ClientIP"
        session_affinity_config: AffinityConfig = AffinityConfig(ClientIPConfig(60))

    @attrs.frozen
    class Svc:
        spec: Spec = Spec()

    (port,) = service_ports(Svc())
    assert port.affinity_timeout == 60.0
    (default,) = service_ports(service(session_affinity="ClientIP"))
    assert default.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT
    (none,) = service_ports(service(session_affinity="None"))
    assert none.affinity_timeout is None


def test_no_ready_endpoint_is_refused_and_not_ready_addresses_are_never_picked():
    t = table()
    t.update(KEY, service(), endpoints((), not_ready=PODS))
    assert t.pick_vip("c", VIP, 80, now=0.0) is REFUSED
    t.update(KEY, service(), None)  # no Endpoints object at all
    assert t.pick_vip("c", VIP, 80, now=0.0) is REFUSED
    assert t.rules == 2  # the clusterIP jump + one REJECT


def test_addresses_that_are_not_services_are_left_alone():
    t = table()
    t.update(KEY, service(), endpoints(PODS))
    assert t.pick_vip("c", VIP, 81, now=0.0) is None
    assert t.pick_vip("c", "10.96.0.11", 80, now=0.0) is None
    assert t.pick_vip("c", VIP, 80, now=0.0, protocol="UDP") is None
    assert t.pick_node_port("c", 30080, now=0.0) is None


def test_node_port_routes_to_the_same_backends_and_shares_affinity():
    t = table()
    svc = service(
        type="NodePort",
        session_affinity="ClientIP",
        ports=(ServicePort(port=80, protocol="TCP", target_port=8080, node_port=30080),),
    )
    t.update(KEY, svc, endpoints(PODS))
    picked = t.pick_node_port("172.16.0.9", 30080, now=0.0)
    assert picked in {(ip, 8080) for ip in PODS}
    assert t.pick_vip("172.16.0.9", VIP, 80, now=1.0) == picked
    assert t.rules == 1 + 1 + 3
    # a nodePort on a ClusterIP service is not programmed
    t.update(KEY, attrs.evolve(svc, spec=attrs.evolve(svc.spec, type="ClusterIP")), None)
    assert t.pick_node_port("c", 30080, now=0.0) is None
    assert t.pick_vip("c", VIP, 80, now=0.0) is REFUSED


def test_ports_are_matched_by_name_and_unknown_names_get_no_backends():
    ports = (
        ServicePort(name="http", port=80, protocol="TCP", target_port="web"),
        ServicePort(name="metrics", port=9090, protocol="TCP", target_port=9090),
    )
    eps = Endpoints(
        metadata=ObjectMeta(name="web", namespace="default"),
        subsets=(
            EndpointSubset(
                addresses=(EndpointAddress(ip="10.244.0.2"),),
                ports=(
                    EndpointPort(name="http", port=8080, protocol="TCP"),
                    EndpointPort(name="admin", port=7000, protocol="TCP"),
                    EndpointPort(name="bad", port=0, protocol="TCP"),
                ),
            ),
            EndpointSubset(
                addresses=(EndpointAddress(ip="10.244.1.2"), EndpointAddress(ip="")),
                ports=(EndpointPort(name="http", port=8081, protocol="TCP"),),
            ),
        ),
    )
    t = table("round-robin")
    t.update(KEY, service(ports=ports), eps)
    assert t.backends(KEY, "http") == (("10.244.0.2", 8080), ("10.244.1.2", 8081))
    assert t.backends(KEY, "metrics") == ()
    assert t.backends(KEY, "admin") is None
    assert t.pick_vip("c", VIP, 9090, now=0.0) is REFUSED
    assert t.pick_vip("c", VIP, 80, now=0.0) == ("10.244.0.2", 8080)


@pytest.mark.parametrize(
    "svc",
    [
        service(cluster_ip="None"),  # headless
        service(cluster_ip=None),  # not allocated (yet)
        service(cluster_ip=""),
        service(type="ExternalName", external_name="db.example.com"),
        service(ports=()),  # no ports
        service(ports=(ServicePort(port=0), ServicePort(port=70000))),  # unusable ports
    ],
    ids=["headless", "no-ip", "empty-ip", "external-name", "no-ports", "bad-ports"],
)
def test_services_kube_proxy_does_not_program(svc):
    t = table()
    t.update(KEY, svc, endpoints(PODS))
    assert t.services == 0 and t.rules == 0
    assert t.pick_vip("c", VIP, 80, now=0.0) is None


def test_port_without_protocol_or_target_port_still_routes():
    t = table()
    t.update(KEY, service(ports=(ServicePort(port=80),)), endpoints(PODS, port=80))
    assert t.pick_vip("c", VIP, 80, now=0.0) in {(ip, 80) for ip in PODS}


def test_updates_are_per_service_and_removal_forgets_only_that_service():
    t = table()
    t.update(KEY, service(), endpoints(PODS))
    t.update("default/db", service(name="db", cluster_ip="10.96.0.20"), None)
    assert t.services == 2 and t.rules == (1 + 3) + (1 + 1)
    t.update(KEY, None, endpoints(PODS))  # the Service was deleted
    assert t.pick_vip("c", VIP, 80, now=0.0) is None
    assert t.pick_vip("c", "10.96.0.20", 80, now=0.0) is REFUSED
    assert t.services == 1 and t.rules == 2
    t.clear()
    assert t.services == 0 and t.rules == 0


def test_two_services_claiming_one_address_first_wins_and_the_other_takes_over():
    t = table()
    t.update(KEY, service(), endpoints(PODS))
    t.update("default/copy", service(name="copy"), endpoints(("10.244.9.9",), name="copy"))
    assert t.pick_vip("c", VIP, 80, now=0.0) in {(ip, 8080) for ip in PODS}
    t.remove(KEY)
    assert t.pick_vip("c", VIP, 80, now=0.0) == ("10.244.9.9", 8080)


def test_memo_shares_backends_between_tables():
    memo = BackendMemo(size=2)
    a = ProxyTable(random.Random(1), memo=memo)
    b = ProxyTable(random.Random(2), memo=memo)
    eps = endpoints(PODS, rv="5")
    a.update(KEY, service(), eps)
    b.update(KEY, service(), eps)
    assert a.backends(KEY) is b.backends(KEY)
    for rv in ("6", "7", "8"):  # the memo stays bounded
        memo.backends(endpoints(PODS, rv=rv))
    assert len(memo._entries) == 2


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match=r"^mode: must be 'random' or 'round-robin', got 'x'$"):
        ProxyTable(random.Random(1), mode="x")  # type: ignore[arg-type]


def test_a_changed_service_keeps_round_robin_place_and_rules_stay_counted():
    t = table("round-robin")
    t.update(KEY, service(), endpoints(PODS))
    assert t.pick_vip("c", VIP, 80, now=0.0) == (PODS[0], 8080)
    t.update(KEY, service(), endpoints(PODS[:2]))  # endpoints only: updated in place
    assert t.rules == 1 + 2
    assert t.pick_vip("c", VIP, 80, now=0.0) == (PODS[1], 8080)
    # the service gains a second clusterIP: its chains are rebuilt, the place kept
    t.update(KEY, service(cluster_ips=(VIP, "10.96.0.99")), endpoints(PODS[:2]))
    assert t.rules == 2 + 2
    assert t.pick_vip("c", "10.96.0.99", 80, now=0.0) == (PODS[0], 8080)
    assert t.pick_vip("c", VIP, 80, now=0.0) == (PODS[1], 8080)
    t.update(KEY, service(), None)
    assert t.rules == 1 + 1 and t.pick_vip("c", "10.96.0.99", 80, now=0.0) is None


def test_client_ip_affinity_timeout_comes_from_the_service():
    from controlplane.api import from_dict
    from controlplane.proxy.table import DEFAULT_AFFINITY_TIMEOUT, service_ports

    def svc(**spec):
        return from_dict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}], **spec},
            }
        )

    pinned = svc(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
    )
    assert [p.affinity_timeout for p in service_ports(pinned)] == [60.0]
    default = svc(sessionAffinity="ClientIP")
    assert [p.affinity_timeout for p in service_ports(default)] == [DEFAULT_AFFINITY_TIMEOUT]
    assert [p.affinity_timeout for p in service_ports(svc())] == [None]
