"""The informer against the real store: sync, follow, re-watch, re-list, indexes,
fault backoff, namespaces, and the informer → work queue → worker pipeline."""

import random

import attrs
import pytest
import structlog.testing
import trio
import trio.lowlevel
import trio.testing

from actors import WorkTracker
from controlplane import errors
from controlplane.api.core import Container, Namespace, Pod, PodSpec
from controlplane.api.meta import ObjectMeta, object_key
from controlplane.client.cache import LABEL_INDEX, NODE_NAME_INDEX
from controlplane.client.informer import Informer
from controlplane.client.local import LocalClient
from controlplane.client.workqueue import ShutDown, open_work_queue
from controlplane.store import Store


def pod(name, namespace="default", labels=None, node=None):
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels or {}),
        spec=PodSpec(containers=[Container(name="c", image="nginx")], node_name=node),
    )


async def open_store(nursery, tracker=None):
    store = Store(random.Random("test"), work_tracker=tracker)
    await nursery.start(store.run)
    for ns in ("default", "other"):
        await store.create(Namespace(metadata=ObjectMeta(name=ns)))
    return store


class Recorder:
    def __init__(self, informer):
        self.seen = []
        informer.add_event_handler(
            on_add=lambda o: self.seen.append(("add", o.metadata.name)),
            on_update=lambda old, new: self.seen.append(("update", new.metadata.name)),
            on_delete=lambda o: self.seen.append(("delete", o.metadata.name)),
        )

    def take(self):
        seen, self.seen = self.seen, []
        return seen


def names(objs):
    return sorted(o.metadata.name for o in objs)


async def test_started_once_the_first_list_is_cached(nursery):
    store = await open_store(nursery)
    await store.create(pod("a"))
    await store.create(pod("b"))
    informer = Informer(LocalClient(store), Pod)
    rec = Recorder(informer)
    assert not informer.has_synced
    await nursery.start(informer.run)
    assert informer.has_synced
    await informer.wait_synced()
    assert informer.cache.keys() == ["default/a", "default/b"]
    assert informer.resource_version == str(store.revision)
    assert rec.take() == [("add", "a"), ("add", "b")]


