"""Declarative programs and the image registry (pure, no trio run)."""

from __future__ import annotations

import random

import pytest

from runtime.images import (
    DEFAULT_PULL_SECONDS,
    PULL_JITTER,
    Registry,
    normalize_image,
)
from runtime.programs import DEFAULT_PROGRAM, MAX_LOG_LINES, Curve, MiB, Program, Timeline


def test_curve_is_a_step_function() -> None:
    curve = Curve([(0, 10), (30, 200), (60, 50)])
    assert [curve.at(t) for t in (0, 29.9, 30, 59, 60, 1e6)] == [10, 10, 200, 200, 50, 50]
    assert Curve([(5, 1)]).at(1) == 0.0
    assert curve.first_above(100) == 30
    assert curve.first_above(200) is None
    with pytest.raises(ValueError, match=r"^curve points must be in time order"):
        Curve([(5, 1), (1, 2)])


def test_program_health_from_elapsed_time() -> None:
    program = Program(ready_after=5, started_after=2, live_for=60)
    assert program.check("ready", 4.9) == (False, "not ready until 5s after start")
    assert program.check("ready", 5) == (True, "")
    assert program.check("started", 2)[0] is True
    assert program.check("live", 59.9)[0] is True
    assert program.check("live", 60) == (False, "liveness failing since 60s after start")
    with pytest.raises(ValueError, match=r"^probe: must be"):
        program.check("healthy", 0)


def test_program_oom_and_usage() -> None:
    program = Program(cpu=0.5, memory=Curve([(0, 10 * MiB), (20, 300 * MiB)]))
    assert program.usage_at(10) == (0.5, 10 * MiB)
    assert program.oom_at(256 * MiB) == 20
    assert program.oom_at(None) is None
    assert Program(memory=300 * MiB).oom_at(256 * MiB) == 0.0


def test_loop_logs_keep_only_the_most_recent_lines() -> None:
    timeline = Timeline(lines=((0.0, "boot"),), loop_lines=((0.0, "tick"),), loop_period=1.0)
    lines = timeline.lines_until(10 * MAX_LOG_LINES)
    assert len(lines) == MAX_LOG_LINES
    assert set(lines) == {"tick"}


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("nginx", "nginx:latest"),
        ("docker.io/library/nginx:latest", "nginx:latest"),
        ("nginx:1.25", "nginx:1.25"),
        ("registry:5000/team/app", "registry:5000/team/app:latest"),
        ("app@sha256:abc", "app@sha256:abc"),
    ],
)
def test_normalize_image(given: str, canonical: str) -> None:
    assert normalize_image(given) == canonical


def test_pull_durations_have_seeded_jitter() -> None:
    registry = Registry()
    registry.mark_slow("big", 30)
    durations = [registry.pull_duration("anything", random.Random(3)) for _ in range(2)]
    assert durations[0] == durations[1]  # same seed, same draw
    spread = [registry.pull_duration("x", random.Random(i)) for i in range(50)]
    low, high = DEFAULT_PULL_SECONDS * (1 - PULL_JITTER), DEFAULT_PULL_SECONDS * (1 + PULL_JITTER)
    assert all(low <= d <= high for d in spread)
    assert len(set(spread)) > 40
    assert 24 <= registry.pull_duration("big:latest", random.Random(0)) <= 36


def test_registry_configuration() -> None:
    registry = Registry()
    custom = Program(ready_after=3)
    registry.add("shop", pull_seconds=2, program=custom)
    registry.mark_missing("ghost")
    assert registry.spec("docker.io/library/shop:latest").program is custom
    assert registry.spec("shop").pull_seconds == 2
    assert registry.spec("ghost").missing
    assert registry.spec("unknown").program is DEFAULT_PROGRAM
    with pytest.raises(ValueError, match=r"^seconds: must be >= 0"):
        registry.mark_slow("x", -1)


def test_program_for_shares_compiled_programs() -> None:
    registry = Registry()
    registry.add("shop", program=Program(ready_after=3))
    one = registry.program_for("busybox", ("sh", "-c"), ("sleep 5",), {"POD_NAME": "a"})
    two = registry.program_for("busybox", ("sh", "-c"), ("sleep 5",), {"POD_NAME": "b"})
    assert one is two  # env not read by the script: shared
    hi_a = registry.program_for("busybox", ("sh", "-c"), ("echo $POD_NAME",), {"POD_NAME": "a"})
    hi_b = registry.program_for("busybox", ("sh", "-c"), ("echo $POD_NAME",), {"POD_NAME": "b"})
    assert isinstance(hi_a, Program) and isinstance(hi_b, Program)
    assert (hi_a.timeline.lines, hi_b.timeline.lines) == (((0.0, "a"),), ((0.0, "b"),))
    # no command, or the image's own binary: the image's program
    assert registry.program_for("shop", (), (), {}) == Program(ready_after=3)
    assert registry.program_for("shop", ("/shop", "--fast"), (), {}) == Program(ready_after=3)
