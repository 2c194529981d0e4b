"""The pure decisions of the Endpoints and EndpointSlice controllers, table-driven."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import from_dict
from controlplane.api.core_service import EndpointAddress, EndpointPort, EndpointSubset
from controlplane.api.discovery import LABEL_MANAGED_BY, LABEL_SERVICE_NAME
from controlplane.api.meta import OwnerReference
from controlplane.controllers.endpoints_decisions import (
    HEADLESS_LABEL,
    OVER_CAPACITY_ANNOTATION,
    compute_subsets,
    desired_endpoints,
    find_port,
    manages_endpoints,
    pod_endpoints_changed,
    repack_subsets,
    should_pod_be_in_endpoints,
    truncate_subsets,
)
from controlplane.controllers.endpointslice_reconciler import (
    CONTROLLER_NAME,
    reconcile_slices,
)


def service(name="web", ports=None, selector=None, **spec):
    ports = (
        [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        if ports is None
        else ports
    )
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": f"svc-{name}",
                "labels": {"team": "a"},
            },
            "spec": {
                "selector": {"app": "web"} if selector is None else selector,
                "ports": ports,
                **spec,
            },
        }
    )


def pod(
    name,
    ip="10.0.0.1",
    *,
    ready=True,
    ports=(("http", 8080),),
    deleting=False,
    phase="Running",
    node="node-1",
    hostname=None,
    subdomain=None,
    protocol="TCP",
):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:01:00Z"
    spec = {
        "nodeName": node,
        "containers": [
            {
                "name": "app",
                "image": "nginx",
                "ports": [{"name": n, "containerPort": p, "protocol": protocol} for n, p in ports],
            }
        ],
    }
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
    )


def addr(p):
    return (p.ip, p.target_ref.name)


# -- which pods and services count ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "include_terminating", "expected"),
    [
        ({}, False, True),
        ({"ready": False}, False, True),
        ({"ip": None}, False, False),
        ({"phase": "Succeeded"}, True, False),
        ({"phase": "Failed"}, True, False),
        ({"deleting": True}, False, False),
        ({"deleting": True}, True, True),
    ],
)
def test_should_pod_be_in_endpoints(kwargs, include_terminating, expected):
    assert should_pod_be_in_endpoints(pod("a", **kwargs), include_terminating) is expected


def test_selector_less_and_external_name_services_are_not_managed():
    assert manages_endpoints(service())
    assert not manages_endpoints(service(selector={}))
    assert not manages_endpoints(service(type="ExternalName", externalName="db.example.com"))


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"port": 80, "targetPort": 9000}, 9000),
        ({"port": 80}, 80),
        ({"port": 80, "targetPort": "http"}, 8080),
        ({"port": 80, "targetPort": "metrics"}, 9090),
        ({"port": 80, "targetPort": "nope"}, None),
        ({"port": 80, "targetPort": "http", "protocol": "UDP"}, None),
    ],
)
def test_find_port(port, expected):
    p = pod("a", ports=(("http", 8080), ("metrics", 9090)))
    svc = service(ports=[port])
    assert find_port(p, svc.spec.ports[0]) == expected


# -- Endpoints subsets -----------------------------------------------------------------


def test_ready_and_not_ready_pods_split():
    result = compute_subsets(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False)])
    (subset,) = result.subsets
    assert [addr(a) for a in subset.addresses] == [("10.0.0.1", "a")]
    assert [addr(a) for a in subset.not_ready_addresses] == [("10.0.0.2", "b")]
    assert subset.ports == (EndpointPort(name="http", port=8080, protocol="TCP"),)
    assert subset.addresses[0].node_name == "node-1"
    assert subset.addresses[0].target_ref.uid == "uid-a"
    assert (result.ready, result.not_ready) == (1, 1)


def test_publish_not_ready_addresses_puts_all_in_ready_terminating_included():
    svc = service(publishNotReadyAddresses=True)
    pods = [pod("a", "10.0.0.1", ready=False), pod("b", "10.0.0.2", deleting=True)]
    (subset,) = compute_subsets(svc, pods).subsets
    assert [addr(a) for a in subset.addresses] == [("10.0.0.1", "a"), ("10.0.0.2", "b")]
    assert subset.not_ready_addresses == ()


def test_terminating_pending_and_terminal_pods_are_left_out():
    pods = [
        pod("a", "10.0.0.1"),
        pod("b", "10.0.0.2", deleting=True),
        pod("c", None),
        pod("d", "10.0.0.4", phase="Succeeded"),
    ]
    (subset,) = compute_subsets(service(), pods).subsets
    assert [addr(a) for a in subset.addresses] == [("10.0.0.1", "a")]
    assert subset.not_ready_addresses == ()


def test_pods_lacking_a_named_port_are_grouped_apart():
    svc = service(
        ports=[
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
        ]
    )
    pods = [
        pod("a", "10.0.0.1", ports=(("http", 8080), ("metrics", 9100))),
        pod("b", "10.0.0.2", ports=(("http", 8080),)),
    ]
    result = compute_subsets(svc, pods)
    assert [
        ([addr(a) for a in s.addresses], [p.name for p in s.ports]) for s in result.subsets
    ] == [
        ([("10.0.0.1", "a")], ["metrics"]),
        ([("10.0.0.1", "a"), ("10.0.0.2", "b")], ["http"]),
    ] or [([addr(a) for a in s.addresses], [p.name for p in s.ports]) for s in result.subsets] == [
        ([("10.0.0.1", "a"), ("10.0.0.2", "b")], ["http"]),
        ([("10.0.0.1", "a")], ["metrics"]),
    ]
    assert result.unresolved == ()


def test_a_port_name_no_pod_declares_gives_empty_endpoints_and_is_reported():
    svc = service(ports=[{"name": "web", "port": 80, "targetPort": "www", "protocol": "TCP"}])
    result = compute_subsets(svc, [pod("a"), pod("b", "10.0.0.2")])
    assert result.subsets == ()
    assert result.unresolved == (("web", "www"),)
    assert compute_subsets(svc, []).unresolved == ()


def test_services_without_ports():
    pods = [pod("a", "10.0.0.1", ready=False), pod("b", "10.0.0.2")]
    assert compute_subsets(service(ports=[]), pods).subsets == ()
    (subset,) = compute_subsets(service(ports=[], clusterIP="None"), pods).subsets
    assert subset.ports == ()
    assert [addr(a) for a in subset.addresses] == [("10.0.0.2", "b")]
    assert [addr(a) for a in subset.not_ready_addresses] == [("10.0.0.1", "a")]


def test_hostname_is_published_when_the_subdomain_names_the_service():
    pods = [pod("a", hostname="a", subdomain="web"), pod("b", "10.0.0.2", hostname="b")]
    (subset,) = compute_subsets(service(), pods).subsets
    assert [a.hostname for a in subset.addresses] == ["a", None]


def test_repack_merges_ports_with_the_same_addresses_and_ready_wins():
    a = EndpointAddress(ip="10.0.0.1")
    b = EndpointAddress(ip="10.0.0.2")
    http = EndpointPort(name="http", port=80, protocol="TCP")
    dns = EndpointPort(name="dns", port=53, protocol="UDP")
    raw = [
        EndpointSubset(addresses=(b,), ports=(http,)),
        EndpointSubset(addresses=(a,), ports=(http,)),
        EndpointSubset(addresses=(a,), ports=(dns,)),
        EndpointSubset(addresses=(b,), ports=(dns,)),
        EndpointSubset(not_ready_addresses=(a,), ports=(dns,)),
    ]
    assert repack_subsets(raw) == (EndpointSubset(addresses=(a, b), ports=(dns, http)),)
    assert repack_subsets(reversed(raw)) == repack_subsets(raw)


def test_truncate_drops_not_ready_first_and_keeps_proportions():
    def addrs(n, base):
        return tuple(EndpointAddress(ip=f"10.{base}.{i // 250}.{i % 250}") for i in range(n))

    ready = EndpointSubset(addresses=addrs(900, 1), not_ready_addresses=addrs(300, 2))
    (out,), truncated = truncate_subsets((ready,))
    assert truncated
    assert (len(out.addresses), len(out.not_ready_addresses)) == (900, 100)
    big = (EndpointSubset(addresses=addrs(900, 1)), EndpointSubset(addresses=addrs(300, 2)))
    out, truncated = truncate_subsets(big)
    assert [len(s.addresses) for s in out] == [750, 250]
    assert truncate_subsets(big[:1]) == (big[:1], False)


def test_desired_endpoints_copies_labels_and_writes_only_changes():
    svc = service()
    subsets = compute_subsets(svc, [pod("a")]).subsets
    created = desired_endpoints(svc, None, subsets)
    assert created.metadata.name == "web"
    assert created.metadata.labels == {"team": "a"}
    stored = attrs.evolve(
        created,
        metadata=attrs.evolve(created.metadata, resource_version="5", annotations={"keep": "me"}),
    )
    assert desired_endpoints(svc, stored, subsets) is None
    updated = desired_endpoints(svc, stored, ())
    assert updated.subsets == ()
    assert updated.metadata.annotations == {"keep": "me"}
    assert updated.metadata.resource_version == "5"
    headless = desired_endpoints(service(clusterIP="None"), stored, subsets)
    assert headless.metadata.labels == {"team": "a", HEADLESS_LABEL: ""}


def test_desired_endpoints_marks_over_capacity():
    big = (
        EndpointSubset(
            addresses=tuple(EndpointAddress(ip=f"10.1.{i // 250}.{i % 250}") for i in range(1001))
        ),
    )
    out = desired_endpoints(service(), None, big)
    assert out.metadata.annotations == {OVER_CAPACITY_ANNOTATION: "truncated"}
    assert len(out.subsets[0].addresses) == 1000


def test_pod_endpoints_changed_ignores_irrelevant_status_writes():
    old = pod("a")
    meta = attrs.evolve(old.metadata, resource_version="9")
    same = attrs.evolve(old, metadata=meta, status=attrs.evolve(old.status, message="x"))
    assert not pod_endpoints_changed(old, old)
    assert not pod_endpoints_changed(old, same)
    not_ready = attrs.evolve(pod("a", ready=False), metadata=meta)
    assert pod_endpoints_changed(old, not_ready)
    moved = attrs.evolve(pod("a", "10.0.0.9"), metadata=meta)
    assert pod_endpoints_changed(old, moved)
    relabelled = attrs.evolve(old, metadata=attrs.evolve(meta, labels={"app": "other"}))
    assert pod_endpoints_changed(old, relabelled)


# -- EndpointSlices --------------------------------------------------------------------


def many(n, *, start=0, **kwargs):
    return [
        pod(f"p{i}", f"10.1.{i // 250}.{i % 250 + 1}", **kwargs) for i in range(start, start + n)
    ]


def stored(plan_slices, start=0):
    """Give planned creations names, uids and resourceVersions, as the store would."""
    out = []
    for i, s in enumerate(plan_slices, start):
        meta = s.metadata
        name = meta.name or f"web-{i:05d}"
        out.append(
            attrs.evolve(
                s,
                metadata=attrs.evolve(
                    meta, name=name, uid=meta.uid or f"uid-{name}", resource_version="1"
                ),
            )
        )
    return out


def test_250_pods_make_three_slices_of_at_most_100():
    svc = service()
    plan = reconcile_slices(svc, many(250), [])
    assert [len(s.endpoints) for s in plan.create] == [100, 100, 50]
    assert (plan.update, plan.delete) == ((), ())
    first = plan.create[0]
    assert first.metadata.generate_name == "web-"
    assert first.address_type == "IPv4"
    assert first.metadata.labels == {
        "team": "a",
        LABEL_SERVICE_NAME: "web",
        LABEL_MANAGED_BY: CONTROLLER_NAME,
    }
    assert first.metadata.owner_references == (
        OwnerReference(
            api_version="v1",
            kind="Service",
            name="web",
            uid="svc-web",
            controller=True,
            block_owner_deletion=True,
        ),
    )
    assert first.ports[0].port == 8080 and first.ports[0].name == "http"
    assert reconcile_slices(svc, many(250), stored(plan.create)).empty


def test_changes_touch_only_the_slices_that_hold_them():
    svc = service()
    existing = stored(reconcile_slices(svc, many(250), []).create)
    pods = many(250)
    pods[5] = pod("p5", "10.1.0.6", ready=False)
    plan = reconcile_slices(svc, pods, existing)
    assert plan.create == () and plan.delete == ()
    (changed,) = plan.update
    assert changed.metadata.name == existing[0].metadata.name
    assert changed.endpoints[5].conditions.ready is False
    # 20 pods go: only their slice is rewritten; 30 come: they fill the slices being
    # written, then the one unchanged slice they fit best.
    plan = reconcile_slices(svc, many(230, start=20), existing)
    assert [s.metadata.name for s in plan.update] == [existing[0].metadata.name]
    assert len(plan.update[0].endpoints) == 80
    plan = reconcile_slices(svc, [*many(230, start=20), *many(30, start=250)], existing)
    assert plan.create == () and plan.delete == ()
    assert sorted(len(s.endpoints) for s in plan.update) == [50 + 10, 80 + 20]


def test_emptied_slices_are_deleted_and_a_placeholder_stays():
    svc = service()
    existing = stored(reconcile_slices(svc, many(150), []).create)
    plan = reconcile_slices(svc, many(50), existing)
    assert [s.metadata.name for s in plan.delete] == [existing[1].metadata.name]
    plan = reconcile_slices(svc, [], existing)
    # one slice is kept as the (empty) placeholder, by reuse of its name
    assert plan.create == ()
    assert len(plan.delete) == 1
    (placeholder,) = plan.update
    assert placeholder.endpoints == () and placeholder.ports == ()
    assert reconcile_slices(svc, [], stored([placeholder])).empty


def test_no_pods_create_a_placeholder_slice():
    (placeholder,) = reconcile_slices(service(), [], []).create
    assert placeholder.endpoints == () and placeholder.ports == ()


def test_conditions_of_terminating_and_not_ready_pods():
    pods = [pod("a", "10.0.0.1", deleting=True), pod("b", "10.0.0.2", ready=False)]
    (created,) = reconcile_slices(service(), pods, []).create
    conditions = {e.target_ref.name: e.conditions for e in created.endpoints}
    assert (conditions["a"].ready, conditions["a"].serving, conditions["a"].terminating) == (
        False,
        True,
        True,
    )
    assert (conditions["b"].ready, conditions["b"].serving, conditions["b"].terminating) == (
        False,
        False,
        False,
    )
    (created,) = reconcile_slices(service(publishNotReadyAddresses=True), pods, []).create
    assert all(e.conditions.ready for e in created.endpoints)


def test_pods_serving_different_ports_get_different_slices_and_zones():
    svc = service(
        ports=[
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
        ]
    )
    pods = [pod("a", ports=(("http", 8080), ("metrics", 9100))), pod("b", "10.0.0.2")]
    plan = reconcile_slices(svc, pods, [], zone_of={"node-1": "zone-a"}.get)
    by_ports = {tuple(p.name for p in s.ports): s for s in plan.create}
    assert set(by_ports) == {("http", "metrics"), ("http",)}
    assert [e.target_ref.name for e in by_ports[("http",)].endpoints] == ["b"]
    assert by_ports[("http",)].endpoints[0].zone == "zone-a"


def test_slices_of_another_owner_are_replaced():
    svc = service()
    existing = stored(reconcile_slices(svc, many(3), []).create)
    recreated = attrs.evolve(svc, metadata=attrs.evolve(svc.metadata, uid="svc-web-2"))
    plan = reconcile_slices(recreated, many(3), existing)
    assert [s.metadata.name for s in plan.delete] == [existing[0].metadata.name]
    (created,) = plan.create
    assert created.metadata.owner_references[0].uid == "svc-web-2"


def test_a_slice_whose_ports_changed_is_reused_by_name():
    svc = service()
    existing = stored(reconcile_slices(svc, many(3), []).create)
    renumbered = service(ports=[{"name": "http", "port": 80, "targetPort": 9000}])
    plan = reconcile_slices(renumbered, many(3), existing)
    assert plan.create == () and plan.delete == ()
    (updated,) = plan.update
    assert updated.metadata.name == existing[0].metadata.name
    assert updated.ports[0].port == 9000


def apply_plan(existing, plan, counter):
    """The slices after ``plan`` is written (creations named as the store would)."""
    gone = {s.metadata.name for s in plan.delete} | {s.metadata.name for s in plan.update}
    kept = [s for s in existing if s.metadata.name not in gone]
    created = stored(plan.create, start=counter)
    return [*kept, *plan.update, *created], counter + len(created)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sets(st.integers(0, 60), max_size=45),
            st.sets(st.integers(0, 60)),
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(1, 12),
)
def test_reconciled_slices_hold_exactly_the_desired_endpoints(rounds, max_per_slice):
    svc = service()
    existing, counter = [], 0
    for present, not_ready in rounds:
        pods = [pod(f"p{i}", f"10.1.0.{i + 1}", ready=i not in not_ready) for i in sorted(present)]
        plan = reconcile_slices(svc, pods, existing, max_endpoints_per_slice=max_per_slice)
        existing, counter = apply_plan(existing, plan, counter)
        placed = [e for s in existing for e in s.endpoints]
        assert sorted(e.target_ref.name for e in placed) == sorted(f"p{i}" for i in present)
        assert all(
            e.conditions.ready == (int(e.target_ref.name[1:]) not in not_ready) for e in placed
        )
        assert all(len(s.endpoints) <= max_per_slice for s in existing)
        if present:
            assert all(s.endpoints for s in existing)
        else:
            assert len(existing) == 1 and existing[0].endpoints == ()
        # the slices needed, give or take the partly filled ones churn leaves behind
        assert len(existing) <= max(1, len(present))
        assert reconcile_slices(svc, pods, existing, max_endpoints_per_slice=max_per_slice).empty
