from __future__ import annotations

import random
import re

import attrs
import pytest
import trio
from store_helpers import make_namespace, make_pod

from controlplane import errors
from controlplane.api.core import ConfigMap, Namespace, Node, Pod
from controlplane.api.meta import ObjectMeta
from controlplane.clock import to_wall
from controlplane.store import Store
from controlplane.store.naming import ALPHABET


async def test_create_stamps_system_fields(store: Store) -> None:
    before = store.revision
    pod = await store.create(make_pod("web", labels={"app": "web"}))
    meta = pod.metadata
    assert meta.name == "web" and meta.namespace == "default"
    assert meta.resource_version == str(before + 1) == str(store.revision)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", meta.uid
    )
    assert meta.creation_timestamp == to_wall(trio.current_time())
    assert meta.generation == 1
    assert pod.status.phase == "Pending"  # status is reset on create, as in Kubernetes
    assert await store.get("Pod", "web", namespace="default") is pod
    assert store.get_nowait(Pod, "web", namespace="default") is pod


async def test_uid_matches_uuid4_from_rng() -> None:
    import uuid

    from controlplane.store.naming import new_uid

    a, b = random.Random(3), random.Random(3)
    for _ in range(100):
        assert new_uid(a) == str(uuid.UUID(int=b.getrandbits(128), version=4))


async def test_create_defaults_namespace(store: Store) -> None:
    pod = await store.create(make_pod("web", namespace=""))
    assert pod.metadata.namespace == "default"


async def test_cluster_scoped_object_may_not_have_namespace(store: Store) -> None:
    with pytest.raises(
        errors.Invalid,
        match=r'^Node "n1" is invalid: metadata.namespace: Forbidden: not allowed on this type$',
    ):
        await store.create(Node(metadata=ObjectMeta(name="n1", namespace="default")))


async def test_create_duplicate(store: Store) -> None:
    await store.create(make_pod("web"))
    with pytest.raises(errors.AlreadyExists, match=r'^pods "web" already exists$') as info:
        await store.create(make_pod("web"))
    assert (info.value.kind, info.value.namespace, info.value.name) == ("Pod", "default", "web")


async def test_same_name_in_other_namespace(store: Store) -> None:
    await store.create(make_namespace("other"))
    await store.create(make_pod("web"))
    await store.create(make_pod("web", namespace="other"))
    assert len(store.list_nowait("Pod")) == 2


async def test_generate_name(store: Store) -> None:
    pod = await store.create(make_pod("", generate_name="web-"))
    name = pod.metadata.name
    assert name.startswith("web-") and len(name) == len("web-") + 5
    assert set(name[4:]) <= set(ALPHABET)


async def test_generate_name_is_seeded() -> None:
    async def names(seed: int) -> list[str]:
        s = Store(random.Random(seed))
        await s.create(make_namespace("default"))
        return [(await s.create(make_pod("", generate_name="x-"))).metadata.name for _ in range(5)]

    assert await names(1) == await names(1)
    assert await names(1) != await names(2)


async def test_name_required(store: Store) -> None:
    with pytest.raises(
        errors.Invalid,
        match=r"^Pod is invalid: metadata.name: Required value: name or generateName is required$",
    ):
        await store.create(make_pod(""))


async def test_get_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound, match=r'^pods "nope" not found$'):
        await store.get("Pod", "nope", namespace="default")
    with pytest.raises(errors.NotFound, match=r'^namespaces "nope" not found$'):
        await store.get(Namespace, "nope")
    assert store.get_nowait("Pod", "nope", namespace="default") is None


async def test_unknown_kind(store: Store) -> None:
    with pytest.raises(errors.BadRequest, match=r"^unknown kind 'Widget'$"):
        await store.get("Widget", "x")


async def test_kind_aliases(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    for kind in ("Pod", "pods", "po", Pod):
        assert await store.get(kind, "web", namespace="default") is pod


async def test_update_bumps_revision_and_generation_on_spec_change(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    relabelled = await store.update(
        attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels={"a": "b"}))
    )
    assert relabelled.metadata.generation == 1
    assert int(relabelled.metadata.resource_version) == int(pod.metadata.resource_version) + 1
    spec = attrs.evolve(relabelled.spec, active_deadline_seconds=10)
    changed = await store.update(attrs.evolve(relabelled, spec=spec))
    assert changed.metadata.generation == 2
    assert changed.metadata.labels == {"a": "b"}


async def test_update_preserves_system_fields(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    forged = attrs.evolve(
        pod,
        metadata=attrs.evolve(
            pod.metadata,
            uid="",
            creation_timestamp=None,
            generation=99,
            resource_version="",
            labels={"x": "y"},
        ),
    )
    updated = await store.update(forged)
    assert updated.metadata.uid == pod.metadata.uid
    assert updated.metadata.creation_timestamp == pod.metadata.creation_timestamp
    assert updated.metadata.generation == 1
    assert updated.metadata.labels == {"x": "y"}


async def test_update_conflict_on_stale_resource_version(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    await store.update(attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels={"a": "1"})))
    revision = store.revision
    with pytest.raises(
        errors.Conflict,
        match=r'^Operation cannot be fulfilled on pods "web": the object has been modified; '
        r"please apply your changes to the latest version and try again$",
    ):
        await store.update(
            attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels={"a": "2"}))
        )
    assert store.revision == revision


