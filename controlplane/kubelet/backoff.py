"""Per-container back-off for restarts (CrashLoopBackOff) and image pulls (ImagePullBackOff).

Kubernetes restarts a container that exited the first time at once, then waits 10 s,
20 s, 40 s ... up to 300 s between restarts, and starts over once a container ran for
10 minutes. Image pulls back off the same way (10 s doubling to 300 s). These are pure
values: the kubelet keeps one per container in memory (a restarted kubelet forgets them,
as the real one does) and asks them when a start is allowed.
"""

from __future__ import annotations

import attrs

__all__ = [
    "CRASH_BACKOFF_INITIAL",
    "CRASH_BACKOFF_MAX",
    "CRASH_BACKOFF_RESET",
    "IMAGE_BACKOFF_INITIAL",
    "IMAGE_BACKOFF_MAX",
    "BackoffEntry",
    "next_crash_backoff",
    "next_image_backoff",
]

CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_MAX = 300.0
#: A container that ran this long before exiting restarts at once, back-off forgotten.
CRASH_BACKOFF_RESET = 600.0
IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_MAX = 300.0


@attrs.frozen
class BackoffEntry:
    """One wait: ``delay`` seconds, no new attempt before trio time ``until``.

    ``cause`` names what the wait is for (the exited container's id for restarts), so
    the entry is computed once per exit however often the pod is synced.
    """

    delay: float
    until: float
    cause: str = ""


def next_crash_backoff(
    previous: BackoffEntry | None,
    *,
    container_id: str,
    started_at: float | None,
    finished_at: float,
) -> BackoffEntry:
    """The wait before restarting the container ``container_id`` that ran from
    ``started_at`` and exited at ``finished_at``.

    The first exit, or an exit after 10 minutes running, restarts at once (delay 0);
    each later exit waits 10 s, 20 s, 40 s ... up to 300 s from the exit.
    """
    if previous is not None and previous.cause == container_id:
        return previous
    ran_for = finished_at - started_at if started_at is not None else 0.0
    if previous is None or ran_for >= CRASH_BACKOFF_RESET:
        delay = 0.0
    elif previous.delay == 0:
        delay = CRASH_BACKOFF_INITIAL
    else:
        delay = min(previous.delay * 2, CRASH_BACKOFF_MAX)
    return BackoffEntry(delay, finished_at + delay, container_id)


def next_image_backoff(previous: BackoffEntry | None, *, failed_at: float) -> BackoffEntry:
    """The wait after an image pull failed at ``failed_at``: 10 s, then doubling up to
    300 s; no pull before ``until``."""
    if previous is None:
        delay = IMAGE_BACKOFF_INITIAL
    else:
        delay = min(previous.delay * 2, IMAGE_BACKOFF_MAX)
    return BackoffEntry(delay, failed_at + delay)
