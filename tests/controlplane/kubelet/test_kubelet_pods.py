"""The kubelet against the FakeRuntime: pods run, crash, restart, pull, get deleted."""

from __future__ import annotations

import trio
from kubelet_harness import open_node, simple_pod


def _phase(env, name):
    pod = env.pod(name)
    return pod is not None and pod.status.phase


def _condition(pod, type_):
    return next((c.status for c in pod.status.conditions if c.type == type_), None)


async def test_pod_runs_with_ip_conditions_and_container_status(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        pod = await env.wait_for(
            lambda: _condition(env.pod("web"), "Ready") == "True" and env.pod("web")
        )
        status = pod.status
        assert status.phase == "Running"
        assert status.pod_ip and status.pod_ip.startswith("10.244.")
        assert [ip.ip for ip in status.pod_ips] == [status.pod_ip]
        assert status.host_ip == env.kubelet._host_ip
        assert status.start_time is not None
        types = [c.type for c in status.conditions]
        assert types == [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        assert all(c.status == "True" for c in status.conditions)
        (cs,) = status.container_statuses
        assert cs.name == "app"
        assert cs.ready and cs.started
        assert cs.restart_count == 0
        assert cs.state.running is not None and cs.state.running.started_at is not None
        assert cs.container_id.startswith("kubetrio://")
        assert cs.image == "nginx:1.25"
        events = await env.wait_for(lambda: len(env.events("web")) >= 4 and env.events("web"))
        assert sorted(e.reason for e in events) == ["Created", "Pulled", "Pulling", "Started"]
        assert all(e.source.component == "kubelet" and e.source.host == "node-1" for e in events)
        (pulled,) = env.events("web", "Pulled")
        assert pulled.message.startswith('Successfully pulled image "nginx:1.25" in 1.')


def _cs(env, name):
    pod = env.pod(name)
    if pod is None or not pod.status.container_statuses:
        return None
    return pod.status.container_statuses[0]


async def test_crash_loop_backs_off_10_20_40_seconds(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("crash", command=["sh", "-c", "exit 1"]))
        restarts: dict[int, float] = {}
        start = trio.current_time()
        while 4 not in restarts:
            cs = await env.wait_for(
                lambda: (cs := _cs(env, "crash")) and cs.restart_count not in restarts and cs
            )
            restarts[cs.restart_count] = trio.current_time() - start
        # the first exit restarts at once (right after the ~1 s pull), then 10 s, 20 s, 40 s
        assert restarts[1] < 2
        gaps = [restarts[i + 1] - restarts[i] for i in (1, 2, 3)]
        assert [round(g) for g in gaps] == [10, 20, 40]
        cs = await env.wait_for(
            lambda: (cs := _cs(env, "crash")) and cs.state.waiting is not None and cs
        )
        assert cs.state.waiting.reason == "CrashLoopBackOff"
        pod = env.pod("crash")
        assert cs.state.waiting.message == (
            f"back-off 1m20s restarting failed container=app pod=crash_default({pod.metadata.uid})"
        )
        terminated = cs.last_state.terminated
        assert terminated.exit_code == 1 and terminated.reason == "Error"
        assert terminated.container_id == cs.container_id
        assert pod.status.phase == "Running"
        assert not cs.ready
        # only the current and the previous container are kept
        assert len(env.runtime.list_containers()) == 2
        backoffs = await env.wait_for(lambda: env.events("crash", "BackOff"))
        assert backoffs[0].count >= 3
        assert backoffs[0].message.startswith(
            "Back-off restarting failed container app in pod crash_default("
        )


async def test_on_failure_pod_that_succeeds_is_succeeded(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                **simple_pod("job", command=["sh", "-c", "sleep 5; exit 0"]),
            }
            | {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "sleep 5; exit 0"],
                        }
                    ],
                }
            }
        )
        await env.wait_for(lambda: _phase(env, "job") == "Running")
        ran_at = trio.current_time()
        pod = await env.wait_for(lambda: _phase(env, "job") == "Succeeded" and env.pod("job"))
        assert 4.9 < trio.current_time() - ran_at < 5.5
        (cs,) = pod.status.container_statuses
        assert cs.state.terminated.reason == "Completed"
        assert cs.state.terminated.exit_code == 0
        assert cs.restart_count == 0
        ready = {c.type: (c.status, c.reason) for c in pod.status.conditions}
        assert ready["Ready"] == ("False", "PodCompleted")
        await env.tracker.wait_idle()
        await trio.sleep(60)
        assert env.pod("job").status.phase == "Succeeded"
        assert _cs(env, "job").restart_count == 0


