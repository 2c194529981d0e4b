"""The report of a chaos run (and of a campaign), as text and as JSON.

Pure functions of a :class:`~controlplane.chaos_run.RunResult`: what faults were
injected, which invariants held and which broke (with the first violating event),
how long the cluster took to recover from each fault, what fraction of requests
succeeded, and the command that replays the run exactly.
"""

from __future__ import annotations

import shlex
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from controlplane.chaos_run import RunResult
from controlplane.chaos_scenario import format_duration

__all__ = [
    "MAX_FAULT_ROWS",
    "campaign_json",
    "format_campaign",
    "format_report",
    "replay_command",
    "report_json",
    "success_rate",
]

#: Faults listed one per line in the text report; the rest are counted.
MAX_FAULT_ROWS = 25


def replay_command(
    scenario_path: str, seed: int, duration: float, schedule_path: str | None = None
) -> str:
    """The shell command that replays a run exactly."""
    words = ["kubetrio", "chaos", "run", scenario_path, "--seed", str(seed)]
    words += ["--duration", format_duration(duration)]
    if schedule_path is not None:
        words += ["--schedule", schedule_path]
    return shlex.join(words)


def success_rate(result: RunResult) -> float | None:
    """Answered / finished requests over all traffic streams (None: no traffic)."""
    ok = sum(t.ok for t in result.traffic)
    done = ok + sum(t.failed for t in result.traffic)
    return ok / done if done else None


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


def _after(value: float | None) -> str:
    return "never" if value is None else f"+{value:.1f}s"


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_report(result: RunResult, *, replay: str) -> str:
    """The human report of one run, ending with the replay command."""
    verdict = "FAILED" if result.failed else "PASSED"
    lines = [
        f"chaos run: {result.scenario}  seed {result.seed}  "
        f"{format_duration(result.duration)} of chaos  {result.nodes} nodes  -> {verdict}"
    ]
    if result.wall_seconds:
        simulated = result.samples[-1].at if result.samples else result.duration
        lines.append(
            f"  {simulated:.0f} virtual seconds in {result.wall_seconds:.2f} wall seconds"
            f" ({simulated / result.wall_seconds:.0f}x)"
        )
    lines += ["", *_fault_lines(result), "", *_invariant_lines(result), ""]
    lines += [*_recovery_lines(result), "", *_traffic_lines(result), ""]
    lines.append(f"history digest: {result.digest}")
    lines.append(f"replay: {replay}")
    return "\n".join(lines)


def _fault_lines(result: RunResult) -> list[str]:
    counts = Counter(f.kind for f in result.faults)
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    lines = [f"faults injected: {len(result.faults)}" + (f" ({by_kind})" if by_kind else "")]
    if result.faults:
        rows = [["AT", "KIND", "TARGETS", "HEALED", "NOTE"]]
        for f in result.faults[:MAX_FAULT_ROWS]:
            targets = ", ".join(f.targets) if f.targets else "-"
            if len(targets) > 48:
                targets = f"{targets[:45]}..."
            healed = "-" if f.healed_at is None else _secs(f.healed_at)
            note = "" if f.outcome == "injected" else f.outcome
            if f.message:
                note = f"{note}: {f.message}" if note else f.message
            rows.append([_secs(f.at), f.kind, targets, healed, note])
        lines += _table(rows)
        if len(result.faults) > MAX_FAULT_ROWS:
            lines.append(f"  ... and {len(result.faults) - MAX_FAULT_ROWS} more")
    return lines


def _invariant_lines(result: RunResult) -> list[str]:
    lines = ["invariants:"]
    if not result.checked:
        lines.append(
            "  NOTE: the per-change invariant checker did not run (unavailable or switched"
            " off): only convergence and traffic were checked"
        )
    per: Counter[str] = Counter(v.invariant for v in result.violations)
    names = sorted(set(result.invariants) | set(per))
    for name in names:
        held = result.invariants.get(name, True) and not per[name]
        if held:
            lines.append(f"  held      {name}")
        else:
            n = per[name]
            lines.append(f"  VIOLATED  {name}  ({n} violation{'s' if n != 1 else ''})")
    first = result.first_violation
    if first is not None:
        where = f" (revision {first.revision})" if first.revision else ""
        lines.append(
            f"first violation: {first.invariant} at {_secs(first.at)}{where}: {first.message}"
        )
    elif names:
        lines.append("all invariants held")
    return lines


def _recovery_lines(result: RunResult) -> list[str]:
    lines = ["recovery (time from a fault's heal until converged / traffic ok again):"]
    if result.recoveries:
        rows = [["KIND", "HEALED", "CONVERGED", "TRAFFIC OK"]]
        for r in result.recoveries[:MAX_FAULT_ROWS]:
            rows.append(
                [
                    r.kind,
                    _secs(r.healed_at),
                    "not by the end" if r.converged_after is None else _after(r.converged_after),
                    "-"
                    if not result.traffic
                    else f"still failing at +{r.traffic_window:.1f}s"
                    if r.traffic_after is None
                    else _after(r.traffic_after),
                ]
            )
        lines += _table(rows)
        if len(result.recoveries) > MAX_FAULT_ROWS:
            lines.append(f"  ... and {len(result.recoveries) - MAX_FAULT_ROWS} more")
        converged = [r.converged_after for r in result.recoveries if r.converged_after is not None]
        if converged:
            lines.append(
                f"  converged: median +{statistics.median(converged):.1f}s,"
                f" worst +{max(converged):.1f}s"
                + (
                    f", {len(result.recoveries) - len(converged)} not before the end"
                    if len(converged) < len(result.recoveries)
                    else ""
                )
            )
    traffic = f", traffic ok {_after(result.traffic_recovered_after)}" if result.traffic else ""
    lines.append(
        f"  after heal-all at {_secs(result.heal_all_at)}: converged"
        f" {_after(result.converged_after)} (bound {result.converge_within:g}s){traffic}"
    )
    for gap in result.not_converged[:10]:
        lines.append(f"    not converged: {gap}")
    return lines


