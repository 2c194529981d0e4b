"""ClusterDNS: names follow Services and Endpoints through its informers (virtual time);
headless Services answer with ready addresses; unknown and malformed names fail like
NXDOMAIN with a clear message."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
import trio

from actors import WorkTracker
from controlplane.admission.serviceip import service_admission_steps
from controlplane.api import from_dict
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.client.local import LocalClient
from controlplane.dns import ClusterDNS
from controlplane.store import Store
from runtime.network import NameNotFound, Network


@attrs.define
class Env:
    store: Store
    dns: ClusterDNS
    tracker: WorkTracker

    async def settle(self) -> None:
        await self.tracker.wait_idle()


async def open_dns(nursery: trio.Nursery, *, domain: str = "cluster.local") -> Env:
    tracker = WorkTracker()
    store = Store(random.Random("dns"), work_tracker=tracker)
    for step in service_admission_steps(random.Random("dns:ip")):
        store.add_admission_step(step)
    await nursery.start(store.run)
    for ns in ("default", "prod"):
        await store.create(Namespace(metadata=ObjectMeta(name=ns)))
    dns = ClusterDNS(LocalClient(store, track_work=True), domain=domain, tracker=tracker)
    await nursery.start(dns.run)
    return Env(store, dns, tracker)


def service(name: str, namespace: str = "default", **spec: Any) -> Any:
    spec.setdefault("ports", [{"port": 80}])
    if spec.get("type") != "ExternalName":
        spec.setdefault("selector", {"app": name})
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def endpoints(name: str, ready: list[Any], not_ready: tuple[str, ...] = ()) -> Any:
    """Endpoints in ``default``; a ``ready`` entry is an IP or ``(ip, hostname)``."""

    def address(a: Any) -> dict[str, Any]:
        return {"ip": a[0], "hostname": a[1]} if isinstance(a, tuple) else {"ip": a}

    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": "default"},
            "subsets": [
                {
                    "addresses": [address(a) for a in ready],
                    "notReadyAddresses": [{"ip": ip} for ip in not_ready],
                    "ports": [{"port": 8080}],
                }
            ],
        }
    )


async def test_cluster_ip_service_resolves_after_create_and_not_after_delete(
    nursery, autojump_clock
):
    env = await open_dns(nursery)
    name = "web.default.svc.cluster.local"
    with pytest.raises(NameNotFound, match=r"no service default/web"):
        env.dns.resolve(name)
    stored = await env.store.create(service("web"))
    await env.settle()
    ip = stored.spec.cluster_ip
    assert env.dns.resolve(name) == [ip]
    assert env.dns.resolve("WEB.Default.SVC.cluster.local.") == [ip]  # case, trailing dot
    with pytest.raises(NameNotFound):
        env.dns.resolve("web.prod.svc.cluster.local")  # names are per namespace
    await env.store.delete("Service", "web", namespace="default")
    await env.settle()
    with pytest.raises(
        NameNotFound, match=r"^'web\.default\.svc\.cluster\.local': no service default/web$"
    ):
        env.dns.resolve(name)


async def test_update_to_external_name_follows_cluster_aliases(nursery, autojump_clock):
    env = await open_dns(nursery)
    db = await env.store.create(service("db", "prod"))
    web = await env.store.create(service("web"))
    await env.settle()
    assert env.dns.resolve("web.default.svc.cluster.local") == [web.spec.cluster_ip]
    alias = attrs.evolve(
        web,
        spec=attrs.evolve(
            web.spec, type="ExternalName", external_name="db.prod.svc.cluster.local", selector={}
        ),
    )
    alias = await env.store.update(alias)
    await env.settle()
    assert env.dns.resolve("web.default.svc.cluster.local") == [db.spec.cluster_ip]
    outside = attrs.evolve(alias, spec=attrs.evolve(alias.spec, external_name="db.example.com"))
    await env.store.update(outside)
    await env.settle()
    with pytest.raises(
        NameNotFound,
        match=r"^'web\.default\.svc\.cluster\.local' is an alias for 'db\.example\.com':"
        r" 'db\.example\.com' is not in the cluster domain cluster\.local$",
    ):
        env.dns.resolve("web.default.svc.cluster.local")


async def test_external_name_loop_is_refused(nursery, autojump_clock):
    env = await open_dns(nursery)
    for a, b in (("a", "b"), ("b", "a")):
        await env.store.create(
            service(a, type="ExternalName", externalName=f"{b}.default.svc.cluster.local", ports=[])
        )
    await env.settle()
    with pytest.raises(NameNotFound, match=r"too many CNAME hops"):
        env.dns.resolve("a.default.svc.cluster.local")


async def test_headless_resolves_to_ready_addresses_sorted(nursery, autojump_clock):
    env = await open_dns(nursery)
    await env.store.create(service("db", clusterIP="None"))
    await env.settle()
    name = "db.default.svc.cluster.local"
    with pytest.raises(NameNotFound, match=r"no ready endpoints"):
        env.dns.resolve(name)  # no Endpoints object yet
    eps = await env.store.create(
        endpoints("db", ["10.244.0.10", ("10.244.0.9", "db-0"), "10.244.1.2"], ("10.244.2.7",))
    )
    await env.settle()
    assert env.dns.resolve(name) == ["10.244.0.9", "10.244.0.10", "10.244.1.2"]
    assert env.dns.resolve("db-0.db.default.svc.cluster.local") == ["10.244.0.9"]
    with pytest.raises(NameNotFound):
        env.dns.resolve("db-1.db.default.svc.cluster.local")
    # everything goes not-ready: the name stops resolving
    subset = eps.subsets[0]
    not_ready = attrs.evolve(
        subset, addresses=(), not_ready_addresses=subset.addresses + subset.not_ready_addresses
    )
    await env.store.update(attrs.evolve(eps, subsets=(not_ready,)))
    await env.settle()
    with pytest.raises(NameNotFound, match=r"has no ready endpoints"):
        env.dns.resolve(name)


async def test_hostname_records_only_for_headless_services(nursery, autojump_clock):
    env = await open_dns(nursery)
    await env.store.create(service("web"))
    await env.store.create(endpoints("web", [("10.244.0.5", "web-0")]))
    await env.settle()
    with pytest.raises(NameNotFound, match=r"is not headless"):
        env.dns.resolve("web-0.web.default.svc.cluster.local")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", r"^invalid name '': empty$"),
        (".", r"^invalid name '\.': empty$"),
        ("web..svc.cluster.local", r"^invalid name 'web\.\.svc\.cluster\.local': label ''"),
        ("-web.default.svc.cluster.local", r"label '-web' must be 1-63 letters"),
        ("web_1.default.svc.cluster.local", r"label 'web_1' must be"),
        ("a" * 64 + ".default.svc.cluster.local", r"label 'a{64}' must be 1-63"),
        (".".join(["a" * 60] * 5), r"longer than 253 characters$"),
        ("web.default.svc.example.com", r"is not in the cluster domain cluster\.local$"),
        ("cluster.local", r"is not in the cluster domain"),
        ("default.svc.cluster.local", r"no such name$"),
        ("a.b.c.web.default.svc.cluster.local", r"no such name$"),
        ("web.default.pod.cluster.local", r"'web' is not a dashed IPv4 address$"),
    ],
)
async def test_malformed_and_unknown_names_raise_name_not_found(
    nursery, autojump_clock, name, message
):
    env = await open_dns(nursery)
    with pytest.raises(NameNotFound, match=message):
        env.dns.resolve(name)


async def test_pod_records_search_list_and_custom_domain(nursery, autojump_clock):
    env = await open_dns(nursery, domain="Corp.Internal.")
    assert env.dns.search_domains("prod") == (
        "prod.svc.corp.internal",
        "svc.corp.internal",
        "corp.internal",
    )
    assert env.dns.resolve("10-244-1-7.prod.pod.corp.internal") == ["10.244.1.7"]
    web = await env.store.create(service("web", "prod"))
    await env.settle()
    assert env.dns.resolve("web.prod.svc.corp.internal") == [web.spec.cluster_ip]
    with pytest.raises(NameNotFound, match=r"not in the cluster domain corp\.internal"):
        env.dns.resolve("web.prod.svc.cluster.local")


async def test_plugs_into_the_network_as_its_resolver(nursery, autojump_clock):
    """The runtime's stub resolver expands short names with the pod's search list."""
    env = await open_dns(nursery)
    web = await env.store.create(service("web"))
    db = await env.store.create(service("db", "prod"))
    await env.settle()
    network = Network(random.Random(0))
    network.set_resolver(env.dns.resolve)
    search = env.dns.search_domains("default")
    for name in ("web", "web.default", "web.default.svc", "web.default.svc.cluster.local."):
        assert network.lookup(name, search=search) == [web.spec.cluster_ip]
    assert network.lookup("db.prod", search=search) == [db.spec.cluster_ip]
    with pytest.raises(NameNotFound):
        network.lookup("db", search=search)  # the short name is looked up in default only
    with pytest.raises(NameNotFound):
        network.lookup("web_1", search=search)