async def test_never_pod_that_fails_is_failed_and_not_restarted(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "once"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "app", "image": "busybox:1.36", "command": ["sh", "-c", "exit 3"]}
                    ],
                },
            }
        )
        pod = await env.wait_for(lambda: _phase(env, "once") == "Failed" and env.pod("once"))
        (cs,) = pod.status.container_statuses
        assert cs.state.terminated.exit_code == 3
        assert cs.state.terminated.reason == "Error"
        await trio.sleep(60)
        assert _cs(env, "once").restart_count == 0
        assert len(env.runtime.list_containers()) == 1


async def test_on_failure_restarts_a_failing_container(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "retry"},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {"name": "app", "image": "busybox:1.36", "command": ["sh", "-c", "exit 2"]}
                    ],
                },
            }
        )
        cs = await env.wait_for(lambda: (cs := _cs(env, "retry")) and cs.restart_count >= 2 and cs)
        assert env.pod("retry").status.phase == "Running"
        assert cs.last_state.terminated.exit_code == 2


async def test_missing_image_backs_off_pulling(autojump_clock):
    async with open_node() as env:
        env.registry.mark_missing("ghost:1.0")
        await env.run_pod(simple_pod("ghost", image="ghost:1.0"))
        cs = await env.wait_for(
            lambda: (
                (cs := _cs(env, "ghost"))
                and cs.state.waiting
                and cs.state.waiting.reason == "ErrImagePull"
                and cs
            )
        )
        assert "ghost:1.0" in cs.state.waiting.message
        failed_at = trio.current_time()
        cs = await env.wait_for(
            lambda: (
                (cs := _cs(env, "ghost")) and cs.state.waiting.reason == "ImagePullBackOff" and cs
            )
        )
        assert cs.state.waiting.message == 'Back-off pulling image "ghost:1.0"'
        pod = env.pod("ghost")
        assert pod.status.phase == "Pending"
        assert not cs.ready and cs.restart_count == 0
        # the next attempt comes 10 s after the failure, the one after 20 s later
        await env.wait_for(lambda: _cs(env, "ghost").state.waiting.reason == "ErrImagePull")
        assert 9.9 < trio.current_time() - failed_at < 11
        second = trio.current_time()
        await env.wait_for(lambda: _cs(env, "ghost").state.waiting.reason == "ImagePullBackOff")
        await env.wait_for(lambda: _cs(env, "ghost").state.waiting.reason == "ErrImagePull")
        assert 19.9 < trio.current_time() - second < 21.5
        reasons = {e.reason for e in env.events("ghost")}
        assert {"Pulling", "Failed", "BackOff"} <= reasons


async def test_unknown_command_exits_127_and_crash_loops(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("typo", image="busybox:1.36", command=["sh", "-c", "fooo"]))
        cs = await env.wait_for(
            lambda: (
                (cs := _cs(env, "typo"))
                and cs.state.waiting
                and cs.state.waiting.reason == "CrashLoopBackOff"
                and cs
            )
        )
        terminated = cs.last_state.terminated
        assert terminated.exit_code == 127
        assert "not found" in terminated.message


