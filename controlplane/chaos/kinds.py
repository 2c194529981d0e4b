"""The fault kinds: for each name in :data:`~controlplane.chaos.specs.KIND_SPECS`, how to
find its candidates and how to inject it; injecting returns how to heal it.

Every kind acts through :class:`~controlplane.chaos.imperative.Chaos`, so a schedule
and a hand-written script do exactly the same things. Network kinds act on nodes (by
host) or on pods (by pod IP: traffic to a Service reaches a pod's IP after kube-proxy's
translation, so pod↔service traffic is covered); ``direction`` is Chaos Mesh's: ``to``
is traffic from the targets, ``from`` traffic to them, ``both`` both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import trio

from controlplane import errors
from controlplane.chaos.imperative import Chaos
from controlplane.chaos.specs import KIND_SPECS, KindSpec
from controlplane.chaos.targets import Candidate

__all__ = ["FAULT_KINDS", "FaultKind", "Heal", "candidates"]

Heal = Callable[[], Awaitable[None]]
Inject = Callable[[Chaos, tuple[str, ...], dict[str, Any]], Awaitable[Heal | None]]


@attrs.frozen
class FaultKind:
    """A fault kind: its spec (parameters, targets) and ``inject(chaos, targets,
    params)``, which acts at once and returns the heal (None: nothing to heal)."""

    spec: KindSpec
    inject: Inject

    @property
    def name(self) -> str:
        return self.spec.name


def candidates(chaos: Chaos, *, pods: bool, namespace: str | None) -> list[Candidate]:
    """What a target chooses from: nodes whose machine is up, or pods (in
    ``namespace``, None: all) that run on a machine, are not terminating and have an
    IP — the ones a fault can act on now."""
    machines = chaos.machines
    if not pods:
        return [
            (node.metadata.name, node.metadata.name, node.metadata.labels)
            for node in chaos.store.list_nowait("Node")
            if node.metadata.name in machines and machines.get(node.metadata.name).runtime.up
        ]
    return [
        (f"{pod.metadata.namespace}/{pod.metadata.name}", pod.metadata.name, pod.metadata.labels)
        for pod in chaos.store.list_nowait("Pod", namespace=namespace)
        if pod.spec.node_name in machines
        and pod.metadata.deletion_timestamp is None
        and pod.status.pod_ip
        and pod.status.phase == "Running"
    ]


def _split(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


def _sync_heal(fn: Callable[[], None]) -> Heal:
    async def heal() -> None:
        fn()

    return heal


# ----- nodes ---------------------------------------------------------------------------


async def _node_crash(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    for node in targets:
        chaos.crash_node(node)

    async def heal() -> None:
        for node in targets:
            if node in chaos.machines and not chaos.machines.get(node).runtime.up:
                chaos.restart_node(node)

    return heal


async def _node_restart(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await _checkpoint()
    for node in targets:
        chaos.crash_node(node)
        chaos.restart_node(node)


async def _node_pause(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    for node in targets:
        chaos.pause_node(node)

    async def heal() -> None:
        for node in targets:
            if node in chaos.machines:
                chaos.resume_node(node)

    return heal


async def _node_drain(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    for node in targets:
        await chaos.drain_node(node)

    async def heal() -> None:
        for node in targets:
            await chaos.uncordon_node(node)

    return heal


async def _node_taint(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    key, value, effect = params["key"], params["value"], params["effect"]
    for node in targets:
        await chaos.taint_node(node, key, value, effect)

    async def heal() -> None:
        for node in targets:
            await chaos.untaint_node(node, key, effect)

    return heal


async def _clock_skew(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    for node in targets:
        chaos.set_clock_skew(node, float(params["offset"]))

    async def heal() -> None:
        for node in targets:
            if node in chaos.machines:
                chaos.set_clock_skew(node, 0.0)

    return heal


# ----- network -------------------------------------------------------------------------


def _hosts(chaos: Chaos, targets: tuple[str, ...]) -> list[str]:
    """Node names as they are; ``namespace/name`` pods as their current IPs."""
    hosts = []
    for key in targets:
        if "/" not in key:
            hosts.append(key)
            continue
        namespace, name = _split(key)
        pod = chaos.store.get_nowait("Pod", name, namespace=namespace)
        if pod is not None and pod.status.pod_ip:
            hosts.append(pod.status.pod_ip)
    return hosts


def _network(rule: str) -> Inject:
    async def inject(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
        await _checkpoint()
        ours = _hosts(chaos, targets)
        peers = list(params["peers"]) if params["peers"] is not None else None
        direction = params["direction"]
        handles = []
        if rule == "partition":
            if peers is None:  # cut off from everyone: nodes lose the store too
                handles.extend(chaos.cut_from_store(key) for key in targets if "/" not in key)
            if direction == "both":
                handles.append(chaos.partition(ours, peers))
            elif direction == "to":
                handles.append(chaos.network.cut(ours, peers))
            else:
                handles.append(chaos.network.cut(peers, ours))
        else:
            flows = []
            if direction in ("to", "both"):
                flows.append((ours, peers))
            if direction in ("from", "both"):
                flows.append((peers, ours))
            for src, dst in flows:
                if rule == "delay":
                    handles.append(
                        chaos.delay(params["latency"], jitter=params["jitter"], src=src, dst=dst)
                    )
                elif rule == "loss":
                    handles.append(chaos.loss(params["fraction"], src=src, dst=dst))
                else:
                    handles.append(chaos.duplicate(params["fraction"], src=src, dst=dst))

        async def heal() -> None:
            for handle in handles:
                handle.remove()

        return heal

    return inject


# ----- containers and pods -------------------------------------------------------------


async def _container_kill(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await _checkpoint()
    for key in targets:
        chaos.kill_container(*_split(key), params["container"])


async def _container_oom(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await _checkpoint()
    for key in targets:
        chaos.oom_kill_container(*_split(key), params["container"])


async def _probe_failure(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    heals = [
        chaos.fail_probe(*_split(key), params["probe"], params["container"]) for key in targets
    ]

    async def heal() -> None:
        for one in heals:
            one()

    return heal


async def _image_pull_failure(
    chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]
) -> Heal:
    await _checkpoint()
    return _sync_heal(chaos.fail_image_pull(params["image"]))


# ----- control plane -------------------------------------------------------------------


def _component_crash(child: str | None) -> Inject:
    async def inject(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
        await _checkpoint()
        names = [child] if child is not None else [f"kubelet/{node}" for node in targets]
        for name in names:
            chaos.crash_component(name)

        async def heal() -> None:
            for name in names:
                node = name.partition("/")[2]
                if node and (node not in chaos.machines or not chaos.machines.get(node).runtime.up):
                    continue  # the machine is gone or down: its kubelet comes back with it
                if chaos.component_stopped(name):  # not restarted meanwhile
                    chaos.restart_component(name)

        return heal

    return inject


async def _controller_crash(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    name = params["controller"]
    chaos.crash_controller(name)

    async def heal() -> None:
        await _checkpoint()
        if chaos.controller_stopped(name):  # not restarted meanwhile (heal-all, manager)
            chaos.restart_controller(name)

    return heal


async def _store_latency(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    handle = chaos.store_fault(
        kind=params["resource"],
        verb=params["verb"],
        latency=params["latency"],
        fraction=params["fraction"],
    )
    return _sync_heal(handle.remove)


async def _node_store_latency(
    chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]
) -> Heal:
    await _checkpoint()
    handles = [
        chaos.node_store_fault(
            node,
            kind=params["resource"],
            verb=params["verb"],
            latency=params["latency"],
            fraction=params["fraction"],
        )
        for node in targets
    ]
    return _remove_all(handles)


async def _node_store_errors(
    chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]
) -> Heal:
    await _checkpoint()
    handles = [
        chaos.node_store_fault(
            node,
            kind=params["resource"],
            verb=params["verb"],
            error=_ERRORS[params["error"]],
            fraction=params["fraction"],
        )
        for node in targets
    ]
    return _remove_all(handles)


def _remove_all(handles: list[Any]) -> Heal:
    async def heal() -> None:
        for handle in handles:
            handle.remove()

    return heal


_ERRORS: Mapping[str, type[errors.ApiError]] = {
    "TooManyRequests": errors.TooManyRequests,
    "Timeout": errors.Timeout,
}


async def _store_errors(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    handle = chaos.store_fault(
        kind=params["resource"],
        verb=params["verb"],
        error=_ERRORS[params["error"]],
        fraction=params["fraction"],
    )
    return _sync_heal(handle.remove)


async def _conflict_storm(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> Heal:
    await _checkpoint()
    return _sync_heal(chaos.conflict_storm(params["fraction"], kind=params["resource"]))


async def _close_watches(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await _checkpoint()
    chaos.close_watches()


async def _compact(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await _checkpoint()
    chaos.compact()


async def _heal_all(chaos: Chaos, targets: tuple[str, ...], params: dict[str, Any]) -> None:
    await chaos.heal_all()


async def _checkpoint() -> None:
    await trio.lowlevel.checkpoint()


_IMPLEMENTATIONS: Mapping[str, Inject] = {
    "node-crash": _node_crash,
    "node-restart": _node_restart,
    "node-pause": _node_pause,
    "node-drain": _node_drain,
    "node-taint": _node_taint,
    "network-partition": _network("partition"),
    "network-delay": _network("delay"),
    "network-loss": _network("loss"),
    "network-duplicate": _network("duplicate"),
    "container-kill": _container_kill,
    "container-oom": _container_oom,
    "probe-failure": _probe_failure,
    "image-pull-failure": _image_pull_failure,
    "scheduler-crash": _component_crash("scheduler"),
    "controller-manager-crash": _component_crash("controller-manager"),
    "controller-crash": _controller_crash,
    "kubelet-crash": _component_crash(None),
    "store-latency": _store_latency,
    "store-errors": _store_errors,
    "node-store-latency": _node_store_latency,
    "node-store-errors": _node_store_errors,
    "conflict-storm": _conflict_storm,
    "close-watches": _close_watches,
    "compact": _compact,
    "clock-skew": _clock_skew,
    "heal-all": _heal_all,
}

FAULT_KINDS: Mapping[str, FaultKind] = MappingProxyType(
    {name: FaultKind(spec, _IMPLEMENTATIONS[name]) for name, spec in KIND_SPECS.items()}
)
"""Every fault kind by name: its spec and its injection."""