def _traffic_lines(result: RunResult) -> list[str]:
    if not result.traffic:
        return ["traffic: none"]
    lines = ["traffic:"]
    rows = [["SERVICE", "RATE", "SENT", "OK", "FAILED", "SUCCESS", "P50", "P99", "ERRORS"]]
    for t in result.traffic:
        done = t.ok + t.failed
        rate = f"{100 * t.ok / done:.2f}%" if done else "-"
        errs = ", ".join(f"{k} {v}" for k, v in t.errors.items()) or "-"
        rows.append(
            [
                t.target,
                f"{t.rate:g}/s",
                str(t.sent),
                str(t.ok),
                str(t.failed),
                rate,
                "-" if t.p50 is None else f"{t.p50 * 1000:.1f}ms",
                "-" if t.p99 is None else f"{t.p99 * 1000:.1f}ms",
                errs,
            ]
        )
    lines += _table(rows)
    rate = success_rate(result)
    lines.append("request success rate: " + ("-" if rate is None else f"{100 * rate:.2f}%"))
    return lines


def report_json(result: RunResult, *, replay: str) -> dict[str, Any]:
    """The report as JSON-ready data (what ``--json`` prints)."""
    first = result.first_violation
    return {
        "scenario": result.scenario,
        "seed": result.seed,
        "duration": result.duration,
        "nodes": result.nodes,
        "passed": not result.failed,
        "faults": [
            {
                "kind": f.kind,
                "at": f.at,
                "targets": list(f.targets),
                "healed_at": f.healed_at,
                "duration": f.duration,
                "outcome": f.outcome,
                "message": f.message,
            }
            for f in result.faults
        ],
        "invariants_checked": result.checked,
        "invariants": dict(result.invariants),
        "violations": [
            {"invariant": v.invariant, "at": v.at, "revision": v.revision, "message": v.message}
            for v in result.violations
        ],
        "first_violation": None
        if first is None
        else {"invariant": first.invariant, "at": first.at, "message": first.message},
        "recoveries": [
            {
                "kind": r.kind,
                "healed_at": r.healed_at,
                "converged_after": r.converged_after,
                "traffic_after": r.traffic_after,
                "traffic_window": r.traffic_window,
            }
            for r in result.recoveries
        ],
        "heal_all_at": result.heal_all_at,
        "converged_after": result.converged_after,
        "not_converged": list(result.not_converged),
        "traffic_recovered_after": result.traffic_recovered_after,
        "traffic": [
            {
                "service": t.target,
                "rate": t.rate,
                "sent": t.sent,
                "ok": t.ok,
                "failed": t.failed,
                "errors": dict(t.errors),
                "p50": t.p50,
                "p99": t.p99,
            }
            for t in result.traffic
        ],
        "success_rate": success_rate(result),
        "digest": result.digest,
        "wall_seconds": result.wall_seconds,
        "replay": replay,
    }


def format_campaign(results: Sequence[RunResult], *, replay: dict[int, str]) -> str:
    """One line per seed, then the failing seeds and how to replay each."""
    rows = [["SEED", "RESULT", "FAULTS", "VIOLATIONS", "FIRST VIOLATION", "SUCCESS"]]
    for r in results:
        first = r.first_violation
        rate = success_rate(r)
        rows.append(
            [
                str(r.seed),
                "FAIL" if r.failed else "ok",
                str(len(r.faults)),
                str(len(r.violations)),
                "-" if first is None else f"{first.invariant} at {_secs(first.at)}",
                "-" if rate is None else f"{100 * rate:.2f}%",
            ]
        )
    lines = _table(rows, indent="")
    failing = [r for r in results if r.failed]
    lines.append("")
    lines.append(f"{len(results)} runs, {len(failing)} failed")
    if failing:
        lines.append("failing seeds: " + ", ".join(str(r.seed) for r in failing))
        lines += [f"  replay: {replay[r.seed]}" for r in failing]
    return "\n".join(lines)


def campaign_json(results: Sequence[RunResult], *, replay: dict[int, str]) -> dict[str, Any]:
    """The campaign as JSON-ready data."""
    return {
        "runs": len(results),
        "failing_seeds": [r.seed for r in results if r.failed],
        "results": [
            {
                "seed": r.seed,
                "passed": not r.failed,
                "faults": len(r.faults),
                "violations": len(r.violations),
                "first_violation": None
                if r.first_violation is None
                else r.first_violation.invariant,
                "success_rate": success_rate(r),
                "digest": r.digest,
                "replay": replay[r.seed],
            }
            for r in results
        ],
    }
