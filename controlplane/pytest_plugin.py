"""The pytest plugin installed with kubetrio (entry point ``pytest11``).

Gives every pytest-trio test a ``cluster`` fixture: a 3-node in-process cluster in
virtual time (pytest-trio's ``autojump_clock``), so ``await cluster.wait_for(...)`` over
simulated minutes returns in milliseconds. Seed it with ``--kubetrio-seed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kubetrio-seed", type=int, default=0, help="seed of the `cluster` fixture")


def _run_in_virtual_time(fn: Any, *, clock: Any = None, instruments: Any = ()) -> Any:
    """``trio.run`` with an autojumping MockClock unless the test brought its own clock."""
    import trio
    import trio.testing

    clock = clock if clock is not None else trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock=clock, instruments=instruments)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using the ``cluster`` fixture run in virtual time.

    pytest-trio hands ``trio.run`` only the clocks among the *test function's own*
    arguments, so the ``autojump_clock`` the fixture depends on would be ignored and a
    test sleeping 300 s would sleep for real. A ``trio`` marker placed first, with a run
    function that supplies the clock, fixes that for every such test.
    """
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trio(run=_run_in_virtual_time), append=False)


@pytest.fixture
async def cluster(request: pytest.FixtureRequest, autojump_clock: Any) -> AsyncIterator[Any]:
    """A running 3-node kubetrio cluster in virtual time."""
    from controlplane.cluster import open_cluster

    async with open_cluster(nodes=3, seed=request.config.getoption("--kubetrio-seed")) as c:
        yield c
