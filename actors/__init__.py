"""Generic actor kit: supervision, bounded broadcast, backoff and quiescence tracking.

Nothing here knows about the control plane built on top of it.
"""

from actors.backoff import Backoff
from actors.broadcast import Broadcast, Subscription, SubscriptionStatistics
from actors.errors import (
    ActorError,
    ChildStoppedWhileStarting,
    DuplicateChild,
    Lagged,
    NoSuchChild,
    RestartIntensityExceeded,
)
from actors.supervisor import (
    ChildFn,
    ChildInfo,
    ChildState,
    Restart,
    Supervisor,
    open_supervisor,
)
from actors.work_tracker import WorkTracker

__all__ = [
    "ActorError",
    "Backoff",
    "Broadcast",
    "ChildFn",
    "ChildInfo",
    "ChildState",
    "ChildStoppedWhileStarting",
    "DuplicateChild",
    "Lagged",
    "NoSuchChild",
    "Restart",
    "RestartIntensityExceeded",
    "Subscription",
    "SubscriptionStatistics",
    "Supervisor",
    "WorkTracker",
    "open_supervisor",
]
