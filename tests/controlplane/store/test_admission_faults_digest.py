from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
import trio
from store_helpers import make_namespace, make_pod

from controlplane import errors
from controlplane.api.core import Pod
from controlplane.store import Store
from controlplane.store.admission import Operation


class Refuse:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.aborted: list[str] = []

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        self.seen.append((op, obj.metadata.name))
        if obj.metadata.labels.get("refuse"):
            raise errors.Forbidden("refused by test", kind="Pod", name=obj.metadata.name)
        return obj


class Label:
    def __init__(self) -> None:
        self.aborted: list[str] = []

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        meta = obj.metadata.labels.set("admitted", op)
        return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, labels=meta))

    def abort(self, op: Operation, obj: Any) -> None:
        self.aborted.append(obj.metadata.name)


async def test_admission_steps_mutate_and_refuse() -> None:
    label = Label()
    store = Store(random.Random(1), admission_steps=[label])
    refuse = Refuse()
    store.add_admission_step(refuse)
    await store.create(make_namespace("default"))
    pod = await store.create(make_pod("web"))
    assert pod.metadata.labels["admitted"] == "create"
    updated = await store.update(
        attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, labels={"x": "y"}))
    )
    assert updated.metadata.labels == {"x": "y", "admitted": "update"}
    assert ("update", "web") in refuse.seen

    revision, digest = store.revision, store.history_digest()
    async with store.watch("Pod", resource_version=str(revision)) as events:
        with pytest.raises(errors.Forbidden, match=r"^refused by test$"):
            await store.create(make_pod("db", labels={"refuse": "1"}))
        assert label.aborted == ["db"]
        with pytest.raises(errors.Forbidden):
            await store.update(
                attrs.evolve(
                    updated, metadata=attrs.evolve(updated.metadata, labels={"refuse": "1"})
                )
            )
        # A rejected write changes nothing: no revision, no object, no event, same digest.
        assert store.revision == revision
        assert store.history_digest() == digest
        assert store.get_nowait("Pod", "db", namespace="default") is None
        assert store.get_nowait("Pod", "web", namespace="default") is updated
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1) as scope:
            await events.receive_batch()
        assert scope.cancelled_caught


async def test_invalid_object_changes_nothing(store: Store) -> None:
    revision = store.revision
    bad = attrs.evolve(make_pod("web"), spec=attrs.evolve(make_pod().spec, containers=()))
    with pytest.raises(errors.Invalid, match=r'^Pod "web" is invalid: ') as info:
        await store.create(bad)
    assert info.value.causes and info.value.causes[0].field.startswith("spec.containers")
    assert store.revision == revision
    assert store.list_nowait("Pod") == []


async def test_fault_error_fraction_one(store: Store) -> None:
    handle = store.faults.inject(kind="Pod", verb="create", error=errors.TooManyRequests)
    for name in ("a", "b", "c"):
        with pytest.raises(
            errors.TooManyRequests,
            match=rf'^injected fault: create pods "{name}" in namespace "default": '
            r"TooManyRequests$",
        ):
            await store.create(make_pod(name))
    # Other kinds and verbs are unaffected.
    await store.create(make_namespace("other"))
    assert await store.list("Pod") is not None
    handle.remove()
    await store.create(make_pod("a"))


async def test_fault_any_verb_timeout(store: Store) -> None:
    await store.create(make_pod("a"))
    store.faults.inject(kind=Pod, error=errors.Timeout)
    with pytest.raises(
        errors.Timeout, match=r'^injected fault: get pods "a" in namespace "default"'
    ):
        await store.get("Pod", "a", namespace="default")
    with pytest.raises(errors.Timeout, match=r"^injected fault: list pods: Timeout$"):
        await store.list("Pod")
    with pytest.raises(errors.Timeout, match=r"^injected fault: watch pods: Timeout$"):
        async with store.watch("Pod"):
            pass
    store.faults.clear()
    assert (await store.get("Pod", "a", namespace="default")).metadata.name == "a"


async def test_fault_latency_uses_virtual_time(store: Store, autojump_clock: Any) -> None:
    store.faults.inject(verb="create", latency=2.5)
    start = trio.current_time()
    await store.create(make_pod("a"))
    assert trio.current_time() - start == pytest.approx(2.5)
    start = trio.current_time()
    await store.get("Pod", "a", namespace="default")
    assert trio.current_time() == start


async def test_fault_fraction_is_seeded() -> None:
    async def outcomes(seed: int) -> list[bool]:
        store = Store(random.Random(0), fault_rng=random.Random(seed))
        await store.create(make_namespace("default"))
        store.faults.inject(verb="create", error=errors.TooManyRequests, fraction=0.5)
        result = []
        for i in range(40):
            try:
                await store.create(make_pod(f"p{i}"))
                result.append(True)
            except errors.TooManyRequests:
                result.append(False)
        return result

    first = await outcomes(1)
    assert first == await outcomes(1)
    assert first != await outcomes(2)
    assert 5 < sum(first) < 35


def test_fault_arguments() -> None:
    store = Store(random.Random(0))
    with pytest.raises(ValueError, match="unknown verb"):
        store.faults.inject(verb="poke", error=errors.Timeout)
    with pytest.raises(ValueError, match="fraction"):
        store.faults.inject(error=errors.Timeout, fraction=2)
    with pytest.raises(ValueError, match="needs an error"):
        store.faults.inject(kind="Pod")


async def workload(seed: int) -> str:
    store = Store(random.Random(seed))
    await store.create(make_namespace("default"))
    for i in range(5):
        pod = await store.create(make_pod("", generate_name="web-", labels={"i": str(i)}))
        await store.update_status(
            attrs.evolve(pod, status=attrs.evolve(pod.status, phase="Running"))
        )
    await store.delete("Pod", pod.metadata.name, namespace="default")
    return store.history_digest()


async def test_history_digest_is_deterministic() -> None:
    assert await workload(1) == await workload(1)
    assert await workload(1) != await workload(2)


async def test_history_digest_sees_content() -> None:
    async def run(phase: str) -> str:
        store = Store(random.Random(1))
        await store.create(make_namespace("default"))
        pod = await store.create(make_pod("web"))
        await store.update_status(attrs.evolve(pod, status=attrs.evolve(pod.status, phase=phase)))
        return store.history_digest()

    assert await run("Running") != await run("Failed")
