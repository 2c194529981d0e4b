"""FakeRuntime: pulls, container lifecycles, stop/kill, OOM, probes, user programs, crash."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from runtime_world import World
from structlog.testing import capture_logs

from runtime.cri import (
    ContainerConfig,
    ContainerExit,
    ContainerNotFound,
    ContainerState,
    ContainerStateError,
    ImageNotPresent,
    ImagePullError,
    ProbeResult,
    RuntimeDown,
    RuntimeError_,
    SandboxNotFound,
)
from runtime.fake import FakeRuntime
from runtime.network import NetworkTimeout
from runtime.programs import Curve, MiB, Program, ProgramContext

# ----- images -----


async def test_pulls_take_their_time_and_coalesce(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    done: list[float] = []

    async def pull() -> None:
        await world.a.pull_image("nginx:1.25")
        done.append(trio.current_time() - start)

    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(pull)
    assert len(done) == 3 and len(set(done)) == 1  # one download, all woken together
    assert 0.8 <= done[0] <= 1.21
    assert [e["event"] for e in logs].count("image_pull_started") == 1
    assert world.a.has_image("docker.io/library/nginx:1.25")
    assert not world.b.has_image("nginx:1.25")  # caches are per machine
    before = trio.current_time()
    await world.a.pull_image("nginx:1.25")
    assert trio.current_time() == before  # cached


async def test_slow_and_missing_images(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.registry.mark_slow("big/model", 40)
    world.registry.mark_missing("ghost")
    start = trio.current_time()
    await world.a.pull_image("big/model")
    assert 32 <= trio.current_time() - start <= 48.01
    with pytest.raises(ImagePullError) as info:
        await world.a.pull_image("ghost")
    assert info.value.reason == "NotFound"
    assert str(info.value) == "failed to pull image 'ghost': NotFound: manifest unknown"
    assert not world.a.has_image("ghost")
    box = await world.a.create_sandbox("pod", {})
    with pytest.raises(ImageNotPresent, match=r"^container 'c': image 'ghost' is not present"):
        await world.a.create_container(box.id, ContainerConfig(name="c", image="ghost"))


# ----- shell programs -----


async def test_shell_script_runs_logs_and_exits(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    exits = world.a.exits()
    _, cid = await world.start(world.a, "busybox", ["sh", "-c"], ["echo start; sleep 5; exit 1"])
    started = world.a.inspect(cid).started_at
    assert world.a.inspect(cid).state is ContainerState.RUNNING
    await trio.sleep(1)
    assert world.a.logs(cid) == ["start"]
    event = await exits.receive()
    assert event == ContainerExit(
        container_id=cid, sandbox_id=event.sandbox_id, exit_code=1, reason="Error", at=started + 5
    )
    info = world.a.inspect(cid)
    assert (info.state, info.exit_code, info.reason, info.finished_at) == (
        ContainerState.EXITED,
        1,
        "Error",
        started + 5,
    )
    assert world.a.logs(cid) == ["start"]
    assert world.a.probe(cid, "live") == ProbeResult(False, "container main is exited")


async def test_exit_zero_is_completed(world: World, autojump_clock: trio.testing.MockClock) -> None:
    exits = world.a.exits()
    _, cid = await world.start(world.a, "busybox", ["echo", "hello"])
    event = await exits.receive()
    assert (event.exit_code, event.reason) == (0, "Completed")
    assert world.a.logs(cid) == ["hello"]


async def test_unknown_command_exits_127_with_a_log_line(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    exits = world.a.exits()
    _, cid = await world.start(world.a, "alpine", ["/bin/sh", "-c", "echo hi; foo"])
    event = await exits.receive()
    assert (event.exit_code, event.reason) == (127, "Error")
    assert world.a.logs(cid) == ["hi", "sh: foo: not found"]
    assert world.a.inspect(cid).message == "sh: foo: not found"


async def test_while_loop_logs_as_time_passes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    _, cid = await world.start(
        world.a, "busybox", (), ["sh", "-c", "while true; do echo tick; sleep 10; done"]
    )
    await trio.sleep(25)
    assert world.a.logs(cid) == ["tick"] * 3
    assert world.a.inspect(cid).state is ContainerState.RUNNING


async def test_declarative_containers_get_no_task_and_at_most_one_timer(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await world.a.pull_image("busybox")
    await trio.testing.wait_all_tasks_blocked()
    tasks = trio.lowlevel.current_statistics().tasks_living
    timers = len(world.timers)
    box = await world.a.create_sandbox("pod", {})
    scripts = ["sleep 5; exit 1", "while true; do echo x; sleep 1; done", "sleep infinity"]
    for i in range(30):
        config = ContainerConfig(
            name=f"c{i}", image="busybox", command=("sh", "-c", scripts[i % 3]), ports=()
        )
        await world.a.start_container(await world.a.create_container(box.id, config))
    assert trio.lowlevel.current_statistics().tasks_living == tasks
    assert len(world.timers) - timers <= 10  # only the ones that exit set a timer
    # an unconfigured image runs forever and is ready at once
    _, cid = await world.start(world.a, "never-configured/app:v1", sandbox="p2")
    assert world.a.probe(cid, "ready").success and world.a.probe(cid, "started").success
    await trio.sleep(3600)
    assert world.a.inspect(cid).state is ContainerState.RUNNING


# ----- stopping and killing -----


async def test_shell_ignores_sigterm_and_is_killed_after_grace(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    _, cid = await world.start(world.a, "busybox", ["sleep", "3600"])
    start = trio.current_time()
    await world.a.stop_container(cid, grace=30)
    info = world.a.inspect(cid)
    assert trio.current_time() - start == pytest.approx(30)
    assert (info.exit_code, info.reason, info.message) == (
        137,
        "Error",
        "killed after the grace period",
    )


async def test_default_program_exits_143_on_sigterm(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    _, cid = await world.start(world.a, "nginx")
    start = trio.current_time()
    await world.a.stop_container(cid, grace=30)
    assert trio.current_time() == start
    info = world.a.inspect(cid)
    assert (info.exit_code, info.reason) == (143, "Error")
    await world.a.stop_container(cid, grace=30)  # stopping an exited container: at once
    assert trio.current_time() == start


async def test_trapping_shell_and_zero_grace(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    _, trapper = await world.start(world.a, "busybox", ["sh", "-c", "trap 'exit 0' TERM; sleep 1d"])
    _, server = await world.start(world.a, "nginx", sandbox="web")
    await world.a.stop_container(trapper, grace=30)
    assert (world.a.inspect(trapper).exit_code, world.a.inspect(trapper).reason) == (0, "Completed")
    start = trio.current_time()
    await world.a.stop_container(server, grace=0)
    assert trio.current_time() == start
    assert world.a.inspect(server).exit_code == 137


async def test_program_that_ends_before_the_grace_period(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    _, cid = await world.start(world.a, "busybox", ["sh", "-c", "sleep 5; exit 3"])
    start = trio.current_time()
    await world.a.stop_container(cid, grace=30)
    assert trio.current_time() - start == pytest.approx(5)
    assert world.a.inspect(cid).exit_code == 3


async def test_kill_container(world: World, autojump_clock: trio.testing.MockClock) -> None:
    exits = world.a.exits()
    _, cid = await world.start(world.a, "nginx")
    _, other = await world.start(world.a, "nginx", sandbox="p2")
    world.a.kill_container(cid)
    world.a.kill_container(other, exit_code=2)
    batch = await exits.receive_batch()
    assert [(e.container_id, e.exit_code, e.reason) for e in batch] == [
        (cid, 137, "Error"),
        (other, 2, "Error"),
    ]
    with pytest.raises(ContainerStateError, match=r"is not running: exited$"):
        world.a.kill_container(cid)


# ----- OOM, health, usage -----


async def test_memory_curve_above_the_limit_is_oomkilled(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.registry.add(
        "leaky", program=Program(memory=Curve([(0, 50 * MiB), (20, 100 * MiB), (40, 300 * MiB)]))
    )
    exits = world.a.exits()
    _, cid = await world.start(world.a, "leaky", memory_limit=256 * MiB)
    start = world.a.inspect(cid).started_at
    assert world.a.usage(cid) == (0.001, 50 * MiB)
    await trio.sleep(25)
    assert world.a.usage(cid) == (0.001, 100 * MiB)
    event = await exits.receive()
    assert (event.exit_code, event.reason, event.at) == (137, "OOMKilled", start + 40)
    assert world.a.usage(cid) == (0.0, 0)
    _, roomy = await world.start(world.a, "leaky", memory_limit=512 * MiB, sandbox="p2")
    await trio.sleep(100)
    assert world.a.inspect(roomy).state is ContainerState.RUNNING


async def test_readiness_and_liveness_follow_the_program(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.registry.add("slowapp", program=Program(ready_after=5, started_after=2, live_for=60))
    _, cid = await world.start(world.a, "slowapp")
    assert world.a.probe(cid, "ready") == ProbeResult(False, "not ready until 5s after start")
    assert not world.a.probe(cid, "started").success
    await trio.sleep(2)
    assert world.a.probe(cid, "started").success
    assert not world.a.probe(cid, "ready").success
    await trio.sleep(3)
    assert world.a.probe(cid, "ready").success
    assert world.a.probe(cid, "live").success
    await trio.sleep(55)
    assert world.a.probe(cid, "live") == ProbeResult(
        False, "liveness failing since 60s after start"
    )
    with pytest.raises(ValueError, match=r"^probe: must be 'live', 'ready' or 'started'"):
        world.a.probe(cid, "healthy")


async def test_cpu_use_is_capped_by_the_limit(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.registry.add("burner", program=Program(cpu=Curve([(0, 0.2), (10, 3.0)])))
    _, cid = await world.start(world.a, "burner", cpu_limit=1.5)
    assert world.a.usage(cid)[0] == 0.2
    await trio.sleep(10)
    assert world.a.usage(cid)[0] == 1.5


async def test_declarative_server_answers_on_its_ports(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    box, cid = await world.start(world.a, "nginx", ports=(80, 443), sandbox="web-1")
    ip = world.a.list_sandboxes()[0].ip
    assert await world.network.request("198.51.100.1", ip, 443, b"GET /") == b"web-1/main"
    world.a.kill_container(cid)
    assert not world.network.is_listening(ip, 80)
    # a second server on the same port in the same sandbox fails to bind
    exits = world.a.exits()
    first = await world.a.create_container(
        box, ContainerConfig(name="x", image="nginx", ports=(80,))
    )
    second = await world.a.create_container(
        box, ContainerConfig(name="y", image="nginx", ports=(80,))
    )
    await world.a.start_container(first)
    await world.a.start_container(second)
    event = await exits.receive()
    assert (event.container_id, event.exit_code) == (second, 1)
    assert world.a.logs(second) == ["listen tcp :80: bind: address already in use"]


# ----- user programs -----


async def test_user_programs_serve_and_talk_across_hosts(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def server(ctx: ProgramContext) -> None:
        ctx.set_ready(False)
        ctx.log(f"listening on {ctx.ip}:{ctx.ports[0]} as {ctx.env['ROLE']}")
        ctx.listen(ctx.ports[0], lambda payload, src: b"pong:" + payload)
        await trio.sleep(2)
        ctx.set_ready(True)
        ctx.set_usage(cpu=0.25, memory=64 * MiB)
        await ctx.terminating.wait()
        ctx.log("bye")
        return None

    async def client(ctx: ProgramContext) -> int:
        reply = await ctx.request(ctx.env["SERVER"], 8080, b"ping")
        ctx.log(reply.decode())
        return 0

    world.registry.add("server", program=server)
    world.registry.add("client", program=client)
    _, sid = await world.start(world.a, "server", ports=(8080,), env={"ROLE": "srv"})
    await trio.testing.wait_all_tasks_blocked()
    assert world.a.probe(sid, "ready").success is False
    await trio.sleep(2.5)
    assert world.a.probe(sid, "ready") == ProbeResult(True, "")
    assert world.a.usage(sid) == (0.25, 64 * MiB)
    server_ip = world.a.list_sandboxes()[0].ip
    exits = world.b.exits()
    _, cid = await world.start(world.b, "client", env={"SERVER": server_ip})
    event = await exits.receive()
    assert (event.exit_code, event.reason) == (0, "Completed")
    assert world.b.logs(cid) == ["pong:ping"]
    await world.a.stop_container(sid, grace=30)
    assert world.a.logs(sid) == [f"listening on {server_ip}:8080 as srv", "bye"]
    assert (world.a.inspect(sid).exit_code, world.a.inspect(sid).reason) == (0, "Completed")
    assert not world.network.is_listening(server_ip, 8080)


async def test_a_user_program_is_not_ready_before_it_listens_on_its_ports(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow_server(ctx: ProgramContext) -> None:
        await trio.sleep(5)  # warming up: the probe finds the port closed
        ctx.listen(ctx.ports[0], lambda payload, src: b"ok")
        await ctx.terminating.wait()

    async def worker(ctx: ProgramContext) -> None:
        await ctx.terminating.wait()  # declares no port: ready as it says

    world.registry.add("slow", program=slow_server)
    world.registry.add("worker", program=worker)
    _, sid = await world.start(world.a, "slow", ports=(8080,))
    _, wid = await world.start(world.a, "worker")
    await trio.testing.wait_all_tasks_blocked()
    result = world.a.probe(sid, "ready")
    assert (result.success, result.message) == (False, "dial tcp :8080: connection refused")
    assert world.a.probe(sid, "live").success  # liveness does not care
    assert world.a.probe(wid, "ready").success
    await trio.sleep(5.5)
    assert world.a.probe(sid, "ready") == ProbeResult(True, "")


async def test_user_program_sigterm_handling(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def stubborn(ctx: ProgramContext) -> None:
        await trio.sleep_forever()

    async def polite(ctx: ProgramContext) -> int:
        await ctx.terminating.wait()
        await trio.sleep(1)  # drain
        return 143

    world.registry.add("stubborn", program=stubborn)
    world.registry.add("polite", program=polite)
    _, s = await world.start(world.a, "stubborn")
    _, p = await world.start(world.a, "polite", sandbox="p2")
    start = trio.current_time()
    await world.a.stop_container(p, grace=30)
    assert trio.current_time() - start == pytest.approx(1)
    assert world.a.inspect(p).exit_code == 143
    start = trio.current_time()
    await world.a.stop_container(s, grace=10)
    assert trio.current_time() - start == pytest.approx(10)
    assert (world.a.inspect(s).exit_code, world.a.inspect(s).reason) == (137, "Error")


async def test_user_program_crash_exit_and_oom(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    async def buggy(ctx: ProgramContext) -> None:
        ctx.log("starting")
        raise KeyError("config")

    async def quitter(ctx: ProgramContext) -> None:
        ctx.exit(7)

    async def hog(ctx: ProgramContext) -> None:
        ctx.set_usage(memory=10 * MiB)
        await trio.sleep(3)
        ctx.set_usage(memory=200 * MiB)
        await trio.sleep_forever()

    for name, program in (("buggy", buggy), ("quitter", quitter), ("hog", hog)):
        world.registry.add(name, program=program)
    exits = world.a.exits()
    _, b = await world.start(world.a, "buggy")
    _, q = await world.start(world.a, "quitter", sandbox="p2")
    _, h = await world.start(world.a, "hog", sandbox="p3", memory_limit=128 * MiB)
    got = {}
    while len(got) < 3:
        event = await exits.receive()
        got[event.container_id] = (event.exit_code, event.reason)
    assert got == {b: (1, "Error"), q: (7, "Error"), h: (137, "OOMKilled")}
    assert world.a.logs(b)[0] == "starting"
    assert world.a.logs(b)[-1] == "KeyError: 'config'"
    assert world.a.inspect(b).message == "program raised KeyError('config')"


async def test_user_programs_need_run(autojump_clock: trio.testing.MockClock) -> None:
    w = World()

    async def program(ctx: ProgramContext) -> None:
        await trio.sleep_forever()

    w.registry.add("p", program=program)
    async with trio.open_nursery() as nursery:
        await nursery.start(w.timers.run)
        with pytest.raises(RuntimeError_, match=r"FakeRuntime.run is not running for 'a'$"):
            await w.start(w.a, "p")
        # declarative programs only need the timer service
        _, cid = await w.start(w.a, "busybox", ["sleep", "1"], sandbox="p2")
        await trio.sleep(2)
        assert w.a.inspect(cid).reason == "Completed"
        nursery.cancel_scope.cancel()


async def test_user_program_dies_with_the_engine(autojump_clock: trio.testing.MockClock) -> None:
    w = World()

    async def program(ctx: ProgramContext) -> None:
        await trio.sleep_forever()

    w.registry.add("p", program=program)
    async with trio.open_nursery() as outer:
        await outer.start(w.timers.run)
        async with trio.open_nursery() as engine:
            await engine.start(w.a.run)
            _, cid = await w.start(w.a, "p")
            await trio.testing.wait_all_tasks_blocked()
            engine.cancel_scope.cancel()
        assert (w.a.inspect(cid).exit_code, w.a.inspect(cid).reason) == (255, "Unknown")
        outer.cancel_scope.cancel()


# ----- crash and recover -----


async def test_crash_and_recover(world: World, autojump_clock: trio.testing.MockClock) -> None:
    async def program(ctx: ProgramContext) -> None:
        await trio.sleep_forever()

    world.registry.add("p", program=program)
    exits = world.a.exits()
    _, shell = await world.start(world.a, "busybox", ["sleep", "100"])
    _, user = await world.start(world.a, "p", sandbox="p2")
    _, server = await world.start(world.a, "nginx", ports=(80,), sandbox="p3")
    ip = world.a.list_sandboxes()[2].ip
    await world.network.request("198.51.100.1", ip, 80, b"")
    world.registry.mark_slow("huge", 100)
    pull_error: list[BaseException] = []

    async def pull() -> None:
        try:
            await world.a.pull_image("huge")
        except RuntimeDown as exc:
            pull_error.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pull)
        await trio.sleep(1)
        world.a.crash()
        world.a.crash()  # idempotent
    assert [str(e) for e in pull_error] == ["runtime on 'a' went down pulling 'huge:latest'"]
    batch = await exits.receive_batch()
    assert [(e.container_id, e.exit_code, e.reason) for e in batch] == [
        (shell, 255, "Unknown"),
        (user, 255, "Unknown"),
        (server, 255, "Unknown"),
    ]
    assert not world.a.up
    with pytest.raises(RuntimeDown, match=r"^container runtime on 'a' is down$"):
        world.a.inspect(shell)
    with pytest.raises(RuntimeDown):
        await world.a.create_sandbox("x", {})
    with pytest.raises(NetworkTimeout):
        await world.network.request("198.51.100.1", ip, 80, b"", timeout=1)
    await trio.sleep(200)  # nothing pending fires while down
    world.a.recover()
    assert [c.state for c in world.a.list_containers()] == [ContainerState.EXITED] * 3
    assert world.a.has_image("busybox") and not world.a.has_image("huge")
    assert world.a.logs(shell) == []
    assert len(world.a.list_sandboxes()) == 3
    _, again = await world.start(world.a, "nginx", ports=(80,), sandbox="p4")
    assert world.a.inspect(again).state is ContainerState.RUNNING
    assert await world.network.request("198.51.100.1", world.a.list_sandboxes()[3].ip, 80, b"")
    assert exits.pending == 0  # the subscription survived the crash


# ----- the exit stream -----


async def test_exits_stream_delivers_every_exit(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    exits = world.a.exits()
    late = world.b.exits()
    expected = {}
    for i in range(30):
        _, cid = await world.start(
            world.a, "busybox", ["sh", "-c", f"sleep {i % 7}; exit {i}"], sandbox=f"p{i}"
        )
        expected[cid] = i
    got: dict[str, int] = {}
    while len(got) < len(expected):
        for event in await exits.receive_batch():
            assert event.container_id not in got
            got[event.container_id] = event.exit_code
    assert got == expected
    assert late.pending == 0  # other machines' exits are not delivered


# ----- bad input -----


async def test_bad_input_gives_typed_errors_naming_the_thing(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    rt = world.a
    with pytest.raises(ContainerNotFound, match=r"^no container 'nope' on 'a'$"):
        rt.inspect("nope")
    with pytest.raises(ContainerNotFound, match=r"'nope'"):
        await rt.start_container("nope")
    with pytest.raises(ContainerNotFound, match=r"'nope'"):
        rt.logs("nope")
    await rt.pull_image("nginx")
    with pytest.raises(SandboxNotFound, match=r"^no sandbox 'nobox' on 'a'$"):
        await rt.create_container("nobox", ContainerConfig(name="c", image="nginx"))
    with pytest.raises(SandboxNotFound):
        rt.list_containers("nobox")
    with pytest.raises(SandboxNotFound):
        await rt.remove_sandbox("nobox")
    box, cid = await world.start(rt, "nginx")
    with pytest.raises(ContainerStateError, match=r"cannot be started: it is running"):
        await rt.start_container(cid)
    with pytest.raises(ContainerStateError, match=r"is running; stop it first$"):
        await rt.remove_container(cid)
    with pytest.raises(ContainerStateError, match=rf"still has containers: {cid}$"):
        await rt.remove_sandbox(box)
    await rt.stop_container(cid, grace=1)
    with pytest.raises(ContainerStateError, match=r"cannot be started: it is exited"):
        await rt.start_container(cid)
    await rt.remove_container(cid)
    with pytest.raises(ContainerNotFound):
        rt.inspect(cid)
    assert rt.list_containers(box) == []
    ip = rt.list_sandboxes()[0].ip
    await rt.remove_sandbox(box)
    assert world.network.host_of(ip) is None
    assert rt.list_sandboxes() == []


def test_an_engine_needs_a_known_host() -> None:
    w = World()
    with pytest.raises(Exception, match=r"^unknown host 'z'$"):
        FakeRuntime("z", registry=w.registry, network=w.network, timers=w.timers, rng=w.rng)


async def test_same_seed_same_history(autojump_clock: trio.testing.MockClock) -> None:
    async def history() -> list[tuple[str, float, int]]:
        w = World(seed=42)
        async with trio.open_nursery() as nursery:
            await nursery.start(w.timers.run)
            exits = w.a.exits()
            base = trio.current_time()
            for i in range(5):
                await w.start(w.a, f"img{i}", ["sh", "-c", f"exit {i}"], sandbox=f"p{i}")
            events = [await exits.receive() for _ in range(5)]
            nursery.cancel_scope.cancel()
        return [(e.container_id, round(e.at - base, 6), e.exit_code) for e in events]

    assert await history() == await history()
