"""The Endpoints controller in a running cluster, in virtual time."""

from __future__ import annotations

import attrs
import trio
from endpoints_builders import (
    addresses,
    cluster,
    endpoints,
    pod,
    pod_names,
    replica_set,
    service,
    warnings,
)

from controlplane import errors, open_cluster
from controlplane.api import from_dict
from controlplane.controllers.endpoints import UNRESOLVED_PORT_REASON, EndpointsController
from controlplane.controllers.manager import ControllerManager
from runtime.programs import Program


async def test_pods_move_from_not_ready_to_ready(autojump_clock):
    async with cluster() as c:
        c.registry.add("slow:1", program=Program(ready_after=20))
        await c.apply(service())
        await c.apply(replica_set(replicas=2, image="slow:1", readiness=True))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and len(a[1]) == 2, timeout=30)
        names = pod_names(c)
        assert addresses(endpoints(c)) == ([], names)
        started = trio.current_time()
        await c.wait_for(lambda: addresses(endpoints(c)) == (names, []), timeout=60)
        assert trio.current_time() - started > 15
        (subset,) = endpoints(c).subsets
        assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("http", 8080, "TCP")]
        ips = sorted(a.ip for a in subset.addresses)
        pods = c.list_nowait("Pod", namespace="default")
        assert ips == sorted(p.status.pod_ip for p in pods)
        assert {a.node_name for a in subset.addresses} <= {"node-1", "node-2"}


async def test_terminating_pods_leave_at_once(autojump_clock):
    async with cluster() as c:
        c.registry.add("stubborn:1", program=Program(term_exit_code=None))
        await c.apply(service())
        await c.apply(replica_set(replicas=3, image="stubborn:1"))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and len(a[0]) == 3, timeout=30)
        victim = pod_names(c)[0]
        await c.client.delete("Pod", victim, namespace="default")
        deleted_at = trio.current_time()
        await c.wait_for(
            lambda: victim not in [*addresses(endpoints(c))[0], *addresses(endpoints(c))[1]],
            timeout=5,
        )
        assert trio.current_time() - deleted_at < 1
        # the pod is still there, terminating (it ignores SIGTERM for the grace period)
        assert c.get_nowait("Pod", victim, namespace="default").metadata.deletion_timestamp


async def test_publish_not_ready_addresses(autojump_clock):
    async with cluster() as c:
        c.registry.add("never:1", program=Program(ready_after=10_000))
        await c.apply(service(publishNotReadyAddresses=True))
        await c.apply(replica_set(replicas=2, image="never:1", readiness=True))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and len(a[0]) == 2, timeout=30)
        assert addresses(endpoints(c)) == (pod_names(c), [])


async def test_named_ports_resolve_per_pod_and_group_subsets(autojump_clock):
    async with cluster() as c:
        ports = [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics"},
            {"name": "admin", "port": 81, "targetPort": 7000},
        ]
        await c.apply(service(ports=ports))
        await c.apply(pod("full", ports=(("http", 8080), ("metrics", 9100))))
        await c.apply(pod("partial", ports=(("http", 8081),)))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and len(a[0]) == 4, timeout=30)
        await c.settle()
        shape = sorted(
            (
                sorted(a.target_ref.name for a in s.addresses),
                sorted((p.name, p.port) for p in s.ports),
            )
            for s in endpoints(c).subsets
        )
        # RepackSubsets: one subset per set of addresses serving the same port
        assert shape == [
            (["full"], [("http", 8080), ("metrics", 9100)]),
            (["full", "partial"], [("admin", 7000)]),
            (["partial"], [("http", 8081)]),
        ]
        assert warnings(c, UNRESOLVED_PORT_REASON) == []


async def test_a_port_name_no_container_declares_gives_empty_endpoints_and_a_warning(
    autojump_clock,
):
    async with cluster() as c:
        await c.apply(service(ports=[{"name": "web", "port": 80, "targetPort": "www"}]))
        await c.apply(replica_set(replicas=2))
        await c.wait_for(lambda: warnings(c, UNRESOLVED_PORT_REASON), timeout=30)
        await c.settle()
        assert endpoints(c).subsets == ()
        events = warnings(c, UNRESOLVED_PORT_REASON)
        # each controller says so once (the aggregated event counts repeats)
        assert sorted(e.source.component for e in events) == [
            "endpoint-controller",
            "endpointslice-controller",
        ]
        for event in events:
            assert event.involved_object.kind == "Service"
            assert event.involved_object.name == "web"
            assert "port web -> targetPort 'www'" in event.message


