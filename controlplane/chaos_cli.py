"""``kubetrio chaos``: run a scenario under a fault schedule, in virtual time.

::

    kubetrio chaos run scenario.yaml --seed 7 --duration 1h      # one run, the report
    kubetrio chaos run scenario.yaml --seeds 1..100 --duration 10m   # a campaign
    kubetrio chaos run scenario.yaml --seed 7 --save-schedule s.yaml --timeline t.svg
    kubetrio chaos run scenario.yaml --seed 7 --schedule s.yaml  # replay a schedule
    kubetrio chaos run scenario.yaml --seed 7 --shrink           # minimise a failure

Exit status: 0 when every invariant held, 1 when one was violated (in any run of a
campaign), 2 for bad input -- a scenario or schedule with errors, a fault whose target
matches nothing, a bad duration -- reported before the run starts, naming the entry.

Each run is its own ``trio.run`` under ``MockClock(autojump_threshold=0)``: the same
seed, scenario and schedule replay the same run (the report's history digest says so).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
import trio
import trio.testing

from controlplane.chaos_scenario import Scenario, ScenarioError, load_scenario, parse_duration

__all__ = ["chaos", "parse_seeds"]

#: Exit status for bad input (click's own usage errors use it too).
EXIT_BAD_INPUT = 2
#: Exit status when an invariant was violated.
EXIT_VIOLATED = 1


class BadInput(click.ClickException):
    """A scenario, schedule or option that cannot run; exit status 2."""

    exit_code = EXIT_BAD_INPUT


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``1..100`` (inclusive), ``3,7,9`` or a mix (``1..5,9``).

    Raises:
        BadInput: malformed, or an empty range.
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ".." in part:
                low, high = (int(x) for x in part.split("..", 1))
                if high < low:
                    raise BadInput(f"--seeds: empty range {part!r}")
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise BadInput(f"--seeds: expected 1..100 or 1,2,3, got {text!r}") from None
    return list(dict.fromkeys(seeds))


def _leaf(exc: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of ``types`` in ``exc`` or the groups nested in it."""
    if isinstance(exc, types):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _leaf(inner, types)
            if found is not None:
                return found
    return None