async def test_readiness_probe_gates_ready(autojump_clock):
    from runtime.programs import Program

    async with open_node() as env:
        env.registry.add("slow-ready:1", program=Program(ready_after=25))
        await env.run_pod(
            simple_pod(
                "gated",
                image="slow-ready:1",
                readinessProbe={"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
            )
        )
        await env.wait_for(lambda: _phase(env, "gated") == "Running")
        started = trio.current_time()
        pod = env.pod("gated")
        assert _condition(pod, "Ready") == "False"
        assert not pod.status.container_statuses[0].ready
        assert pod.status.container_statuses[0].started
        ready_pod = await env.wait_for(
            lambda: _condition(env.pod("gated"), "Ready") == "True" and env.pod("gated")
        )
        assert 24 < trio.current_time() - started < 31
        assert ready_pod.status.container_statuses[0].ready
        unhealthy = env.events("gated", "Unhealthy")
        assert unhealthy and unhealthy[0].message.startswith("Readiness probe failed")


async def test_liveness_failure_restarts_the_container(autojump_clock):
    from runtime.programs import Program

    async with open_node() as env:
        env.registry.add("flaky:1", program=Program(live_for=30))
        await env.run_pod(
            simple_pod(
                "flaky",
                image="flaky:1",
                livenessProbe={
                    "tcpSocket": {"port": 80},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
            )
        )
        await env.wait_for(lambda: _phase(env, "flaky") == "Running")
        started = trio.current_time()
        cs = await env.wait_for(lambda: (cs := _cs(env, "flaky")) and cs.restart_count == 1 and cs)
        # failing from 30 s; probes at 30, 40, 50 -> killed at 50 (SIGTERM exits at once)
        assert 49 < trio.current_time() - started < 53
        assert cs.last_state.terminated.exit_code == 143
        killing = await env.wait_for(lambda: env.events("flaky", "Killing"))
        assert killing[0].message == "Container app failed liveness probe, will be restarted"


async def test_graceful_delete_waits_for_the_grace_period(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "slow-stop"},
                "spec": {
                    "terminationGracePeriodSeconds": 20,
                    "containers": [
                        {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}
                    ],
                },
            }
        )
        await env.wait_for(lambda: _phase(env, "slow-stop") == "Running")
        await env.client.delete("Pod", "slow-stop", namespace="default")
        deleted_at = trio.current_time()
        assert env.pod("slow-stop").metadata.deletion_timestamp is not None
        await env.wait_for(lambda: env.pod("slow-stop") is None)
        # sleep as PID 1 ignores SIGTERM: killed when the 20 s are over
        assert 19.9 < trio.current_time() - deleted_at < 21
        assert env.runtime.list_containers() == []
        assert env.runtime.list_sandboxes() == []
        killing = env.events("slow-stop", "Killing")
        assert killing and killing[0].message == "Stopping container app"


async def test_graceful_delete_of_a_prompt_container_is_quick(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(lambda: _phase(env, "web") == "Running")
        await env.client.delete("Pod", "web", namespace="default")
        deleted_at = trio.current_time()
        await env.wait_for(lambda: env.pod("web") is None)
        assert trio.current_time() - deleted_at < 1


async def test_force_delete_kills_the_containers(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("web"))
        await env.wait_for(lambda: _phase(env, "web") == "Running")
        await env.client.delete("Pod", "web", namespace="default", grace_period_seconds=0)
        assert env.pod("web") is None
        await env.tracker.wait_idle()
        assert env.runtime.list_containers() == []
        assert env.runtime.list_sandboxes() == []


async def test_pod_that_does_not_fit_is_rejected(autojump_clock):
    async with open_node() as env:
        await env.run_pod(simple_pod("small", resources={"requests": {"cpu": "1200m"}}))
        await env.wait_for(lambda: _phase(env, "small") == "Running")
        await env.run_pod(simple_pod("big", resources={"requests": {"cpu": "8"}}))
        pod = await env.wait_for(lambda: _phase(env, "big") == "Failed" and env.pod("big"))
        assert pod.status.reason == "OutOfcpu"
        assert pod.status.message == (
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 8000,"
            " used: 1200, capacity: 4000"
        )
        assert env.runtime.list_sandboxes()[0].labels["io.kubernetes.pod.name"] == "small"
        assert len(env.runtime.list_sandboxes()) == 1
        await env.wait_for(lambda: env.events("big", "OutOfcpu"))


async def test_init_containers_run_in_order_before_containers(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "init"},
                "spec": {
                    "initContainers": [
                        {
                            "name": "first",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "sleep 3"],
                        },
                        {
                            "name": "second",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "sleep 4"],
                        },
                    ],
                    "containers": [{"name": "app", "image": "nginx:1.25"}],
                },
            }
        )
        pod = await env.wait_for(
            lambda: (
                (p := env.pod("init"))
                and p.status.init_container_statuses
                and p.status.init_container_statuses[0].state.running
                and p
            )
        )
        assert pod.status.phase == "Pending"
        initialized = next(c for c in pod.status.conditions if c.type == "Initialized")
        assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
        assert initialized.message == "containers with incomplete status: [first second]"
        assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
        started = trio.current_time()
        pod = await env.wait_for(lambda: _phase(env, "init") == "Running" and env.pod("init"))
        assert 7 <= trio.current_time() - started < 9.5
        first, second = pod.status.init_container_statuses
        assert first.state.terminated.reason == "Completed"
        assert second.state.terminated.reason == "Completed"
        assert second.state.terminated.started_at >= first.state.terminated.finished_at


