"""The kubelet's pure decisions, without any actor: back-off, probes, admission, plans,
status."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import from_dict
from controlplane.api.core_pod import Pod, Probe
from controlplane.clock import to_wall
from controlplane.kubelet.admission import Resources, admit, pod_requests
from controlplane.kubelet.backoff import BackoffEntry, next_crash_backoff, next_image_backoff
from controlplane.kubelet.labels import container_labels, parse_container_labels
from controlplane.kubelet.model import ObservedPod, PodMemory, PullFailure
from controlplane.kubelet.plan import format_duration, plan_pod
from controlplane.kubelet.probes import ProbeSpec, ProbeState, new_container_probes, observe
from controlplane.kubelet.status import compute_phase, compute_status
from runtime.cri import ContainerInfo, ContainerState, SandboxInfo

UID = "uid-1"


def make_pod(spec: dict, name: str = "p", **meta) -> Pod:
    pod = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": UID, **meta},
            "spec": {"nodeName": "node-1", **spec},
        }
    )
    return attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Pending"))


def app(name: str = "app", **fields) -> dict:
    return {"name": name, "image": "nginx:1.25", **fields}


SANDBOX = SandboxInfo(id="sb", name="sb", ip="10.244.0.5", labels={}, created_at=0.0)


def info(
    pod: Pod,
    name: str = "app",
    *,
    cid: str = "c1",
    state: ContainerState = ContainerState.RUNNING,
    restart: int = 0,
    init: bool = False,
    started: float | None = 0.0,
    finished: float | None = None,
    code: int | None = None,
    reason: str = "",
) -> ContainerInfo:
    container = next(c for c in (*pod.spec.containers, *pod.spec.init_containers) if c.name == name)
    return ContainerInfo(
        id=cid,
        sandbox_id="sb",
        name=name,
        image=container.image or "",
        state=state,
        labels=container_labels(pod, container, init=init, restart_count=restart),
        created_at=started or 0.0,
        started_at=started,
        finished_at=finished,
        exit_code=code,
        reason=reason,
    )


def exited(pod: Pod, code: int, *, cid: str = "c1", restart: int = 0, at: float = 5.0, **kw):
    return info(
        pod,
        cid=cid,
        state=ContainerState.EXITED,
        restart=restart,
        started=at - 1,
        finished=at,
        code=code,
        reason="Completed" if code == 0 else "Error",
        **kw,
    )


IMAGES = frozenset({"nginx:1.25", "busybox:1.36"})

# -- back-off ----------------------------------------------------------------------------


def test_crash_backoff_first_exit_restarts_at_once_then_doubles_to_300():
    entry = None
    delays = []
    for i in range(8):
        entry = next_crash_backoff(
            entry, container_id=f"c{i}", started_at=i * 1000.0, finished_at=i * 1000.0 + 1
        )
        delays.append(entry.delay)
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_crash_backoff_is_computed_once_per_exit():
    entry = next_crash_backoff(None, container_id="a", started_at=0, finished_at=1)
    entry = next_crash_backoff(entry, container_id="b", started_at=2, finished_at=3)
    again = next_crash_backoff(entry, container_id="b", started_at=2, finished_at=3)
    assert again is entry
    assert (entry.delay, entry.until) == (10, 13)


def test_crash_backoff_resets_after_ten_minutes_running():
    entry = BackoffEntry(160, 0, "old")
    fresh = next_crash_backoff(entry, container_id="new", started_at=100, finished_at=700)
    assert (fresh.delay, fresh.until) == (0, 700)


def test_image_backoff_doubles_to_300():
    entry = None
    delays = []
    for i in range(7):
        entry = next_image_backoff(entry, failed_at=float(i))
        delays.append(entry.delay)
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert entry.until == 306


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (10, "10s"), (80, "1m20s"), (300, "5m0s"), (3700, "1h1m40s")]
)
def test_format_duration_like_go(seconds, text):
    assert format_duration(seconds) == text


# -- probes ------------------------------------------------------------------------------


def test_probe_defaults():
    spec = ProbeSpec.of("readiness", Probe())
    assert (spec.initial_delay, spec.period, spec.timeout) == (0, 10, 1)
    assert (spec.success_threshold, spec.failure_threshold) == (1, 3)


@given(st.lists(st.booleans(), max_size=30))
def test_liveness_fails_only_after_threshold_consecutive_failures(outcomes):
    spec = ProbeSpec("liveness", failure_threshold=3)
    state = ProbeState(spec, True, 0.0)
    run = 0
    for i, ok in enumerate(outcomes):
        state = observe(state, ok, float(i))
        run = 0 if ok else run + 1
        if run >= 3:
            break
        assert state.passing
    if run >= 3:
        assert not state.passing


def test_readiness_needs_success_threshold_and_fails_after_failure_threshold():
    spec = ProbeSpec("readiness", success_threshold=2, failure_threshold=2)
    state = ProbeState(spec, False, 0.0)
    state = observe(state, True, 0)
    assert not state.passing
    state = observe(state, True, 10)
    assert state.passing and state.next_at == 20
    state = observe(state, False, 20)
    assert state.passing
    state = observe(state, False, 30)
    assert not state.passing


def test_startup_probe_gates_the_others_and_starts_their_clock():
    pod = make_pod(
        {
            "containers": [
                app(
                    startupProbe={"exec": {"command": ["x"]}, "periodSeconds": 5},
                    livenessProbe={"exec": {"command": ["x"]}, "initialDelaySeconds": 20},
                    readinessProbe={"exec": {"command": ["x"]}},
                )
            ]
        }
    )
    probes = new_container_probes(pod.spec.containers[0], "c1", 100.0)
    assert not probes.started and not probes.ready
    assert probes.due(100.0) == ("startup",)
    probes = probes.with_outcome("startup", True, 107.0)
    assert probes.started
    assert probes.liveness.next_at == 120.0  # initial delay counts from the start
    assert probes.readiness.next_at == 107.0
    assert not probes.ready
    probes = probes.with_outcome("readiness", True, 107.0)
    assert probes.ready


def test_startup_probe_failing_threshold_times_asks_for_a_restart():
    pod = make_pod(
        {"containers": [app(startupProbe={"exec": {"command": ["x"]}, "failureThreshold": 2})]}
    )
    probes = new_container_probes(pod.spec.containers[0], "c1", 0.0)
    probes = probes.with_outcome("startup", False, 0)
    assert probes.failed is None
    probes = probes.with_outcome("startup", False, 10)
    assert probes.failed == "startup"


# -- admission ---------------------------------------------------------------------------


def _req(cpu: str | None = None, memory: str | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return app(resources={"requests": requests})


def test_pod_requests_take_the_larger_of_containers_and_init_containers():
    pod = make_pod(
        {
            "initContainers": [
                {"name": "i", "image": "x:1", "resources": {"requests": {"cpu": "2"}}}
            ],
            "containers": [_req("500m", "1Gi"), {**_req("700m"), "name": "b"}],
        }
    )
    assert pod_requests(pod) == Resources(milli_cpu=2000, memory=1024**3, pods=1)


@pytest.mark.parametrize(
    ("allocatable", "reason", "message"),
    [
        (Resources(4000, 8 * 1024**3, 110), None, None),
        (
            Resources(1000, 8 * 1024**3, 110),
            "OutOfcpu",
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 500,"
            " used: 600, capacity: 1000",
        ),
        (
            Resources(4000, 1024**3, 110),
            "OutOfmemory",
            "Pod was rejected: Node didn't have enough resource: memory, requested: 805306368,"
            " used: 536870912, capacity: 1073741824",
        ),
        (
            Resources(4000, 8 * 1024**3, 1),
            "OutOfpods",
            "Pod was rejected: Node didn't have enough resource: pods, requested: 1,"
            " used: 1, capacity: 1",
        ),
    ],
)
def test_admission(allocatable, reason, message):
    running = make_pod({"containers": [_req("600m", "512Mi")]}, name="a")
    new = make_pod({"containers": [_req("500m", "768Mi")]}, name="b")
    rejection = admit(new, [running], allocatable)
    if reason is None:
        assert rejection is None
    else:
        assert (rejection.reason, rejection.message) == (reason, message)


# -- plans -------------------------------------------------------------------------------


def test_plan_creates_the_sandbox_first():
    pod = make_pod({"containers": [app()]})
    plan = plan_pod(pod, ObservedPod(), PodMemory(), now=0, images_present=IMAGES)
    assert plan.create_sandbox and not plan.starts


def test_plan_pulls_a_missing_image_then_starts():
    pod = make_pod({"containers": [app(image="redis:7")]})
    plan = plan_pod(pod, ObservedPod(SANDBOX), PodMemory(), now=0, images_present=IMAGES)
    assert [(p.container_name, p.image) for p in plan.pulls] == [("app", "redis:7")]
    assert plan.memory.pulling == {"app"}
    again = plan_pod(pod, ObservedPod(SANDBOX), plan.memory, now=0, images_present=IMAGES)
    assert not again.pulls and not again.starts  # the pull is in flight
    done = plan_pod(
        pod, ObservedPod(SANDBOX), PodMemory(), now=1, images_present=IMAGES | {"redis:7"}
    )
    assert [(s.container.name, s.restart_count) for s in done.starts] == [("app", 0)]


def test_plan_always_pulls_even_when_present():
    pod = make_pod({"containers": [app(imagePullPolicy="Always")]})
    plan = plan_pod(pod, ObservedPod(SANDBOX), PodMemory(), now=0, images_present=IMAGES)
    assert plan.pulls and not plan.starts
    pulled = PodMemory(pulled={"app"})
    assert plan_pod(pod, ObservedPod(SANDBOX), pulled, now=1, images_present=IMAGES).starts


def test_plan_never_pull_policy_without_the_image_waits():
    pod = make_pod({"containers": [app(image="local:1", imagePullPolicy="Never")]})
    plan = plan_pod(pod, ObservedPod(SANDBOX), PodMemory(), now=0, images_present=IMAGES)
    assert not plan.pulls and not plan.starts
    failure = plan.memory.pull_failures["app"]
    assert failure.reason == "ErrImageNeverPull"
    assert failure.message == 'Container image "local:1" is not present with pull policy of Never'


def test_plan_waits_out_an_image_pull_back_off():
    pod = make_pod({"containers": [app(image="ghost:1")]})
    failure = PullFailure("ErrImagePull", "not found", 0.0, BackoffEntry(10, 10))
    memory = PodMemory(pull_failures={"app": failure})
    plan = plan_pod(pod, ObservedPod(SANDBOX), memory, now=0.5, images_present=IMAGES)
    assert not plan.pulls and plan.wake_at == 1.0  # ErrImagePull -> ImagePullBackOff
    plan = plan_pod(pod, ObservedPod(SANDBOX), memory, now=1.0, images_present=IMAGES)
    assert [e.reason for e in plan.events] == ["BackOff"]
    assert plan.wake_at == 10
    plan = plan_pod(pod, ObservedPod(SANDBOX), memory, now=10, images_present=IMAGES)
    assert plan.pulls


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 1, True),
        ("Never", 1, False),
        ("Never", 0, False),
    ],
)
def test_plan_restart_policy(policy, code, restarts):
    pod = make_pod({"restartPolicy": policy, "containers": [app()]})
    observed = ObservedPod(SANDBOX, (exited(pod, code),))
    plan = plan_pod(pod, observed, PodMemory(), now=5, images_present=IMAGES)
    assert bool(plan.starts) is restarts
    if restarts:
        assert plan.starts[0].restart_count == 1


def test_plan_crash_loop_waits_and_keeps_one_dead_container():
    pod = make_pod({"containers": [app()]})
    old = exited(pod, 1, cid="c1", restart=0, at=1)
    last = exited(pod, 1, cid="c2", restart=1, at=5)
    memory = PodMemory(crash_backoff={"app": BackoffEntry(0, 1, "c1")})
    plan = plan_pod(pod, ObservedPod(SANDBOX, (old, last)), memory, now=5, images_present=IMAGES)
    assert not plan.starts
    assert plan.memory.crash_backoff["app"] == BackoffEntry(10, 15, "c2")
    assert plan.wake_at == 15
    assert [e.reason for e in plan.events] == ["BackOff"]
    plan = plan_pod(
        pod, ObservedPod(SANDBOX, (old, last)), plan.memory, now=15, images_present=IMAGES
    )
    assert [s.restart_count for s in plan.starts] == [2]
    assert plan.removes == ("c1",)


def test_plan_kills_on_liveness_failure():
    pod = make_pod(
        {
            "terminationGracePeriodSeconds": 7,
            "containers": [app(livenessProbe={"exec": {"command": ["x"]}, "failureThreshold": 1})],
        }
    )
    running = info(pod)
    probes = new_container_probes(pod.spec.containers[0], "c1", 0).with_outcome(
        "liveness", False, 0
    )
    plan = plan_pod(
        pod,
        ObservedPod(SANDBOX, (running,)),
        PodMemory(probes={"c1": probes}),
        now=0,
        images_present=IMAGES,
    )
    assert [(k.container_id, k.grace, k.reason) for k in plan.kills] == [("c1", 7, "liveness")]
    killing = PodMemory(probes={"c1": probes}, killing={"c1"})
    assert not plan_pod(
        pod, ObservedPod(SANDBOX, (running,)), killing, now=0, images_present=IMAGES
    ).kills


def test_plan_runs_init_containers_one_at_a_time():
    pod = make_pod(
        {
            "initContainers": [
                {"name": "a", "image": "busybox:1.36"},
                {"name": "b", "image": "busybox:1.36"},
            ],
            "containers": [app()],
        }
    )
    plan = plan_pod(pod, ObservedPod(SANDBOX), PodMemory(), now=0, images_present=IMAGES)
    assert [(s.container.name, s.init) for s in plan.starts] == [("a", True)]
    a_done = exited(pod, 0, cid="i1", init=True, name="a")
    plan = plan_pod(pod, ObservedPod(SANDBOX, (a_done,)), PodMemory(), now=5, images_present=IMAGES)
    assert [(s.container.name, s.init) for s in plan.starts] == [("b", True)]
    b_done = exited(pod, 0, cid="i2", init=True, name="b")
    plan = plan_pod(
        pod, ObservedPod(SANDBOX, (a_done, b_done)), PodMemory(), now=6, images_present=IMAGES
    )
    assert [(s.container.name, s.init) for s in plan.starts] == [("app", False)]


def test_plan_for_a_deleted_pod_stops_then_tears_down():
    pod = make_pod(
        {"containers": [app()]},
        deletionTimestamp="2025-01-01T00:00:30Z",
        deletionGracePeriodSeconds=30,
    )
    running = info(pod)
    plan = plan_pod(
        pod, ObservedPod(SANDBOX, (running,)), PodMemory(), now=0, images_present=IMAGES
    )
    assert [(k.grace, k.reason) for k in plan.kills] == [(30, "deleting")]
    assert not plan.teardown
    stopped = exited(pod, 143)
    plan = plan_pod(
        pod, ObservedPod(SANDBOX, (stopped,)), PodMemory(), now=1, images_present=IMAGES
    )
    assert plan.teardown and not plan.starts


def test_plan_never_restarts_a_pod_that_is_terminal_in_the_api():
    pod = make_pod({"restartPolicy": "Always", "containers": [app()]})
    pod = attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Failed"))
    plan = plan_pod(
        pod, ObservedPod(SANDBOX, (exited(pod, 1),)), PodMemory(), now=5, images_present=IMAGES
    )
    assert not plan.starts


# -- status ------------------------------------------------------------------------------


def test_status_of_a_running_ready_pod():
    pod = make_pod({"containers": [app()]})
    status = compute_status(
        pod,
        ObservedPod(SANDBOX, (info(pod, started=3.0),)),
        PodMemory(),
        now=10,
        host_ip="172.16.0.1",
    )
    assert status.phase == "Running"
    assert status.pod_ip == "10.244.0.5" and status.host_ip == "172.16.0.1"
    assert {c.type: c.status for c in status.conditions} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
    }
    (cs,) = status.container_statuses
    assert cs.ready and cs.started
    assert cs.state.running.started_at == to_wall(3.0)
    assert cs.container_id == "kubetrio://c1"


def test_status_keeps_condition_transition_times():
    pod = make_pod({"containers": [app()]})
    observed = ObservedPod(SANDBOX, (info(pod),))
    first = compute_status(pod, observed, PodMemory(), now=10, host_ip="h")
    later = compute_status(
        attrs.evolve(pod, status=first), observed, PodMemory(), now=50, host_ip="h"
    )
    assert later == first


def test_status_in_crash_loop():
    pod = make_pod({"containers": [app()]})
    last = exited(pod, 1, cid="c2", restart=3, at=20)
    memory = PodMemory(crash_backoff={"app": BackoffEntry(40, 60, "c2")})
    status = compute_status(pod, ObservedPod(SANDBOX, (last,)), memory, now=21, host_ip="h")
    (cs,) = status.container_statuses
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert (
        cs.state.waiting.message
        == "back-off 40s restarting failed container=app pod=p_default(uid-1)"
    )
    assert cs.last_state.terminated.exit_code == 1
    assert cs.restart_count == 3
    assert status.phase == "Running"
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "ContainersNotReady",
        "containers with unready status: [app]",
    )


def test_status_image_pull_back_off_then_err_image_pull():
    pod = make_pod({"containers": [app(image="ghost:1")]})
    failure = PullFailure("ErrImagePull", "failed to pull", 10.0, BackoffEntry(10, 20))
    memory = PodMemory(pull_failures={"app": failure})
    waiting = (
        compute_status(pod, ObservedPod(SANDBOX), memory, now=10.2, host_ip="h")
        .container_statuses[0]
        .state.waiting
    )
    assert (waiting.reason, waiting.message) == ("ErrImagePull", "failed to pull")
    waiting = (
        compute_status(pod, ObservedPod(SANDBOX), memory, now=12, host_ip="h")
        .container_statuses[0]
        .state.waiting
    )
    assert (waiting.reason, waiting.message) == (
        "ImagePullBackOff",
        'Back-off pulling image "ghost:1"',
    )
    assert compute_status(pod, ObservedPod(SANDBOX), memory, now=12, host_ip="h").phase == "Pending"


def test_status_of_a_deleted_pod_whose_containers_stopped_is_terminal():
    pod = make_pod({"containers": [app()]}, deletionTimestamp="2025-01-01T00:00:30Z")
    status = compute_status(
        pod,
        ObservedPod(SANDBOX, (exited(pod, 143),)),
        PodMemory(),
        now=5,
        host_ip="h",
        stopped=True,
    )
    assert status.phase == "Failed"
    assert status.container_statuses[0].state.terminated.exit_code == 143


@pytest.mark.parametrize(
    ("policy", "states", "phase"),
    [
        ("Always", ["running"], "Running"),
        ("Always", ["waiting"], "Pending"),
        ("Always", ["crashloop"], "Running"),
        ("Never", ["ok", "ok"], "Succeeded"),
        ("Never", ["ok", "err"], "Failed"),
        ("OnFailure", ["ok", "err"], "Running"),
        ("OnFailure", ["ok", "running"], "Running"),
        ("Never", ["ok", "waiting"], "Pending"),
    ],
)
def test_compute_phase(policy, states, phase):
    from controlplane.api.core_pod import (
        ContainerState as S,
    )
    from controlplane.api.core_pod import (
        ContainerStateRunning,
        ContainerStateTerminated,
        ContainerStateWaiting,
        ContainerStatus,
    )

    made = {
        "running": ContainerStatus(state=S(running=ContainerStateRunning())),
        "waiting": ContainerStatus(
            state=S(waiting=ContainerStateWaiting(reason="ContainerCreating"))
        ),
        "crashloop": ContainerStatus(
            state=S(waiting=ContainerStateWaiting(reason="CrashLoopBackOff")),
            last_state=S(terminated=ContainerStateTerminated(exit_code=1)),
        ),
        "ok": ContainerStatus(state=S(terminated=ContainerStateTerminated(exit_code=0))),
        "err": ContainerStatus(state=S(terminated=ContainerStateTerminated(exit_code=1))),
    }
    pod = make_pod({"restartPolicy": policy, "containers": [app()]})
    assert compute_phase(pod, [made[s] for s in states], init_done=True, init_failed=False) == phase


def test_labels_round_trip():
    pod = make_pod({"containers": [app()]})
    labels = container_labels(pod, pod.spec.containers[0], init=True, restart_count=4)
    parsed = parse_container_labels(labels)
    assert (parsed.pod_key, parsed.pod_uid, parsed.name, parsed.init, parsed.restart_count) == (
        "default/p",
        UID,
        "app",
        True,
        4,
    )
    assert parse_container_labels({"other": "x"}) is None


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
    ],
)
def test_qos_class(resources, qos):
    from controlplane.kubelet.status import qos_class

    assert qos_class(make_pod({"containers": [app(resources=resources)]})) == qos


def test_event_spam_filter_allows_a_burst_then_one_per_five_minutes():
    from controlplane.events import SpamFilter

    spam = SpamFilter(burst=25, refill=300)
    assert sum(spam.allow("pod-a", 0.0) for _ in range(40)) == 25
    assert spam.allow("pod-b", 0.0)  # per object
    assert not spam.allow("pod-a", 299.0)
    assert spam.allow("pod-a", 300.5)
    assert not spam.allow("pod-a", 301.0)


def test_pausable_tracker_takes_work_off_while_paused():
    from actors import WorkTracker
    from controlplane.kubelet.tracking import PausableTracker

    inner = WorkTracker()
    tracker = PausableTracker(inner)
    tracker.add(2)
    tracker.pause()
    assert inner.pending == 0
    tracker.add(1)
    tracker.done(1)
    assert inner.pending == 0 and tracker.pending == 2
    tracker.resume()
    assert inner.pending == 2
    tracker.done(2)
    assert inner.pending == 0