def _run_one(
    scenario: Scenario,
    *,
    seed: int,
    duration: float | None,
    schedule: Any,
    progress: Callable[[float, float], None] | None = None,
) -> Any:
    """One run in its own trio.run under the virtual clock; bad input as BadInput."""
    from controlplane.chaos.schedule import ScheduleError
    from controlplane.chaos_run import run_scenario

    start = time.perf_counter()  # determinism: ok -- the report's wall time, never read by the run
    try:
        result = trio.run(
            functools.partial(
                run_scenario,
                scenario,
                seed=seed,
                duration=duration,
                schedule=schedule,
                progress=progress,
            ),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
    except BaseException as exc:
        found = _leaf(exc, (ScheduleError, ScenarioError, TimeoutError))
        if isinstance(found, ScheduleError):
            raise BadInput(f"schedule: {found}") from None
        if isinstance(found, ScenarioError | TimeoutError):
            raise BadInput(f"scenario: {found}") from None
        raise
    wall = time.perf_counter() - start  # determinism: ok -- as above
    return attrs.evolve(result, wall_seconds=wall)


def _load(scenario_path: str) -> Scenario:
    path = Path(scenario_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"{scenario_path}: {exc.strerror}") from None
    try:
        return load_scenario(text, base=path.parent, name=path.stem)
    except ScenarioError as exc:
        raise BadInput(f"{scenario_path}: {exc}") from None


def _load_schedule(schedule_path: str) -> Any:
    from controlplane.chaos import Schedule, ScheduleError

    try:
        text = Path(schedule_path).read_text()
    except OSError as exc:
        raise BadInput(f"{schedule_path}: {exc.strerror}") from None
    try:
        return Schedule.from_yaml(text)
    except ScheduleError as exc:
        raise BadInput(f"{schedule_path}: {exc}") from None


def _progress() -> Callable[[float, float], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: float, total: float) -> None:
        click.echo(f"\r\033[K  virtual time {done:7.0f}s / {total:.0f}s", nl=False, err=True)

    return show


@click.group("chaos")
def chaos() -> None:
    """Chaos runs: a workload under seeded faults, invariants checked on every change."""


@chaos.command("run")
@click.argument("scenario_path", metavar="SCENARIO", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Root of all randomness [default: 1].")
@click.option("--seeds", default=None, help="A campaign over seeds: 1..100 or 1,5,9.")
@click.option(
    "--duration",
    default=None,
    help="Virtual time of chaos: 30s, 10m, 1h [default: the schedule's, else the scenario's].",
)
@click.option(
    "--schedule",
    "schedule_path",
    type=click.Path(dir_okay=False),
    help="Play this schedule (YAML) instead of generating one.",
)
@click.option(
    "--save-schedule",
    type=click.Path(dir_okay=False),
    help="Write the schedule played (with --shrink: the minimal one) as YAML.",
)
@click.option("--timeline", type=click.Path(dir_okay=False), help="Write an SVG timeline.")
@click.option("--shrink", is_flag=True, help="Minimise a failing schedule (reruns subsets).")
@click.option(
    "--max-shrink-runs", default=200, show_default=True, help="Budget of runs for --shrink."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run_command(
    scenario_path: str,
    seed: int | None,
    seeds: str | None,
    duration: str | None,
    schedule_path: str | None,
    save_schedule: str | None,
    timeline: str | None,
    shrink: bool,
    max_shrink_runs: int,
    as_json: bool,
) -> None:
    """Run SCENARIO (a YAML file: workload, nodes, schedule, traffic, invariants) under
    a generated or given fault schedule in virtual time, check the invariants, and print
    the report: faults injected, invariants held or violated (with the first violating
    event), recovery times, request success rate, and the command that replays the run.
    Exits 1 if an invariant was violated, 2 for bad input."""
    from controlplane.chaos_report import (
        campaign_json,
        format_campaign,
        format_report,
        replay_command,
        report_json,
    )

    if seed is not None and seeds is not None:
        raise BadInput("give --seed or --seeds, not both")
    if seeds is not None and (save_schedule or timeline or shrink):
        raise BadInput("--save-schedule, --timeline and --shrink take one --seed, not --seeds")
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration, field="--duration")
        except ScenarioError as exc:
            raise BadInput(str(exc)) from None
        if seconds <= 0:
            raise BadInput(f"--duration: must be > 0, got {duration!r}")
    scenario = _load(scenario_path)
    schedule = _load_schedule(schedule_path) if schedule_path else None

    if seeds is not None:
        results = []
        replays: dict[int, str] = {}
        progress = _progress()
        for s in parse_seeds(seeds):
            if progress is not None:
                click.echo(f"\r\033[K  seed {s}", nl=False, err=True)
            result = _run_one(scenario, seed=s, duration=seconds, schedule=schedule)
            results.append(result)
            replays[s] = replay_command(scenario_path, s, result.duration, schedule_path)
        if progress is not None:
            click.echo("", err=True)
        if as_json:
            click.echo(json.dumps(campaign_json(results, replay=replays)))
        else:
            click.echo(format_campaign(results, replay=replays))
        sys.exit(EXIT_VIOLATED if any(r.failed for r in results) else 0)

    seed = 1 if seed is None else seed
    progress = _progress()
    result = _run_one(scenario, seed=seed, duration=seconds, schedule=schedule, progress=progress)
    if progress is not None:
        click.echo("", err=True)
    replay = replay_command(scenario_path, seed, result.duration, schedule_path)
    if as_json:
        click.echo(json.dumps(report_json(result, replay=replay)))
    else:
        click.echo(format_report(result, replay=replay))
    if timeline:
        from controlplane.chaos_timeline import render_timeline

        Path(timeline).write_text(render_timeline(result))
        if not as_json:
            click.echo(f"timeline: {timeline}")
    if shrink and result.failed:
        minimal = _shrink(scenario, result, max_runs=max_shrink_runs)
        path = save_schedule or "minimal.yaml"
        if save_schedule:
            Path(save_schedule).write_text(minimal.to_yaml())
        click.echo("\nminimal failing schedule:" if not as_json else "", err=as_json)
        click.echo(minimal.to_yaml(), nl=False, err=as_json)
        note = "" if save_schedule else f"  (save the YAML above as {path})"
        click.echo(
            f"replay: {replay_command(scenario_path, seed, result.duration, path)}{note}",
            err=as_json,
        )
    elif save_schedule:
        Path(save_schedule).write_text(result.schedule.to_yaml())
        if not as_json:
            click.echo(f"schedule: {save_schedule}")
    if shrink and not result.failed and not as_json:
        click.echo("nothing to shrink: every invariant held")
    sys.exit(EXIT_VIOLATED if result.failed else 0)


def _shrink(scenario: Scenario, result: Any, *, max_runs: int) -> Any:
    """The smallest sub-schedule of ``result.schedule`` that, replayed from the same seed,
    still violates one of the invariants the full run violated. heal-all entries stay."""
    from controlplane.shrink import ddmin

    schedule = result.schedule
    broken = {v.invariant for v in result.violations}
    removable = [i for i, f in enumerate(schedule.faults) if f.kind != "heal-all"]
    kept = [i for i, f in enumerate(schedule.faults) if f.kind == "heal-all"]
    progress = _progress()

    def subset(indices: Sequence[int]) -> Any:
        chosen = set(indices) | set(kept)
        faults = tuple(f for i, f in enumerate(schedule.faults) if i in chosen)
        return attrs.evolve(schedule, faults=faults)

    def fails(indices: Sequence[int]) -> bool:
        if progress is not None:
            click.echo(f"\r\033[K  shrinking: trying {len(indices)} faults", nl=False, err=True)
        rerun = _run_one(
            scenario, seed=result.seed, duration=result.duration, schedule=subset(indices)
        )
        return any(v.invariant in broken for v in rerun.violations)

    shrunk = ddmin(removable, fails, max_tests=max_runs)
    if progress is not None:
        click.echo("", err=True)
    note = " (budget exhausted: may not be minimal)" if shrunk.exhausted else ""
    click.echo(
        f"\nshrunk {len(removable)} faults to {len(shrunk.items)} in {shrunk.tests} runs{note}",
        err=False,
    )
    return subset(shrunk.items)
