"""Target selection (pure): names, label selectors, and Chaos Mesh's modes, drawn from
a seeded rng."""

from __future__ import annotations

import random

import pytest

from controlplane.chaos import Target, select_targets

NODES = [
    (f"node-{i}", f"node-{i}", {"zone": "a" if i <= 6 else "b", "n": str(i)}) for i in range(1, 11)
]


def pick(target: Target | None, seed: int = 1, candidates=NODES) -> tuple[str, ...]:
    return select_targets(target, candidates, random.Random(seed))


def test_one_picks_a_single_candidate_and_none_means_one():
    assert len(pick(Target(mode="one"))) == 1
    assert pick(None) == pick(Target())


def test_all_picks_every_match_sorted():
    assert pick(Target(mode="all")) == tuple(sorted(key for key, _, _ in NODES))


def test_names_and_selector_narrow_the_candidates():
    assert pick(Target(names=("node-2", "node-9", "ghost"), mode="all")) == ("node-2", "node-9")
    assert pick(Target(selector="zone=b", mode="all")) == ("node-10", "node-7", "node-8", "node-9")
    assert pick(Target(selector="zone=b,n in (7,8)", mode="all")) == ("node-7", "node-8")
    assert pick(Target(names=("node-1",), selector="zone=b", mode="all")) == ()


@pytest.mark.parametrize(
    ("mode", "value", "count"),
    [
        ("fixed", 3, 3),
        ("fixed", 30, 10),  # all when fewer match
        ("fixed-percent", 25, 2),  # 10 * 25 % = 2.5, rounded down
        ("fixed-percent", 1, 1),  # at least one
        ("fixed-percent", 100, 10),
    ],
)
def test_fixed_modes_pick_that_many(mode, value, count):
    chosen = pick(Target(mode=mode, value=value))
    assert len(chosen) == count
    assert len(set(chosen)) == count
    assert list(chosen) == sorted(chosen)


def test_random_max_percent_picks_between_one_and_the_percentage():
    counts = {len(pick(Target(mode="random-max-percent", value=50), seed=s)) for s in range(200)}
    assert counts == {1, 2, 3, 4, 5}


def test_nothing_matching_gives_no_targets_and_draws_nothing():
    rng = random.Random(4)
    state = rng.getstate()
    assert select_targets(Target(selector="zone=c"), NODES, rng) == ()
    assert rng.getstate() == state


def test_the_same_rng_state_picks_the_same_targets_whatever_the_order():
    target = Target(mode="fixed", value=4)
    shuffled = list(NODES)
    random.Random(0).shuffle(shuffled)
    assert pick(target, seed=9) == pick(target, seed=9, candidates=shuffled)
    picks = {pick(target, seed=s) for s in range(20)}
    assert len(picks) > 10  # and different seeds differ


def test_pods_match_names_within_their_namespace_key():
    pods = [
        ("default/web-0", "web-0", {"app": "web"}),
        ("default/db-0", "db-0", {"app": "db"}),
        ("other/web-0", "web-0", {"app": "web"}),
    ]
    assert pick(Target(names=("web-0",), mode="all"), candidates=pods) == (
        "default/web-0",
        "other/web-0",
    )
    assert pick(Target(selector="app=db", mode="all"), candidates=pods) == ("default/db-0",)
