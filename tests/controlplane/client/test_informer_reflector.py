"""The informer's list/watch loop against a scripted client: exact control over which
call fails how, and when (the real-store scenarios are in test_informer_store.py)."""

from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from actors import Lagged, Subscription, WorkTracker
from controlplane import errors
from controlplane.api.core import Pod
from controlplane.api.meta import ObjectMeta
from controlplane.client.informer import Informer
from controlplane.client.protocol import ObjectList, WatchEvent


def pod(name, rv):
    return Pod(metadata=ObjectMeta(name=name, namespace="default", resource_version=str(rv)))


class ScriptedClient:
    """list() answers from ``lists`` (an ObjectList or an exception per call); watch()
    raises the next of ``watch_errors`` if any, else opens a Subscription the test feeds."""

    def __init__(self):
        self.lists = []
        self.watch_errors = []
        self.calls = []  # ("list", time) / ("watch", resource_version, time)
        self.streams = []
        self.prefill = []  # events already in hand when the next watch opens

    async def list(self, kind, **kwargs):
        await trio.lowlevel.checkpoint()
        self.calls.append(("list", trio.current_time()))
        result = self.lists.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    def watch(self, kind, *, resource_version=None, allow_bookmarks=False, **kwargs):
        assert allow_bookmarks

        @asynccontextmanager
        async def open_watch():
            await trio.lowlevel.checkpoint()
            self.calls.append(("watch", resource_version, trio.current_time()))
            if self.watch_errors:
                raise self.watch_errors.pop(0)
            stream = Subscription(capacity=4)
            for event in self.prefill:
                stream.push_nowait(event)
            self.prefill = []
            self.streams.append(stream)
            try:
                yield stream
            finally:
                stream.close()

        return open_watch()


class Recorder:
    def __init__(self, informer):
        self.seen = []
        informer.add_event_handler(
            on_add=lambda o: self.seen.append(("add", o.metadata.name)),
            on_update=lambda old, new: self.seen.append(
                ("update", new.metadata.name, old.metadata.resource_version)
            ),
            on_delete=lambda o: self.seen.append(("delete", o.metadata.name)),
        )


def watch_calls(client):
    return [c[1] for c in client.calls if c[0] == "watch"]


async def test_lagged_rewatches_from_last_applied_version_without_relist():
    client = ScriptedClient()
    client.lists.append(ObjectList((pod("a", 1),), "5"))
    informer = Informer(client, "Pod")
    rec = Recorder(informer)
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await trio.testing.wait_all_tasks_blocked()
        client.streams[0].push_nowait(WatchEvent("ADDED", pod("b", 6)))
        await trio.testing.wait_all_tasks_blocked()
        assert informer.resource_version == "6"
        client.streams[0].push_nowait(WatchEvent("ADDED", pod("c", 7)))
        client.streams[0].close_with(Lagged("informer", 4))  # "c" is dropped with it
        await trio.testing.wait_all_tasks_blocked()
        assert watch_calls(client) == ["5", "6"]
        client.streams[1].push_nowait(WatchEvent("ADDED", pod("c", 7)))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [c[0] for c in client.calls].count("list") == 1
    assert rec.seen == [("add", "a"), ("add", "b"), ("add", "c")]
    assert informer.cache.keys() == ["default/a", "default/b", "default/c"]


async def test_bookmarks_advance_the_resource_version_silently():
    client = ScriptedClient()
    client.lists.append(ObjectList((), "5"))
    informer = Informer(client, "Pod")
    rec = Recorder(informer)
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await trio.testing.wait_all_tasks_blocked()
        client.streams[0].push_nowait(WatchEvent("BOOKMARK", pod("", 42)))
        client.streams[0].close()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert watch_calls(client) == ["5", "42"]
    assert rec.seen == []
    assert informer.statistics().events == 0


async def test_transient_errors_back_off_800ms_doubling(autojump_clock):
    client = ScriptedClient()
    client.lists += [
        errors.TooManyRequests("slow down"),
        errors.Timeout("timed out"),
        ObjectList((), "1"),
    ]
    client.watch_errors += [errors.TooManyRequests("slow down")] * 6
    informer = Informer(client, "Pod")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        assert trio.current_time() - start == pytest.approx(0.8 + 1.6)
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    times = [c[-1] - start for c in client.calls]
    # list, +0.8 list, +1.6 list ok, watch x6 failing: +3.2 +6.4 +12.8 +25.6 +30 +30 then ok
    expected = [0, 0.8, 2.4, 2.4, 5.6, 12.0, 24.8, 50.4, 80.4, 110.4]
    assert times == pytest.approx(expected)
    assert informer.statistics().retries == 8


