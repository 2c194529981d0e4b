from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from store_helpers import make_namespace, make_pod

from actors import Lagged, WorkTracker
from controlplane import errors
from controlplane.api.core import Pod
from controlplane.client.protocol import WatchEvent
from controlplane.store import Store


def summary(events: list[WatchEvent]) -> list[tuple[str, str, str]]:
    return [(e.type, e.object.metadata.name, e.object.metadata.resource_version) for e in events]


async def drain(events: Any) -> list[WatchEvent]:
    """Everything queued now (without waiting for more)."""
    await trio.testing.wait_all_tasks_blocked()
    out: list[WatchEvent] = []
    with trio.move_on_after(0.001):
        while True:
            out.extend(await events.receive_batch())
    return out


async def relabel(store: Store, name: str, labels: dict[str, str]) -> Pod:
    pod = store.get_nowait("Pod", name, namespace="default")
    return await store.update(attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels=labels)))


async def test_initial_state_then_live_in_order(store: Store, autojump_clock: Any) -> None:
    b = await store.create(make_pod("b"))
    a = await store.create(make_pod("a"))
    async with store.watch("Pod") as events:
        c = await store.create(make_pod("c"))
        a2 = await relabel(store, "a", {"x": "1"})
        gone = await store.delete("Pod", "b", namespace="default")
        got = await drain(events)
    assert summary(got) == [
        ("ADDED", "a", a.metadata.resource_version),
        ("ADDED", "b", b.metadata.resource_version),
        ("ADDED", "c", c.metadata.resource_version),
        ("MODIFIED", "a", a2.metadata.resource_version),
        ("DELETED", "b", gone.metadata.resource_version),
    ]
    assert got[-1].object.metadata.uid == b.metadata.uid
    assert got[3].object is a2  # the stored instance, shared, not copied


async def test_async_iteration_and_close_watches(store: Store) -> None:
    seen: list[str] = []

    async def reader(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with store.watch("Pod", resource_version="0") as events:
            task_status.started()
            async for event in events:
                seen.append(event.object.metadata.name)

    await store.create(make_pod("a"))
    async with trio.open_nursery() as nursery:
        await nursery.start(reader)
        await store.create(make_pod("b"))
        await trio.testing.wait_all_tasks_blocked()
        assert store.close_watches() == 1
    assert seen == ["a", "b"]
    assert store.statistics().watchers == 0


async def test_label_selector_transitions(store: Store, autojump_clock: Any) -> None:
    await store.create(make_pod("web", labels={"app": "web"}))
    async with store.watch("Pod", label_selector="app=web") as events:
        await store.create(make_pod("db", labels={"app": "db"}))
        out = await relabel(store, "web", {"app": "other"})
        back = await relabel(store, "web", {"app": "web"})
        got = await drain(events)
    assert [(e.type, e.object.metadata.name) for e in got] == [
        ("ADDED", "web"),
        ("DELETED", "web"),
        ("ADDED", "web"),
    ]
    # DELETED carries the previous state (that matched), stamped with the change's revision.
    deleted = got[1].object
    assert deleted.metadata.labels == {"app": "web"}
    assert deleted.metadata.resource_version == out.metadata.resource_version
    assert got[2].object is back


async def test_node_scoped_watch_sees_binding(store: Store, autojump_clock: Any) -> None:
    pod = await store.create(make_pod("web"))
    async with (
        store.watch("Pod", field_selector="spec.nodeName=n1") as n1,
        store.watch("Pod", field_selector="spec.nodeName=n2") as n2,
        store.watch("Pod", field_selector="spec.nodeName=") as unbound,
    ):
        bound = await store.bind("web", "n1", namespace="default", uid=pod.metadata.uid)
        await store.create(make_pod("other", node="n2"))
        await store.delete("Pod", "web", namespace="default", grace_period_seconds=0)
        got1, got2, got_unbound = await drain(n1), await drain(n2), await drain(unbound)
    assert [(e.type, e.object.metadata.name) for e in got1] == [
        ("ADDED", "web"),
        ("DELETED", "web"),
    ]
    assert got1[0].object is bound
    assert [(e.type, e.object.metadata.name) for e in got2] == [("ADDED", "other")]
    assert [(e.type, e.object.metadata.name) for e in got_unbound] == [
        ("ADDED", "web"),
        ("DELETED", "web"),
    ]
    assert got_unbound[1].object.spec.node_name is None


async def test_namespace_watch(store: Store, autojump_clock: Any) -> None:
    await store.create(make_namespace("other"))
    async with store.watch("Pod", namespace="other") as events:
        await store.create(make_pod("a"))
        await store.create(make_pod("b", namespace="other"))
        assert [e.object.metadata.name for e in await drain(events)] == ["b"]


async def test_watch_from_revision_replays_exactly(store: Store, autojump_clock: Any) -> None:
    await store.create(make_pod("a"))
    listed = await store.list("Pod")
    await store.create(make_pod("b"))
    await store.create(make_namespace("x"))  # another kind: not replayed
    await relabel(store, "a", {"k": "v"})
    await store.delete("Pod", "b", namespace="default")
    async with store.watch("Pod", resource_version=listed.resource_version) as events:
        await store.create(make_pod("c"))
        got = await drain(events)
    assert [(e.type, e.object.metadata.name) for e in got] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
        ("ADDED", "c"),
    ]
    revisions = [int(e.object.metadata.resource_version) for e in got]
    assert revisions == sorted(revisions) and revisions[0] > int(listed.resource_version)


