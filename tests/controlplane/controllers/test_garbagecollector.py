"""The garbage collector: background, foreground and orphan deletion, dangling owners,
default propagation policies, restarts, bad references. Virtual time."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
import structlog
import structlog.testing
import trio
from gc_builders import (
    CONTROLLERS,
    config_map,
    deployment,
    job,
    namespace,
    owner_ref,
    pod,
    replica_set,
    replication_controller,
)
from hypothesis import given
from hypothesis import strategies as st

from controlplane import errors, open_cluster
from controlplane.api.meta import ObjectMeta, OwnerReference
from controlplane.client.local import LocalClient
from controlplane.client.workqueue import WorkQueue
from controlplane.controllers.framework import ControllerContext, SharedInformers
from controlplane.controllers.garbagecollector import GarbageCollector, gc_key
from controlplane.controllers.ownergraph import (
    DeleteDependent,
    Keep,
    OwnerState,
    RemoveOwnerReferences,
    ResolvedOwner,
    Unresolvable,
    blocking_dependents,
    decide_dependent,
    owner_state,
    resolve_owner,
    unblocked,
    without_finalizer,
    without_owner_references,
)
from controlplane.events import EventRecorder
from controlplane.store import Store
from controlplane.store.strategy import plan_delete

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _ref(uid: str, *, kind: str = "ReplicaSet", block: bool | None = None) -> OwnerReference:
    api = {"ReplicaSet": "apps/v1", "Node": "v1", "Pod": "v1"}.get(kind, "apps/v1")
    return OwnerReference(
        api_version=api, kind=kind, name=f"o-{uid}", uid=uid, block_owner_deletion=block
    )


def _obj(*refs: OwnerReference, finalizers: tuple[str, ...] = (), deleting: bool = False) -> Any:
    meta = ObjectMeta(
        name="x",
        namespace="default",
        uid="dep",
        owner_references=refs,
        finalizers=finalizers,
        deletion_timestamp=NOW if deleting else None,
    )
    return config_map("x").__class__(metadata=meta)


# -- pure decisions ---------------------------------------------------------------------


def test_resolve_owner_scopes_and_bad_references() -> None:
    rs = resolve_owner(_ref("a"), "team")
    assert isinstance(rs, ResolvedOwner) and (rs.info.kind, rs.namespace) == ("ReplicaSet", "team")
    node = resolve_owner(_ref("n", kind="Node"), "kube-node-lease")
    assert isinstance(node, ResolvedOwner) and node.namespace == ""
    wrong_version = OwnerReference(
        api_version="extensions/v1beta1", kind="ReplicaSet", name="a", uid="u"
    )
    assert isinstance(resolve_owner(wrong_version, "default"), Unresolvable)
    unknown = OwnerReference(api_version="example.com/v1", kind="Widget", name="a", uid="u")
    assert isinstance(resolve_owner(unknown, "default"), Unresolvable)
    no_uid = OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="a", uid="")
    assert isinstance(resolve_owner(no_uid, "default"), Unresolvable)
    cluster_scoped = resolve_owner(_ref("a"), "")
    assert isinstance(cluster_scoped, Unresolvable) and cluster_scoped.invalid_namespace


def test_owner_state() -> None:
    live = _obj()
    assert owner_state("dep", live) is OwnerState.SOLID
    assert owner_state("other-uid", live) is OwnerState.ABSENT  # same name, new object
    assert owner_state("dep", None) is OwnerState.ABSENT
    assert owner_state("dep", _obj(finalizers=("foregroundDeletion",), deleting=True)) is (
        OwnerState.WAITING
    )
    # Being deleted without foreground: still an owner until it is gone.
    assert owner_state("dep", _obj(finalizers=("orphan",), deleting=True)) is OwnerState.SOLID


@pytest.mark.parametrize(
    ("states", "has_deps", "cycle", "finalizers", "expected"),
    [
        ([], False, False, (), Keep("no owner references")),
        ([("a", OwnerState.SOLID)], False, False, (), Keep("an owner exists")),
        (
            [("a", OwnerState.SOLID), ("b", OwnerState.ABSENT), ("c", OwnerState.WAITING)],
            False,
            False,
            (),
            RemoveOwnerReferences(("b", "c")),
        ),
        (
            [("a", OwnerState.ABSENT), ("b", OwnerState.ABSENT)],
            False,
            False,
            (),
            DeleteDependent("Background"),
        ),
        ([("a", OwnerState.ABSENT)], False, False, ("orphan",), DeleteDependent("Orphan")),
        (
            [("a", OwnerState.ABSENT)],
            False,
            False,
            ("foregroundDeletion",),
            DeleteDependent("Foreground"),
        ),
        ([("a", OwnerState.WAITING)], False, False, (), DeleteDependent("Background")),
        ([("a", OwnerState.WAITING)], True, False, (), DeleteDependent("Foreground")),
        ([("a", OwnerState.WAITING)], True, True, (), DeleteDependent("Foreground", True)),
        (
            [("a", OwnerState.ABSENT), ("b", OwnerState.UNRESOLVABLE)],
            False,
            False,
            (),
            Keep("an owner reference cannot be resolved"),
        ),
    ],
)
def test_decide_dependent(states, has_deps, cycle, finalizers, expected) -> None:
    refs = [(_ref(uid), state) for uid, state in states]
    obj = _obj(*(r for r, _ in refs), finalizers=finalizers)
    decision = decide_dependent(
        obj, refs, has_dependents=has_deps, a_dependent_deletes_dependents=cycle
    )
    assert decision == expected


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.sampled_from(list(OwnerState))),
        unique_by=lambda t: t[0],
        max_size=5,
    ),
    st.booleans(),
    st.booleans(),
)
def test_decide_dependent_never_deletes_what_a_live_owner_holds(states, has_deps, cycle) -> None:
    refs = [(_ref(uid), state) for uid, state in states]
    obj = _obj(*(r for r, _ in refs))
    decision = decide_dependent(
        obj, refs, has_dependents=has_deps, a_dependent_deletes_dependents=cycle
    )
    kinds = {state for _, state in states}
    if OwnerState.UNRESOLVABLE in kinds or not states:
        assert isinstance(decision, Keep)
    elif OwnerState.SOLID in kinds:
        assert not isinstance(decision, DeleteDependent)
        if isinstance(decision, RemoveOwnerReferences):
            solid = {uid for uid, state in states if state is OwnerState.SOLID}
            assert decision.uids and not solid & set(decision.uids)
    else:
        assert isinstance(decision, DeleteDependent)


def test_bookkeeping_helpers() -> None:
    obj = _obj(_ref("a", block=True), _ref("b"), finalizers=("orphan", "x"))
    assert [r.uid for r in without_owner_references(obj, {"a"}).metadata.owner_references] == ["b"]
    assert without_owner_references(obj, {"zz"}) is obj
    assert without_finalizer(obj, "orphan").metadata.finalizers == ("x",)
    assert without_finalizer(obj, "nope") is obj
    assert [r.block_owner_deletion for r in unblocked(obj).metadata.owner_references] == [
        False,
        None,
    ]
    assert unblocked(unblocked(obj)) == unblocked(obj)
    other = _obj(_ref("a", block=False))
    assert blocking_dependents("a", [obj, other]) == [obj]


# -- the store's default propagation policy ---------------------------------------------


@pytest.mark.parametrize(
    ("build", "policy", "finalizers"),
    [
        (replication_controller, None, ("orphan",)),  # core/v1 RC orphans by default
        (job, None, ("orphan",)),  # batch/v1 Job too
        (replica_set, None, ()),  # apps/v1: background
        (deployment, None, ()),
        (replication_controller, "Background", ()),
        (replication_controller, "Foreground", ("foregroundDeletion",)),
        (replica_set, "Orphan", ("orphan",)),
    ],
)
def test_default_propagation_policy(build, policy, finalizers) -> None:
    obj = build("o")
    stored = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, uid="u", generation=1))
    action, new = plan_delete(stored, grace_period_seconds=None, propagation_policy=policy, now=NOW)
    if finalizers:
        assert action == "mark"
        assert new.metadata.finalizers == finalizers
        assert new.metadata.deletion_timestamp == NOW
    else:
        assert action == "remove"


def test_default_policy_respects_an_existing_gc_finalizer() -> None:
    rc = replication_controller("o")
    meta = attrs.evolve(rc.metadata, uid="u", finalizers=("foregroundDeletion",))
    action, new = plan_delete(
        attrs.evolve(rc, metadata=meta), grace_period_seconds=None, propagation_policy=None, now=NOW
    )
    assert action == "mark" and new.metadata.finalizers == ("foregroundDeletion",)


# -- a collector against a store, with caches filled by hand ------------------------------


async def _bare_gc() -> tuple[Store, LocalClient, GarbageCollector]:
    store = Store(random.Random(7))
    client = LocalClient(store)
    await client.create(namespace("default"))
    context = ControllerContext(
        client=client,
        informers=SharedInformers(client),
        queue=WorkQueue(),
        events=EventRecorder(client, component="garbage-collector", rng=random.Random(1)),
        rng=random.Random(2),
        log=structlog.get_logger().bind(component="garbage-collector"),
    )
    return store, client, GarbageCollector(context)


async def test_a_stale_cache_never_costs_a_live_owner_its_dependents() -> None:
    store, client, gc = await _bare_gc()
    rs = await client.create(replica_set("web"))
    cm = await client.create(config_map("cfg", owners=[owner_ref(rs)]))
    # The ConfigMap informer saw the dependent; the ReplicaSet informer lags behind.
    gc._informers["ConfigMap"].cache.upsert(cm)
    assert gc._informers["ReplicaSet"].cache.get("web", "default") is None
    await gc.sync(gc_key("ConfigMap", cm))
    assert store.get_nowait("ConfigMap", "cfg", namespace="default") is not None
    # Once the owner is really gone (the cache still knows nothing), the child goes.
    await client.delete("ReplicaSet", "web", namespace="default")
    await gc.sync(gc_key("ConfigMap", cm))
    assert store.get_nowait("ConfigMap", "cfg", namespace="default") is None


async def test_an_owner_replaced_under_its_name_is_gone() -> None:
    store, client, gc = await _bare_gc()
    rs = await client.create(replica_set("web"))
    cm = await client.create(config_map("cfg", owners=[owner_ref(rs)]))
    await client.delete("ReplicaSet", "web", namespace="default")
    await client.create(replica_set("web"))  # same name, new uid
    gc._informers["ConfigMap"].cache.upsert(cm)
    await gc.sync(gc_key("ConfigMap", cm))
    assert store.get_nowait("ConfigMap", "cfg", namespace="default") is None


async def test_a_dependent_changed_since_the_cache_saw_it_is_rechecked() -> None:
    store, client, gc = await _bare_gc()
    dead = await client.create(replica_set("dead"))
    live = await client.create(replica_set("live"))
    cm = await client.create(config_map("cfg", owners=[owner_ref(dead)]))
    await client.delete("ReplicaSet", "dead", namespace="default")
    gc._informers["ConfigMap"].cache.upsert(cm)  # stale: before the new owner was added
    current = store.get_nowait("ConfigMap", "cfg", namespace="default")
    refs = (
        *current.metadata.owner_references,
        OwnerReference(**_as_kwargs(owner_ref(live, controller=False))),
    )
    await client.update(
        attrs.evolve(current, metadata=attrs.evolve(current.metadata, owner_references=refs))
    )
    with pytest.raises(errors.Conflict):
        await gc.sync(gc_key("ConfigMap", cm))  # retried by the queue with fresh state
    assert store.get_nowait("ConfigMap", "cfg", namespace="default") is not None


def _as_kwargs(ref: dict) -> dict:
    return {
        "api_version": ref["apiVersion"],
        "kind": ref["kind"],
        "name": ref["name"],
        "uid": ref["uid"],
        "controller": ref.get("controller"),
        "block_owner_deletion": ref.get("blockOwnerDeletion"),
    }


# -- scenarios in a cluster ---------------------------------------------------------------


def _get(cluster: Any, kind: str, name: str, ns: str = "default") -> Any:
    return cluster.get_nowait(kind, name, namespace=ns)


def _running(cluster: Any, *names: str, ns: str = "default") -> bool:
    pods = [_get(cluster, "Pod", n, ns) for n in names]
    return all(p is not None and p.status.phase == "Running" for p in pods)


async def test_background_deletion_collects_dependents(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rs = await client.create(replica_set("web"))
        for i in range(3):
            await client.create(pod(f"web-{i}", owners=[owner_ref(rs)]))
        await client.create(config_map("web-cfg", owners=[owner_ref(rs, controller=False)]))
        await cluster.wait_for(lambda: _running(cluster, "web-0", "web-1", "web-2"))
        with structlog.testing.capture_logs() as logs:
            await client.delete("ReplicaSet", "web", namespace="default")  # default: Background
            assert _get(cluster, "ReplicaSet", "web") is None  # removed at once
            await cluster.wait_for(
                lambda: (
                    not cluster.list_nowait("Pod", namespace="default")
                    and _get(cluster, "ConfigMap", "web-cfg") is None
                ),
                timeout=60,
            )
        deleting = [e for e in logs if e["event"] == "gc_deleting_object"]
        assert sorted((e["kind"], e["name"]) for e in deleting) == [
            ("ConfigMap", "web-cfg"),
            ("Pod", "web-0"),
            ("Pod", "web-1"),
            ("Pod", "web-2"),
        ]
        assert {(e["component"], e["propagation_policy"]) for e in deleting} == {
            ("garbage-collector", "Background")
        }


async def test_a_dependent_with_another_live_owner_only_loses_the_dead_reference(
    autojump_clock,
) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        a = await client.create(replica_set("a"))
        b = await client.create(replica_set("b"))
        await client.create(
            config_map("shared", owners=[owner_ref(a), owner_ref(b, controller=False)])
        )
        await client.delete("ReplicaSet", "a", namespace="default")

        def only_b() -> bool:
            cm = _get(cluster, "ConfigMap", "shared")
            return cm is not None and [r.uid for r in cm.metadata.owner_references] == [
                b.metadata.uid
            ]

        await cluster.wait_for(only_b, timeout=30)
        await cluster.settle()
        assert only_b()
        await client.delete("ReplicaSet", "b", namespace="default")
        await cluster.wait_for(lambda: _get(cluster, "ConfigMap", "shared") is None, timeout=30)


async def test_foreground_waits_for_blocking_dependents(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rs = await client.create(replica_set("web"))
        await client.create(pod("slow", owners=[owner_ref(rs)], grace=20, slow_stop=True))
        await client.create(config_map("loose", owners=[owner_ref(rs, block=False)]))
        await cluster.wait_for(lambda: _running(cluster, "slow"))
        deleted_at = trio.current_time()
        marked = await client.delete(
            "ReplicaSet", "web", namespace="default", propagation_policy="Foreground"
        )
        assert marked.metadata.finalizers == ("foregroundDeletion",)
        # The non-blocking dependent goes; the blocking pod terminates for its 20 s grace.
        await cluster.wait_for(lambda: _get(cluster, "ConfigMap", "loose") is None, timeout=5)
        terminating = await cluster.wait_for(
            lambda: (p := _get(cluster, "Pod", "slow")) and p.metadata.deletion_timestamp, timeout=5
        )
        assert terminating
        await cluster.wait_for(lambda: _get(cluster, "Pod", "slow") is None, timeout=60)
        # At the very write that removed the pod, the owner was still there.
        assert _get(cluster, "ReplicaSet", "web") is not None
        assert trio.current_time() - deleted_at >= 19.9
        await cluster.wait_for(lambda: _get(cluster, "ReplicaSet", "web") is None, timeout=5)


async def test_foreground_deletion_is_recursive(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        deploy = await client.create(deployment("app"))
        rs = await client.create(replica_set("app-1", owners=[owner_ref(deploy)]))
        for i in range(2):
            await client.create(pod(f"app-1-{i}", owners=[owner_ref(rs)], grace=5, slow_stop=True))
        await cluster.wait_for(lambda: _running(cluster, "app-1-0", "app-1-1"))
        await client.delete(
            "Deployment", "app", namespace="default", propagation_policy="Foreground"
        )

        def rs_deleting_dependents() -> bool:
            r = _get(cluster, "ReplicaSet", "app-1")
            return r is not None and "foregroundDeletion" in r.metadata.finalizers

        await cluster.wait_for(rs_deleting_dependents, timeout=5)
        await cluster.wait_for(
            lambda: not cluster.list_nowait("Pod", namespace="default"), timeout=30
        )
        assert _get(cluster, "ReplicaSet", "app-1") is not None
        assert _get(cluster, "Deployment", "app") is not None
        await cluster.wait_for(lambda: _get(cluster, "ReplicaSet", "app-1") is None, timeout=5)
        assert _get(cluster, "Deployment", "app") is not None
        await cluster.wait_for(lambda: _get(cluster, "Deployment", "app") is None, timeout=5)


async def test_orphan_deletion_keeps_dependents_without_the_reference(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rs = await client.create(replica_set("web"))
        other = await client.create(replica_set("other"))
        await client.create(pod("web-0", owners=[owner_ref(rs)]))
        await client.create(
            config_map("cfg", owners=[owner_ref(rs), owner_ref(other, controller=False)])
        )
        marked = await client.delete(
            "ReplicaSet", "web", namespace="default", propagation_policy="Orphan"
        )
        assert marked.metadata.finalizers == ("orphan",)
        await cluster.wait_for(lambda: _get(cluster, "ReplicaSet", "web") is None, timeout=10)
        await cluster.settle()
        assert _get(cluster, "Pod", "web-0").metadata.owner_references == ()
        assert [r.uid for r in _get(cluster, "ConfigMap", "cfg").metadata.owner_references] == [
            other.metadata.uid
        ]


@pytest.mark.parametrize("build", [replication_controller, job])
async def test_rc_and_job_orphan_their_dependents_by_default(autojump_clock, build) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        owner = await client.create(build("legacy"))
        await client.create(pod("legacy-0", owners=[owner_ref(owner)]))
        marked = await client.delete(owner.kind, "legacy", namespace="default")
        assert marked.metadata.finalizers == ("orphan",)
        await cluster.wait_for(lambda: _get(cluster, owner.kind, "legacy") is None, timeout=10)
        await cluster.settle()
        kept = _get(cluster, "Pod", "legacy-0")
        assert kept is not None and kept.metadata.deletion_timestamp is None
        assert kept.metadata.owner_references == ()


async def test_rc_deleted_with_background_cascades(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rc = await client.create(replication_controller("legacy"))
        await client.create(pod("legacy-0", owners=[owner_ref(rc)]))
        await client.delete(
            "ReplicationController", "legacy", namespace="default", propagation_policy="Background"
        )
        await cluster.wait_for(lambda: _get(cluster, "Pod", "legacy-0") is None, timeout=60)


async def test_dangling_owner_references_make_garbage(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rs = await client.create(replica_set("web"))
        never = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "ghost",
            "uid": "no-such-uid",
        }
        wrong_uid = {**owner_ref(rs), "uid": "not-the-live-one"}
        await client.create(config_map("orphan-1", owners=[never]))
        await client.create(config_map("orphan-2", owners=[wrong_uid]))
        await client.create(config_map("kept", owners=[owner_ref(rs)]))
        await cluster.wait_for(
            lambda: (
                _get(cluster, "ConfigMap", "orphan-1") is None
                and _get(cluster, "ConfigMap", "orphan-2") is None
            ),
            timeout=10,
        )
        await cluster.settle()
        assert _get(cluster, "ConfigMap", "kept") is not None
        assert _get(cluster, "ReplicaSet", "web") is not None


async def test_a_cluster_scoped_owner_collects_namespaced_dependents(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        lease = await cluster.wait_for(
            lambda: _get(cluster, "Lease", "node-2", "kube-node-lease"), timeout=10
        )
        assert lease.metadata.owner_references[0].kind == "Node"
        await cluster.remove_node("node-2")
        await cluster.wait_for(
            lambda: _get(cluster, "Lease", "node-2", "kube-node-lease") is None, timeout=10
        )
        assert _get(cluster, "Lease", "node-1", "kube-node-lease") is not None


async def test_bad_owner_references_are_refused_or_ignored(autojump_clock) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        revision = cluster.store.revision
        missing = {"apiVersion": "apps/v1", "kind": "", "name": "x", "uid": ""}
        with pytest.raises(errors.Invalid) as info:
            await client.create(config_map("bad", owners=[missing]))
        assert sorted(c.field for c in info.value.causes) == [
            "metadata.ownerReferences[0].kind",
            "metadata.ownerReferences[0].uid",
        ]
        assert cluster.store.revision == revision  # nothing written
        # References the collector cannot resolve never get an object deleted.
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-1"}
        old_rs = {
            "apiVersion": "extensions/v1beta1",
            "kind": "ReplicaSet",
            "name": "r",
            "uid": "r-1",
        }
        dangling = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "g", "uid": "g-1"}
        await client.create(config_map("widget", owners=[widget]))
        await client.create(config_map("old-rs", owners=[old_rs]))
        await client.create(config_map("mixed", owners=[widget, dangling]))
        await cluster.settle()
        for name in ("widget", "old-rs", "mixed"):
            assert _get(cluster, "ConfigMap", name) is not None
        # The collector still works afterwards.
        await client.create(config_map("garbage", owners=[dangling]))
        await cluster.wait_for(lambda: _get(cluster, "ConfigMap", "garbage") is None, timeout=10)


async def test_cross_namespace_owner_is_reported_and_treated_as_absent(autojump_clock) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        await client.create(namespace("a"))
        await client.create(namespace("b"))
        rs = await client.create(replica_set("web", namespace="a"))
        await client.create(config_map("cfg", namespace="b", owners=[owner_ref(rs)]))
        await cluster.wait_for(lambda: _get(cluster, "ConfigMap", "cfg", "b") is None, timeout=10)

        def reported() -> list[Any]:
            return [
                e
                for e in cluster.list_nowait("Event", namespace="b")
                if e.reason == "OwnerRefInvalidNamespace"
            ]

        events = await cluster.wait_for(reported, timeout=10)
        assert events[0].type == "Warning"
        assert events[0].involved_object.name == "cfg"
        assert events[0].message == (
            f"ownerRef [apps/v1/ReplicaSet, namespace: b, name: web, uid: {rs.metadata.uid}]"
            ' does not exist in namespace "b"'
        )
        assert _get(cluster, "ReplicaSet", "web", "a") is not None


async def test_restarted_collector_finishes_background_and_foreground_work(autojump_clock) -> None:
    async with open_cluster(nodes=2, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        supervisor = cluster.chaos.supervisor
        bg = await client.create(replica_set("bg"))
        fg = await client.create(replica_set("fg"))
        for i in range(3):
            await client.create(config_map(f"bg-{i}", owners=[owner_ref(bg)]))
        await client.create(pod("fg-0", owners=[owner_ref(fg)], grace=10, slow_stop=True))
        await cluster.wait_for(lambda: _running(cluster, "fg-0"))
        # The collector is down while the owners are deleted.
        await supervisor.stop_child("controller-manager")
        await client.delete("ReplicaSet", "bg", namespace="default")
        await client.delete(
            "ReplicaSet", "fg", namespace="default", propagation_policy="Foreground"
        )
        await trio.sleep(5)
        assert _get(cluster, "ConfigMap", "bg-0") is not None
        assert _get(cluster, "Pod", "fg-0").metadata.deletion_timestamp is None
        await supervisor.restart_child("controller-manager")
        await cluster.wait_for(
            lambda: (
                _get(cluster, "Pod", "fg-0") is not None
                and _get(cluster, "Pod", "fg-0").metadata.deletion_timestamp is not None
            ),
            timeout=5,
        )
        # ...and restarted again while the foreground owner waits for its pod.
        await supervisor.restart_child("controller-manager")
        await cluster.wait_for(
            lambda: (
                _get(cluster, "ReplicaSet", "fg") is None
                and not [
                    c
                    for c in cluster.list_nowait("ConfigMap", namespace="default")
                    if c.metadata.name.startswith("bg-")
                ]
            ),
            timeout=60,
        )
        assert _get(cluster, "Pod", "fg-0") is None


async def test_a_foreground_cycle_is_broken_by_unblocking_first() -> None:
    store, client, gc = await _bare_gc()
    a = await client.create(replica_set("a"))
    b = await client.create(replica_set("b", owners=[owner_ref(a)]))
    await client.create(config_map("c", owners=[owner_ref(b)]))
    # c waits for dependents of its own; a waits for b.
    await client.delete("ConfigMap", "c", namespace="default", propagation_policy="Foreground")
    await client.delete("ReplicaSet", "a", namespace="default", propagation_policy="Foreground")
    for kind, name in (("ReplicaSet", "a"), ("ReplicaSet", "b"), ("ConfigMap", "c")):
        gc._informers[kind].cache.upsert(store.get_nowait(kind, name, namespace="default"))
    await gc.sync(gc_key("ReplicaSet", b))
    after = store.get_nowait("ReplicaSet", "b", namespace="default")
    assert [r.block_owner_deletion for r in after.metadata.owner_references] == [False]
    assert after.metadata.finalizers == ("foregroundDeletion",)
    assert after.metadata.deletion_timestamp is not None


async def test_the_foreground_owner_keeps_its_finalizer_while_a_blocker_exists() -> None:
    store, client, gc = await _bare_gc()
    rs = await client.create(replica_set("web"))
    cm = await client.create(config_map("cfg", owners=[owner_ref(rs)], finalizers=["x.io/hold"]))
    await client.delete("ConfigMap", "cfg", namespace="default")  # held by its finalizer
    marked = await client.delete(
        "ReplicaSet", "web", namespace="default", propagation_policy="Foreground"
    )
    gc._informers["ReplicaSet"].cache.upsert(marked)
    gc._informers["ConfigMap"].cache.upsert(
        store.get_nowait("ConfigMap", "cfg", namespace="default")
    )
    await gc.sync(gc_key("ReplicaSet", marked))
    assert store.get_nowait("ReplicaSet", "web", namespace="default").metadata.finalizers == (
        "foregroundDeletion",
    )
    gc._informers["ConfigMap"].cache.remove(f"default/{cm.metadata.name}")
    await gc.sync(gc_key("ReplicaSet", marked))
    assert store.get_nowait("ReplicaSet", "web", namespace="default") is None


async def test_a_cluster_scoped_object_naming_a_namespaced_owner_is_reported(
    autojump_clock,
) -> None:
    async with open_cluster(nodes=1, seed=1, controllers=CONTROLLERS) as cluster:
        client = cluster.client
        rs = await client.create(replica_set("web"))
        ns = namespace("claimed")
        ns = attrs.evolve(
            ns,
            metadata=attrs.evolve(
                ns.metadata, owner_references=[OwnerReference(**_as_kwargs(owner_ref(rs)))]
            ),
        )
        await client.create(ns)

        def reported() -> list[Any]:
            return [
                e
                for e in cluster.list_nowait("Event")
                if e.reason == "OwnerRefInvalidNamespace" and e.involved_object.name == "claimed"
            ]

        events = await cluster.wait_for(reported, timeout=10)
        assert events[0].involved_object.kind == "Namespace"
        await cluster.settle()
        assert cluster.get_nowait("Namespace", "claimed") is not None
