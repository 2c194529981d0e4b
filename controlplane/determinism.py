"""Seeding trio's own scheduler so a run replays exactly.

trio shuffles each batch of runnable tasks with a module-level ``random.Random`` (``_r`` in
``trio._core._run``). With the private flag ``_ALLOW_DETERMINISTIC_SCHEDULING`` set it
sorts the batch by task creation order and shuffles it with ``_r``, so seeding ``_r``
makes the interleaving of tasks a function of the seed. These are private names: they are
used only here, the trio version range is pinned in pyproject.toml, and
``tests/controlplane/test_determinism.py`` fails if a trio upgrade breaks the replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from trio._core import _run as _trio_run


@contextmanager
def seeded_scheduler(seed: int | str) -> Iterator[None]:
    """Make trio's task scheduling a function of ``seed`` for the duration of the block.

    The scheduler RNG's state and the flag are restored on exit, so a test that opens one
    cluster after another (or hypothesis, which also seeds this RNG) is not disturbed.
    """
    saved_flag = _trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    saved_state = _trio_run._r.getstate()
    _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    _trio_run._r.seed(f"{seed}:sched")
    try:
        yield
    finally:
        _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = saved_flag  # type: ignore[misc]
        _trio_run._r.setstate(saved_state)