async def test_compaction_gives_gone(store: Store) -> None:
    await store.create(make_pod("a"))
    old = store.revision
    await store.create(make_pod("b"))
    store.compact()
    with pytest.raises(
        errors.Gone, match=rf"^too old resource version: {old - 1} \({store.revision}\)$"
    ):
        async with store.watch("Pod", resource_version=str(old - 1)):
            pass
    async with store.watch("Pod", resource_version=str(store.revision)):
        pass  # the current revision is still fine


async def test_history_limit_gives_gone() -> None:
    store = Store(random.Random(0), history_limit=3)
    await store.create(make_namespace("default"))
    start = store.revision
    for name in "abcd":
        await store.create(make_pod(name))
    with pytest.raises(errors.Gone):
        async with store.watch("Pod", resource_version=str(start)):
            pass
    async with store.watch("Pod", resource_version=str(start + 1)) as events:
        assert [e.object.metadata.name for e in await events.receive_batch()] == ["b", "c", "d"]


async def test_history_expires_by_age(autojump_clock: Any) -> None:
    store = Store(random.Random(0), history_max_age=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.create(make_namespace("default"))
        start = store.revision
        await store.create(make_pod("a"))
        await trio.sleep(30)
        await store.create(make_pod("b"))
        await trio.sleep(31)  # "a" is now older than 60 s
        with pytest.raises(errors.Gone):
            async with store.watch("Pod", resource_version=str(start)):
                pass
        async with store.watch("Pod", resource_version=str(start + 1)) as events:
            assert [e.object.metadata.name for e in await events.receive_batch()] == ["b"]
        nursery.cancel_scope.cancel()


async def test_bad_resource_versions(store: Store) -> None:
    with pytest.raises(errors.Timeout, match=r"^Too large resource version: 999, current: 1$"):
        async with store.watch("Pod", resource_version="999"):
            pass
    with pytest.raises(errors.BadRequest, match=r"^invalid resourceVersion 'x'$"):
        async with store.watch("Pod", resource_version="x"):
            pass


async def test_bookmarks(store: Store, autojump_clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        async with (
            store.watch("Pod", allow_bookmarks=True) as marked,
            store.watch("Pod") as plain,
        ):
            await store.create(make_namespace("x"))  # advances the revision, no pod event
            await trio.sleep(store.bookmark_interval + 1)
            got = await drain(marked)
            assert [e.type for e in got] == ["BOOKMARK"]
            assert isinstance(got[0].object, Pod)
            assert got[0].object.metadata.resource_version == str(store.revision)
            store.bookmark_now()
            assert [e.type for e in await drain(marked)] == ["BOOKMARK"]
            assert await drain(plain) == []
        nursery.cancel_scope.cancel()


async def test_slow_watcher_is_closed_with_lagged() -> None:
    store = Store(random.Random(0), watch_capacity=3)
    await store.create(make_namespace("default"))
    async with store.watch("Pod") as slow, store.watch("Pod") as fast:
        for name in "abc":
            await store.create(make_pod(name))
        assert len(await fast.receive_batch()) == 3
        await store.create(make_pod("d"))  # the fourth: slow overflows
        with pytest.raises(Lagged):
            await slow.receive_batch()
        assert [e.object.metadata.name for e in await fast.receive_batch()] == ["d"]
        assert store.statistics().watchers == 1


async def test_initial_state_is_not_lag() -> None:
    store = Store(random.Random(0), watch_capacity=2)
    await store.create(make_namespace("default"))
    for name in "abcde":
        await store.create(make_pod(name))
    async with store.watch("Pod") as events:
        await store.create(make_pod("f"))
        names = [e.object.metadata.name async for e in _take(events, 6)]
    assert names == list("abcdef")


async def _take(events: Any, n: int) -> Any:
    for _ in range(n):
        yield await events.__anext__()


async def test_work_tracker_counts_queued_events() -> None:
    tracker = WorkTracker()
    store = Store(random.Random(0), work_tracker=tracker)
    await store.create(make_namespace("default"))
    async with store.watch("Pod", track_work=True) as events:
        await store.create(make_pod("a"))
        await store.create(make_pod("b"))
        assert tracker.pending == 2
        await events.__anext__()
        assert tracker.pending == 1
        await store.create(make_pod("c"))
        assert tracker.pending == 2
    assert tracker.pending == 0  # closing the watch settles what it never read


async def test_untracked_watch_is_not_work() -> None:
    """A test's own watch that nobody drains must not hold ``settle`` forever."""
    tracker = WorkTracker()
    store = Store(random.Random(0), work_tracker=tracker)
    await store.create(make_namespace("default"))
    async with store.watch("Pod") as events:
        await store.create(make_pod("a"))
        assert tracker.pending == 0
        assert (await events.__anext__()).object.metadata.name == "a"
    async with store.watch("Pod", resource_version="0", track_work=True):
        assert tracker.pending == 1  # the synthetic ADDED of "a"
    assert tracker.pending == 0


async def test_watch_bad_selector(store: Store) -> None:
    with pytest.raises(errors.BadRequest):
        async with store.watch("Pod", field_selector="nope"):
            pass
    assert store.statistics().watchers == 0
