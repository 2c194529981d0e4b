"""Broadcast and Subscription: ordering, bounded buffers, Lagged, batching, closing."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors import ActorError, Broadcast, Lagged, Subscription, SubscriptionStatistics


async def test_every_subscriber_gets_every_item_in_order() -> None:
    broadcast: Broadcast[int] = Broadcast()
    subscriptions = [broadcast.subscribe(100) for _ in range(3)]
    received: list[list[int]] = [[], [], []]

    async def consume(i: int) -> None:
        async for item in subscriptions[i]:
            received[i].append(item)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(consume, i)
        for item in range(250):
            assert broadcast.publish_nowait(item) == 3
            if item % 7 == 0:
                await trio.testing.wait_all_tasks_blocked()
        broadcast.close()
    assert received == [list(range(250))] * 3
    assert broadcast.subscriber_count == 0


async def test_slow_subscriber_lags_fast_one_is_unaffected() -> None:
    broadcast: Broadcast[int] = Broadcast()
    slow = broadcast.subscribe(3, name="slow")
    fast = broadcast.subscribe(3, name="fast")
    got: list[int] = []

    async def consume() -> None:
        async for item in fast:
            got.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        counts = []
        for item in range(10):
            counts.append(broadcast.publish_nowait(item))
            await trio.testing.wait_all_tasks_blocked()
        broadcast.close()
    assert counts == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert got == list(range(10))
    assert slow.statistics() == SubscriptionStatistics(queued=0, capacity=3, closed=True)
    message = r"^subscription 'slow' lagged: 4 items behind, capacity 3$"
    # Raised at once, before the three items it still had queued, and on every receive.
    for _ in range(2):
        with pytest.raises(Lagged, match=message):
            await slow.receive()
    with pytest.raises(Lagged, match=message):
        await slow.receive_batch()
    with pytest.raises(Lagged, match=message):
        slow.receive_nowait()
    assert isinstance(Lagged(None, 1), ActorError)


def test_push_beyond_capacity_drops_the_item_and_closes() -> None:
    subscription: Subscription[str] = Subscription(2)
    assert subscription.push_nowait("a")
    assert subscription.push_nowait("b")
    assert not subscription.push_nowait("c")
    assert not subscription.push_nowait("d")
    assert len(subscription) == 0
    with pytest.raises(Lagged, match=r"^subscription lagged: 3 items behind, capacity 2$"):
        subscription.receive_nowait()


async def test_receive_batch_takes_everything_in_one_wake_up() -> None:
    subscription: Subscription[int] = Subscription(20_000)
    batches: list[list[int]] = []

    async def consume() -> None:
        while True:
            try:
                batches.append(await subscription.receive_batch())
            except trio.EndOfChannel:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        for item in range(10_000):
            subscription.push_nowait(item)
        assert subscription.pending == 10_000
        await trio.testing.wait_all_tasks_blocked()
        assert batches == [list(range(10_000))]
        subscription.push_nowait(-1)
        subscription.close()
    assert batches == [list(range(10_000)), [-1]]


async def test_close_delivers_what_is_queued_then_end_of_channel() -> None:
    subscription: Subscription[int] = Subscription(10)
    for item in (1, 2, 3):
        subscription.push_nowait(item)
    subscription.close()
    subscription.close()
    assert not subscription.push_nowait(4)
    assert subscription.statistics() == SubscriptionStatistics(queued=3, capacity=10, closed=True)
    assert await subscription.receive() == 1
    assert subscription.receive_nowait() == 2
    assert await subscription.receive_batch() == [3]
    with pytest.raises(trio.EndOfChannel):
        await subscription.receive()
    with pytest.raises(trio.EndOfChannel):
        await subscription.receive_batch()
    assert [item async for item in subscription] == []


async def test_close_wakes_a_waiting_consumer() -> None:
    subscription: Subscription[int] = Subscription(10)
    ended: list[bool] = []

    async def consume() -> None:
        with pytest.raises(trio.EndOfChannel):
            await subscription.receive_batch()
        ended.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        subscription.close()
    assert ended == [True]


async def test_close_with_fails_the_consumer_at_once() -> None:
    subscription: Subscription[int] = Subscription(10)
    subscription.push_nowait(1)
    subscription.close_with(ConnectionError("gone"))
    subscription.close_with(ValueError("ignored: already closed"))
    with pytest.raises(ConnectionError, match=r"^gone$"):
        await subscription.receive()


async def test_receive_waits_and_nowait_would_block() -> None:
    subscription: Subscription[str] = Subscription(10)
    with pytest.raises(trio.WouldBlock):
        subscription.receive_nowait()
    got: list[str] = []

    async def consume() -> None:
        got.append(await subscription.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        subscription.push_nowait("x")
    assert got == ["x"]


async def test_context_managers_unsubscribe() -> None:
    broadcast: Broadcast[int] = Broadcast(name="pods")
    with broadcast.subscribe(10) as subscription:
        assert broadcast.subscriber_count == 1
        broadcast.publish_nowait(1)
        assert subscription.receive_nowait() == 1
        broadcast.publish_nowait(2)
    assert broadcast.subscriber_count == 0
    assert broadcast.publish_nowait(3) == 0
    with pytest.raises(trio.ClosedResourceError, match=r"^subscription was unsubscribed$"):
        subscription.receive_nowait()

    async with broadcast.subscribe(10, name="w") as other:
        assert broadcast.subscriber_count == 1
    assert broadcast.subscriber_count == 0
    with pytest.raises(trio.ClosedResourceError, match=r"^subscription 'w' was unsubscribed$"):
        await other.receive()


async def test_closed_broadcast_refuses_publish_and_subscribe() -> None:
    broadcast: Broadcast[int] = Broadcast(name="pods")
    subscription = broadcast.subscribe(10)
    broadcast.publish_nowait(1)
    broadcast.close()
    broadcast.close()
    assert await subscription.receive_batch() == [1]
    with pytest.raises(trio.EndOfChannel):
        await subscription.receive_batch()
    with pytest.raises(trio.ClosedResourceError, match=r"^broadcast 'pods' is closed$"):
        broadcast.publish_nowait(2)
    with pytest.raises(trio.ClosedResourceError, match=r"^broadcast 'pods' is closed$"):
        broadcast.subscribe(10)
    subscription.unsubscribe()  # after the broadcast closed: harmless


def test_statistics_len_and_capacity() -> None:
    subscription: Subscription[int] = Subscription(5)
    subscription.push_nowait(1)
    subscription.push_nowait(2)
    assert len(subscription) == 2
    assert subscription.pending == 2
    assert subscription.capacity == 5
    assert subscription.statistics() == SubscriptionStatistics(queued=2, capacity=5, closed=False)
    with pytest.raises(ValueError, match=r"^capacity: must be >= 1, got 0$"):
        Subscription(0)


async def test_receive_checkpoints_even_when_items_are_queued() -> None:
    subscription: Subscription[int] = Subscription(5)
    subscription.push_nowait(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await subscription.receive_batch()
    assert subscription.pending == 1


async def test_a_second_concurrent_receiver_is_refused_and_the_first_still_served() -> None:
    subscription: Subscription[int] = Subscription(10, name="kubelet")
    got: list[list[int]] = []

    async def consume() -> None:
        got.append(await subscription.receive_batch())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="another task is already receiving"):
            await subscription.receive()
        subscription.push_nowait(1)
    assert got == [[1]]


async def test_a_cancelled_receiver_frees_the_subscription() -> None:
    subscription: Subscription[int] = Subscription(10)
    with trio.move_on_after(0.01):
        await subscription.receive_batch()
    subscription.push_nowait(7)
    assert await subscription.receive_batch() == [7]
