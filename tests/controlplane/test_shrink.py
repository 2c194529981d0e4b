"""Delta debugging (ddmin): the pure shrinker behind ``kubetrio chaos run --shrink``."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.shrink import ddmin


def contains(*needed: int):
    calls: list[tuple[int, ...]] = []

    def fails(items) -> bool:
        calls.append(tuple(items))
        return all(n in items for n in needed)

    return fails, calls


def test_one_culprit_among_many_is_found():
    fails, calls = contains(13)
    result = ddmin(list(range(40)), fails)
    assert result.items == (13,)
    assert not result.exhausted
    assert result.tests == len(calls) < 40  # far fewer runs than one per fault


def test_an_interaction_of_two_faults_keeps_both_in_order():
    fails, _ = contains(31, 4)
    assert ddmin(list(range(50)), fails).items == (4, 31)


def test_each_distinct_subset_is_run_once():
    fails, calls = contains(3, 9, 17)
    ddmin(list(range(24)), fails)
    assert len(calls) == len(set(calls))


def test_a_run_failing_without_any_fault_shrinks_to_nothing():
    result = ddmin(["a", "b", "c"], lambda items: True)
    assert result.items == () and result.tests == 1


def test_empty_and_single_inputs():
    assert ddmin([], lambda items: True).items == ()
    fails, _ = contains(1)
    assert ddmin([1], fails).items == (1,)


def test_the_budget_stops_early_with_the_best_so_far():
    fails, calls = contains(5, 30)
    result = ddmin(list(range(64)), fails, max_tests=3)
    assert result.exhausted and result.tests == 3 == len(calls)
    assert 5 in result.items and 30 in result.items  # still a failing subset


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match=r"^max_tests: must be >= 0, got -1$"):
        ddmin([1], lambda items: True, max_tests=-1)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=24),
    needed=st.sets(st.integers(min_value=0, max_value=23), min_size=1, max_size=4),
)
def test_the_result_fails_and_is_one_minimal(n, needed):
    needed = {x for x in needed if x < n} or {0}

    def fails(items) -> bool:
        return needed <= set(items)

    result = ddmin(list(range(n)), fails)
    assert fails(result.items)
    assert list(result.items) == sorted(result.items)  # order kept
    for i in range(len(result.items)):  # removing any one item makes it pass
        assert not fails(result.items[:i] + result.items[i + 1 :])


def test_a_non_monotone_predicate_still_ends_with_a_failing_subset():
    # fails when the count of odd items is odd: removing things can flip it back
    def fails(items) -> bool:
        return sum(1 for x in items if x % 2) % 2 == 1

    items = list(range(1, 12, 2))[:5]
    result = ddmin(items, fails)
    assert fails(result.items)
    assert len(result.items) == 1
    for combo in itertools.combinations(result.items, len(result.items) - 1):
        assert not fails(combo)
