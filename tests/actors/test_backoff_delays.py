"""Backoff: the pure delay sequence."""

from __future__ import annotations

import pytest

from actors import Backoff


def test_delays_grow_and_cap() -> None:
    backoff = Backoff(initial=10, factor=2, maximum=300, reset_after=600)
    delays = []
    delay = None
    for _ in range(7):
        delay = backoff.next_delay(delay, ran_for=0)
        delays.append(delay)
    assert delays == [10, 20, 40, 80, 160, 300, 300]


@pytest.mark.parametrize(
    ("previous", "ran_for", "expected"),
    [(None, 0, 1), (4, 0, 4), (2, 9.9, 4), (4, 10, 1), (4, 100, 1)],
)
def test_reset_after_a_long_run(previous: float | None, ran_for: float, expected: float) -> None:
    backoff = Backoff(initial=1, factor=2, maximum=4, reset_after=10)
    assert backoff.next_delay(previous, ran_for) == expected


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^initial: must be > 0, got 0$"):
        Backoff(initial=0)
