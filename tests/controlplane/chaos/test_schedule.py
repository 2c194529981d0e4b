"""Schedules as data: YAML round trips, validation errors naming the entry, the
generator's determinism."""

from __future__ import annotations

import re

import pytest

from controlplane.chaos import (
    DEFAULT_MIX,
    KIND_SPECS,
    Fault,
    Schedule,
    ScheduleError,
    Target,
    generate_schedule,
)

EXAMPLE = """\
seed: 7
duration: 600
faults:
- at: 30
  kind: node-crash
  duration: 60
  target: {mode: one}
- at: 45
  kind: probe-failure
  target: {namespace: default, selector: app=web, mode: fixed, value: 2}
  params: {probe: readiness}
  duration: 30
- at: 50
  kind: network-partition
  target: {names: [node-1, node-2], mode: all}
  params: {direction: to, peers: [node-3]}
- at: 600
  kind: heal-all
"""


def test_a_schedule_loads_from_yaml():
    schedule = Schedule.from_yaml(EXAMPLE)
    assert schedule.seed == 7
    assert schedule.duration == 600.0
    crash, probe, partition, heal = schedule.faults
    assert crash == Fault(at=30.0, kind="node-crash", target=Target(), duration=60.0)
    assert probe.target == Target(namespace="default", selector="app=web", mode="fixed", value=2)
    assert probe.params == {"probe": "readiness"}
    assert partition.params["peers"] == ("node-3",)
    assert partition.target.names == ("node-1", "node-2")
    assert heal == Fault(at=600.0, kind="heal-all")


def test_a_schedule_round_trips_through_yaml_exactly():
    schedule = Schedule.from_yaml(EXAMPLE)
    text = schedule.to_yaml()
    again = Schedule.from_yaml(text)
    assert again == schedule
    assert again.to_yaml() == text
    hash(again.faults)  # frozen all the way down


def test_a_generated_schedule_round_trips_through_yaml_exactly():
    schedule = generate_schedule(seed=3, duration=3600, intensity=4)
    assert Schedule.from_yaml(schedule.to_yaml()) == schedule


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            "{at: 1, kind: explode}",
            "faults[1].kind: unknown fault kind 'explode'; known: " + ", ".join(KIND_SPECS),
        ),
        ("{at: -5, kind: compact}", "faults[1].at: must be >= 0, got -5.0"),
        (
            "{at: 1, kind: node-crash, duration: -5}",
            "faults[1].duration: must be >= 0, got -5.0",
        ),
        (
            "{at: 1, kind: container-kill, duration: 5, target: {namespace: default}}",
            "faults[1].duration: container-kill is instant and takes no duration",
        ),
        ("{kind: compact}", "faults[1].at: required"),
        ("{at: 1}", "faults[1].kind: required"),
        ("{at: soon, kind: compact}", "faults[1].at: must be a number, got 'soon'"),
        (
            "{at: 1, kind: compact, when: 2}",
            "faults[1].when: unknown field; known: at, kind, target, params, duration",
        ),
        (
            "{at: 1, kind: network-loss, params: {fraction: 1.5}}",
            "faults[1].params.fraction: must be <= 1, got 1.5",
        ),
        (
            "{at: 1, kind: network-loss, params: {}}",
            "faults[1].params.fraction: required by network-loss",
        ),
        (
            "{at: 1, kind: network-loss, params: {fraction: 0.5, colour: red}}",
            "faults[1].params.colour: unknown parameter of network-loss;"
            " known: fraction, direction, peers",
        ),
        (
            "{at: 1, kind: store-errors, params: {error: Teapot}}",
            "faults[1].params.error: must be one of TooManyRequests, Timeout; got 'Teapot'",
        ),
        (
            "{at: 1, kind: store-latency, params: {latency: 0}}",
            "faults[1].params.latency: must be > 0, got 0",
        ),
        (
            "{at: 1, kind: image-pull-failure, params: {image: 5}}",
            "faults[1].params.image: must be a string, got 5",
        ),
        (
            "{at: 1, kind: compact, target: {mode: all}}",
            "faults[1].target: compact takes no target",
        ),
        (
            "{at: 1, kind: container-kill}",
            "faults[1].target: container-kill needs a target (namespace, selector or names)",
        ),
        (
            "{at: 1, kind: node-crash, target: {namespace: default}}",
            "faults[1].target.namespace: node-crash acts on nodes; a namespace selects pods",
        ),
        (
            "{at: 1, kind: node-crash, target: {mode: some}}",
            "faults[1].target.mode: unknown mode 'some'; known: one, all, fixed, fixed-percent,"
            " random-max-percent",
        ),
        (
            "{at: 1, kind: node-crash, target: {mode: fixed}}",
            "faults[1].target.value: mode fixed needs an integer, got None",
        ),
        (
            "{at: 1, kind: node-crash, target: {mode: fixed, value: 0}}",
            "faults[1].target.value: must be >= 1, got 0",
        ),
        (
            "{at: 1, kind: node-crash, target: {mode: fixed-percent, value: 150}}",
            "faults[1].target.value: must be a percentage in 1..100, got 150",
        ),
        (
            "{at: 1, kind: node-crash, target: {mode: all, value: 3}}",
            "faults[1].target.value: mode all takes no value",
        ),
        (
            "{at: 1, kind: node-crash, target: {names: node-1}}",
            "faults[1].target.names: must be a list of names, got 'node-1'",
        ),
        (
            "{at: 1, kind: node-crash, target: {selector: 'a in (b'}}",
            'faults[1].target.selector: invalid label selector "a in (b": ',
        ),
    ],
)
def test_bad_faults_are_named_by_entry_and_field(fault: str, message: str):
    text = f"faults:\n- {{at: 0, kind: compact}}\n- {fault}\n"
    with pytest.raises(ScheduleError, match="^" + re.escape(message)):
        Schedule.from_yaml(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("faults: [", "invalid YAML: "),
        ("- 1\n- 2\n", "schedule: must be a mapping with 'faults', got [1, 2]"),
        ("faults: 3\n", "faults: must be a list, got 3"),
        ("faults: []\nspeed: 3\n", "schedule.speed: unknown field; known: seed, duration, faults"),
        ("faults: []\nduration: -1\n", "duration: must be a number >= 0, got -1"),
        ("faults: []\nseed: x\n", "seed: must be an integer, got 'x'"),
        ("faults: [3]\n", "faults[0]: must be a mapping, got 3"),
    ],
)
def test_malformed_schedule_files_are_rejected(text: str, message: str):
    with pytest.raises(ScheduleError, match="^" + re.escape(message)):
        Schedule.from_yaml(text)


