"""Bounded one-to-many delivery: a :class:`Broadcast` feeding :class:`Subscription` buffers.

Producers push synchronously into each subscriber's buffer (a deque and a length check);
consumers drain everything queued in one wake-up with
:meth:`Subscription.receive_batch`. A subscriber that falls ``capacity`` items behind is
closed with :class:`Lagged` rather than allowed to grow or be silently skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import attrs
import trio

from actors.errors import Lagged

T = TypeVar("T")


@attrs.frozen
class SubscriptionStatistics:
    """What :meth:`Subscription.statistics` reports."""

    queued: int  # items waiting to be received
    capacity: int
    closed: bool  # by the producer (close, close_with, Lagged) or by unsubscribing


class Subscription(Generic[T]):
    """One consumer's bounded buffer.

    The producer side is :meth:`push_nowait`, :meth:`close` and :meth:`close_with`; the
    consumer side is :meth:`receive`, :meth:`receive_nowait`, :meth:`receive_batch` and
    ``async for``. Using it as a context manager (``with`` or ``async with``)
    unsubscribes on exit.

    Args:
      capacity: the most items it holds unconsumed; one more closes it with
        :class:`Lagged`.
      name: for error messages, e.g. which subscriber lagged.
    """

    __slots__ = ("_capacity", "_closed", "_detach", "_error", "_name", "_queue", "_waiter")

    def __init__(self, capacity: int, *, name: str | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._name = name
        self._queue: deque[T] = deque()  # never longer than capacity: push_nowait checks
        # The one consumer task parked in a receive. A bare task reference rather than a
        # ParkingLot: a single consumer is the contract, and waking it is the cost every
        # delivered event pays.
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self._error: BaseException | None = None
        self._detach: Callable[[Subscription[T]], None] | None = None

    # ----- producer side -----

    def push_nowait(self, item: T) -> bool:
        """Queue ``item``; never blocks.

        Returns True if it was queued. Returns False if the subscription is closed, or
        if it already held ``capacity`` items: then ``item`` is dropped and the
        subscription is closed with :class:`Lagged`.
        """
        if self._closed:
            return False
        queue = self._queue
        if len(queue) >= self._capacity:
            self.close_with(Lagged(self._name, self._capacity))
            return False
        queue.append(item)
        if self._waiter is not None:
            self._wake()
        return True

    def close(self) -> None:
        """Stop the stream: the consumer receives what is queued, then
        :class:`trio.EndOfChannel`. Does nothing if already closed."""
        if not self._closed:
            self._closed = True
            self._wake()

    def close_with(self, error: BaseException) -> None:
        """Fail the stream: queued items are discarded and the consumer's next receive
        raises ``error`` (and so does every one after). Does nothing if already closed."""
        if not self._closed:
            self._closed = True
            self._error = error
            self._queue.clear()
            self._wake()

    def _wake(self) -> None:
        task = self._waiter
        if task is not None:
            self._waiter = None
            trio.lowlevel.reschedule(task)

    # ----- consumer side -----

    async def _park(self) -> None:
        """Sleep until the producer pushes, closes or fails the stream."""
        if self._waiter is not None:
            raise trio.BusyResourceError(
                f"another task is already receiving from {self._describe()}"
            )
        self._waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_park)

    def _abort_park(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def receive_nowait(self) -> T:
        """Take the oldest queued item.

        Raises:
          trio.WouldBlock: if nothing is queued and the stream is open.
          trio.EndOfChannel: if it was closed and everything queued has been received.
          Lagged: if the consumer fell behind (raised at once, nothing more is
            delivered), or the error given to :meth:`close_with`.
          trio.ClosedResourceError: after :meth:`unsubscribe`.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> T:
        """Wait for the oldest queued item and take it.

        Raises what :meth:`receive_nowait` raises, except trio.WouldBlock.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            try:
                item = self.receive_nowait()
            except trio.WouldBlock:
                await self._park()  # a full checkpoint: no second one needed
                parked = True
                continue
            if not parked:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return item

    async def receive_batch(self) -> list[T]:
        """Wait until at least one item is queued, then take every queued item, oldest
        first, in a single wake-up.

        Raises what :meth:`receive_nowait` raises, except trio.WouldBlock.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while True:
            if self._error is not None:
                raise self._error.with_traceback(None)
            queue = self._queue
            if queue:
                items = list(queue)
                queue.clear()
                if not parked:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return items
            if self._closed:
                raise trio.EndOfChannel
            await self._park()  # a full checkpoint: no second one needed
            parked = True

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def unsubscribe(self) -> None:
        """Detach from the broadcast and close the consumer's end: queued items are
        discarded and receiving raises trio.ClosedResourceError. Idempotent."""
        if self._detach is not None:
            self._detach(self)
            self._detach = None
        self._closed = True
        self._error = trio.ClosedResourceError(f"{self._describe()} was unsubscribed")
        self._queue.clear()
        self._wake()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unsubscribe()

    async def __aenter__(self) -> Subscription[T]:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unsubscribe()
        await trio.lowlevel.checkpoint()

    # ----- introspection -----

    @property
    def capacity(self) -> int:
        """The most items it holds unconsumed."""
        return self._capacity

    @property
    def pending(self) -> int:
        """Items queued and not yet received."""
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def statistics(self) -> SubscriptionStatistics:
        """A snapshot of the buffer."""
        return SubscriptionStatistics(
            queued=len(self._queue), capacity=self._capacity, closed=self._closed
        )

    def _describe(self) -> str:
        return "subscription" if self._name is None else f"subscription {self._name!r}"

    def __repr__(self) -> str:
        return f"<{self._describe()} {len(self._queue)}/{self._capacity}>"