async def test_failing_init_container_under_never_fails_the_pod(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "bad-init"},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {
                            "name": "setup",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "exit 2"],
                        }
                    ],
                    "containers": [{"name": "app", "image": "nginx:1.25"}],
                },
            }
        )
        pod = await env.wait_for(
            lambda: _phase(env, "bad-init") == "Failed" and env.pod("bad-init")
        )
        assert pod.status.init_container_statuses[0].state.terminated.exit_code == 2
        assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
        assert all(
            c.labels["io.kubernetes.container.name"] == "setup"
            for c in env.runtime.list_containers()
        )


async def test_failing_init_container_is_restarted_with_back_off(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "retry-init"},
                "spec": {
                    "initContainers": [
                        {
                            "name": "setup",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "exit 2"],
                        }
                    ],
                    "containers": [{"name": "app", "image": "nginx:1.25"}],
                },
            }
        )
        status = await env.wait_for(
            lambda: (
                (p := env.pod("retry-init"))
                and p.status.init_container_statuses
                and (s := p.status.init_container_statuses[0]).state.waiting
                and s.state.waiting.reason == "CrashLoopBackOff"
                and s
            )
        )
        assert status.restart_count >= 1
        assert env.pod("retry-init").status.phase == "Pending"


async def test_memory_over_the_limit_is_oom_killed(autojump_clock):
    from runtime.programs import Curve, MiB, Program

    async with open_node() as env:
        env.registry.add("hog:1", program=Program(memory=Curve([(0, 10 * MiB), (30, 300 * MiB)])))
        await env.run_pod(
            simple_pod("hog", image="hog:1", resources={"limits": {"memory": "128Mi"}})
        )
        cs = await env.wait_for(lambda: (cs := _cs(env, "hog")) and cs.restart_count == 1 and cs)
        assert cs.last_state.terminated.reason == "OOMKilled"
        assert cs.last_state.terminated.exit_code == 137


async def test_startup_probe_gates_liveness_and_readiness(autojump_clock):
    from runtime.programs import Program

    async with open_node() as env:
        env.registry.add("slow-start:1", program=Program(started_after=25, live_for=None))
        await env.run_pod(
            simple_pod(
                "boot",
                image="slow-start:1",
                startupProbe={
                    "exec": {"command": ["true"]},
                    "periodSeconds": 10,
                    "failureThreshold": 5,
                },
                livenessProbe={"exec": {"command": ["true"]}},
            )
        )
        await env.wait_for(lambda: _phase(env, "boot") == "Running")
        began = trio.current_time()
        cs = _cs(env, "boot")
        assert cs.started is False and cs.ready is False
        cs = await env.wait_for(lambda: (cs := _cs(env, "boot")) and cs.started and cs)
        assert 29 < trio.current_time() - began < 31  # probes at 0, 10, 20, 30
        assert cs.ready
        assert cs.restart_count == 0