async def test_pending_pods_give_empty_endpoints_headless_without_ports_get_addresses(
    autojump_clock,
):
    async with cluster() as c:
        await c.apply(service(name="noports", selector={"app": "web"}, ports=[], clusterIP="None"))
        await c.apply(service())
        await c.apply(pod("stuck", node_selector={"disk": "ssd"}))  # never scheduled
        await c.apply(pod("running"))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and a[0] == ["running"], timeout=30)
        await c.settle()
        headless = endpoints(c, "noports")
        assert addresses(headless) == (["running"], [])
        assert headless.subsets[0].ports == ()
        assert headless.metadata.labels == {"service.kubernetes.io/headless": ""}
        assert c.get_nowait("Pod", "stuck", namespace="default").status.pod_ip is None


async def test_selector_less_services_keep_hand_written_endpoints(autojump_clock):
    async with cluster() as c:
        await c.apply(service(name="external", selector=False, ports=[{"port": 5432}]))
        manual = await c.apply(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "external", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}],
            }
        )
        await c.apply(pod("running", labels={"app": "external"}))
        await c.wait_for(lambda: pod_names(c, "app=external") == ["running"], timeout=5)
        await c.settle()
        stored = endpoints(c, "external")
        assert stored.metadata.resource_version == manual.metadata.resource_version
        assert stored.subsets[0].addresses[0].ip == "192.0.2.10"


async def test_deleting_the_service_deletes_its_endpoints(autojump_clock):
    async with cluster() as c:
        await c.apply(service())
        await c.apply(replica_set(replicas=1))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and a[0], timeout=30)
        await c.client.delete("Service", "web", namespace="default")
        await c.wait_for(lambda: endpoints(c) is None, timeout=5)
        await c.settle()
        assert endpoints(c) is None


async def test_endpoints_deleted_by_hand_come_back(autojump_clock):
    async with cluster() as c:
        await c.apply(service())
        await c.apply(replica_set(replicas=1))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and a[0], timeout=30)
        before = addresses(endpoints(c))
        await c.client.delete("Endpoints", "web", namespace="default")
        await c.wait_for(lambda: addresses(endpoints(c)) == before, timeout=5)


async def test_writes_only_when_content_changes_and_follows_service_labels(autojump_clock):
    async with cluster() as c:
        await c.apply(service(labels={"team": "a"}))
        await c.apply(replica_set(replicas=2))
        await c.wait_for(lambda: (a := addresses(endpoints(c))) and len(a[0]) == 2, timeout=30)
        await c.settle()
        ep = endpoints(c)
        assert ep.metadata.labels == {"team": "a"}
        # a pod change that cannot move an endpoint: no write
        name = pod_names(c)[0]
        live = await c.client.get("Pod", name, namespace="default")
        meta = attrs.evolve(live.metadata, annotations={"note": "x"})
        await c.client.update(attrs.evolve(live, metadata=meta))
        await c.settle()
        assert endpoints(c).metadata.resource_version == ep.metadata.resource_version
        svc = await c.client.get("Service", "web", namespace="default")
        meta = attrs.evolve(svc.metadata, labels={"team": "b"})
        await c.client.update(attrs.evolve(svc, metadata=meta))
        await c.wait_for(lambda: endpoints(c).metadata.labels == {"team": "b"}, timeout=5)
        assert addresses(endpoints(c)) == addresses(ep)


async def test_relabelled_pods_leave_and_join(autojump_clock):
    async with cluster() as c:
        await c.apply(service())
        await c.apply(pod("a"))
        await c.apply(pod("b", labels={"app": "other"}))
        await c.wait_for(lambda: addresses(endpoints(c)) == (["a"], []), timeout=30)
        for name, app in (("a", "other"), ("b", "web")):
            live = await c.client.get("Pod", name, namespace="default")
            meta = attrs.evolve(live.metadata, labels={"app": app})
            await c.client.update(attrs.evolve(live, metadata=meta))
        await c.wait_for(lambda: addresses(endpoints(c)) == (["b"], []), timeout=5)


async def test_leftover_endpoints_are_deleted_at_start(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=()) as c:
        for name in ("ghost", "kept"):
            await c.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": "default"},
                    "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
                }
            )
        await c.apply(service(name="kept", selector=False))
        manager = ControllerManager(c.client, [(EndpointsController.name, EndpointsController)])
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            await c.wait_for(lambda: endpoints(c, "ghost") is None, timeout=5)
            # once running, hand-written Endpoints created before their Service stay
            await c.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": "later", "namespace": "default"},
                }
            )
            await c.settle()
            assert endpoints(c, "later") is not None
            assert endpoints(c, "kept") is not None
            nursery.cancel_scope.cancel()


async def test_endpoints_validation_still_rejects_bad_input(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=()) as c:
        bad = from_dict(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "x", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": ""}], "ports": [{"port": 80}]}],
            }
        )
        try:
            await c.client.create(bad)
        except errors.Invalid as exc:
            assert "subsets[0].addresses[0].ip" in str(exc)
        else:
            raise AssertionError("created an Endpoints without an address IP")
