"""Fault points for chaos scripts: ``cluster.chaos``.

Control-plane faults no real chaos tool offers (RELIABILITY.md): make the store fail or
slow down a fraction of requests, force every watcher to re-watch, force every watcher to
re-list. Node and network faults join in later issues.
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane.store import Store

__all__ = ["Chaos"]


@attrs.define(eq=False)
class Chaos:
    store: Store
    supervisor: Any

    def compact(self) -> None:
        """Drop all retained watch history now: watches resuming from an older revision
        get ``Gone`` and must re-list."""
        self.store.compact()

    def close_watches(self) -> None:
        """End every open watch: clients must re-watch (from their last revision)."""
        self.store.close_watches()

    def store_fault(
        self,
        *,
        kind: str | type[Any] | None = None,
        verb: str | None = None,
        error: type[Exception] | None = None,
        latency: float | None = None,
        fraction: float = 1.0,
    ) -> Any:
        """Make a ``fraction`` of matching store requests fail with ``error``
        (``errors.TooManyRequests`` or ``errors.Timeout``) and/or take ``latency`` more
        virtual seconds. ``kind``/``verb`` of None match all. Returns a handle whose
        ``remove()`` lifts the fault; ``self.store.faults.clear()`` lifts all."""
        return self.store.faults.inject(
            kind=kind, verb=verb, error=error, latency=latency, fraction=fraction
        )