async def test_startup_probe_that_never_passes_restarts_the_container(autojump_clock):
    from runtime.programs import Program

    async with open_node() as env:
        env.registry.add("stuck:1", program=Program(started_after=10_000))
        await env.run_pod(
            simple_pod(
                "stuck",
                image="stuck:1",
                startupProbe={
                    "exec": {"command": ["true"]},
                    "periodSeconds": 5,
                    "failureThreshold": 3,
                },
            )
        )
        await env.wait_for(lambda: (cs := _cs(env, "stuck")) and cs.restart_count == 1)
        killing = await env.wait_for(lambda: env.events("stuck", "Killing"))
        assert killing[0].message == "Container app failed startup probe, will be restarted"


async def test_active_deadline_fails_the_pod_and_stops_it(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "bounded"},
                "spec": {
                    "activeDeadlineSeconds": 30,
                    "containers": [{"name": "app", "image": "nginx:1.25"}],
                },
            }
        )
        await env.wait_for(lambda: _phase(env, "bounded") == "Running")
        pod = await env.wait_for(lambda: _phase(env, "bounded") == "Failed" and env.pod("bounded"))
        assert 29 <= trio.current_time() <= 32
        assert pod.status.reason == "DeadlineExceeded"
        assert pod.status.message == "Pod was active on the node longer than the specified deadline"
        cs = await env.wait_for(
            lambda: (cs := _cs(env, "bounded")) and cs.state.terminated is not None and cs
        )
        assert cs.state.terminated.exit_code == 143
        assert cs.restart_count == 0


async def test_sidecar_runs_beside_the_containers_and_stops_after_them(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "with-sidecar"},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {"name": "proxy", "image": "nginx:1.25", "restartPolicy": "Always"},
                        {
                            "name": "setup",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "sleep 2"],
                        },
                    ],
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.36",
                            "command": ["sh", "-c", "sleep 20"],
                        }
                    ],
                },
            }
        )
        pod = await env.wait_for(
            lambda: (p := env.pod("with-sidecar")) and p.status.phase == "Running" and p
        )
        proxy, setup = pod.status.init_container_statuses
        assert proxy.state.running is not None and proxy.started
        assert setup.state.terminated.reason == "Completed"
        assert setup.state.terminated.started_at >= proxy.state.running.started_at
        pod = await env.wait_for(
            lambda: (
                _condition(env.pod("with-sidecar"), "Ready") == "True" and env.pod("with-sidecar")
            )
        )
        assert pod.status.init_container_statuses[0].ready
        pod = await env.wait_for(
            lambda: _phase(env, "with-sidecar") == "Succeeded" and env.pod("with-sidecar")
        )
        await env.tracker.wait_idle()
        proxy = env.pod("with-sidecar").status.init_container_statuses[0]
        assert proxy.state.terminated is not None
        assert proxy.restart_count == 0
        assert all(c.state.value == "exited" for c in env.runtime.list_containers())


async def test_sidecar_is_restarted_even_in_a_never_pod(autojump_clock):
    async with open_node() as env:
        await env.run_pod(
            {
                "metadata": {"name": "flaky-sidecar"},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [
                        {
                            "name": "proxy",
                            "image": "busybox:1.36",
                            "restartPolicy": "Always",
                            "command": ["sh", "-c", "sleep 5; exit 1"],
                        }
                    ],
                    "containers": [{"name": "app", "image": "nginx:1.25"}],
                },
            }
        )
        await env.wait_for(
            lambda: (
                (p := env.pod("flaky-sidecar"))
                and p.status.init_container_statuses
                and p.status.init_container_statuses[0].restart_count >= 2
            )
        )
        pod = env.pod("flaky-sidecar")
        assert pod.status.phase == "Running"
        assert pod.status.container_statuses[0].restart_count == 0
