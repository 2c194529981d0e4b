"""ReplicaSets and ReplicationControllers keep their replica count, through the public API."""

from __future__ import annotations

import random

import attrs
import pytest
import structlog
import trio

from controlplane import errors, open_cluster
from controlplane.api import from_dict
from controlplane.api.meta import OwnerReference
from controlplane.client.local import LocalClient
from controlplane.client.workqueue import WorkQueue
from controlplane.controllers import ControllerContext, ReplicaSetController, SharedInformers
from controlplane.events import EventRecorder
from controlplane.store import Store


def replica_set(name="web", replicas=3, labels=None, min_ready=None, image="nginx"):
    labels = labels or {"app": name}
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": image}]},
        },
    }
    if min_ready is not None:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def rc(name="web", replicas=5):
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            },
        },
    }


def active_pods(cluster, selector):
    return [
        p
        for p in cluster.list_nowait("Pod", namespace="default", label_selector=selector)
        if p.metadata.deletion_timestamp is None
    ]


def get(cluster, kind, name="web"):
    return cluster.get_nowait(kind, name, namespace="default")


async def test_replica_set_creates_its_pods_and_reports_status(cluster):
    await cluster.apply(replica_set(replicas=3))
    rs = await cluster.wait_for(
        lambda: (r := get(cluster, "ReplicaSet")) and r.status.available_replicas == 3 and r
    )
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.fully_labeled_replicas) == (
        3,
        3,
        3,
    )
    assert rs.status.observed_generation == rs.metadata.generation
    pods = active_pods(cluster, "app=web")
    assert len(pods) == 3
    for p in pods:
        (ref,) = p.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
            "ReplicaSet",
            "web",
            rs.metadata.uid,
            True,
            True,
        )
        assert p.metadata.name.startswith("web-") and p.status.phase == "Running"
    created = [
        e
        for e in cluster.list_nowait("Event", namespace="default")
        if e.reason == "SuccessfulCreate" and e.involved_object.name == "web"
    ]
    assert sorted(e.message for e in created) == sorted(
        f"Created pod: {p.metadata.name}" for p in pods
    )


async def test_deleted_pods_of_a_replication_controller_are_replaced(cluster):
    await cluster.apply(rc(replicas=5))
    await cluster.wait_for(lambda: get(cluster, "ReplicationController").status.ready_replicas == 5)
    first = active_pods(cluster, "app=web")
    for p in first[:2]:
        await cluster.client.delete("Pod", p.metadata.name, namespace="default")
    await cluster.wait_for(lambda: get(cluster, "ReplicationController").status.ready_replicas == 5)
    await cluster.settle()
    now = active_pods(cluster, "app=web")
    assert len(now) == 5
    assert len({p.metadata.name for p in now} - {p.metadata.name for p in first}) == 2


async def test_scale_up_then_down_deletes_the_pods_ready_for_less_time(autojump_clock):
    # one node: every pod has the same rank, so readiness age decides (compared in
    # log2 buckets: 10,000 s against 100 s are far apart)
    async with open_cluster(nodes=1, seed=4) as cluster:
        await cluster.apply(replica_set(replicas=2))
        await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.available_replicas == 2)
        old = {p.metadata.name for p in active_pods(cluster, "app=web")}
        await trio.sleep(10_000)
        await cluster.apply(replica_set(replicas=5))
        await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.available_replicas == 5)
        await trio.sleep(100)
        await cluster.apply(replica_set(replicas=2))
        await cluster.wait_for(lambda: len(active_pods(cluster, "app=web")) == 2)
        assert {p.metadata.name for p in active_pods(cluster, "app=web")} == old
        await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.replicas == 2)
        await cluster.settle()
        deleted = [
            e
            for e in cluster.list_nowait("Event", namespace="default")
            if e.reason == "SuccessfulDelete"
        ]
        assert len(deleted) == 3


async def test_orphans_are_adopted_and_pods_that_stop_matching_released(cluster):
    orphan = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        }
    )
    await cluster.client.create(orphan)
    await cluster.apply(replica_set(replicas=2))
    await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.replicas == 2)
    await cluster.settle()
    rs = get(cluster, "ReplicaSet")
    stray = get(cluster, "Pod", "stray")
    assert stray.metadata.controller_ref().uid == rs.metadata.uid  # adopted
    assert len(active_pods(cluster, "app=web")) == 2  # so only one was created
    # relabel it: released (ownerReference removed) and replaced
    stray = attrs.evolve(stray, metadata=attrs.evolve(stray.metadata, labels={"app": "other"}))
    await cluster.client.update(stray)
    await cluster.wait_for(lambda: get(cluster, "Pod", "stray").metadata.owner_references == ())
    await cluster.wait_for(lambda: len(active_pods(cluster, "app=web")) == 2)
    assert get(cluster, "Pod", "stray").metadata.deletion_timestamp is None


