"""The EndpointSlice controller in a running cluster, in virtual time."""

from __future__ import annotations

import attrs
import pytest
import trio
from endpoints_builders import CONTROLLERS, cluster, pod, pod_names, replica_set, service

from controlplane import errors, open_cluster
from controlplane.api import from_dict
from controlplane.api.discovery import LABEL_MANAGED_BY, LABEL_SERVICE_NAME
from controlplane.controllers.endpointslice import (
    EndpointSliceController,
    SliceTracker,
    endpointslice_controller,
)
from controlplane.controllers.endpointslice_reconciler import CONTROLLER_NAME
from controlplane.controllers.replicaset import ReplicaSetController
from runtime.programs import Program


def slices(c, service_name="web"):
    return c.list_nowait(
        "EndpointSlice", namespace="default", label_selector=f"{LABEL_SERVICE_NAME}={service_name}"
    )


def endpoints_by_pod(c, service_name="web"):
    return {e.target_ref.name: e for s in slices(c, service_name) for e in s.endpoints}


def conditions(endpoint):
    c = endpoint.conditions
    return (c.ready, c.serving, c.terminating)


async def test_250_pods_make_three_slices(autojump_clock):
    factories = [
        (EndpointSliceController.name, EndpointSliceController),
        (ReplicaSetController.name, ReplicaSetController),
    ]
    async with cluster(nodes=3, controllers=factories) as c:
        await c.apply(service())
        await c.apply(replica_set(replicas=250))
        await c.wait_for(
            lambda: sum(e.conditions.ready for s in slices(c) for e in s.endpoints) == 250,
            timeout=120,
        )
        await c.settle()
        found = slices(c)
        assert sorted(len(s.endpoints) for s in found) == [50, 100, 100]
        svc = c.get_nowait("Service", "web", namespace="default")
        for s in found:
            assert s.metadata.name.startswith("web-")
            assert s.metadata.labels[LABEL_MANAGED_BY] == CONTROLLER_NAME
            assert s.address_type == "IPv4"
            (ref,) = s.metadata.owner_references
            assert (ref.kind, ref.name, ref.uid, ref.controller) == (
                "Service",
                "web",
                svc.metadata.uid,
                True,
            )
            assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]
        names = {e.target_ref.name for s in found for e in s.endpoints}
        assert names == set(pod_names(c))
        # scale down: emptied slices go, the others shrink in place
        before = {s.metadata.name for s in found}
        rs = await c.client.get("ReplicaSet", "web", namespace="default")
        await c.client.update(attrs.evolve(rs, spec=attrs.evolve(rs.spec, replicas=40)))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 40, timeout=120)
        await c.settle()
        after = slices(c)
        assert {s.metadata.name for s in after} <= before
        assert sum(len(s.endpoints) for s in after) == 40


async def test_conditions_follow_readiness_and_termination(autojump_clock):
    async with cluster() as c:
        c.registry.add("app:1", program=Program(ready_after=20, term_exit_code=None))
        await c.apply(service())
        await c.apply(replica_set(replicas=2, image="app:1", readiness=True))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 2, timeout=30)
        assert {conditions(e) for e in endpoints_by_pod(c).values()} == {(False, False, False)}
        await c.wait_for(
            lambda: {conditions(e) for e in endpoints_by_pod(c).values()} == {(True, True, False)},
            timeout=60,
        )
        victim = pod_names(c)[0]
        await c.client.delete("Pod", victim, namespace="default")
        await c.wait_for(
            lambda: (e := endpoints_by_pod(c).get(victim)) and conditions(e) == (False, True, True),
            timeout=2,
        )
        # it stays, terminating, until the pod is gone (the grace period, 30 s)
        await c.wait_for(lambda: victim not in endpoints_by_pod(c), timeout=60)
        assert c.get_nowait("Pod", victim, namespace="default") is None


async def test_publish_not_ready_addresses_marks_all_ready(autojump_clock):
    async with cluster() as c:
        c.registry.add("never:1", program=Program(ready_after=10_000))
        await c.apply(service(publishNotReadyAddresses=True))
        await c.apply(replica_set(replicas=2, image="never:1", readiness=True))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 2, timeout=30)
        assert {conditions(e) for e in endpoints_by_pod(c).values()} == {(True, False, False)}


async def test_small_slices_and_pods_with_different_ports(autojump_clock):
    factories = [
        (EndpointSliceController.name, endpointslice_controller(max_endpoints_per_slice=4)),
        (ReplicaSetController.name, ReplicaSetController),
    ]
    async with cluster(controllers=factories) as c:
        await c.apply(
            service(
                ports=[
                    {"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "port": 9090, "targetPort": "metrics"},
                ]
            )
        )
        await c.apply(replica_set(replicas=10, labels={"app": "web", "rs": "1"}))
        await c.apply(pod("extra", ports=(("http", 8080), ("metrics", 9100))))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 11, timeout=30)
        await c.settle()
        shape = sorted((tuple(p.name for p in s.ports), len(s.endpoints)) for s in slices(c))
        # how the ten http-only endpoints are packed depends on the order pods became
        # ready (the reconciler fills existing slices); the bounds do not
        http = [n for ports, n in shape if ports == ("http",)]
        assert sum(http) == 10 and len(http) == 3 and max(http) <= 4
        assert (("http", "metrics"), 1) in shape and len(shape) == 4


