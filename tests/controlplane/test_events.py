"""The shared EventRecorder: aggregation, retries with a limit, drops, work accounting."""

from __future__ import annotations

import random

import trio

from actors import WorkTracker
from controlplane import errors
from controlplane.api.core import Namespace
from controlplane.api.core_pod import Pod
from controlplane.api.meta import ObjectMeta
from controlplane.client.local import LocalClient
from controlplane.events import MAX_TRIES, EventRecorder
from controlplane.store import Store


async def _store() -> Store:
    store = Store(random.Random("events"))
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    return store


def _pod(name: str = "web") -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace="default", uid=f"uid-{name}"))


def _events(store: Store) -> list:
    return store.list_nowait("Event", namespace="default")


async def test_run_writes_aggregates_and_holds_settle_until_written(autojump_clock):
    store = await _store()
    tracker = WorkTracker()
    recorder = EventRecorder(
        LocalClient(store), component="replicaset-controller", rng=random.Random(1), tracker=tracker
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        recorder.record(_pod(), "Normal", "SuccessfulCreate", "Created pod: web")
        recorder.record(_pod(), "Normal", "SuccessfulCreate", "Created pod: web")
        assert tracker.pending == 1  # queued events are outstanding work
        await tracker.wait_idle()
        (event,) = _events(store)
        assert (event.count, event.reason, event.source.component) == (
            2,
            "SuccessfulCreate",
            "replicaset-controller",
        )
        assert event.involved_object.name == "web" and event.metadata.name.startswith("web.")
        # the same event later updates the stored Event instead of creating another
        await trio.sleep(5)
        recorder.record(_pod(), "Normal", "SuccessfulCreate", "Created pod: web")
        await tracker.wait_idle()
        (event,) = _events(store)
        assert event.count == 3 and event.last_timestamp > event.first_timestamp
        assert recorder.statistics().created == 1 and recorder.statistics().updated == 1
        nursery.cancel_scope.cancel()
    assert tracker.pending == 0


async def test_transient_errors_are_retried_until_written(autojump_clock):
    store = await _store()
    tracker = WorkTracker()
    recorder = EventRecorder(
        LocalClient(store), component="c", rng=random.Random(1), tracker=tracker
    )
    fault = store.faults.inject(kind="Event", verb="create", error=errors.TooManyRequests)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        recorder.record(_pod(), "Warning", "FailedCreate", "quota")
        await trio.sleep(3.5)
        assert _events(store) == [] and recorder.statistics().retries >= 3
        assert tracker.pending == 1
        fault.remove()
        await tracker.wait_idle()
        assert [e.reason for e in _events(store)] == ["FailedCreate"]
        nursery.cancel_scope.cancel()


async def test_events_are_dropped_after_max_tries_or_on_a_permanent_error(autojump_clock):
    store = await _store()
    tracker = WorkTracker()
    recorder = EventRecorder(
        LocalClient(store), component="c", rng=random.Random(1), tracker=tracker
    )
    fault = store.faults.inject(kind="Event", verb="create", error=errors.Timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        recorder.record(_pod(), "Warning", "FailedCreate", "x")
        await tracker.wait_idle()
        stats = recorder.statistics()
        assert (stats.retries, stats.dropped, stats.pending) == (MAX_TRIES - 1, 1, 0)
        fault.remove()
        # a pod in a namespace that does not exist: NotFound, dropped at once
        ghost = Pod(metadata=ObjectMeta(name="g", namespace="nowhere", uid="u"))
        recorder.record(ghost, "Normal", "Killing", "y")
        await tracker.wait_idle()
        assert recorder.statistics().dropped == 2
        assert _events(store) == []
        nursery.cancel_scope.cancel()


async def test_spam_filter_caps_writes_per_object(autojump_clock):
    store = await _store()
    recorder = EventRecorder(LocalClient(store), component="c", rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        for i in range(40):
            recorder.record(_pod(), "Normal", "Reason", f"message {i}")
            await trio.sleep(0.01)
        await trio.sleep(1)
        assert len(_events(store)) == 25
        assert recorder.statistics().dropped == 15
        nursery.cancel_scope.cancel()
