from __future__ import annotations

import random

import pytest
from store_helpers import make_namespace

from controlplane.store import Store


@pytest.fixture
async def store() -> Store:
    s = Store(random.Random(7))
    await s.create(make_namespace("default"))
    return s
