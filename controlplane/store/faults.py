"""Fault points for chaos: make store requests fail or slow down, reproducibly.

``store.faults.inject(kind="Pod", verb="create", error=errors.TooManyRequests,
fraction=0.5)`` makes half of the pod creates fail with 429; ``latency=2.0`` delays the
matching requests by two (virtual) seconds before they run. Draws come from the random
stream the store was given for faults, so a seed replays the same failures. With no
fault injected the check costs one attribute test per request.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import trio

from controlplane import errors

__all__ = ["VERBS", "Fault", "FaultHandle", "Faults"]

VERBS = frozenset(
    {"create", "get", "list", "update", "update_status", "delete", "watch", "finalize", "bind"}
)


@attrs.frozen
class Fault:
    kind: str | None
    verb: str | None
    error: type[errors.ApiError] | None
    latency: float | None
    fraction: float

    def matches(self, verb: str, kind: str) -> bool:
        return (self.verb is None or self.verb == verb) and (self.kind is None or self.kind == kind)


class FaultHandle:
    """Returned by :meth:`Faults.inject`; :meth:`remove` takes the fault out again."""

    def __init__(self, faults: Faults, fault: Fault) -> None:
        self._faults = faults
        self.fault = fault

    def remove(self) -> None:
        """Remove this fault (no-op if it was already removed or cleared)."""
        self._faults._remove(self)


class Faults:
    """The store's fault points. ``active`` is false while none is injected."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._handles: list[FaultHandle] = []
        self.active = False

    def inject(
        self,
        *,
        kind: str | type[Any] | None = None,
        verb: str | None = None,
        error: type[errors.ApiError] | None = None,
        latency: float | None = None,
        fraction: float = 1.0,
    ) -> FaultHandle:
        """Make matching requests (``None`` matches any kind / verb) fail or wait.

        Each matching request draws once per fault: with probability ``fraction`` it
        first sleeps ``latency`` seconds (trio time) and then raises ``error``, whose
        message names the verb, kind and object.

        Raises:
            ValueError: an unknown verb, a fraction outside 0..1, or neither error nor
                latency given.
        """
        if verb is not None and verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; expected one of {sorted(VERBS)}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within 0..1, not {fraction}")
        if error is None and not latency:
            raise ValueError("a fault needs an error, a latency or both")
        if isinstance(kind, type):
            kind = kind.kind  # type: ignore[attr-defined]
        handle = FaultHandle(self, Fault(kind, verb, error, latency, fraction))
        self._handles.append(handle)
        self.active = True
        return handle

    def clear(self) -> None:
        """Remove every fault."""
        self._handles.clear()
        self.active = False

    def _remove(self, handle: FaultHandle) -> None:
        if handle in self._handles:
            self._handles.remove(handle)
        self.active = bool(self._handles)

    async def hit(
        self, verb: str, kind: str, plural: str, name: str = "", namespace: str = ""
    ) -> None:
        """Apply the matching faults to one request. Checkpoints exactly once."""
        latency = 0.0
        error: type[errors.ApiError] | None = None
        for handle in tuple(self._handles):
            fault = handle.fault
            if not fault.matches(verb, kind):
                continue
            if fault.fraction < 1.0 and self._rng.random() >= fault.fraction:
                continue
            if fault.latency:
                latency += fault.latency
            if error is None and fault.error is not None:
                error = fault.error
        if latency:
            await trio.sleep(latency)
        else:
            await trio.lowlevel.checkpoint()
        if error is not None:
            target = f'{plural} "{name}"' if name else plural
            where = f' in namespace "{namespace}"' if namespace else ""
            raise error(
                f"injected fault: {verb} {target}{where}: {error.reason}",
                kind=kind,
                namespace=namespace,
                name=name,
            )
