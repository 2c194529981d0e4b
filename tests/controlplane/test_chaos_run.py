"""Chaos scenarios: the file format, the pure pieces of a run, and run_scenario itself."""

from __future__ import annotations

import functools
import textwrap
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from controlplane.chaos import Schedule, ScheduleError
from controlplane.chaos_run import (
    FaultRecord,
    bin_requests,
    convergence_gaps,
    fault_recoveries,
    run_scenario,
    traffic_recovery,
)
from controlplane.chaos_scenario import (
    ScenarioError,
    format_duration,
    load_scenario,
    parse_duration,
)
from controlplane.traffic import Sample

WORKLOAD = """
workload:
  - apiVersion: apps/v1
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
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
"""


def scenario(extra: str = "", workload: str = WORKLOAD):
    return load_scenario(workload + textwrap.dedent(extra))


# ----- the scenario file -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0),
     ("1h30m", 5400.0), ("2.5m", 150.0), (0, 0.0)],
)  # fmt: skip
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5s", r"^duration: must be >= 0, got '-5s'$"),
        (-1, r"^duration: must be >= 0, got -1$"),
        ("soon", r"^duration: expected a duration like 30s, 10m or 1h, got 'soon'$"),
        (True, r"^duration: expected a duration like 30s, 10m or 1h, got True$"),
    ],
)
def test_bad_durations_name_the_field(text, message):
    with pytest.raises(ScenarioError, match=message):
        parse_duration(text)


def test_format_duration_reads_back():
    for seconds in (3600.0, 600.0, 90.0, 45.5, 7200.0):
        assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(3600) == "1h" and format_duration(600) == "10m"


def test_a_full_scenario_loads():
    s = scenario(
        """
        name: demo
        nodes: {count: 5, cpu: "8", memory: 32Gi}
        duration: 1h
        schedule: {generate: {intensity: 3, mix: {node-crash: 1, container-kill: 2}}}
        traffic: [{service: web, port: 80, rate: 10}]
        invariants: {traffic_recovers: false}
        converge_within: 5m
        sample_every: 30s
        """
    )
    assert (s.name, s.nodes, s.duration, s.intensity) == ("demo", 5, 3600.0, 3.0)
    assert str(s.node_template.cpu) == "8"
    assert dict(s.mix) == {"node-crash": 1.0, "container-kill": 2.0}
    assert s.traffic[0].host == "web.default.svc.cluster.local" and s.traffic[0].rate == 10
    assert not s.enabled("traffic_recovers") and s.enabled("builtin") and s.enabled("converges")
    assert (s.converge_within, s.sample_every) == (300.0, 30.0)
    assert [type(o).kind for o in s.workload] == ["Deployment", "Service"]


def test_manifests_are_read_relative_to_the_scenario(tmp_path):
    (tmp_path / "app.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\n"
        "spec: {selector: {app: api}, ports: [{port: 80}]}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
    )
    s = load_scenario(
        "manifests: [app.yaml]\ntraffic: [{service: api, port: 80, rate: 1}]\n", base=tmp_path
    )
    assert [type(o).kind for o in s.workload] == ["Service", "ConfigMap"]


def test_an_inline_schedule_is_validated_by_the_schedule_loader():
    s = scenario("schedule: {faults: [{at: 5, kind: compact}, {at: 9, kind: heal-all}]}")
    assert isinstance(s.schedule, Schedule) and [f.kind for f in s.schedule.faults] == [
        "compact",
        "heal-all",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("colour: red", r"^colour: unknown field \(expected one of "),
        ("nodes: 0", r"^nodes\.count: must be a positive integer, got 0$"),
        ("nodes: {count: 2, cpu: 4x}", r"^nodes\.cpu: "),
        ("nodes: {count: 2, gpus: 1}", r"^nodes\.gpus: unknown field"),
        ("duration: -5m", r"^duration: must be >= 0, got '-5m'$"),
        ("converge_within: later", r"^converge_within: expected a duration"),
        ("sample_every: 0", r"^sample_every: must be > 0, got 0$"),
        (
            "schedule: {faults: [{at: 1, kind: compact}, {at: 2, kind: explode}]}",
            r"^schedule\.faults\[1\]\.kind: unknown fault kind 'explode'",
        ),
        (
            "schedule: {faults: [{at: 1, kind: node-crash, duration: -5}]}",
            r"^schedule\.faults\[0\]\.duration: must be >= 0, got -5",
        ),
        (
            "schedule: {generate: {mix: {explode: 1}}}",
            r"^schedule\.generate\.mix\.explode: unknown fault kind",
        ),
        (
            "schedule: {generate: {intensity: 0}}",
            r"^schedule\.generate\.intensity: must be a positive number",
        ),
        ("schedule: {generate: {}, faults: []}", r"^schedule: give either generate: or faults:"),
        ("traffic: [{service: api, port: 80, rate: 1}]", r"^traffic\[0\]\.service: no Serv"),
        ("traffic: [{service: web, port: 81, rate: 1}]", r'^traffic\[0\]\.port: Service "web'),
        ("traffic: [{service: web, port: 80, rate: -1}]", r"^traffic\[0\]\.rate: must be a posit"),
        ("traffic: [{service: web, port: 80}]", r"^traffic\[0\]\.rate: required$"),
        ("invariants: {liveness: true}", r"^invariants\.liveness: unknown switch"),
        ("invariants: {builtin: maybe}", r"^invariants\.builtin: expected true or false"),
    ],
)  # fmt: skip
def test_scenario_errors_name_the_field(extra, message):
    with pytest.raises(ScenarioError, match=message):
        scenario(extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list", r"^expected a mapping of scenario fields, got list$"),
        ("nodes: 3", r"^workload: the scenario has no workload"),
        ("workload: [{apiVersion: v1, kind: Gizmo, metadata: {name: x}}]", r"^workload\[0\]: "),
        ("manifests: [missing.yaml]", r"^manifests\[0\]: cannot read 'missing.yaml'"),
        ("workload: [: bad", r"^invalid YAML: "),
    ],
)
def test_broken_files_are_refused(text, message, tmp_path):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(text, base=tmp_path)


