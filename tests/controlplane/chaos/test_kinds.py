"""The fault kinds' table and the primitives under them: network rules (one-way cuts,
jitter, duplication, pod IPs), runtime probe failures and OOM kills, drain's choices."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

from controlplane import open_cluster
from controlplane.chaos import FAULT_KINDS, KIND_SPECS, Chaos
from controlplane.chaos.specs import DEFAULT_CONTROLLER_NAMES, Param
from controlplane.controllers import default_controllers
from controlplane.metrics import MetricsStore
from runtime.network import Network, NetworkTimeout


def test_every_kind_has_an_implementation_and_valid_defaults():
    assert list(FAULT_KINDS) == list(KIND_SPECS)
    for name, kind in FAULT_KINDS.items():
        assert kind.name == name and kind.spec is KIND_SPECS[name]
        for param in kind.spec.params:
            if param.default is not None:
                assert param.check(param.default) is None, (name, param.name)
            assert not (param.required and param.default is not None)


def test_the_default_controller_names_are_the_default_clusters():
    """The generator picks controller-crash targets from this list: it must not drift
    from what a cluster runs."""
    names = tuple(name for name, _ in default_controllers(MetricsStore()))
    assert names == DEFAULT_CONTROLLER_NAMES


@pytest.mark.parametrize(
    ("param", "value", "problem"),
    [
        (Param("x", "number"), True, "must be a number, got True"),
        (Param("x", "number", min=0.0), -1, "must be >= 0, got -1"),
        (Param("x", "number", min=0.0, min_exclusive=True), 0, "must be > 0, got 0"),
        (Param("x", "strings"), "a", "must be a list of strings, got 'a'"),
        (Param("x", "strings"), ["a", 1], "must be a list of strings, got ['a', 1]"),
        (Param("x", "string", choices=("a", "b")), "c", "must be one of a, b; got 'c'"),
        (Param("x", "number", max=1.0), 0.5, None),
    ],
)
def test_parameter_checks(param: Param, value: Any, problem: str | None):
    assert param.check(value) == problem


def network() -> tuple[Network, dict[str, str], list[str]]:
    """Hosts a, b, c with one listener each, counting the requests it handles."""
    net = Network(random.Random(0))
    ips = {}
    handled: list[str] = []
    for host in "abc":
        net.add_host(host)
        ips[host] = ip = net.allocate_ip(host)

        def handler(payload: bytes, src: str, host: str = host) -> bytes:
            handled.append(host)
            return host.encode()

        net.listen(ip, 80, handler)
    return net, ips, handled


async def reaches(net: Network, src: str, dst: str) -> bool:
    try:
        await net.request(src, dst, 80, b"", timeout=1)
    except NetworkTimeout:
        return False
    return True


async def test_a_one_way_partition_loses_only_one_direction(autojump_clock):
    net, ips, handled = network()
    fault = net.partition("a", "b", one_way=True)
    assert not await reaches(net, ips["a"], ips["b"])
    assert handled == []  # the request never arrived
    assert not await reaches(net, ips["b"], ips["a"])
    assert handled == ["a"]  # it arrived; the response was lost
    assert await reaches(net, ips["a"], ips["c"])
    fault.remove()
    assert await reaches(net, ips["a"], ips["b"])


async def test_a_cut_with_one_side_missing_means_everyone_else(autojump_clock):
    net, ips, _ = network()
    net.cut(None, "a")  # nothing reaches a
    assert not await reaches(net, ips["b"], ips["a"])
    assert not await reaches(net, ips["c"], ips["a"])
    assert await reaches(net, ips["b"], ips["c"])
    net.clear_faults()
    assert await reaches(net, ips["b"], ips["a"])
    with pytest.raises(ValueError, match=r"^cut: give src, dst or both$"):
        net.cut(None, None)


async def test_rules_can_name_addresses_as_well_as_hosts(autojump_clock):
    net, ips, _ = network()
    other = net.allocate_ip("b")
    net.listen(other, 80, lambda payload, src: b"other")
    net.partition([ips["b"]])  # that pod's address only, not its host
    assert not await reaches(net, ips["a"], ips["b"])
    assert await reaches(net, ips["a"], other)


async def test_delay_with_jitter_varies_within_its_bounds(autojump_clock):
    net, ips, _ = network()
    net.delay(1.0, jitter=0.5, src="a", dst="b")
    took = []
    for _ in range(50):
        began = trio.current_time()
        await net.request(ips["a"], ips["b"], 80, b"")
        took.append(trio.current_time() - began)
    assert all(0.5 <= t <= 1.5 for t in took)
    assert len({round(t, 3) for t in took}) > 10
    with pytest.raises(ValueError, match=r"^jitter: must be >= 0, got -1$"):
        net.delay(1.0, jitter=-1)


async def test_a_duplicated_request_reaches_the_handler_twice(autojump_clock):
    net, ips, handled = network()
    net.duplicate(1.0, src="a", dst="b")
    assert await net.request(ips["a"], ips["b"], 80, b"") == b"b"
    assert handled == ["b", "b"]
    await net.request(ips["b"], ips["a"], 80, b"")
    assert handled == ["b", "b", "a"]  # one way only
    with pytest.raises(ValueError, match=r"^fraction: must be between 0 and 1, got 2$"):
        net.duplicate(2)


def pod(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "main",
                    "image": "nginx",
                    "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                }
            ],
        },
    }


def restarts(cluster: Any, name: str) -> int:
    p = cluster.get_nowait("Pod", name, namespace="default")
    statuses = p.status.container_statuses
    return statuses[0].restart_count if statuses else 0


def running(cluster: Any, name: str) -> bool:
    p = cluster.get_nowait("Pod", name, namespace="default")
    return p is not None and p.status.phase == "Running"


async def test_a_failing_liveness_probe_restarts_the_container_until_healed(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        await cluster.apply(pod("web"))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        heal = cluster.chaos.fail_probe("default", "web", "liveness")
        await cluster.wait_for(lambda: restarts(cluster, "web") >= 2, timeout=60)
        heal()
        count = restarts(cluster, "web")
        await trio.sleep(120)
        assert restarts(cluster, "web") <= count + 1  # at most the restart under way
        with pytest.raises(ValueError, match=r"^probe: must be one of liveness, readiness"):
            cluster.chaos.fail_probe("default", "web", "sometimes")


async def test_an_oom_kill_says_oomkilled(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        await cluster.apply(pod("web"))
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=30)
        cluster.chaos.oom_kill_container("default", "web")
        await cluster.wait_for(lambda: restarts(cluster, "web") == 1, timeout=30)
        status = cluster.get_nowait("Pod", "web", namespace="default").status
        terminated = status.container_statuses[0].last_state.terminated
        assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")


async def test_drain_evicts_all_but_daemonset_and_mirror_pods(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "u1"}
        await cluster.apply(
            [
                pod("plain"),
                pod("daemon", ownerReferences=[{**owner, "controller": True}]),
                pod("mirror", annotations={"kubernetes.io/config.mirror": "x"}),
            ]
        )
        evicted = await cluster.chaos.drain_node("node-1")
        assert evicted == ["default/plain"]
        assert cluster.get_nowait("Node", "node-1").spec.unschedulable
        gone = cluster.get_nowait("Pod", "plain", namespace="default")
        assert gone is None or gone.metadata.deletion_timestamp is not None
        assert cluster.get_nowait("Pod", "daemon", namespace="default") is not None
        await cluster.chaos.uncordon_node("node-1")
        assert not cluster.get_nowait("Node", "node-1").spec.unschedulable


async def test_image_pull_failure_until_healed(autojump_clock):
    async with open_cluster(nodes=1, seed=1) as cluster:
        cluster.registry.mark_slow("example.com/slow:1", 3.0)
        heal = cluster.chaos.fail_image_pull("example.com/slow:1")
        await cluster.apply(
            pod("web") | {"spec": {"containers": [{"name": "m", "image": "example.com/slow:1"}]}}
        )

        def waiting_reason() -> str | None:
            p = cluster.get_nowait("Pod", "web", namespace="default")
            statuses = p.status.container_statuses
            waiting = statuses[0].state.waiting if statuses else None
            return waiting.reason if waiting else None

        await cluster.wait_for(
            lambda: waiting_reason() in ("ErrImagePull", "ImagePullBackOff"), timeout=30
        )
        heal()
        assert cluster.registry.spec("example.com/slow:1").pull_seconds == 3.0  # restored
        await cluster.wait_for(lambda: running(cluster, "web"), timeout=120)


class _Machines:
    """Just enough of ``Machines`` for network kinds between named hosts."""

    def __init__(self, network: Network) -> None:
        self.network = network


@pytest.mark.parametrize(
    ("direction", "a_to_b", "b_to_a", "handled_by_a"),
    [
        ("to", False, False, True),  # a's messages lost: its requests and its responses
        ("from", False, False, False),  # messages to a lost: b's requests never arrive
        ("both", False, False, False),
    ],
)
async def test_network_kinds_follow_the_direction(
    autojump_clock, direction, a_to_b, b_to_a, handled_by_a
):
    net, ips, handled = network()
    chaos = Chaos(store=None, supervisor=None, machines=_Machines(net))  # type: ignore[arg-type]
    params = KIND_SPECS["network-loss"].resolved(
        {"fraction": 1.0, "direction": direction, "peers": ["b"]}
    )
    heal = await FAULT_KINDS["network-loss"].inject(chaos, ("a",), params)
    assert await reaches(net, ips["a"], ips["b"]) is a_to_b
    assert await reaches(net, ips["b"], ips["a"]) is b_to_a
    assert ("a" in handled) is handled_by_a
    assert await reaches(net, ips["a"], ips["c"])  # not a peer
    await heal()
    assert await reaches(net, ips["a"], ips["b"])
    assert await reaches(net, ips["b"], ips["a"])


async def test_a_one_way_network_partition_kind(autojump_clock):
    net, ips, handled = network()
    chaos = Chaos(store=None, supervisor=None, machines=_Machines(net))  # type: ignore[arg-type]
    params = KIND_SPECS["network-partition"].resolved({"direction": "from", "peers": ["b"]})
    heal = await FAULT_KINDS["network-partition"].inject(chaos, ("a",), params)
    assert await reaches(net, ips["a"], ips["b"]) is False  # b's response to a is cut
    assert handled == ["b"]
    assert await reaches(net, ips["b"], ips["a"]) is False  # never arrives
    assert handled == ["b"]
    await heal()
    assert await reaches(net, ips["b"], ips["a"])
