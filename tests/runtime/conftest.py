"""Fixtures for the fake engine."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from runtime_world import World


@pytest.fixture
async def world(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> World:
    w = World()
    await nursery.start(w.timers.run)
    for runtime in w.runtimes.values():
        await nursery.start(runtime.run)
    return w