# ----- pure pieces -----------------------------------------------------------------------


def _node(name, ready=True):
    cond = SimpleNamespace(type="Ready", status="True" if ready else "False")
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name), status=SimpleNamespace(conditions=(cond,))
    )


def _deployment(replicas, ready, updated=None, available=None, generation=1, observed=1):
    return SimpleNamespace(
        kind="Deployment",
        metadata=SimpleNamespace(name="web", namespace="default", generation=generation),
        spec=SimpleNamespace(replicas=replicas),
        status=SimpleNamespace(
            observed_generation=observed,
            replicas=replicas,
            ready_replicas=ready,
            updated_replicas=replicas if updated is None else updated,
            available_replicas=ready if available is None else available,
        ),
    )


def test_convergence_gaps_say_what_is_not_there_yet():
    d = _deployment(3, 3)
    assert convergence_gaps(nodes=[_node("n1")], workloads=[(d, d)], services=[]) == []
    gaps = convergence_gaps(
        nodes=[_node("n1"), _node("n2", ready=False)],
        workloads=[(d, _deployment(3, 2)), (d, None), (d, _deployment(3, 3, observed=0))],
        services=[],
    )
    assert gaps == [
        "node n2 not Ready",
        "Deployment default/web: 2/3 ready, 3 pods",
        "Deployment default/web is gone",
        "Deployment default/web: generation 1 not observed yet",
    ]


def _s(start, ok):
    return Sample(0, start, ok, None if ok else "ConnectionRefused", 0.0, None)


def test_traffic_recovery_is_the_first_success_after_the_last_failure():
    samples = [_s(1, False), _s(2, True), _s(3, False), _s(4, False), _s(5, True), _s(6, True)]
    assert traffic_recovery(samples, since=2.5) == 2.5  # ok again from t=5
    assert traffic_recovery(samples, since=4.5) == 0.0  # nothing failed since
    assert traffic_recovery(samples[:4], since=2.5) is None  # still failing


def test_requests_are_binned_by_when_they_were_sent():
    bins = bin_requests(
        [_s(0.5, True), _s(1.5, False), _s(1.9, True), _s(9, False)], start=0, width=1, count=3
    )
    assert [(b.at, b.ok, b.failed) for b in bins] == [(0, 1, 0), (1, 1, 1), (2, 0, 0)]


def test_fault_recoveries_measure_from_the_heal():
    faults = [
        FaultRecord("node-crash", 10.0, ("node-1",), 30.0),
        FaultRecord("compact", 100.0, (), 100.0),  # no visible impact
        FaultRecord("node-pause", 200.0, ("node-2",), None),  # never healed: skipped
        FaultRecord("heal-all", 300.0, (), 300.0),
    ]
    transitions = [(0.0, True), (25.0, False), (42.0, True)]
    traffic = [[_s(29, False), _s(31, False), _s(33, True), _s(101, True)]]
    recoveries = fault_recoveries(faults, transitions, traffic, end=400.0)
    assert [(r.kind, r.converged_after, r.traffic_after) for r in recoveries] == [
        ("node-crash", 12.0, 3.0),
        ("compact", 0.0, 0.0),
    ]


# ----- a run -------------------------------------------------------------------------------

SCHEDULE = """
traffic: [{service: web, port: 80, rate: 2}]
nodes: 3
schedule:
  faults:
  - {at: 5, kind: container-kill, target: {namespace: default, selector: app=web}}
  - {at: 8, kind: close-watches}
  - {at: 10, kind: node-crash, target: {names: [node-1]}}
  - {at: 90, kind: heal-all}
"""


