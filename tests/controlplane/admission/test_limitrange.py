"""LimitRanger admission through a Store: container defaults, min/max/ratio refusals in
Kubernetes' words, Pod-type limits, and refused creates that store nothing."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from controlplane import errors
from controlplane.admission.limitrange import ANNOTATION, LimitRangeAdmission
from controlplane.api import from_dict
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.store import Store


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> Any:
    containers = containers or ({"name": "app", "image": "nginx"},)
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": list(containers), **spec},
        }
    )


def container(name: str = "app", requests: Any = None, limits: Any = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "nginx", "resources": resources}


def limit_range(name: str, *items: dict[str, Any]) -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"limits": list(items)},
        }
    )


async def new_store(*ranges: Any) -> Store:
    store = Store(random.Random(1))
    store.add_admission_step(LimitRangeAdmission(store))
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    for r in ranges:
        await store.create(r)
    return store


def resources(p: Any, index: int = 0, field: str = "containers") -> tuple[dict, dict]:
    res = getattr(p.spec, field)[index].resources
    return (
        {k: str(v) for k, v in res.requests.items()},
        {k: str(v) for k, v in res.limits.items()},
    )


async def test_defaults_fill_what_containers_do_not_state_and_are_stored():
    store = await new_store(
        limit_range(
            "defaults",
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "256Mi"},
                "defaultRequest": {"cpu": "250m"},
            },
        )
    )
    await store.create(
        pod(
            "p",
            container("a"),
            container("b", requests={"cpu": "100m"}, limits={"cpu": "200m"}),
            initContainers=[container("init")],
        )
    )
    stored = store.get_nowait("Pod", "p", namespace="default")
    # memory: defaultRequest falls back to the default limit (LimitRange defaulting)
    assert resources(stored, 0) == (
        {"cpu": "250m", "memory": "256Mi"},
        {"cpu": "500m", "memory": "256Mi"},
    )
    assert resources(stored, 1) == (
        {"cpu": "100m", "memory": "256Mi"},
        {"cpu": "200m", "memory": "256Mi"},
    )
    assert resources(stored, 0, "init_containers")[1] == {"cpu": "500m", "memory": "256Mi"}
    assert stored.metadata.annotations[ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container a;"
        " cpu, memory limit for container a; memory request for container b;"
        " memory limit for container b; cpu, memory request for init container init;"
        " cpu, memory limit for init container init"
    )


async def test_default_limit_without_default_request_becomes_the_request():
    store = await new_store(limit_range("l", {"type": "Container", "default": {"cpu": "1"}}))
    stored = await store.create(pod("p"))
    assert resources(stored) == ({"cpu": "1"}, {"cpu": "1"})


async def test_max_is_enforced_with_kubernetes_wording():
    store = await new_store(limit_range("l", {"type": "Container", "max": {"cpu": "2"}}))
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("p", container(limits={"cpu": "3"})))
    assert str(exc.value) == (
        'pods "p" is forbidden: maximum cpu usage per Container is 2, but limit is 3.'
    )
    assert (exc.value.kind, exc.value.name) == ("Pod", "p")
    assert store.get_nowait("Pod", "p", namespace="default") is None
    # max also defaults the limit: a container without one gets 2 and is admitted
    stored = await store.create(pod("q"))
    assert resources(stored) == ({"cpu": "2"}, {"cpu": "2"})


async def test_min_and_several_problems_are_aggregated():
    store = await new_store(
        limit_range(
            "l",
            {"type": "Container", "min": {"cpu": "100m", "memory": "64Mi"}},
        )
    )
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("p", container(requests={"cpu": "50m", "memory": "32Mi"})))
    assert str(exc.value) == (
        'pods "p" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m.,'
        " minimum memory usage per Container is 64Mi, but request is 32Mi.]"
    )


async def test_max_limit_request_ratio():
    store = await new_store(
        limit_range("l", {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}})
    )
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("p", container(requests={"cpu": "100m"}, limits={"cpu": "300m"})))
    assert str(exc.value) == (
        'pods "p" is forbidden: cpu max limit to request ratio per Container is 2,'
        " but provided ratio is 3.000000."
    )
    with pytest.raises(errors.Forbidden, match=r"but no limit is specified or limit is 0\.$"):
        await store.create(pod("q", container(requests={"cpu": "100m"})))
    await store.create(pod("r", container(requests={"cpu": "100m"}, limits={"cpu": "200m"})))


async def test_pod_type_judges_the_sum_of_containers():
    store = await new_store(limit_range("l", {"type": "Pod", "max": {"cpu": "1"}}))
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(
            pod(
                "p",
                container("a", limits={"cpu": "600m"}),
                container("b", limits={"cpu": "600m"}),
            )
        )
    assert str(exc.value) == (
        'pods "p" is forbidden: maximum cpu usage per Pod is 1, but limit is 1200m.'
    )
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("q"))
    assert str(exc.value) == (
        'pods "q" is forbidden: maximum cpu usage per Pod is 1.  No limit is specified.'
    )


async def test_a_default_limit_below_the_containers_own_request_is_invalid():
    store = await new_store(limit_range("l", {"type": "Container", "default": {"cpu": "500m"}}))
    with pytest.raises(errors.Invalid) as exc:
        await store.create(pod("p", container(requests={"cpu": "1"})))
    assert [str(c) for c in exc.value.causes] == [
        'spec.containers[0].resources.requests.cpu: Invalid value: "1": must be less than or'
        " equal to cpu limit of 500m"
    ]
    assert store.get_nowait("Pod", "p", namespace="default") is None


async def test_only_pod_creates_are_judged_and_first_range_by_name_wins():
    store = await new_store(
        limit_range("a-defaults", {"type": "Container", "default": {"cpu": "300m"}}),
        limit_range("b-defaults", {"type": "Container", "default": {"cpu": "900m"}}),
    )
    stored = await store.create(pod("p"))
    assert resources(stored) == ({"cpu": "300m"}, {"cpu": "300m"})
    await store.create(limit_range("c-max", {"type": "Container", "max": {"cpu": "100m"}}))
    labelled = attrs.evolve(stored, metadata=attrs.evolve(stored.metadata, labels={"app": "web"}))
    updated = await store.update(labelled)  # updates are not judged
    assert updated.metadata.labels == {"app": "web"}
