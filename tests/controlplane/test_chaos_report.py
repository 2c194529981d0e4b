"""The chaos report (text and JSON) and the SVG timeline: pure functions of a RunResult."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs

from controlplane.chaos_report import (
    format_campaign,
    format_report,
    replay_command,
    report_json,
    success_rate,
)
from controlplane.chaos_run import (
    FaultRecord,
    Recovery,
    RunResult,
    TimelineSample,
    TrafficBin,
    TrafficSummary,
    ViolationRecord,
)
from controlplane.chaos_timeline import render_timeline

SVG = "{http://www.w3.org/2000/svg}"


def result(**changes) -> RunResult:
    base = RunResult(
        scenario="web",
        seed=7,
        duration=600.0,
        nodes=3,
        schedule=None,
        schedule_given=False,
        faults=(
            FaultRecord("node-crash", 30.0, ("node-2",), 90.0, 60.0),
            FaultRecord("container-kill", 100.0, ("default/web-1",), 100.0),
            FaultRecord("container-kill", 150.0, ("default/web-9",), 150.0, None, "failed", "gone"),
            FaultRecord("heal-all", 600.0, (), 600.0),
        ),
        invariants={"watch-order": True, "convergence": True},
        violations=(),
        checked=True,
        checker_summary={},
        traffic=(
            TrafficSummary(
                "default/web:80", 5.0, 1000, 990, 10, {"HostUnreachable": 10}, 0.001, 0.5
            ),
        ),
        traffic_bins=(TrafficBin(0.0, 300.0, 495, 10), TrafficBin(300.0, 300.0, 495, 0)),
        recoveries=(
            Recovery(0, "node-crash", 90.0, 12.5, 3.0, 10.0),
            Recovery(1, "container-kill", 100.0, 4.0, None, 50.0),
        ),
        heal_all_at=600.0,
        converge_within=600.0,
        converged_after=2.0,
        not_converged=(),
        traffic_recovered_after=0.0,
        samples=(
            TimelineSample(0.0, {"Running": 3}, {"default/web": 3}, 3, 0),
            TimelineSample(60.0, {"Running": 2, "Pending": 1}, {"default/web": 2}, 2, 1),
            TimelineSample(120.0, {"Running": 3}, {"default/web": 3}, 3, 0),
        ),
        digest="abc123",
    )
    return attrs.evolve(base, **changes)


def test_replay_command_quotes_and_spells_durations():
    assert replay_command("my scenario.yaml", 3, 3600.0) == (
        "kubetrio chaos run 'my scenario.yaml' --seed 3 --duration 1h"
    )
    assert replay_command("s.yaml", 3, 90.0, "min.yaml").endswith(
        "--duration 90s --schedule min.yaml"
    )


def test_a_passing_report():
    text = format_report(result(), replay="kubetrio chaos run s.yaml --seed 7 --duration 10m")
    lines = text.splitlines()
    assert lines[0] == "chaos run: web  seed 7  10m of chaos  3 nodes  -> PASSED"
    assert "faults injected: 4 (container-kill 2, heal-all 1, node-crash 1)" in lines
    assert any(line.split()[:4] == ["30.0s", "node-crash", "node-2", "90.0s"] for line in lines)
    assert any(line.rstrip().endswith("150.0s  failed: gone") for line in lines)
    assert "  held      convergence" in lines and "all invariants held" in lines
    assert any(line.split() == ["node-crash", "90.0s", "+12.5s", "+3.0s"] for line in lines)
    assert any("still failing at +50.0s" in line for line in lines)
    assert "  converged: median +8.2s, worst +12.5s" in lines
    assert "  after heal-all at 600.0s: converged +2.0s (bound 600s), traffic ok +0.0s" in lines
    assert "request success rate: 99.00%" in lines
    assert any("HostUnreachable 10" in line for line in lines)
    assert lines[-1] == "replay: kubetrio chaos run s.yaml --seed 7 --duration 10m"


def test_a_failing_report_names_the_first_violation():
    r = result(
        invariants={"watch-order": True, "convergence": False},
        violations=(
            ViolationRecord("convergence", 601.0, 900, "not converged by the deadline: x"),
            ViolationRecord("endpoints-match", 75.0, 420, "Service default/web: stale"),
            ViolationRecord("endpoints-match", 80.0, 430, "again"),
        ),
        checked=False,
        converged_after=None,
        not_converged=("node node-2 not Ready",),
    )
    text = format_report(r, replay="x")
    assert "-> FAILED" in text.splitlines()[0]
    assert "  VIOLATED  convergence  (1 violation)" in text
    assert "  VIOLATED  endpoints-match  (2 violations)" in text
    assert (
        "first violation: endpoints-match at 75.0s (revision 420): Service default/web: stale"
        in text
    )
    assert "NOTE: the per-change invariant checker did not run" in text
    assert (
        "converged never (bound 600s)" in text
        and "    not converged: node node-2 not Ready" in text
    )


def test_json_report_and_success_rate():
    data = report_json(result(), replay="r")
    assert data["passed"] and data["success_rate"] == 0.99 == success_rate(result())
    assert data["faults"][2] == {
        "kind": "container-kill", "at": 150.0, "targets": ["default/web-9"], "healed_at": 150.0,
        "duration": None, "outcome": "failed", "message": "gone",
    }  # fmt: skip
    assert data["recoveries"][1]["traffic_after"] is None
    assert success_rate(result(traffic=())) is None


def test_campaign_table():
    bad = result(seed=9, violations=(ViolationRecord("convergence", 601.0, 1, "m"),))
    text = format_campaign([result(seed=8), bad], replay={8: "r8", 9: "r9"})
    rows = [line.split() for line in text.splitlines()]
    assert rows[1][:4] == ["8", "ok", "4", "0"] and rows[2][:4] == ["9", "FAIL", "4", "1"]
    assert "convergence at 601.0s" in text
    assert text.endswith("2 runs, 1 failed\nfailing seeds: 9\n  replay: r9")


def test_the_timeline_draws_every_lane():
    r = result(violations=(ViolationRecord("endpoints-match", 75.0, 420, "a <b> & c"),))
    svg = render_timeline(r, width=800)
    root = ET.fromstring(svg)  # well-formed, escaped
    assert root.tag == f"{SVG}svg" and root.get("width") == "800"
    faults = [e for e in root.iter() if e.get("class") == "fault"]
    assert len(faults) == 4
    # the 60 s crash is a bar from x(30) to x(90); instant kills are diamonds
    bar = next(e for e in faults if e.tag == f"{SVG}rect")
    left, plot = 150, 800 - 150 - 20
    assert abs(float(bar.get("x")) - (left + plot * 30 / 600)) < 0.1
    assert abs(float(bar.get("width")) - plot * 60 / 600) < 0.2
    assert sum(1 for e in faults if e.tag == f"{SVG}path") == 3
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "node-crash at 30.0s on node-2, healed 90.0s" in titles
    assert "endpoints-match at 75.0s: a <b> & c" in titles
    series = {t.text for e in root.iter(f"{SVG}polyline") for t in e.iter(f"{SVG}title")}
    assert series == {
        "pods: Running",
        "pods: Pending",
        "nodes Ready: Ready",
        "ready endpoints: default/web",
    }
    errors = [e for e in root.iter() if e.get("class") == "errors"]
    assert len(errors) == 1 and "495 ok, 10 failed" in errors[0].find(f"{SVG}title").text
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "10m" in texts and "0s" in texts  # the time axis


def test_a_timeline_without_traffic_or_faults():
    svg = render_timeline(result(faults=(), traffic=(), traffic_bins=(), violations=()))
    root = ET.fromstring(svg)
    assert "no traffic" in [t.text for t in root.iter(f"{SVG}text")]
    assert not [e for e in root.iter() if e.get("class") in ("fault", "violation", "errors")]