async def test_a_run_records_faults_invariants_traffic_and_samples(autojump_clock):
    s = scenario(SCHEDULE + "sample_every: 5s\n")
    result = await run_scenario(s, seed=1)
    assert result.duration == 90.0 and result.schedule_given
    assert [f.kind for f in result.faults] == [
        "container-kill",
        "close-watches",
        "node-crash",
        "heal-all",
    ]
    assert {f.outcome for f in result.faults} == {"injected"}
    crash = result.faults[2]
    assert crash.targets == ("node-1",) and (crash.at, crash.healed_at) == (10.0, 90.0)
    assert result.checked and "watch-order" in result.invariants
    assert result.invariants["convergence"] and result.invariants["traffic_recovers"]
    assert not result.failed and result.converged_after is not None
    # node-1's pods stopped answering while it was down: requests failed, then recovered
    (traffic,) = result.traffic
    assert traffic.failed > 0 and traffic.ok > 0 and traffic.sent == traffic.ok + traffic.failed
    assert sum(b.failed for b in result.traffic_bins) == traffic.failed
    assert result.traffic_recovered_after is not None
    assert [r.kind for r in result.recoveries] == ["container-kill", "close-watches", "node-crash"]
    # the timeline: a sample every 5 s, node-1 NotReady for a while
    assert [x.at for x in result.samples[:3]] == [0.0, 5.0, 10.0]
    assert min(x.nodes_ready for x in result.samples) == 2
    assert result.samples[0].endpoints == {"default/web": 2}
    assert result.samples[0].pods == {"Running": 2}


def _fresh_run(s, seed, **options):
    """A run in its own trio.run (a fresh virtual clock), as the CLI does it."""
    return trio.run(
        functools.partial(run_scenario, s, seed=seed, **options),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )


def test_same_seed_same_run_other_seed_other_run():
    s = scenario(
        """
        nodes: 3
        schedule: {generate: {intensity: 4, mix: {container-kill: 1, node-pause: 1, compact: 1}}}
        """
    )
    one = _fresh_run(s, 11, duration=120)
    two = _fresh_run(s, 11, duration=120)
    other = _fresh_run(s, 12, duration=120)
    assert len(one.faults) > 3
    assert one.digest == two.digest and one.faults == two.faults and one.samples == two.samples
    assert one.schedule == two.schedule and not one.schedule_given
    assert other.digest != one.digest and other.schedule != one.schedule
    # replaying the schedule the run played, given explicitly, is the same run
    again = _fresh_run(s, 11, schedule=one.schedule)
    assert again.digest == one.digest and again.schedule_given


async def test_a_target_that_matches_nothing_stops_the_run_before_any_fault(autojump_clock):
    s = scenario(
        """
        schedule:
          faults:
          - {at: 5, kind: compact}
          - {at: 10, kind: node-crash, target: {names: [node-9]}}
        """
    )
    with pytest.raises(
        ScheduleError, match=r"^faults\[1\]\.target: no running node matches names \['node-9'\]$"
    ):
        await run_scenario(s, seed=1)
    pods = scenario(
        """
        schedule:
          faults: [{at: 5, kind: container-kill, target: {namespace: default, selector: app=db}}]
        """
    )
    with pytest.raises(
        ScheduleError,
        match=r"^faults\[0\]\.target: no running pod in namespace default matches selector"
        r" 'app=db'$",
    ):
        await run_scenario(pods, seed=1)


async def test_a_cluster_that_does_not_heal_in_time_fails_the_run(autojump_clock):
    s = scenario(SCHEDULE + "converge_within: 1s\n")
    result = await run_scenario(s, seed=1)
    assert result.failed and not result.invariants["convergence"]
    first = result.first_violation
    assert first.invariant == "convergence" and first.at >= result.heal_all_at


async def test_the_workload_must_come_up_first(autojump_clock):
    s = scenario(
        "ready_within: 30s\n",
        workload=WORKLOAD.replace(
            "image: nginx:1.27",
            "image: nginx:1.27\n              resources: {requests: {cpu: '64'}}",
        ),
    )
    with pytest.raises(
        TimeoutError, match=r"timed out after 30s waiting for the workload to come up"
    ):
        await run_scenario(s, seed=1, duration=60)


async def test_progress_is_reported_at_each_sample(autojump_clock):
    seen: list[tuple[float, float]] = []
    s = scenario("schedule: {faults: [{at: 20, kind: heal-all}]}\nsample_every: 10s\n")
    await run_scenario(s, seed=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[:3] == [(0.0, 20.0), (10.0, 20.0), (20.0, 20.0)]
    assert trio.current_time() > 20
