from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
import trio
from store_helpers import make_namespace, make_pod

from controlplane import errors
from controlplane.api.core import ConfigMap
from controlplane.api.meta import ObjectMeta
from controlplane.clock import wall_now
from controlplane.store import Store


async def test_delete_unbound_pod_removes_it(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    last = await store.delete("Pod", "web", namespace="default")
    assert store.get_nowait("Pod", "web", namespace="default") is None
    assert last.metadata.uid == pod.metadata.uid
    assert last.metadata.resource_version == str(store.revision)


async def test_delete_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound, match=r'^pods "web" not found$'):
        await store.delete("Pod", "web", namespace="default")


async def test_bound_pod_is_marked_then_removed_by_grace_zero(store: Store) -> None:
    await store.create(make_pod("web", node="n1"))
    marked = await store.delete("Pod", "web", namespace="default")
    meta = marked.metadata
    assert meta.deletion_grace_period_seconds == 30
    assert meta.deletion_timestamp == wall_now() + timedelta(seconds=30)
    assert meta.generation == 2
    assert store.get_nowait("Pod", "web", namespace="default") is marked
    # A second delete without a shorter grace changes nothing.
    revision = store.revision
    assert await store.delete("Pod", "web", namespace="default") is marked
    assert store.revision == revision
    # A shorter one shortens it, counted from the first request.
    shorter = await store.delete("Pod", "web", namespace="default", grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    assert shorter.metadata.deletion_timestamp == meta.deletion_timestamp - timedelta(seconds=25)
    # The kubelet's confirmation.
    await store.delete("Pod", "web", namespace="default", grace_period_seconds=0)
    assert store.get_nowait("Pod", "web", namespace="default") is None


async def test_pod_grace_from_spec(store: Store) -> None:
    await store.create(make_pod("web", node="n1", termination_grace_period_seconds=7))
    marked = await store.delete("Pod", "web", namespace="default")
    assert marked.metadata.deletion_grace_period_seconds == 7


async def test_terminated_bound_pod_is_removed_at_once(store: Store) -> None:
    pod = await store.create(make_pod("web", node="n1"))
    await store.update_status(attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Succeeded")))
    await store.delete("Pod", "web", namespace="default")
    assert store.get_nowait("Pod", "web", namespace="default") is None


async def test_force_delete_bound_pod(store: Store) -> None:
    await store.create(make_pod("web", node="n1"))
    await store.delete("Pod", "web", namespace="default", grace_period_seconds=0)
    assert store.get_nowait("Pod", "web", namespace="default") is None


async def test_finalizers_keep_object_until_removed(store: Store) -> None:
    await store.create(make_pod("web", finalizers=("example.com/hold",)))
    marked = await store.delete("Pod", "web", namespace="default")
    assert marked.metadata.deletion_timestamp == wall_now()
    assert marked.metadata.deletion_grace_period_seconds == 0
    assert store.get_nowait("Pod", "web", namespace="default") is marked
    # Another update keeping the finalizer keeps the object.
    kept = await store.update(
        attrs.evolve(marked, metadata=attrs.evolve(marked.metadata, labels={"a": "b"}))
    )
    assert kept.metadata.deletion_timestamp == marked.metadata.deletion_timestamp
    released = await store.update(
        attrs.evolve(kept, metadata=attrs.evolve(kept.metadata, finalizers=()))
    )
    assert store.get_nowait("Pod", "web", namespace="default") is None
    assert released.metadata.resource_version == str(store.revision)


async def test_update_cannot_clear_deletion_timestamp(store: Store) -> None:
    cm = await store.create(
        ConfigMap(metadata=ObjectMeta(name="cfg", finalizers=("x/y",)), data={"a": "1"})
    )
    marked = await store.delete("ConfigMap", "cfg", namespace="default")
    updated = await store.update(
        attrs.evolve(cm, metadata=attrs.evolve(cm.metadata, labels={"k": "v"}, resource_version=""))
    )
    assert updated.metadata.deletion_timestamp == marked.metadata.deletion_timestamp


@pytest.mark.parametrize(
    ("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")]
)
async def test_propagation_policy_finalizers(store: Store, policy: str, finalizer: str) -> None:
    await store.create(ConfigMap(metadata=ObjectMeta(name="cfg")))
    marked = await store.delete("ConfigMap", "cfg", namespace="default", propagation_policy=policy)
    assert marked.metadata.finalizers == (finalizer,)
    assert marked.metadata.deletion_timestamp is not None


async def test_background_policy_removes(store: Store) -> None:
    await store.create(ConfigMap(metadata=ObjectMeta(name="cfg")))
    await store.delete("ConfigMap", "cfg", namespace="default", propagation_policy="Background")
    assert store.get_nowait("ConfigMap", "cfg", namespace="default") is None


async def test_bad_propagation_policy(store: Store) -> None:
    await store.create(ConfigMap(metadata=ObjectMeta(name="cfg")))
    with pytest.raises(errors.BadRequest, match=r'^unknown propagationPolicy "Sideways"'):
        await store.delete("ConfigMap", "cfg", namespace="default", propagation_policy="Sideways")


async def test_delete_preconditions(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    with pytest.raises(
        errors.Conflict,
        match=r'^Operation cannot be fulfilled on pods "web": Precondition failed: '
        r"UID in precondition: nope, UID in object meta: ",
    ):
        await store.delete("Pod", "web", namespace="default", preconditions_uid="nope")
    with pytest.raises(errors.Conflict, match=r"the object has been modified"):
        await store.delete("Pod", "web", namespace="default", preconditions_resource_version="1")
    await store.delete(
        "Pod",
        "web",
        namespace="default",
        preconditions_uid=pod.metadata.uid,
        preconditions_resource_version=pod.metadata.resource_version,
    )


async def test_namespace_lifecycle(store: Store) -> None:
    ns = await store.create(make_namespace("team"))
    assert ns.spec.finalizers == ("kubernetes",)
    assert ns.status.phase == "Active"
    await store.create(make_pod("web", namespace="team"))
    terminating = await store.delete("Namespace", "team")
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    with pytest.raises(
        errors.Forbidden,
        match=r'^pods "db" is forbidden: unable to create new content in namespace team '
        r"because it is being terminated$",
    ):
        await store.create(make_pod("db", namespace="team"))
    # update cannot change spec.finalizers (only /finalize can) ...
    emptied = attrs.evolve(terminating, spec=attrs.evolve(terminating.spec, finalizers=()))
    assert await store.update(emptied) is terminating
    # ... finalize_namespace does, and the namespace goes away.
    gone = await store.finalize_namespace(emptied)
    assert gone.spec.finalizers == ()
    assert store.get_nowait("Namespace", "team") is None


async def test_create_in_missing_namespace(store: Store) -> None:
    revision = store.revision
    with pytest.raises(errors.NotFound, match=r'^namespaces "nope" not found$'):
        await store.create(make_pod("web", namespace="nope"))
    assert store.revision == revision


async def test_bind(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    bound = await store.bind("web", "n1", namespace="default")
    assert bound.spec.node_name == "n1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    assert bound.metadata.generation == pod.metadata.generation
    with pytest.raises(
        errors.Conflict,
        match=r'^Operation cannot be fulfilled on pods/binding "web": '
        r'pod web is already assigned to node "n1"$',
    ):
        await store.bind("web", "n2", namespace="default")
    with pytest.raises(errors.NotFound):
        await store.bind("nope", "n2", namespace="default")


async def test_deletion_uses_virtual_time(store: Store, autojump_clock: trio.abc.Clock) -> None:
    await trio.sleep(100)
    await store.create(make_pod("web", node="n1"))
    marked = await store.delete("Pod", "web", namespace="default", grace_period_seconds=10)
    assert marked.metadata.deletion_timestamp == wall_now() + timedelta(seconds=10)


async def test_events_expire_an_hour_after_their_last_write(autojump_clock):
    import random as _random

    from controlplane.api.core import Event, Namespace, ObjectReference
    from controlplane.api.meta import ObjectMeta
    from controlplane.store import Store

    store = Store(_random.Random("ttl"), event_ttl=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.create(Namespace(metadata=ObjectMeta(name="default")))
        ref = ObjectReference(kind="Pod", name="p", namespace="default")
        for name in ("a", "b"):
            await store.create(
                Event(metadata=ObjectMeta(name=name, namespace="default"), involved_object=ref)
            )
        async with store.watch(
            "Event", namespace="default", resource_version=str(store.revision)
        ) as events:
            await trio.sleep(1800)
            b = store.get_nowait("Event", "b", namespace="default")
            await store.update(attrs.evolve(b, count=2))  # a new write: a new hour for "b"
            await trio.sleep(1800 + 1)
            assert store.get_nowait("Event", "a", namespace="default") is None
            assert store.get_nowait("Event", "b", namespace="default") is not None
            await trio.sleep(1800)
            assert store.list_nowait("Event") == []
            seen = [(e.type, e.object.metadata.name) for e in await events.receive_batch()]
            assert seen == [("MODIFIED", "b"), ("DELETED", "a"), ("DELETED", "b")]
        nursery.cancel_scope.cancel()