async def test_cache_follows_creates_updates_deletes(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    informer = Informer(client, "Pod")
    rec = Recorder(informer)
    await nursery.start(informer.run)

    a = await client.create(pod("a", labels={"app": "web"}))
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.get("a", "default") is a  # the store's instance, not a copy
    a2 = await client.update(attrs.evolve(a, metadata=attrs.evolve(a.metadata, labels={})))
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.get("a", "default") is a2
    assert informer.cache.list(label_selector="app=web") == []
    await client.delete("Pod", "a", namespace="default")
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.get("a", "default") is None
    assert rec.take() == [("add", "a"), ("update", "a"), ("delete", "a")]
    assert informer.resource_version == str(store.revision)


async def test_rewatch_after_close_watches_without_relist(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    informer = Informer(client, "Pod")
    rec = Recorder(informer)
    await nursery.start(informer.run)
    await trio.testing.wait_all_tasks_blocked()
    assert store.close_watches() == 1
    await client.create(pod("b"))
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.keys() == ["default/a", "default/b"]
    stats = informer.statistics()
    assert (stats.lists, stats.watches) == (1, 2)
    assert rec.take() == [("add", "a"), ("add", "b")]


async def down_while(store, informer, changes):
    """Close the informer's watch and hold its re-watch for 10 s while ``changes`` run."""
    await trio.testing.wait_all_tasks_blocked()  # the informer's watch is open
    handle = store.faults.inject(kind="Pod", verb="watch", latency=10.0)
    assert store.close_watches() == 1
    await changes()  # takes no virtual time
    handle.remove()  # the re-watch already started, and waits out its 10 s
    await trio.sleep(20)


async def test_changes_while_down_are_replayed_from_history(nursery, autojump_clock):
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    b = await client.create(pod("b"))
    informer = Informer(client, "Pod")
    await nursery.start(informer.run)
    rec = Recorder(informer)
    rec.take()

    async def changes():
        await client.delete("Pod", "a", namespace="default")
        await client.create(pod("c"))
        await client.update(attrs.evolve(b, metadata=attrs.evolve(b.metadata, labels={"x": "y"})))

    await down_while(store, informer, changes)
    assert rec.take() == [("delete", "a"), ("add", "c"), ("update", "b")]
    assert informer.statistics().lists == 1


async def test_relist_after_compaction_reports_exactly_the_differences(nursery, autojump_clock):
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    b = await client.create(pod("b"))
    await client.create(pod("same"))
    informer = Informer(client, "Pod")
    await nursery.start(informer.run)
    updates = []
    informer.add_event_handler(on_update=lambda old, new: updates.append((old, new)))
    rec = Recorder(informer)
    rec.take()

    async def changes():
        await client.delete("Pod", "a", namespace="default")
        await client.create(pod("c"))
        await client.update(attrs.evolve(b, metadata=attrs.evolve(b.metadata, labels={"x": "y"})))
        store.compact()

    with structlog.testing.capture_logs() as logs:
        await down_while(store, informer, changes)
    # New list order (by name) for adds and updates, then the deletions.
    assert rec.take() == [("update", "b"), ("add", "c"), ("delete", "a")]
    ((old_b, new_b),) = updates
    assert old_b is b and new_b.metadata.labels == {"x": "y"}
    assert informer.cache.keys() == ["default/b", "default/c", "default/same"]
    assert informer.statistics().lists == 2
    assert informer.resource_version == str(store.revision)
    relists = [e for e in logs if e["event"] == "informer_relist"]
    assert [(e["reason"], e["kind"], e["log_level"]) for e in relists] == [("gone", "Pod", "info")]
    # And it keeps following after the re-list.
    await client.create(pod("d"))
    await trio.testing.wait_all_tasks_blocked()
    assert rec.take() == [("add", "d")]


async def test_label_index_lookups(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    informer = Informer(client, "Pod")
    await nursery.start(informer.run)
    await client.create(pod("web-0", labels={"app": "web", "tier": "front"}))
    await client.create(pod("web-1", labels={"app": "web"}))
    await client.create(pod("db-0", labels={"app": "db"}))
    await client.create(pod("web-9", namespace="other", labels={"app": "web"}))
    await trio.testing.wait_all_tasks_blocked()
    cache = informer.cache
    assert names(cache.list(label_selector="app=web")) == ["web-0", "web-1", "web-9"]
    assert names(cache.list("default", "app=web,tier=front")) == ["web-0"]
    assert names(cache.list("default", "app notin (web)")) == ["db-0"]
    assert names(cache.by_index(LABEL_INDEX, "app=db")) == ["db-0"]
    # The cache answers what the store answers.
    stored = await client.list("Pod", namespace="default", label_selector="app=web")
    assert names(cache.list("default", "app=web")) == names(stored.items)


async def test_node_name_index_follows_binding(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    informer = Informer(client, "Pod")
    await nursery.start(informer.run)
    await client.create(pod("a", node="node-1"))
    b = await client.create(pod("b"))
    await client.create(pod("c", namespace="other", node="node-1"))
    await trio.testing.wait_all_tasks_blocked()
    assert names(informer.cache.by_index(NODE_NAME_INDEX, "node-1")) == ["a", "c"]
    assert informer.cache.by_index(NODE_NAME_INDEX, "node-2") == []
    # An unbound pod is not in the index; once bound (spec.nodeName set), it is.
    await client.delete("Pod", "b", namespace="default")
    await client.create(attrs.evolve(b, spec=attrs.evolve(b.spec, node_name="node-2")))
    await trio.testing.wait_all_tasks_blocked()
    assert names(informer.cache.by_index(NODE_NAME_INDEX, "node-2")) == ["b"]


async def test_user_indexer(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    informer = Informer(
        client, "Pod", indexers={"image": lambda p: [c.image for c in p.spec.containers]}
    )
    await nursery.start(informer.run)
    await client.create(pod("a"))
    await trio.testing.wait_all_tasks_blocked()
    assert names(informer.cache.by_index("image", "nginx")) == ["a"]


async def test_list_errors_back_off_800ms_doubling(nursery, autojump_clock):
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    handle = store.faults.inject(
        kind="Pod", verb="list", error=errors.TooManyRequests, fraction=1.0
    )
    informer = Informer(client, "Pod")
    start = trio.current_time()
    nursery.start_soon(informer.run)
    await trio.sleep(10)  # attempts at 0, 0.8, 2.4, 5.6; the next is due at 12.0
    assert not informer.has_synced
    assert informer.statistics().retries == 4
    handle.remove()
    await informer.wait_synced()
    assert trio.current_time() - start == pytest.approx(12.0)
    assert informer.cache.keys() == ["default/a"]


async def test_backoff_is_logged_with_reason(nursery, autojump_clock):
    store = await open_store(nursery)
    handle = store.faults.inject(kind="Pod", verb="watch", error=errors.Timeout, fraction=1.0)
    informer = Informer(LocalClient(store), "Pod")
    with structlog.testing.capture_logs() as logs:
        await nursery.start(informer.run)  # the list works; the watch fails at t=0
        await trio.sleep(1.0)  # and again at t=0.8
    handle.remove()
    backoffs = [e for e in logs if e["event"] == "informer_backoff"]
    assert [(e["reason"], e["delay"], e["relist"]) for e in backoffs] == [
        ("Timeout", 0.8, False),
        ("Timeout", 1.6, False),
    ]


async def test_namespaced_informer_sees_only_its_namespace(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    await client.create(pod("x", namespace="other"))
    informer = Informer(client, "Pod", namespace="other")
    rec = Recorder(informer)
    await nursery.start(informer.run)
    await client.create(pod("b"))
    await client.create(pod("y", namespace="other"))
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.keys() == ["other/x", "other/y"]
    assert rec.take() == [("add", "x"), ("add", "y")]


async def test_label_selector_informer_sees_objects_leave_and_join(nursery):
    store = await open_store(nursery)
    client = LocalClient(store)
    informer = Informer(client, "Pod", label_selector="app=web")
    rec = Recorder(informer)
    await nursery.start(informer.run)
    a = await client.create(pod("a", labels={"app": "web"}))
    await client.create(pod("b", labels={"app": "db"}))
    await trio.testing.wait_all_tasks_blocked()
    a = await client.update(attrs.evolve(a, metadata=attrs.evolve(a.metadata, labels={})))
    await trio.testing.wait_all_tasks_blocked()
    assert informer.cache.keys() == []
    await client.update(attrs.evolve(a, metadata=attrs.evolve(a.metadata, labels={"app": "web"})))
    await trio.testing.wait_all_tasks_blocked()
    assert rec.take() == [("add", "a"), ("delete", "a"), ("add", "a")]


async def test_informer_queue_worker_pipeline_settles(nursery):
    tracker = WorkTracker()
    store = await open_store(nursery, tracker=tracker)
    client = LocalClient(store, track_work=True)
    informer = Informer(client, "Pod", tracker=tracker)
    reconciled = []

    async with open_work_queue(tracker=tracker, name="pods") as queue:
        informer.enqueue_into(queue)

        async def worker():
            while True:
                try:
                    key = await queue.get()
                except ShutDown:
                    return
                # Level-triggered: read the current state from the cache by key.
                obj = informer.cache.get_by_key(key)
                reconciled.append((key, None if obj is None else obj.metadata.resource_version))
                await trio.lowlevel.checkpoint()
                queue.done(key)

        async with trio.open_nursery() as workers:
            await workers.start(informer.run)
            workers.start_soon(worker)
            workers.start_soon(worker)
            p = await client.create(pod("a"))
            await tracker.wait_idle()
            assert reconciled == [("default/a", p.metadata.resource_version)]
            await client.delete("Pod", "a", namespace="default")
            await tracker.wait_idle()
            assert reconciled[-1] == ("default/a", None)
            assert queue.statistics().processing == 0
            workers.cancel_scope.cancel()
    assert object_key(p) == "default/a"


async def test_replays_wait_until_the_deferring_block_ends(nursery, autojump_clock):
    """A controller built while the informer runs gets its adds for cached objects after
    its constructor, never into a half-built object."""
    store = await open_store(nursery)
    client = LocalClient(store)
    await client.create(pod("a"))
    informer = Informer(client, "Pod")
    await nursery.start(informer.run)
    with informer.replays_deferred():
        rec = Recorder(informer)
        assert rec.take() == []
        gone = informer.add_event_handler(on_add=lambda o: rec.seen.append(("gone", "x")))
        informer.remove_event_handler(gone)  # removed before its replay: none comes
        with (
            pytest.raises(RuntimeError, match="replays are already deferred"),
            informer.replays_deferred(),
        ):
            pass
    assert rec.take() == [("add", "a")]
    await client.create(pod("b"))
    await trio.testing.wait_all_tasks_blocked()
    assert rec.take() == [("add", "b")]