async def test_no_pods_keep_a_placeholder_and_bad_ports_do_not_crash(autojump_clock):
    async with cluster() as c:
        await c.apply(service(ports=[{"name": "web", "port": 80, "targetPort": "www"}]))
        await c.wait_for(lambda: slices(c), timeout=5)
        (placeholder,) = slices(c)
        assert placeholder.endpoints == () and placeholder.ports == ()
        await c.apply(pod("a"))
        await c.wait_for(lambda: "a" in endpoints_by_pod(c), timeout=30)
        await c.settle()
        # the pod lacks the named port: listed without ports, as Kubernetes does
        (only,) = slices(c)
        assert only.metadata.name == placeholder.metadata.name
        assert only.ports == ()
        reasons = {e.reason for e in c.list_nowait("Event", namespace="default")}
        assert "FailedToResolveTargetPort" in reasons


async def test_selector_less_service_keeps_hand_written_slices(autojump_clock):
    async with cluster() as c:
        await c.apply(service(name="external", selector=False, ports=[{"port": 5432}]))
        manual = await c.apply(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "external-1",
                    "namespace": "default",
                    "labels": {LABEL_SERVICE_NAME: "external", LABEL_MANAGED_BY: "me"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["192.0.2.10"]}],
                "ports": [{"port": 5432}],
            }
        )
        await c.apply(pod("a", labels={"app": "external"}))
        await c.wait_for(lambda: pod_names(c, "app=external") == ["a"], timeout=5)
        await c.settle()
        (stored,) = slices(c, "external")
        assert stored.metadata.resource_version == manual.metadata.resource_version
        assert stored.ports[0].protocol == "TCP"  # defaulted


async def test_deleted_service_takes_its_slices_and_deleted_slices_return(autojump_clock):
    async with cluster() as c:
        await c.apply(service())
        await c.apply(replica_set(replicas=2))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 2, timeout=30)
        (first,) = slices(c)
        await c.client.delete("EndpointSlice", first.metadata.name, namespace="default")
        await c.wait_for(
            lambda: (
                len(endpoints_by_pod(c)) == 2 and slices(c)[0].metadata.uid != first.metadata.uid
            ),
            timeout=5,
        )
        await c.client.delete("Service", "web", namespace="default")
        await c.wait_for(lambda: not slices(c), timeout=10)
        await c.settle()
        assert not c.list_nowait("EndpointSlice", namespace="default")


async def test_no_duplicate_slices_while_pods_churn(autojump_clock):
    factories = [
        (EndpointSliceController.name, endpointslice_controller(max_endpoints_per_slice=5)),
        *CONTROLLERS[2:],
    ]
    async with cluster(controllers=factories) as c:
        await c.apply(service())
        for i in range(12):
            await c.apply(pod(f"p{i}"))
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 12, timeout=30)
        for i in range(0, 12, 2):
            await c.client.delete("Pod", f"p{i}", namespace="default", grace_period_seconds=0)
        await c.wait_for(lambda: len(endpoints_by_pod(c)) == 6, timeout=30)
        await c.settle()
        found = slices(c)
        assert sum(len(s.endpoints) for s in found) == 6
        assert len(found) <= 3
        assert all(s.endpoints for s in found)


async def test_endpoint_slice_validation(autojump_clock):
    async with open_cluster(nodes=0, seed=1, controllers=()) as c:
        bad = from_dict(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "x", "namespace": "default"},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["fe80::1"]}, {"addresses": []}],
                "ports": [{"name": "a", "port": 80}, {"name": "a", "port": 70000}],
            }
        )
        try:
            await c.client.create(bad)
        except errors.Invalid as exc:
            assert [cause.field for cause in exc.causes] == [
                "endpoints[0].addresses[0]",
                "endpoints[1].addresses",
                "ports[1].name",
                "ports[1].port",
            ]
        else:
            raise AssertionError("created an invalid EndpointSlice")
        assert c.list_nowait("EndpointSlice", namespace="default") == []
        good = await c.client.create(attrs.evolve(bad, endpoints=(), ports=()))
        changed = attrs.evolve(good, address_type="IPv6")
        try:
            await c.client.update(changed)
        except errors.Invalid as exc:
            assert str(exc).endswith('addressType: Invalid value: "IPv6": field is immutable')
        else:
            raise AssertionError("changed an EndpointSlice's addressType")
        await trio.lowlevel.checkpoint()


def _slice(uid, rv):
    return from_dict(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": uid, "namespace": "default", "uid": uid, "resourceVersion": rv},
            "addressType": "IPv4",
        }
    )


def test_slice_tracker_sees_a_cache_behind_its_writes():
    tracker = SliceTracker()
    key = "default/web"
    assert not tracker.stale(key, [])
    tracker.written(key, _slice("a", "5"))
    assert tracker.stale(key, [])  # created, not yet in the cache
    assert tracker.stale(key, [_slice("a", "4")])  # an older version cached
    assert not tracker.stale(key, [_slice("a", "5")])
    assert tracker.own_echo(key, _slice("a", "5"))
    assert not tracker.own_echo(key, _slice("a", "6"))  # someone else wrote it
    tracker.expect_deletion(key, _slice("a", "5"))
    assert tracker.stale(key, [_slice("a", "5")])
    assert not tracker.stale(key, [])
    assert tracker.deleted(key, _slice("a", "5"))  # our own deletion
    tracker.written(key, _slice("b", "7"))
    assert not tracker.deleted(key, _slice("b", "7"))  # deleted by someone else
    assert not tracker.stale(key, [])
    tracker.written(key, _slice("c", "9"))
    tracker.forget_service(key)
    assert not tracker.stale(key, [])


def test_max_endpoints_per_slice_must_be_positive():
    with pytest.raises(ValueError, match=r"^max_endpoints_per_slice must be positive: 0$"):
        endpointslice_controller(0)(None)
