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


@pytest.fixture
async def cluster(request: pytest.FixtureRequest, autojump_clock: Any) -> AsyncIterator[Any]:
    """A running 3-node kubetrio cluster in virtual time."""
    from controlplane.cluster import open_cluster

    async with open_cluster(nodes=3, seed=request.config.getoption("--kubetrio-seed")) as c:
        yield c
