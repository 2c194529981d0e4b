"""The DefaultTolerationSeconds admission step, alone and in a store."""

from __future__ import annotations

import random

import attrs
import pytest

from controlplane import errors
from controlplane.admission.default_tolerations import DefaultTolerationSeconds
from controlplane.api.core import Container, Namespace, Pod, PodSpec
from controlplane.api.core_pod import Toleration
from controlplane.api.meta import ObjectMeta
from controlplane.store import Store

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULTS = (
    Toleration(key=NOT_READY, operator="Exists", effect="NoExecute", toleration_seconds=300),
    Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=300),
)


def pod(*tolerations: Toleration, name: str = "web") -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="default"),
        spec=PodSpec(containers=[Container(name="c", image="nginx")], tolerations=tolerations),
    )


def test_a_pod_without_tolerations_gets_both() -> None:
    admitted = DefaultTolerationSeconds().admit("create", pod(), None)
    assert admitted.spec.tolerations == DEFAULTS


def test_admission_is_idempotent_and_keeps_the_same_object() -> None:
    step = DefaultTolerationSeconds()
    once = step.admit("create", pod(), None)
    assert step.admit("create", once, None) is once
    assert step.admit("update", once, once) is once


@pytest.mark.parametrize(
    ("own", "added"),
    [
        # The pod's own toleration for one key wins; the other is added.
        (
            Toleration(
                key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=10
            ),
            (DEFAULTS[0],),
        ),
        (Toleration(key=NOT_READY, operator="Exists", effect="NoExecute"), (DEFAULTS[1],)),
        # An empty effect covers NoExecute; an empty key with Exists covers every key.
        (Toleration(key=NOT_READY, operator="Exists"), (DEFAULTS[1],)),
        (Toleration(operator="Exists"), ()),
        (Toleration(operator="Exists", effect="NoExecute"), ()),
        # A NoSchedule toleration does not cover NoExecute.
        (Toleration(key=NOT_READY, operator="Exists", effect="NoSchedule"), DEFAULTS),
        (Toleration(key="dedicated", operator="Equal", value="gpu", effect="NoExecute"), DEFAULTS),
    ],
)
def test_existing_tolerations_are_kept_and_respected(own: Toleration, added: tuple) -> None:
    admitted = DefaultTolerationSeconds().admit("create", pod(own), None)
    assert admitted.spec.tolerations == (own, *added)


def test_other_kinds_and_status_writes_are_left_alone() -> None:
    step = DefaultTolerationSeconds()
    ns = Namespace(metadata=ObjectMeta(name="x"))
    assert step.admit("create", ns, None) is ns
    p = pod()
    assert step.admit("update_status", p, p) is p


def test_the_seconds_are_configurable_and_checked() -> None:
    admitted = DefaultTolerationSeconds(not_ready_seconds=60, unreachable_seconds=0).admit(
        "create", pod(), None
    )
    assert [t.toleration_seconds for t in admitted.spec.tolerations] == [60, 0]
    with pytest.raises(ValueError, match=r"^not_ready_seconds: must be >= 0, got -1$"):
        DefaultTolerationSeconds(not_ready_seconds=-1)
    with pytest.raises(TypeError, match=r"^unreachable_seconds: expected an int, got str$"):
        DefaultTolerationSeconds(unreachable_seconds="300")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^not_ready_seconds: expected an int, got bool$"):
        DefaultTolerationSeconds(not_ready_seconds=True)


async def store_with_step() -> Store:
    store = Store(random.Random(7), admission_steps=[DefaultTolerationSeconds()])
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    return store


async def test_pods_created_through_the_store_get_the_tolerations() -> None:
    store = await store_with_step()
    created = await store.create(pod())
    assert created.spec.tolerations == DEFAULTS
    own = Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute")
    forever = await store.create(pod(own, name="forever"))
    assert forever.spec.tolerations == (own, DEFAULTS[0])


async def test_an_update_of_an_older_pod_adds_them_and_a_noop_update_writes_nothing() -> None:
    store = Store(random.Random(7))
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    old = await store.create(pod())
    assert old.spec.tolerations == ()
    store.add_admission_step(DefaultTolerationSeconds())
    relabelled = attrs.evolve(old, metadata=attrs.evolve(old.metadata, labels={"a": "b"}))
    updated = await store.update(relabelled)
    assert updated.spec.tolerations == DEFAULTS
    again = await store.update(updated)
    assert again.metadata.resource_version == updated.metadata.resource_version


async def test_an_invalid_pod_is_refused_before_the_step_and_nothing_changes() -> None:
    store = await store_with_step()
    bad = pod(Toleration(key="", operator="Equal", value="x", effect="NoExecute"))
    revision = store.revision
    with pytest.raises(errors.Invalid, match=r"spec\.tolerations\[0\]\.operator"):
        await store.create(bad)
    assert store.revision == revision