class Broadcast(Generic[T]):
    """Delivers every published item to every subscriber, in order, without blocking.

    Each subscriber has its own bounded buffer; one that falls behind is closed with
    :class:`Lagged` and dropped, and the others carry on unaffected. Publishing costs one
    append per subscriber, so route items to the subscribers that care rather than
    broadcasting everything to everyone.
    """

    __slots__ = ("_closed", "_name", "_subscribers")

    def __init__(self, *, name: str | None = None) -> None:
        self._name = name
        # Insertion-ordered, so delivery order across subscribers is deterministic.
        self._subscribers: dict[Subscription[T], None] = {}
        self._closed = False

    def subscribe(self, capacity: int, *, name: str | None = None) -> Subscription[T]:
        """A new subscription receiving every item published from now on.

        Args:
          capacity: the most items it may fall behind before it is closed with
            :class:`Lagged`.
          name: for error messages.

        Raises:
          trio.ClosedResourceError: if the broadcast was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"{self._describe()} is closed")
        subscription: Subscription[T] = Subscription(capacity, name=name)
        subscription._detach = self._discard
        self._subscribers[subscription] = None
        return subscription

    def publish_nowait(self, item: T) -> int:
        """Queue ``item`` for every subscriber; never blocks.

        Subscribers that lag are closed with :class:`Lagged` and dropped. Returns how
        many subscribers it was queued for.

        Raises:
          trio.ClosedResourceError: if the broadcast was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"{self._describe()} is closed")
        delivered = 0
        dropped: list[Subscription[T]] | None = None
        for subscription in self._subscribers:
            if subscription.push_nowait(item):
                delivered += 1
            elif dropped is None:
                dropped = [subscription]
            else:
                dropped.append(subscription)
        if dropped is not None:
            for subscription in dropped:
                self._discard(subscription)
        return delivered

    def close(self) -> None:
        """Close every subscription (each drains, then gets trio.EndOfChannel) and refuse
        new ones. Idempotent."""
        self._closed = True
        subscribers, self._subscribers = self._subscribers, {}
        for subscription in subscribers:
            subscription._detach = None
            subscription.close()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are attached."""
        return len(self._subscribers)

    def _discard(self, subscription: Subscription[T]) -> None:
        subscription._detach = None
        self._subscribers.pop(subscription, None)

    def _describe(self) -> str:
        return "broadcast" if self._name is None else f"broadcast {self._name!r}"