def test_validate_checks_schedules_built_in_code():
    bad = Schedule(faults=(Fault(at=1.0, kind="node-crash", duration=-1.0),))
    with pytest.raises(ScheduleError, match=r"^faults\[0\]\.duration: must be >= 0, got -1\.0$"):
        bad.validate()


def test_same_seed_same_schedule_and_another_seed_another():
    one = generate_schedule(seed=1, duration=1800, intensity=2)
    assert generate_schedule(seed=1, duration=1800, intensity=2) == one
    assert generate_schedule(seed=2, duration=1800, intensity=2) != one


def test_a_generated_schedule_is_valid_and_ends_with_heal_all():
    schedule = generate_schedule(seed=5, duration=3600, intensity=3)
    schedule.validate()
    *faults, last = schedule.faults
    assert last == Fault(at=3600.0, kind="heal-all")
    assert schedule.seed == 5 and schedule.duration == 3600.0
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert all(0 < f.at < 3600 for f in faults)
    # about 3 a minute (Poisson): 180 expected
    assert 120 < len(faults) < 240
    assert {f.kind for f in faults} == set(DEFAULT_MIX)
    for f in faults:
        if KIND_SPECS[f.kind].instant:
            assert f.duration is None
        else:
            assert 10 <= f.duration <= 120


def test_the_mix_weights_the_kinds():
    schedule = generate_schedule(
        seed=1, duration=3600, intensity=5, mix={"node-crash": 1, "compact": 0, "clock-skew": 3}
    )
    kinds = [f.kind for f in schedule.faults[:-1]]
    assert set(kinds) == {"node-crash", "clock-skew"}
    assert kinds.count("clock-skew") > 2 * kinds.count("node-crash")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mix": {"explode": 1}}, "mix.explode: unknown fault kind; known: "),
        ({"mix": {"heal-all": 1}}, "mix.heal-all: not generated: it ends every schedule"),
        ({"mix": {"compact": -1}}, "mix.compact: weight must be >= 0, got -1"),
        ({"mix": {"compact": 0}}, "mix: at least one kind needs a positive weight"),
        ({"intensity": 0}, "intensity: must be > 0 faults per minute, got 0"),
        ({"duration": -1}, "duration: must be >= 0, got -1"),
    ],
)
def test_bad_generator_arguments(kwargs, message):
    arguments = {"seed": 1, "duration": 60, **kwargs}
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        generate_schedule(**arguments)
