"""The scheduling queue in plain (virtual) numbers: ordering, backoff, unschedulable
pods and the moves that bring them back, work accounting."""

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_builders import make_pod

from actors import WorkTracker
from controlplane.scheduler.queue import SchedulingQueue


def names(queue, now):
    out = []
    while (entry := queue.pop(now)) is not None:
        out.append(entry.pod.metadata.name)
    return out


def test_priority_first_then_fifo():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    q.add(make_pod("b", priority=10), 1)
    q.add(make_pod("c"), 1)
    q.add(make_pod("d", priority=10), 2)
    q.add(make_pod("e"), 1)  # same time as c: FIFO
    assert names(q, 5) == ["b", "d", "a", "c", "e"]


def test_adding_a_queued_pod_again_keeps_one_entry():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    q.add(make_pod("a"), 1)
    assert names(q, 2) == ["a"]


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10), (100, 10)]
)
def test_backoff_doubles_from_1s_to_10s(attempts, seconds):
    assert SchedulingQueue().backoff_duration(attempts) == seconds


def test_failed_pod_waits_its_backoff():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    delays = []
    now = 0.0
    for _ in range(6):
        entry = q.pop(now)
        assert entry is not None and entry.pod.metadata.name == "a"
        q.requeue(entry, now, unschedulable=False)
        assert q.where("default/a") == "backoff"
        deadline = q.next_deadline()
        assert q.pop(deadline - 0.001) is None  # not a moment early
        delays.append(deadline - now)
        now = deadline
    assert delays == [1, 2, 4, 8, 10, 10]


def test_unschedulable_pod_waits_for_a_move_then_backs_off_or_goes_active():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    entry = q.pop(0)
    q.requeue(entry, 0, unschedulable=True)
    assert q.where("default/a") == "unschedulable"
    assert q.pop(100) is None  # nothing changed: it stays put
    assert q.move_all(100) == 1
    assert q.where("default/a") == "active"  # backoff (1 s) long over
    entry = q.pop(100)
    assert entry.attempts == 2
    q.requeue(entry, 100, unschedulable=True)
    assert q.move_all(100.5) == 1
    assert q.where("default/a") == "backoff"  # still within its 2 s backoff
    assert q.next_deadline() == 102
    assert q.pop(102).pod.metadata.name == "a"


def test_unschedulable_pods_are_retried_after_five_minutes_anyway():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    q.requeue(q.pop(0), 0, unschedulable=True)
    assert q.next_deadline() == 300
    assert q.pop(299) is None
    assert q.pop(300).pod.metadata.name == "a"


def test_a_move_during_the_cycle_sends_the_pod_to_backoff_not_unschedulable():
    q = SchedulingQueue()
    q.add(make_pod("a"), 0)
    entry = q.pop(0)
    q.move_all(0)  # e.g. a node was added while "a" was being scheduled
    q.requeue(entry, 0, unschedulable=True)
    assert q.where("default/a") == "backoff"


def test_spec_changes_bring_an_unschedulable_pod_back_status_changes_do_not():
    q = SchedulingQueue()
    pod = make_pod("a")
    q.add(pod, 0)
    q.requeue(q.pop(0), 0, unschedulable=True)
    status_only = attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Pending"))
    q.update(status_only, 5)
    assert q.where("default/a") == "unschedulable"
    relabelled = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels={"x": "y"}))
    q.update(relabelled, 5)
    assert q.where("default/a") == "active"
    assert q.pop(5).pod is relabelled


def test_update_while_in_flight_retries_at_once():
    q = SchedulingQueue()
    pod = make_pod("a")
    q.add(pod, 0)
    entry = q.pop(0)
    q.update(attrs.evolve(pod, spec=attrs.evolve(pod.spec, priority=5)), 0)
    q.requeue(entry, 0, unschedulable=True)
    assert q.where("default/a") == "active"


def test_delete_removes_from_every_sub_queue():
    q = SchedulingQueue()
    for name in "abc":
        q.add(make_pod(name), 0)
    a = q.pop(0)
    q.requeue(a, 0, unschedulable=True)
    b = q.pop(0)
    q.requeue(b, 0, unschedulable=False)
    for key in ("default/a", "default/b", "default/c"):
        q.delete(key)
    assert len(q) == 0
    assert q.pop(1000) is None
    assert q.next_deadline() == float("inf")
    q.requeue(a, 0, unschedulable=True)  # a late requeue of a deleted pod is ignored
    assert len(q) == 0


def test_work_accounting_counts_active_and_in_flight_only():
    tracker = WorkTracker()
    q = SchedulingQueue(tracker=tracker)
    q.add(make_pod("a"), 0)
    q.add(make_pod("b"), 0)
    assert tracker.pending == 2
    a = q.pop(0)
    assert tracker.pending == 2  # one queued, one in flight
    q.requeue(a, 0, unschedulable=True)
    assert tracker.pending == 1
    b = q.pop(0)
    q.done(b)
    assert tracker.pending == 0
    q.move_all(10)
    assert tracker.pending == 1
    q.close()
    assert tracker.pending == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "pop", "fail", "unschedulable", "done", "delete", "move"]),
            st.integers(0, 5),
            st.floats(0, 4),
        ),
        max_size=60,
    )
)
def test_queue_invariants_hold_under_any_sequence(ops):
    tracker = WorkTracker()
    q = SchedulingQueue(tracker=tracker)
    now = 0.0
    in_flight = {}
    live = set()
    for op, i, dt in ops:
        now += dt
        key = f"default/p{i}"
        if op == "add":
            q.add(make_pod(f"p{i}"), now)
            live.add(key)
        elif op == "pop":
            entry = q.pop(now)
            if entry is not None:
                assert entry.key in live and entry.key not in in_flight
                in_flight[entry.key] = entry
        elif op in ("fail", "unschedulable", "done") and in_flight:
            entry = in_flight.pop(sorted(in_flight)[i % len(in_flight)])
            if op == "done":
                q.done(entry)
                live.discard(entry.key)
            else:
                q.requeue(entry, now, unschedulable=op == "unschedulable")
        elif op == "delete":
            q.delete(key)
            live.discard(key)
            in_flight.pop(key, None)
        elif op == "move":
            q.move_all(now)
        stats = q.statistics()
        assert stats.active + stats.backoff + stats.unschedulable + stats.in_flight == len(q)
        assert len(q) == len(live)
        assert tracker.pending == stats.active + stats.in_flight
        assert q.next_deadline() >= 0