async def test_update_with_other_uid_conflicts(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    stale = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, uid="other", resource_version=""))
    with pytest.raises(errors.Conflict, match=r"Precondition failed: UID in precondition: other"):
        await store.update(stale)


async def test_update_not_found(store: Store) -> None:
    with pytest.raises(errors.NotFound, match=r'^pods "web" not found$'):
        await store.update(make_pod("web"))


async def test_noop_update_writes_nothing(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    revision = store.revision
    digest = store.history_digest()
    assert await store.update(pod) is pod
    assert await store.update_status(pod) is pod
    assert store.revision == revision
    assert store.history_digest() == digest


async def test_update_ignores_status(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    running = attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Running"))
    assert await store.update(running) is pod  # only status differed: a no-op


async def test_update_status_changes_only_status(store: Store) -> None:
    pod = await store.create(make_pod("web"))
    sneaky = attrs.evolve(
        pod,
        metadata=attrs.evolve(pod.metadata, labels={"x": "y"}),
        spec=attrs.evolve(pod.spec, node_name="n1"),
        status=attrs.evolve(pod.status, phase="Running"),
    )
    updated = await store.update_status(sneaky)
    assert updated.status.phase == "Running"
    assert updated.metadata.labels == {}
    assert updated.spec.node_name is None
    assert updated.metadata.generation == 1
    assert updated.metadata.resource_version == str(store.revision)


async def test_update_status_on_kind_without_status(store: Store) -> None:
    cm = await store.create(ConfigMap(metadata=ObjectMeta(name="cfg"), data={"a": "1"}))
    with pytest.raises(errors.NotFound, match=r"^configmaps have no status subresource$"):
        await store.update_status(cm)


async def test_generation_for_kind_without_spec(store: Store) -> None:
    cm = await store.create(ConfigMap(metadata=ObjectMeta(name="cfg"), data={"a": "1"}))
    assert cm.metadata.generation == 0
    labelled = await store.update(
        attrs.evolve(cm, metadata=attrs.evolve(cm.metadata, labels={"x": "y"}))
    )
    assert labelled.metadata.generation == 0
    changed = await store.update(attrs.evolve(labelled, data={"a": "2"}))
    assert changed.metadata.generation == 1


async def test_list_sorted_with_selectors(store: Store) -> None:
    await store.create(make_namespace("a"))
    await store.create(make_pod("z", labels={"app": "web"}))
    await store.create(make_pod("y", labels={"app": "db"}, node="n1"))
    await store.create(make_pod("x", namespace="a", labels={"app": "web"}, node="n1"))
    result = await store.list("Pod")
    assert [(p.metadata.namespace, p.metadata.name) for p in result.items] == [
        ("a", "x"),
        ("default", "y"),
        ("default", "z"),
    ]
    assert result.resource_version == str(store.revision)
    names = lambda objs: [p.metadata.name for p in objs]  # noqa: E731
    assert names((await store.list("Pod", label_selector="app=web")).items) == ["x", "z"]
    assert names(store.list_nowait("Pod", namespace="default")) == ["y", "z"]
    assert names(store.list_nowait("Pod", field_selector="spec.nodeName=n1")) == ["x", "y"]
    assert names(store.list_nowait("Pod", field_selector="spec.nodeName=")) == ["z"]
    assert names(
        store.list_nowait("Pod", namespace="default", field_selector="spec.nodeName=n1")
    ) == ["y"]
    assert names(
        store.list_nowait("Pod", label_selector="app=web", field_selector="spec.nodeName=n1")
    ) == ["x"]


async def test_list_bad_selector(store: Store) -> None:
    with pytest.raises(errors.BadRequest):
        await store.list("Pod", label_selector="a in (")
    with pytest.raises(errors.BadRequest, match=r"^field label not supported: spec.foo"):
        await store.list("Pod", field_selector="spec.foo=1")


async def test_wait_changed(store: Store) -> None:
    revision = store.revision
    assert await store.wait_changed(revision - 1) == revision
    woken: list[int] = []

    async def waiter() -> None:
        woken.append(await store.wait_changed(revision))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        await store.create(make_pod("web"))
    assert woken == [revision + 1]


async def test_wait_until_rechecks_on_every_write(store: Store) -> None:
    calls: list[int] = []

    def web() -> object:
        calls.append(store.revision)
        return store.get_nowait("Pod", "web", namespace="default")

    async with trio.open_nursery() as nursery:
        found: list[object] = []

        async def waiter() -> None:
            found.append(await store.wait_until(web))

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        await store.create(make_pod("other"))
        await trio.testing.wait_all_tasks_blocked()
        assert found == []
        await store.create(make_pod("web"))
    assert found[0].metadata.name == "web"
    assert len(calls) == 3  # at start, after "other", after "web": no polling
