"""Age-based compaction must expire a change exactly at the deadline it reports."""

import trio
import trio.testing

from controlplane.store.history import Change, History


def test_a_change_expires_at_the_deadline_expire_reported() -> None:
    history = History(limit=10, max_age=300)
    history.append(Change(1, "ADDED", "Pod", None, object(), 1.13))
    deadline = history.expire(1.13)
    assert deadline == 1.13 + 300
    # (1.13 + 300) - 300 == 1.1299999999999955: comparing against now - max_age would
    # keep the change and report the same, already past, deadline forever.
    assert history.expire(deadline) is None
    assert len(history) == 0 and history.floor == 1


async def test_store_runs_past_the_history_age_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import random

    from controlplane.api.core import Namespace
    from controlplane.api.meta import ObjectMeta
    from controlplane.store import Store

    store = Store(random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await trio.sleep(1.13)
        await store.create(Namespace(metadata=ObjectMeta(name="a")))
        with trio.fail_after(1000):  # virtual: a spinning expiry loop never gets here
            await trio.sleep(store._history.max_age + 10)
        assert len(store._history) == 0
        nursery.cancel_scope.cancel()
