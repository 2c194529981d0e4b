"""Property: whatever the interleaving of writes, watch restarts and forced closes, every
watcher sees exactly the events a reference model predicts -- every change that concerns
it, in order, no gaps, no duplicates -- with selector transitions as ADDED/DELETED."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_namespace, make_pod

from controlplane.store import Store

NAMESPACES = ("a", "b")
NAMES = ("p0", "p1", "p2")
LABELS = st.sampled_from([{}, {"app": "web"}, {"app": "db"}])
NODES = st.sampled_from([None, "n1", "n2"])
KEYS = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(NAMES))

State = dict[str, Any]  # labels, node, phase
Predicate = Callable[[str, State], bool]

# (watch arguments, the same selection as a predicate over (namespace, state))
WATCHERS: list[tuple[dict[str, Any], Predicate]] = [
    ({}, lambda ns, s: True),
    ({"label_selector": "app=web"}, lambda ns, s: s["labels"].get("app") == "web"),
    ({"namespace": "b"}, lambda ns, s: ns == "b"),
    ({"field_selector": "spec.nodeName=n1"}, lambda ns, s: s["node"] == "n1"),
    ({"field_selector": "spec.nodeName="}, lambda ns, s: s["node"] is None),
    (
        {"namespace": "a", "label_selector": "app", "field_selector": "spec.nodeName=n2"},
        lambda ns, s: ns == "a" and "app" in s["labels"] and s["node"] == "n2",
    ),
    ({"field_selector": "status.phase=Running"}, lambda ns, s: s["phase"] == "Running"),
]

OPS = st.one_of(
    st.tuples(st.just("create"), KEYS, LABELS, NODES),
    st.tuples(st.just("relabel"), KEYS, LABELS),
    st.tuples(st.just("bind"), KEYS, NODES),
    st.tuples(st.just("status"), KEYS, st.sampled_from(["Pending", "Running"])),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("restart"), st.integers(0, len(WATCHERS) - 1)),
    st.tuples(st.just("close_all")),
)

Seen = tuple[str, str, str, str, Any]  # type, namespace, name, resourceVersion, labels


async def scenario(ops: list[tuple[tuple[Any, ...], bool]]) -> None:
    store = Store(random.Random(0), watch_capacity=1000)
    for ns in NAMESPACES:
        await store.create(make_namespace(ns))
    start = str(store.revision)
    seen: list[list[Seen]] = [[] for _ in WATCHERS]
    expected: list[list[Seen]] = [[] for _ in WATCHERS]
    scopes: list[trio.CancelScope] = []

    async def reflector(i: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Watch; when the watch ends or is restarted, re-watch from the last revision."""
        last = start
        started = False
        while True:
            with trio.CancelScope() as scope:
                if len(scopes) <= i:
                    scopes.append(scope)
                else:
                    scopes[i] = scope
                async with store.watch("Pod", resource_version=last, **WATCHERS[i][0]) as events:
                    if not started:
                        started = True
                        task_status.started()
                    async for event in events:
                        meta = event.object.metadata
                        seen[i].append(
                            (
                                event.type,
                                meta.namespace,
                                meta.name,
                                meta.resource_version,
                                meta.labels,
                            )
                        )
                        last = meta.resource_version

    model: dict[tuple[str, str], State] = {}

    def expect(key: tuple[str, str], old: State | None, new: State | None, rv: str) -> None:
        ns, name = key
        for i, (_, pred) in enumerate(WATCHERS):
            before = old is not None and pred(ns, old)
            after = new is not None and pred(ns, new)
            if before and after:
                expected[i].append(("MODIFIED", ns, name, rv, new["labels"]))  # type: ignore[index]
            elif after:
                expected[i].append(("ADDED", ns, name, rv, new["labels"]))  # type: ignore[index]
            elif before:
                expected[i].append(("DELETED", ns, name, rv, old["labels"]))  # type: ignore[index]

    async with trio.open_nursery() as nursery:
        for i in range(len(WATCHERS)):
            await nursery.start(reflector, i)
        for op, settle in ops:
            kind = op[0]
            if kind == "restart":
                scopes[op[1]].cancel()
            elif kind == "close_all":
                store.close_watches()
            else:
                key = op[1]
                old = model.get(key)
                ns, name = key
                if kind == "create":
                    if old is not None:
                        continue
                    new = {"labels": op[2], "node": op[3], "phase": "Pending"}
                    pod = await store.create(make_pod(name, namespace=ns, labels=op[2], node=op[3]))
                elif old is None:
                    continue
                elif kind == "delete":
                    new = None
                    pod = await store.delete("Pod", name, namespace=ns, grace_period_seconds=0)
                else:
                    current = store.get_nowait("Pod", name, namespace=ns)
                    if kind == "relabel":
                        new = {**old, "labels": op[2]}
                        meta = attrs.evolve(current.metadata, labels=op[2])
                        pod = await store.update(attrs.evolve(current, metadata=meta))
                    elif kind == "bind":
                        if old["node"] is not None or op[2] is None:
                            continue  # only an unbound pod can be bound
                        new = {**old, "node": op[2]}
                        pod = await store.bind(name, op[2], namespace=ns)
                    else:
                        new = {**old, "phase": op[2]}
                        status = attrs.evolve(current.status, phase=op[2])
                        pod = await store.update_status(attrs.evolve(current, status=status))
                    if new == old:
                        assert pod is current  # a no-op update: no revision, no event
                    else:
                        model[key] = new
                        expect(key, old, new, str(store.revision))
                if kind in ("create", "delete"):
                    assert pod.metadata.resource_version == str(store.revision)
                    if new is None:
                        del model[key]
                    else:
                        model[key] = new
                    expect(key, old, new, str(store.revision))
            if settle:  # else the readers fall behind, and restarts must replay
                await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()

    for i, (args, _) in enumerate(WATCHERS):
        assert seen[i] == expected[i], f"watcher {i} {args}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPS, st.booleans()), max_size=40))
def test_every_watcher_sees_exactly_the_model(ops: list[tuple[tuple[Any, ...], bool]]) -> None:
    trio.run(scenario, ops, clock=trio.testing.MockClock(autojump_threshold=0))