async def test_backoff_starts_over_after_two_healthy_minutes(autojump_clock):
    client = ScriptedClient()
    client.lists.append(ObjectList((), "1"))
    client.watch_errors += [errors.Timeout("t"), errors.Timeout("t")]
    informer = Informer(client, "Pod")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await trio.sleep(10)  # two waits: 0.8 then 1.6, then a healthy watch
        assert [round(c[-1] - start, 6) for c in client.calls] == [0, 0, 0.8, 2.4]
        await trio.sleep(300)  # healthy for longer than 2 minutes
        client.watch_errors.append(errors.Timeout("t"))
        client.streams[0].close()
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    last_two = [c[-1] - start for c in client.calls[-2:]]
    assert last_two[1] - last_two[0] == pytest.approx(0.8)


async def test_gone_right_after_a_list_backs_off_instead_of_spinning(autojump_clock):
    client = ScriptedClient()
    client.lists += [ObjectList((), "1"), ObjectList((), "2")]
    client.watch_errors.append(errors.Gone("too old"))
    informer = Informer(client, "Pod")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert [(c[0], round(c[-1] - start, 6)) for c in client.calls] == [
        ("list", 0),
        ("watch", 0),
        ("list", 0.8),
        ("watch", 0.8),
    ]


async def test_other_errors_propagate_and_a_rerun_relists_with_differences():
    client = ScriptedClient()
    client.lists += [ObjectList((pod("a", 1), pod("b", 1)), "3")]
    client.watch_errors.append(errors.Forbidden("no"))
    informer = Informer(client, "Pod")
    rec = Recorder(informer)
    with pytest.raises(errors.Forbidden, match=r"^no$"):
        await informer.run()
    assert informer.has_synced
    # The supervisor would restart it: the cache survives, handlers see differences.
    client.lists.append(ObjectList((pod("b", 4), pod("c", 4)), "4"))
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        nursery.cancel_scope.cancel()
    assert rec.seen == [
        ("add", "a"),
        ("add", "b"),
        ("update", "b", "1"),
        ("add", "c"),
        ("delete", "a"),
    ]


async def test_run_twice_is_refused():
    client = ScriptedClient()
    client.lists.append(ObjectList((), "1"))
    informer = Informer(client, "Pod")
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        with pytest.raises(RuntimeError, match=r"^informer for Pod is already running$"):
            await informer.run()
        nursery.cancel_scope.cancel()


async def test_late_handler_gets_adds_for_cached_objects():
    client = ScriptedClient()
    client.lists.append(ObjectList((pod("a", 1), pod("b", 1)), "1"))
    informer = Informer(client, "Pod")
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        assert informer.has_synced
        await informer.wait_synced()
        rec = Recorder(informer)
        assert rec.seen == [("add", "a"), ("add", "b")]
        nursery.cancel_scope.cancel()


async def test_tracker_counts_the_informer_busy_until_it_waits_on_the_watch():
    client = ScriptedClient()
    client.lists.append(ObjectList((pod("a", 1),), "1"))
    tracker = WorkTracker()
    informer = Informer(client, "Pod", tracker=tracker)
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await trio.testing.wait_all_tasks_blocked()
        assert tracker.pending == 0
        await tracker.wait_idle()
        nursery.cancel_scope.cancel()
    assert tracker.pending == 0


async def test_informer_stays_busy_while_its_stream_has_events_in_hand():
    client = ScriptedClient()
    client.lists.append(ObjectList((), "1"))
    client.prefill = [WatchEvent("ADDED", pod("b", 2))]
    tracker = WorkTracker()
    trace = []

    class Tracing:
        def add(self, n=1):
            tracker.add(n)
            trace.append(tracker.pending)

        def done(self, n=1):
            tracker.done(n)
            trace.append(tracker.pending)

    informer = Informer(client, "Pod", tracker=Tracing())
    informer.add_event_handler(on_add=lambda obj: trace.append(obj.metadata.name))
    async with trio.open_nursery() as nursery:
        await nursery.start(informer.run)
        await tracker.wait_idle()
        assert informer.cache.keys() == ["default/b"]
        nursery.cancel_scope.cancel()
    assert trace == [1, "b", 0]
