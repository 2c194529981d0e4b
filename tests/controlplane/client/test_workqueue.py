import pytest
import trio
import trio.testing

from controlplane.client.ratelimit import ItemExponentialFailureRateLimiter
from controlplane.client.workqueue import ShutDown, WorkQueue, open_work_queue


class CountingTracker:
    """Stands in for actors.WorkTracker: records the outstanding count."""

    def __init__(self):
        self.count = 0
        self.calls = []

    def add(self, n=1):
        self.count += n
        self.calls.append(("add", n))

    def done(self, n=1):
        self.count -= n
        assert self.count >= 0
        self.calls.append(("done", n))


def drain(queue):
    keys = []
    while True:
        try:
            keys.append(queue.get_nowait())
        except trio.WouldBlock:
            return keys


async def test_fifo_and_dedupe_of_queued_keys():
    queue = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert await queue.get() == "a"
    assert await queue.get() == "b"
    assert await queue.get() == "c"
    stats = queue.statistics()
    assert (stats.depth, stats.processing, stats.adds) == (0, 3, 3)


async def test_key_is_never_handed_out_twice_while_processing():
    queue = WorkQueue()
    queue.add("a")
    assert queue.get_nowait() == "a"
    queue.add("a")  # re-added while processing: marked dirty, not queued
    queue.add("a")  # and de-duplicated
    assert len(queue) == 0
    with pytest.raises(trio.WouldBlock):
        queue.get_nowait()
    queue.done("a")  # now it is queued again, once
    assert drain(queue) == ["a"]
    queue.done("a")
    assert drain(queue) == []
    assert queue.statistics().processing == 0


async def test_done_without_readd_does_not_requeue():
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    assert queue.get_nowait() == "a"
    queue.done("a")
    assert drain(queue) == ["b"]


async def test_readded_key_goes_to_the_back():
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    assert queue.get_nowait() == "a"
    queue.add("a")
    queue.add("c")
    queue.done("a")
    assert drain(queue) == ["b", "c", "a"]


async def test_done_of_unknown_key_raises():
    queue = WorkQueue(name="q")
    with pytest.raises(ValueError, match=r"^work queue 'q': 'x' is not processing$"):
        queue.done("x")


