"""Exponential backoff as a pure value: no sleeping here, callers sleep."""

from __future__ import annotations

import attrs


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: must be > 0, got {value!r}")


@attrs.frozen
class Backoff:
    """Delays that start at ``initial``, grow by ``factor`` and stop at ``maximum``.

    The sequence starts over at ``initial`` once the thing being retried has run for at
    least ``reset_after`` seconds. For example ``Backoff(initial=10, factor=2, maximum=300,
    reset_after=600)`` waits 10, 20, 40 ... 300 s, and starts over after 10 minutes up.
    """

    initial: float = attrs.field(default=0.1, validator=_positive)
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    maximum: float = attrs.field(default=10.0, validator=_positive)
    reset_after: float = attrs.field(default=10.0, validator=_positive)

    def next_delay(self, previous: float | None, ran_for: float) -> float:
        """The delay before the next attempt.

        Args:
          previous: the delay used before the attempt that just ended, or ``None`` if
            there was none.
          ran_for: how long that attempt ran, in seconds.
        """
        if previous is None or ran_for >= self.reset_after:
            return min(self.initial, self.maximum)
        return min(previous * self.factor, self.maximum)
