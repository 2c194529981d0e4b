"""The actor kit's exceptions: one root, :class:`ActorError`."""

from __future__ import annotations


class ActorError(Exception):
    """Root of every error the actor kit raises on purpose."""


class NoSuchChild(ActorError, KeyError):
    """A supervisor has no child with this name.

    Also a :class:`KeyError`, so ``except KeyError`` keeps working.
    """

    def __init__(self, child: str, supervisor: str) -> None:
        super().__init__(child, supervisor)
        self.child = child
        self.supervisor = supervisor

    def __str__(self) -> str:
        return f"supervisor {self.supervisor!r}: no such child {self.child!r}"


class DuplicateChild(ActorError):
    """A supervisor already has a child with this name (running or not)."""

    def __init__(self, child: str, supervisor: str) -> None:
        super().__init__(child, supervisor)
        self.child = child
        self.supervisor = supervisor

    def __str__(self) -> str:
        return f"supervisor {self.supervisor!r}: child {self.child!r} already exists"


class ChildStoppedWhileStarting(ActorError):
    """A child was stopped (by :meth:`~actors.Supervisor.stop_child`, a kill, or another
    restart) before it called ``task_status.started()``, so the start that was waiting for
    it has nothing to return. Two restarts of one child racing end this way for the
    first: the second one wins."""

    def __init__(self, child: str, supervisor: str) -> None:
        super().__init__(child, supervisor)
        self.child = child
        self.supervisor = supervisor

    def __str__(self) -> str:
        return f"supervisor {self.supervisor!r}: child {self.child!r} was stopped while starting"


class RestartIntensityExceeded(ActorError):
    """Children of a supervisor crashed more often than its restart intensity allows.

    ``child`` is the child whose crash crossed the limit; the crash itself is the
    ``__cause__`` (``None`` when a permanent child returned normally).
    """

    def __init__(self, child: str, supervisor: str, max_restarts: int, max_seconds: float):
        super().__init__(child, supervisor, max_restarts, max_seconds)
        self.child = child
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds

    def __str__(self) -> str:
        return (
            f"supervisor {self.supervisor!r}: more than {self.max_restarts} restarts "
            f"in {self.max_seconds:g}s, last by child {self.child!r}; giving up"
        )


class Lagged(ActorError):
    """A subscriber fell too far behind its producer and was closed.

    Its buffer already held ``capacity`` unconsumed items when one more arrived, so it is
    ``capacity + 1`` items behind. ``subscription`` is its name, or ``None``.
    """

    def __init__(self, subscription: str | None, capacity: int) -> None:
        super().__init__(subscription, capacity)
        self.subscription = subscription
        self.capacity = capacity

    def __str__(self) -> str:
        who = "subscription" if self.subscription is None else f"subscription {self.subscription!r}"
        return f"{who} lagged: {self.capacity + 1} items behind, capacity {self.capacity}"