async def test_pods_owned_by_another_controller_are_left_alone(cluster):
    foreign = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "theirs", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        }
    )
    ref = OwnerReference(api_version="v1", kind="Thing", name="x", uid="other", controller=True)
    foreign = attrs.evolve(
        foreign, metadata=attrs.evolve(foreign.metadata, owner_references=(ref,))
    )
    await cluster.client.create(foreign)
    await cluster.apply(replica_set(replicas=2))
    await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.replicas == 2)
    await cluster.settle()
    assert len(active_pods(cluster, "app=web")) == 3
    assert get(cluster, "Pod", "theirs").metadata.owner_references == (ref,)


async def test_min_ready_seconds_delays_availability(cluster):
    await cluster.apply(replica_set(replicas=2, min_ready=30))
    rs = await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.ready_replicas == 2)
    ready_at = trio.current_time()
    assert get(cluster, "ReplicaSet").status.available_replicas == 0
    await cluster.wait_for(lambda: get(cluster, "ReplicaSet").status.available_replicas == 2)
    assert 29 <= trio.current_time() - ready_at <= 31
    assert rs


async def test_create_failures_back_off_in_slow_start_batches(autojump_clock):
    async with open_cluster(nodes=2, seed=3) as cluster:
        fault = cluster.store.faults.inject(kind="Pod", verb="create", error=errors.Forbidden)
        await cluster.apply(replica_set(replicas=20))
        rs = await cluster.wait_for(
            lambda: (r := get(cluster, "ReplicaSet")) and r.status.conditions and r
        )
        (condition,) = rs.status.conditions
        assert (condition.type, condition.status, condition.reason) == (
            "ReplicaFailure",
            "True",
            "FailedCreate",
        )
        await trio.sleep(1)
        failed = [e for e in cluster.list_nowait("Event") if e.reason == "FailedCreate"]
        # one attempt per sync (the first batch is one pod), retried with backoff
        assert failed and failed[0].count <= 12
        fault.remove()
        await cluster.wait_for(
            lambda: get(cluster, "ReplicaSet").status.replicas == 20, timeout=600
        )
        await cluster.wait_for(lambda: not get(cluster, "ReplicaSet").status.conditions)
        await cluster.settle()
        assert len(active_pods(cluster, "app=web")) == 20


async def test_expectations_stop_double_creates_while_the_cache_lags(autojump_clock):
    store = Store(random.Random("rs"))
    client = LocalClient(store)
    for ns in ("default",):
        await client.create(
            from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        )
    rs = await client.create(from_dict(replica_set(replicas=3)))
    informers = SharedInformers(client)
    context = ControllerContext(
        client=client,
        informers=informers,
        queue=WorkQueue(name="rs"),
        events=EventRecorder(client, component="rs", rng=random.Random(1)),
        rng=random.Random(2),
        log=structlog.get_logger(),
    )
    controller = ReplicaSetController(context)
    informers.informer("ReplicaSet").cache.upsert(rs)  # the pods' cache stays empty
    await controller.sync("default/web")
    await controller.sync("default/web")
    assert len(store.list_nowait("Pod")) == 3
    assert controller.expectations.pending("default/web") == (3, 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(informers.run)  # the creations arrive
        assert controller.expectations.satisfied("default/web")
        await controller.sync("default/web")
        assert len(store.list_nowait("Pod")) == 3
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["spec"].__setitem__("replicas", -1), "spec.replicas"),
        (
            lambda d: d["spec"]["selector"].__setitem__("matchLabels", {"app": "other"}),
            "spec.template.metadata.labels",
        ),
    ],
)
async def test_bad_replica_sets_are_rejected_and_change_nothing(cluster, change, field):
    bad = replica_set()
    change(bad)
    revision = cluster.store.revision
    with pytest.raises(errors.Invalid) as info:
        await cluster.apply(bad)
    assert field in {c.field for c in info.value.causes}
    assert cluster.store.revision == revision
    assert get(cluster, "ReplicaSet") is None
