"""``kubetrio chaos run``: the report, replay, campaigns, shrinking, bad input."""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from controlplane.cli import main

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{name: http, containerPort: 80}]
          readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""

PASSING = """\
manifests: [web.yaml]
nodes: 3
traffic: [{service: web, port: 80, rate: 2}]
schedule: {generate: {intensity: 3, mix: {container-kill: 2, node-pause: 1, compact: 1}}}
"""

# node-1 is down long enough to go NotReady; the cluster cannot be whole again within 1 s
# of the heal-all. The other faults are noise the shrinker must remove.
FAILING = """\
manifests: [web.yaml]
nodes: 3
converge_within: 1s
schedule:
  faults:
  - {at: 5, kind: close-watches}
  - {at: 8, kind: compact}
  - {at: 10, kind: node-crash, target: {names: [node-1]}}
  - {at: 30, kind: compact}
  - {at: 45, kind: close-watches}
  - {at: 90, kind: heal-all}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web.yaml").write_text(WEB)
    (tmp_path / "ok.yaml").write_text(PASSING)
    (tmp_path / "bad.yaml").write_text(FAILING)
    return tmp_path


def chaos(*args: str):
    return CliRunner().invoke(main, ["chaos", "run", *args])


def digest(output: str) -> str:
    return re.search(r"history digest: (\w+)", output).group(1)


def replay_args(output: str) -> list[str]:
    line = re.findall(r"^replay: (.*)$", output, re.M)[-1]
    words = shlex.split(line)
    assert words[:3] == ["kubetrio", "chaos", "run"]
    return words[3:]


def test_a_run_prints_the_report_and_how_to_replay_it(workdir):
    result = chaos("ok.yaml", "--seed", "4", "--duration", "2m")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("chaos run: ok  seed 4  2m of chaos  3 nodes  -> PASSED")
    assert re.search(r"^faults injected: \d+ \(.*heal-all 1", out, re.M)
    assert "  held      watch-order" in out and "all invariants held" in out
    assert "recovery (time from a fault's heal" in out
    assert re.search(r"^  after heal-all at 120\.0s: converged \+\d+\.\ds", out, re.M)
    assert re.search(r"^request success rate: \d+\.\d\d%$", out, re.M)
    assert replay_args(out) == ["ok.yaml", "--seed", "4", "--duration", "2m"]
    again = chaos(*replay_args(out))
    assert digest(again.output) == digest(out)  # the replay is the same run
    other = chaos("ok.yaml", "--seed", "5", "--duration", "2m")
    assert digest(other.output) != digest(out)


def test_a_saved_schedule_replays_the_run(workdir):
    first = chaos("ok.yaml", "--seed", "6", "--duration", "90s", "--save-schedule", "s.yaml")
    assert first.exit_code == 0, first.output
    saved = yaml.safe_load(Path("s.yaml").read_text())
    assert saved["faults"][-1]["kind"] == "heal-all" and saved["duration"] == 90
    replay = chaos("ok.yaml", "--seed", "6", "--schedule", "s.yaml")
    assert replay.exit_code == 0, replay.output
    assert digest(replay.output) == digest(first.output)
    assert replay_args(replay.output) == [
        "ok.yaml", "--seed", "6", "--duration", "90s", "--schedule", "s.yaml"
    ]  # fmt: skip


def test_a_violation_fails_the_run_with_the_first_violating_event(workdir):
    result = chaos("bad.yaml", "--seed", "1")
    assert result.exit_code == 1, result.output
    out = result.output
    assert "-> FAILED" in out and "  VIOLATED  convergence  (1 violation)" in out
    assert re.search(
        r"^first violation: convergence at 9\d\.\ds \(revision \d+\): not converged", out, re.M
    )
    assert replay_args(out) == ["bad.yaml", "--seed", "1", "--duration", "90s"]


def test_shrinking_finds_the_one_fault_that_matters(workdir):
    result = chaos("bad.yaml", "--seed", "1", "--shrink", "--save-schedule", "min.yaml")
    assert result.exit_code == 1, result.output
    assert re.search(r"^shrunk 5 faults to 1 in \d+ runs$", result.output, re.M)
    minimal = yaml.safe_load(Path("min.yaml").read_text())
    assert [f["kind"] for f in minimal["faults"]] == ["node-crash", "heal-all"]
    assert "minimal failing schedule:\nfaults:\n" in result.output
    assert replay_args(result.output)[-2:] == ["--schedule", "min.yaml"]
    replay = chaos("bad.yaml", "--seed", "1", "--schedule", "min.yaml")
    assert replay.exit_code == 1 and "VIOLATED  convergence" in replay.output


def test_shrinking_a_passing_run_has_nothing_to_do(workdir):
    result = chaos("ok.yaml", "--seed", "2", "--duration", "1m", "--shrink")
    assert result.exit_code == 0 and "nothing to shrink" in result.output


def test_a_campaign_lists_the_failing_seeds(workdir):
    passing = chaos("ok.yaml", "--seeds", "1..3", "--duration", "1m")
    assert passing.exit_code == 0, passing.output
    lines = passing.output.splitlines()
    assert lines[0].split() == [
        "SEED",
        "RESULT",
        "FAULTS",
        "VIOLATIONS",
        "FIRST",
        "VIOLATION",
        "SUCCESS",
    ]
    assert [line.split()[:2] for line in lines[1:4]] == [["1", "ok"], ["2", "ok"], ["3", "ok"]]
    assert "3 runs, 0 failed" in passing.output
    # whether the cluster is whole 1 s after the heal-all depends on the seed's timing
    failing = chaos("bad.yaml", "--seeds", "1..4")
    rows = [line.split() for line in failing.stdout.splitlines()[1:5]]
    failed = [row[0] for row in rows if row[1] == "FAIL"]
    assert "1" in failed and len(failed) < 4  # seed 1 fails (see above), not every seed
    assert failing.exit_code == 1
    assert f"failing seeds: {', '.join(failed)}" in failing.stdout
    for seed in failed:
        assert (
            f"  replay: kubetrio chaos run bad.yaml --seed {seed} --duration 90s" in failing.stdout
        )


def test_the_timeline_is_an_svg_of_the_run(workdir):
    result = chaos("bad.yaml", "--seed", "1", "--timeline", "t.svg")
    assert "timeline: t.svg" in result.output
    root = ET.parse("t.svg").getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    faults = root.findall(".//*[@class='fault']", ns)
    assert len(faults) == 6  # every fault, heal-all included
    assert root.findall(".//*[@class='violation']", ns)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"faults", "pods", "nodes Ready", "ready endpoints", "requests"} <= texts


def test_json_output(workdir):
    result = chaos("bad.yaml", "--seed", "1", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["seed"] == 1
    assert report["first_violation"]["invariant"] == "convergence"
    assert [f["kind"] for f in report["faults"]][2] == "node-crash"
    assert report["replay"] == "kubetrio chaos run bad.yaml --seed 1 --duration 90s"
    campaign = json.loads(chaos("bad.yaml", "--seeds", "1..4", "--json").stdout)
    assert campaign["runs"] == 4 and 1 in campaign["failing_seeds"]
    assert campaign["failing_seeds"] == [r["seed"] for r in campaign["results"] if not r["passed"]]


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        (
            {"s.yaml": "faults:\n- {at: 1, kind: compact}\n- {at: 2, kind: explode}\n"},
            ["ok.yaml", "--schedule", "s.yaml"],
            "Error: s.yaml: faults[1].kind: unknown fault kind 'explode'",
        ),
        (
            {"s.yaml": "faults:\n- {at: 1, kind: node-crash, duration: -5}\n"},
            ["ok.yaml", "--schedule", "s.yaml"],
            "Error: s.yaml: faults[0].duration: must be >= 0, got -5",
        ),
        (
            {"s.yaml": "faults:\n- {at: 2, kind: node-crash, target: {names: [node-7]}}\n"},
            ["ok.yaml", "--schedule", "s.yaml"],
            "Error: schedule: faults[0].target: no running node matches names ['node-7']",
        ),
        (
            {"s.yaml": "faults:\n- {at: 1, kind: controller-crash, params: {controller: cron}}\n"},
            ["ok.yaml", "--schedule", "s.yaml"],
            "Error: schedule: faults[0].params.controller: the cluster runs no controller"
            " 'cron'; it runs: replicaset-controller, replicationcontroller,",
        ),
        (
            {"s.yaml": "faults:\n- {at: 1, kind: controller-crash}\n"},
            ["ok.yaml", "--schedule", "s.yaml"],
            "Error: s.yaml: faults[0].params.controller: required",
        ),
        ({}, ["ok.yaml", "--duration", "-5m"], "Error: --duration: must be >= 0, got '-5m'"),
        ({}, ["ok.yaml", "--duration", "0"], "Error: --duration: must be > 0, got '0'"),
        ({}, ["missing.yaml"], "Error: missing.yaml: No such file or directory"),
        (
            {"x.yaml": "manifests: [web.yaml]\ntraffic: [{service: api, port: 80, rate: 1}]\n"},
            ["x.yaml"],
            'Error: x.yaml: traffic[0].service: no Service "api" in namespace "default"',
        ),
        ({}, ["ok.yaml", "--seed", "1", "--seeds", "1..2"], "Error: give --seed or --seeds"),
        ({}, ["ok.yaml", "--seeds", "5..1"], "Error: --seeds: empty range '5..1'"),
        ({}, ["ok.yaml", "--seeds", "a..b"], "Error: --seeds: expected 1..100 or 1,2,3"),
        ({}, ["ok.yaml", "--seeds", "1..2", "--shrink"], "Error: --save-schedule, --timeline"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_the_run_with_exit_status_2(workdir, files, args, message):
    for name, text in files.items():
        Path(name).write_text(text)
    result = chaos(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "chaos run:" not in result.output  # no report: nothing ran


def test_the_demo_scenario_runs(workdir):
    demo = Path(__file__).resolve().parents[2] / "controlplane" / "demo" / "chaos-web.yaml"
    result = chaos(str(demo), "--seed", "7", "--duration", "3m")
    assert result.exit_code == 0, result.output
    assert "traffic:\n  SERVICE" in result.output
