"""ClusterIP and NodePort allocation: the allocators, the two admission steps through a
Store (refusals in Kubernetes' words, nothing leaked by a refused write, release on
delete and on type changes), and the store's ``removed`` hook."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import attrs
import pytest
import trio

from controlplane import errors, quota
from controlplane.admission.allocator import AllocationError, IPAllocator, PortAllocator
from controlplane.admission.resourcequota import ResourceQuotaAdmission
from controlplane.admission.serviceip import (
    ServiceIPAllocation,
    kubernetes_service,
    service_admission_steps,
)
from controlplane.api import from_dict
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.clock import to_wall
from controlplane.cluster import open_cluster
from controlplane.store import Store

# -- helpers ---------------------------------------------------------------------------


def service(name: str = "web", *, ports: Any = None, **spec: Any) -> Any:
    body: dict[str, Any] = {"ports": ports if ports is not None else [{"port": 80}], **spec}
    if "type" not in body or body["type"] != "ExternalName":
        body.setdefault("selector", {"app": name})
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": body,
        }
    )


async def new_store(
    *, seed: int = 3, quota_step: bool = False
) -> tuple[Store, ServiceIPAllocation]:
    store = Store(random.Random(1))
    steps = service_admission_steps(random.Random(seed))
    for step in steps:
        store.add_admission_step(step)
    if quota_step:
        store.add_admission_step(ResourceQuotaAdmission(store))
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    allocation = steps[1]
    assert isinstance(allocation, ServiceIPAllocation)
    return store, allocation


def evolve_spec(obj: Any, **changes: Any) -> Any:
    return attrs.evolve(obj, spec=attrs.evolve(obj.spec, **changes))


def fingerprint(store: Store) -> tuple[int, str]:
    return store.revision, store.history_digest()


# -- allocators ------------------------------------------------------------------------


def test_ip_allocator_draws_from_the_upper_band_deterministically():
    a = IPAllocator("10.96.0.0/12", random.Random(5))
    b = IPAllocator("10.96.0.0/12", random.Random(5))
    picks = [a.allocate_next() for _ in range(200)]
    assert picks == [b.allocate_next() for _ in range(200)]
    assert len(set(picks)) == 200
    for ip in picks:
        offset = int.from_bytes(bytes(int(x) for x in ip.split(".")), "big") - 0x0A600001
        assert 256 <= offset < (1 << 20) - 2  # never the static band (10.96.0.1-10.96.1.0)
    assert a.first == "10.96.0.1"
    assert a.used == 200


def test_ip_allocator_refusals_and_release():
    ips = IPAllocator("10.96.0.0/12", random.Random(0))
    ips.allocate("10.96.0.1")
    with pytest.raises(AllocationError, match=r"^provided IP is already allocated$"):
        ips.allocate("10.96.0.1")
    for outside in ("10.96.0.0", "10.111.255.255", "10.112.0.1", "1.2.3.4", "fd00::1"):
        with pytest.raises(
            AllocationError,
            match=r"^provided IP is not in the valid range\. The range of valid IPs is"
            r" 10\.96\.0\.0/12$",
        ):
            ips.allocate(outside)
    ips.allocate("10.111.255.254")  # the last usable address
    ips.release("10.96.0.1")
    assert not ips.has("10.96.0.1")
    ips.allocate("10.96.0.1")
    ips.release("1.2.3.4")  # out of range: a no-op
    assert ips.used == 2


def test_small_range_uses_every_address_then_is_full():
    ips = IPAllocator("192.168.0.0/28", random.Random(1))
    got = {ips.allocate_next() for _ in range(14)}
    assert got == {f"192.168.0.{i}" for i in range(1, 15)}
    with pytest.raises(AllocationError, match=r"^range is full$"):
        ips.allocate_next()


def test_port_allocator_upper_band_then_lower_band():
    ports = PortAllocator("30000-32767", random.Random(2))
    first = [ports.allocate_next() for _ in range(2768 - 86)]
    assert sorted(first) == list(range(30086, 32768))  # the upper band, all of it
    rest = [ports.allocate_next() for _ in range(86)]
    assert sorted(rest) == list(range(30000, 30086))
    with pytest.raises(AllocationError, match=r"^range is full$"):
        ports.allocate_next()
    with pytest.raises(
        AllocationError,
        match=r"^provided port is not in the valid range\. The range of valid ports is"
        r" 30000-32767$",
    ):
        ports.allocate(8080)


# -- ClusterIP through the store -------------------------------------------------------


async def test_kubernetes_service_takes_the_first_ip():
    store, alloc = await new_store()
    stored = await store.create(kubernetes_service())
    spec = stored.spec
    assert (spec.cluster_ip, spec.cluster_ips) == ("10.96.0.1", ("10.96.0.1",))
    assert (stored.metadata.namespace, stored.metadata.name) == ("default", "kubernetes")
    assert not spec.selector
    (port,) = spec.ports
    assert (port.name, port.port, port.protocol, port.target_port) == ("https", 443, "TCP", 6443)
    assert alloc.ips.has("10.96.0.1")


async def test_allocated_ip_is_in_range_consistent_and_replays_with_the_seed():
    async def ips(seed: int) -> list[str]:
        store, _ = await new_store(seed=seed)
        out = []
        for i in range(5):
            stored = await store.create(service(f"s{i}"))
            assert stored.spec.cluster_ips == (stored.spec.cluster_ip,)
            assert (stored.spec.ip_families, stored.spec.ip_family_policy) == (
                ("IPv4",),
                "SingleStack",
            )
            out.append(stored.spec.cluster_ip)
        return out

    first = await ips(3)
    assert first == await ips(3)
    assert first != await ips(4)
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12") for ip in first)


async def test_requested_ip_is_honoured_and_clusterips_filled_in():
    store, alloc = await new_store()
    stored = await store.create(service(clusterIP="10.100.0.10"))
    assert (stored.spec.cluster_ip, stored.spec.cluster_ips) == ("10.100.0.10", ("10.100.0.10",))
    assert alloc.ips.has("10.100.0.10")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"clusterIP": "1.2.3.4"},
            'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"1.2.3.4"}:'
            " failed to allocate IP 1.2.3.4: provided IP is not in the valid range. The range"
            " of valid IPs is 10.96.0.0/12",
        ),
        (
            {"clusterIP": "10.96.0.1"},
            'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.1"}:'
            " failed to allocate IP 10.96.0.1: provided IP is already allocated",
        ),
        (
            {"clusterIP": "10.96.300.1"},
            'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: "10.96.300.1": must'
            " be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            {"clusterIP": "fd00::10"},
            'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: "fd00::10": IPv6 is'
            " not configured on this cluster",
        ),
        (
            {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.8"]},
            'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.8"}:'
            " first value must match `clusterIP`",
        ),
        (
            {"ipFamilyPolicy": "RequireDualStack"},
            'Service "web" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack":'
            " this cluster is not configured for dual-stack services",
        ),
    ],
)
async def test_bad_cluster_ip_is_refused_and_changes_nothing(spec: dict[str, Any], message: str):
    store, alloc = await new_store()
    await store.create(kubernetes_service())
    before, used = fingerprint(store), alloc.ips.used
    with pytest.raises(errors.Invalid) as exc:
        await store.create(service(**spec))
    assert str(exc.value) == message
    assert (exc.value.kind, exc.value.name) == ("Service", "web")
    assert fingerprint(store) == before
    assert alloc.ips.used == used


async def test_headless_and_external_name_get_no_ip():
    store, alloc = await new_store()
    headless = await store.create(service("db", clusterIP="None"))
    assert (headless.spec.cluster_ip, headless.spec.cluster_ips) == ("None", ("None",))
    external = await store.create(
        service("ext", type="ExternalName", externalName="db.default.svc.cluster.local", ports=[])
    )
    assert (external.spec.cluster_ip, external.spec.cluster_ips) == (None, ())
    assert alloc.ips.used == 0
    with pytest.raises(errors.Invalid) as exc:
        await store.create(
            service("ext2", type="ExternalName", externalName="x.example", clusterIP="10.96.0.5")
        )
    assert str(exc.value) == (
        'Service "ext2" is invalid: spec.clusterIPs: Forbidden: may not be set for'
        " ExternalName services"
    )


async def test_ip_never_changes_on_update():
    store, _ = await new_store()
    stored = await store.create(service())
    ip = stored.spec.cluster_ip
    # an update that omits the IP keeps it (and, changing nothing else, writes nothing)
    same = await store.update(evolve_spec(stored, cluster_ip=None, cluster_ips=()))
    assert same is stored
    # a real change keeps the IP too
    changed = await store.update(
        evolve_spec(stored, cluster_ip=None, cluster_ips=(), selector={"app": "v2"})
    )
    assert (changed.spec.cluster_ip, changed.spec.cluster_ips) == (ip, (ip,))
    assert changed.spec.selector == {"app": "v2"}
    before = fingerprint(store)
    with pytest.raises(errors.Invalid) as exc:
        await store.update(evolve_spec(changed, cluster_ip="10.96.5.5", cluster_ips=()))
    assert str(exc.value) == (
        'Service "web" is invalid: spec.clusterIP: Invalid value: "10.96.5.5": field is immutable'
    )
    assert fingerprint(store) == before


async def test_headless_stays_headless_and_ip_fields_are_defaulted_like_kubernetes():
    store, alloc = await new_store()
    db = await store.create(service("db", clusterIP="None"))
    assert (db.spec.ip_families, db.spec.ip_family_policy) == (("IPv4",), "SingleStack")
    # a headless Service without a selector: Kubernetes' special case
    bare = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "bare", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        }
    )
    bare = await store.create(bare)
    assert (bare.spec.ip_families, bare.spec.ip_family_policy) == (
        ("IPv4", "IPv6"),
        "RequireDualStack",
    )
    assert await store.update(evolve_spec(db, cluster_ip=None, cluster_ips=())) is db
    with pytest.raises(
        errors.Invalid, match=r'spec\.clusterIP: Invalid value: "10\.96\.0\.50": field is immutable'
    ):
        await store.update(evolve_spec(db, cluster_ip="10.96.0.50", cluster_ips=()))
    assert alloc.ips.used == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"clusterIPs": ["10.96.0.8"]},
            'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.8"}:'
            " must be empty when `clusterIP` is not specified",
        ),
        (
            {"ipFamilies": ["IPv6"]},
            'Service "web" is invalid: spec.ipFamilies[0]: Invalid value: "IPv6": not configured'
            " on this cluster",
        ),
        (
            {"clusterIP": "10.96.0.8", "clusterIPs": ["10.96.0.8", "10.96.0.9"]},
            'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.8",'
            ' "10.96.0.9"}: may specify no more than one IP for each IP family',
        ),
    ],
)
async def test_ip_field_combinations_this_cluster_cannot_serve(spec: dict[str, Any], message: str):
    store, alloc = await new_store()
    with pytest.raises(errors.Invalid) as exc:
        await store.create(service(**spec))
    assert str(exc.value) == message
    assert alloc.ips.used == 0


async def test_status_writes_leave_allocations_alone():
    store, alloc = await new_store()
    stored = await store.create(service(type="LoadBalancer"))
    ingress = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}},
        }
    )
    updated = await store.update_status(attrs.evolve(stored, status=ingress.status))
    assert updated.spec == stored.spec
    assert (alloc.ips.used, alloc.node_ports.used) == (1, 1)


async def test_delete_releases_the_ip_for_reuse():
    store, alloc = await new_store()
    stored = await store.create(service())
    ip = stored.spec.cluster_ip
    await store.delete("Service", "web", namespace="default")
    assert not alloc.ips.has(ip)
    again = await store.create(service("other", clusterIP=ip))
    assert again.spec.cluster_ip == ip


async def test_ip_held_until_the_last_finalizer_is_gone():
    store, alloc = await new_store()
    svc = service()
    svc = attrs.evolve(svc, metadata=attrs.evolve(svc.metadata, finalizers=("example.com/hold",)))
    stored = await store.create(svc)
    ip = stored.spec.cluster_ip
    terminating = await store.delete("Service", "web", namespace="default")
    assert terminating.metadata.deletion_timestamp is not None
    assert alloc.ips.has(ip)
    await store.update(
        attrs.evolve(terminating, metadata=attrs.evolve(terminating.metadata, finalizers=()))
    )
    assert store.get_nowait("Service", "web", namespace="default") is None
    assert not alloc.ips.has(ip)


async def test_write_refused_by_a_later_step_gives_the_ip_back():
    store, alloc = await new_store(quota_step=True)
    q = from_dict(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "svc", "namespace": "default"},
            "spec": {"hard": {"services": "0"}},
        }
    )
    q = await store.create(q)
    status = quota.sync_status(q, {}, to_wall(trio.current_time()))
    await store.update_status(attrs.evolve(q, status=status))
    before = fingerprint(store)
    with pytest.raises(errors.Forbidden, match="exceeded quota: svc"):
        await store.create(
            service(
                clusterIP="10.100.0.7", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]
            )
        )
    with pytest.raises(errors.Forbidden):
        await store.create(service("auto"))
    assert fingerprint(store) == before
    assert (alloc.ips.used, alloc.node_ports.used) == (0, 0)
    assert not alloc.ips.has("10.100.0.7")
    assert not alloc.node_ports.has(30080)


async def test_type_change_to_external_name_releases_and_back_allocates():
    store, alloc = await new_store()
    stored = await store.create(service())
    ip = stored.spec.cluster_ip
    external = await store.update(
        evolve_spec(stored, type="ExternalName", external_name="x.example", selector={})
    )
    assert (external.spec.cluster_ip, external.spec.cluster_ips, external.spec.ip_families) == (
        None,
        (),
        (),
    )
    assert not alloc.ips.has(ip)
    back = await store.update(evolve_spec(external, type="ClusterIP", external_name=None))
    assert back.spec.cluster_ip and alloc.ips.has(back.spec.cluster_ip)
    assert alloc.ips.used == 1


# -- node ports ------------------------------------------------------------------------


async def test_node_ports_allocated_honoured_and_shared_by_protocol():
    store, alloc = await new_store()
    stored = await store.create(
        service(
            type="NodePort",
            ports=[
                {"name": "http", "port": 80},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        )
    )
    http, dns, dns_tcp = (p.node_port for p in stored.spec.ports)
    assert 30086 <= http <= 32767
    assert dns == dns_tcp == 30053
    assert {p for p in (http, dns) if alloc.node_ports.has(p)} == {http, 30053}
    assert alloc.node_ports.used == 2


async def test_load_balancer_without_node_port_allocation_gets_none():
    store, alloc = await new_store()
    stored = await store.create(service(type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert stored.spec.ports[0].node_port is None
    assert alloc.node_ports.used == 0
    assert stored.spec.cluster_ip


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        (
            [{"port": 80, "nodePort": 30080}],
            'Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided'
            " port is already allocated",
        ),
        (
            [{"port": 80, "nodePort": 8080}],
            'Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided'
            " port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            [
                {"name": "a", "port": 80, "nodePort": 30100},
                {"name": "b", "port": 81, "nodePort": 30100},
            ],
            'Service "b" is invalid: spec.ports[1].nodePort: Duplicate value: 30100',
        ),
    ],
)
async def test_node_port_refusals_leak_nothing(ports: list[dict[str, Any]], message: str):
    store, alloc = await new_store()
    await store.create(service("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    before, used = fingerprint(store), (alloc.ips.used, alloc.node_ports.used)
    with pytest.raises(errors.Invalid) as exc:
        await store.create(service("b", type="NodePort", ports=ports))
    assert str(exc.value) == message
    assert fingerprint(store) == before
    assert (alloc.ips.used, alloc.node_ports.used) == used  # the IP it got is back too
    assert not alloc.node_ports.has(30100)


async def test_node_port_kept_on_update_and_released_when_type_changes():
    store, alloc = await new_store()
    stored = await store.create(service(type="NodePort"))
    node_port = stored.spec.ports[0].node_port
    omitted = evolve_spec(stored, ports=(attrs.evolve(stored.spec.ports[0], node_port=None),))
    assert await store.update(omitted) is stored  # kept: nothing to write
    cluster_ip = await store.update(
        evolve_spec(stored, type="ClusterIP", external_traffic_policy=None)
    )
    assert cluster_ip.spec.ports[0].node_port is None
    assert not alloc.node_ports.has(node_port)
    again = await store.update(evolve_spec(cluster_ip, type="NodePort"))
    assert alloc.node_ports.has(again.spec.ports[0].node_port)
    assert alloc.node_ports.used == 1
    moved = await store.update(
        evolve_spec(again, ports=(attrs.evolve(again.spec.ports[0], node_port=31999),))
    )
    assert moved.spec.ports[0].node_port == 31999
    assert alloc.node_ports.used == 1 and alloc.node_ports.has(31999)
    await store.delete("Service", "web", namespace="default")
    assert (alloc.ips.used, alloc.node_ports.used) == (0, 0)


# -- the store's removed hook ----------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.removed_objects: list[Any] = []

    def admit(self, op: str, obj: Any, old: Any) -> Any:
        return obj

    def removed(self, obj: Any) -> None:
        self.removed_objects.append(obj)


async def test_store_calls_removed_with_the_last_state_only_on_removal():
    store = Store(random.Random(1))
    recorder = Recorder()
    store.add_admission_step(recorder)
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    svc = service()
    svc = attrs.evolve(svc, metadata=attrs.evolve(svc.metadata, finalizers=("example.com/x",)))
    await store.create(svc)
    marked = await store.delete("Service", "web", namespace="default")
    assert recorder.removed_objects == []  # only marked for deletion
    last = await store.update(
        attrs.evolve(marked, metadata=attrs.evolve(marked.metadata, finalizers=()))
    )
    assert recorder.removed_objects == [last]
    await store.create(service("plain"))
    gone = await store.delete("Service", "plain", namespace="default")
    assert recorder.removed_objects[-1] == gone
    assert gone.metadata.resource_version == str(store.revision)


# -- in a cluster ----------------------------------------------------------------------


async def test_a_cluster_allocates_service_ips_and_starts_with_the_kubernetes_service(
    autojump_clock: Any,
):
    async with open_cluster(nodes=0, seed=7, controllers=()) as cluster:
        kubernetes = cluster.get_nowait("Service", "kubernetes", namespace="default")
        assert kubernetes.spec.cluster_ip == "10.96.0.1"
        web = await cluster.apply(service())
        assert web.spec.cluster_ip not in ("", None, "None", "10.96.0.1")
        taken = attrs.evolve(
            kubernetes_service(), metadata=attrs.evolve(kubernetes.metadata, name="other")
        )
        with pytest.raises(errors.Invalid, match="already allocated"):
            await cluster.client.create(taken)  # asks for 10.96.0.1, which is taken