async def test_get_blocks_until_add():
    queue = WorkQueue()
    got = []

    async def worker():
        got.append(await queue.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        assert queue.statistics().waiting_getters == 1
        queue.add("a")
    assert got == ["a"]


async def test_one_add_wakes_one_of_many_workers():
    queue = WorkQueue()
    got = []

    async def worker(i):
        key = await queue.get()
        got.append((i, key))

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(worker, i)
        await trio.testing.wait_all_tasks_blocked()
        queue.add("a")
        await trio.testing.wait_all_tasks_blocked()
        assert [key for _, key in got] == ["a"]
        queue.add("b")
        queue.add("c")
    assert sorted(key for _, key in got) == ["a", "b", "c"]
    assert len({i for i, _ in got}) == 3


async def test_shut_down_wakes_getters_with_shutdown():
    queue = WorkQueue()
    raised = []

    async def worker():
        with pytest.raises(ShutDown):
            await queue.get()
        raised.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        nursery.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        queue.shut_down()
    assert raised == [True, True]
    with pytest.raises(ShutDown):
        await queue.get()
    with pytest.raises(ShutDown):
        queue.get_nowait()


async def test_shut_down_drops_queued_keys_and_ignores_adds():
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    assert queue.get_nowait() == "a"
    queue.shut_down()
    queue.shut_down()  # idempotent
    queue.add("c")
    queue.add_after("d", 1)
    assert len(queue) == 0
    queue.done("a")  # a worker finishing after shutdown is fine
    stats = queue.statistics()
    assert (stats.depth, stats.processing, stats.delayed, stats.shutting_down) == (0, 0, 0, True)


async def test_get_is_cancellable_and_checkpoints():
    queue = WorkQueue()
    with trio.move_on_after(1) as scope:
        await queue.get()
    assert scope.cancelled_caught
    queue.add("a")
    with trio.CancelScope() as scope:
        scope.cancel()
        await queue.get()  # cancelled before taking the key
    assert len(queue) == 1
    with trio.testing.assert_checkpoints():
        assert await queue.get() == "a"  # a key was ready: still a checkpoint


async def test_add_after_uses_exact_virtual_times(autojump_clock):
    async with open_work_queue() as queue:
        start = trio.current_time()
        queue.add_after("late", 3.0)
        queue.add_after("early", 1.0)
        queue.add_after("now", 0)
        assert queue.statistics().delayed == 2
        assert await queue.get() == "now"
        assert trio.current_time() == start
        assert await queue.get() == "early"
        assert trio.current_time() == pytest.approx(start + 1.0)
        assert await queue.get() == "late"
        assert trio.current_time() == pytest.approx(start + 3.0)
        assert queue.statistics().delayed == 0


async def test_add_after_keeps_the_earlier_deadline(autojump_clock):
    async with open_work_queue() as queue:
        start = trio.current_time()
        queue.add_after("a", 5.0)
        queue.add_after("a", 2.0)  # earlier: wins
        queue.add_after("a", 4.0)  # later: ignored
        assert queue.statistics().delayed == 1
        assert await queue.get() == "a"
        assert trio.current_time() == pytest.approx(start + 2.0)
        queue.done("a")
        with trio.move_on_after(10):
            await queue.get()
            pytest.fail("a was delivered twice")


async def test_add_after_a_queued_key_is_deduplicated(autojump_clock):
    async with open_work_queue() as queue:
        queue.add("a")
        queue.add_after("a", 1.0)
        await trio.sleep(2)
        assert drain(queue) == ["a"]


async def test_timer_sees_an_earlier_deadline_while_sleeping(autojump_clock):
    async with open_work_queue() as queue:
        start = trio.current_time()
        queue.add_after("far", 100.0)
        await trio.sleep(1.0)  # the timer is asleep until t=100
        queue.add_after("near", 0.5)
        assert await queue.get() == "near"
        assert trio.current_time() == pytest.approx(start + 1.5)


async def test_open_work_queue_shuts_down_on_exit(autojump_clock):
    async with open_work_queue() as queue:
        queue.add_after("a", 10)
    assert queue.shutting_down
    assert queue.statistics().delayed == 0


async def test_run_twice_is_refused():
    queue = WorkQueue(name="q")
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        with pytest.raises(RuntimeError, match=r"^work queue 'q' timer is already running$"):
            await queue.run()
        queue.shut_down()


async def test_add_rate_limited_backs_off_per_key(autojump_clock):
    limiter = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    async with open_work_queue(rate_limiter=limiter) as queue:
        times = []
        start = trio.current_time()
        for _ in range(4):
            queue.add_rate_limited("a")
            assert await queue.get() == "a"
            times.append(trio.current_time() - start)
            start = trio.current_time()
            queue.done("a")
        assert times == pytest.approx([0.005, 0.010, 0.020, 0.040])
        assert queue.num_requeues("a") == 4
        assert queue.statistics().retries == 4
        queue.forget("a")
        assert queue.num_requeues("a") == 0
        queue.add_rate_limited("a")
        await queue.get()
        assert trio.current_time() - start == pytest.approx(0.005)


async def test_default_limiter_overall_bucket(autojump_clock):
    async with open_work_queue() as queue:
        start = trio.current_time()
        for i in range(102):
            queue.add_rate_limited(i)
        got = [await queue.get() for _ in range(100)]
        assert trio.current_time() - start == pytest.approx(0.005)
        assert got == list(range(100))
        assert await queue.get() == 100
        assert trio.current_time() - start == pytest.approx(0.1)
        assert await queue.get() == 101
        assert trio.current_time() - start == pytest.approx(0.2)


async def test_tracker_counts_distinct_queued_or_processing_keys(autojump_clock):
    tracker = CountingTracker()
    async with open_work_queue(tracker=tracker) as queue:
        queue.add("a")
        queue.add("a")  # duplicate: no count
        queue.add("b")
        assert tracker.count == 2
        assert queue.get_nowait() == "a"  # queued -> processing: no change
        assert tracker.count == 2
        queue.add("a")  # re-added while processing: already counted
        assert tracker.count == 2
        queue.done("a")  # re-queued: still outstanding
        assert tracker.count == 2
        assert queue.get_nowait() == "b"
        queue.done("b")
        assert tracker.count == 1
        assert queue.get_nowait() == "a"
        queue.done("a")
        assert tracker.count == 0
        queue.add_after("c", 1.0)  # delayed work is not counted until it is due
        assert tracker.count == 0
        await trio.sleep(1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert tracker.count == 1
        assert queue.get_nowait() == "c"
        queue.add("d")
        assert tracker.count == 2
    # open_work_queue's exit shut the queue down: everything it held is released once.
    assert tracker.count == 0
    queue.done("c")
    assert tracker.count == 0
    assert tracker.calls[-1] == ("done", 2)
