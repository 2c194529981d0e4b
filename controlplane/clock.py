"""Virtual wall-clock time for object timestamps.

Timestamps on objects (creationTimestamp, lastTransitionTime, Lease renewTime) are trio
time plus a fixed epoch, so under ``MockClock`` they are as virtual and reproducible as
everything else. Nothing in the core reads the real wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

#: trio time 0 is this instant. Fixed so that the same run gives the same timestamps.
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def to_wall(t: float) -> datetime:
    """The wall-clock instant for trio time ``t``, truncated to whole seconds like
    Kubernetes' ``metav1.Time``."""
    return EPOCH + timedelta(seconds=int(t))


def precise_wall(t: float) -> datetime:
    """The wall-clock instant for trio time ``t``, not truncated (``time.Now()`` in Go,
    for comparisons with truncated timestamps)."""
    return EPOCH + timedelta(seconds=t)


def wall_now() -> datetime:
    """The current virtual wall-clock time (whole seconds). Must run inside trio."""
    return to_wall(trio.current_time())
