"""ResourceQuota admission through a Store: refusals in Kubernetes' words, atomic charges
of ``status.used``, and refused writes that change nothing. Quota usage evaluators too.

No controller runs here: tests write a quota's status as the quota controller would
(``synced``), since admission judges against ``status``.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import attrs
import pytest
import trio

from controlplane import errors, quota
from controlplane.admission.limitrange import LimitRangeAdmission
from controlplane.admission.resourcequota import ResourceQuotaAdmission, check_request
from controlplane.api import from_dict
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.api.quantity import Quantity
from controlplane.clock import to_wall
from controlplane.store import Store

Q = Quantity.parse


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


def resource_quota(name: str, hard: dict[str, str], scopes: tuple[str, ...] = ()) -> Any:
    spec: dict[str, Any] = {"hard": hard}
    if scopes:
        spec["scopes"] = list(scopes)
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def service(name: str, type_: str = "ClusterIP", ports: int = 1) -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": type_, "ports": [{"port": 80 + i} for i in range(ports)]},
        }
    )


async def new_store(*, limit_range: bool = False) -> Store:
    store = Store(random.Random(1))
    if limit_range:
        store.add_admission_step(LimitRangeAdmission(store))
    store.add_admission_step(ResourceQuotaAdmission(store))
    await store.create(Namespace(metadata=ObjectMeta(name="default")))
    return store


async def synced(store: Store, q: Any) -> Any:
    """Create ``q`` and write the status the quota controller would (nothing used yet)."""
    stored = await store.create(q)
    status = quota.sync_status(stored, {}, to_wall(trio.current_time()))
    return await store.update_status(attrs.evolve(stored, status=status))


def used(store: Store, name: str = "compute") -> dict[str, str]:
    q = store.get_nowait("ResourceQuota", name, namespace="default")
    return {k: str(v) for k, v in q.status.used.items()}


async def test_third_pod_is_refused_with_kubernetes_message_and_changes_nothing():
    store = await new_store()
    await synced(store, resource_quota("compute", {"pods": "2"}))
    await store.create(pod("a"))
    await store.create(pod("b"))
    assert used(store) == {"pods": "2"}
    before = (store.revision, store.history_digest())
    quota_before = store.get_nowait("ResourceQuota", "compute", namespace="default")
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("c"))
    assert str(exc.value) == (
        'pods "c" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2,'
        " limited: pods=2"
    )
    assert (exc.value.kind, exc.value.name, exc.value.code) == ("Pod", "c", 403)
    assert (store.revision, store.history_digest()) == before
    assert store.get_nowait("Pod", "c", namespace="default") is None
    assert store.get_nowait("ResourceQuota", "compute", namespace="default") is quota_before


async def test_charge_is_written_in_the_same_step_right_after_the_object():
    store = await new_store()
    q = await synced(store, resource_quota("compute", {"pods": "5"}))
    stored = await store.create(pod("a"))
    charged = store.get_nowait("ResourceQuota", "compute", namespace="default")
    assert int(charged.metadata.resource_version) == int(stored.metadata.resource_version) + 1
    assert store.revision == int(q.metadata.resource_version) + 2


async def test_requests_cpu_exceeded_names_only_the_exceeded_resource():
    store = await new_store()
    await synced(store, resource_quota("compute", {"requests.cpu": "1", "pods": "10"}))
    await store.create(pod("a", container(requests={"cpu": "500m"})))
    assert used(store) == {"pods": "1", "requests.cpu": "500m"}
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("b", container(requests={"cpu": "600m"})))
    assert str(exc.value) == (
        'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m,'
        " used: requests.cpu=500m, limited: requests.cpu=1"
    )
    await store.create(pod("c", container(requests={"cpu": "500m"})))
    assert used(store) == {"pods": "2", "requests.cpu": "1"}


async def test_memory_usage_sums_across_containers_and_keeps_binary_format():
    store = await new_store()
    await synced(store, resource_quota("compute", {"requests.memory": "1Gi", "memory": "1Gi"}))
    await store.create(
        pod("a", container("x", {"memory": "256Mi"}), container("y", {"memory": "256Mi"}))
    )
    assert used(store) == {"requests.memory": "512Mi", "memory": "512Mi"}


async def test_a_quota_on_cpu_requires_every_container_to_state_it():
    store = await new_store()
    await synced(store, resource_quota("compute", {"requests.cpu": "4", "limits.memory": "4Gi"}))
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(
            pod(
                "p",
                container("a", requests={"cpu": "1"}),
                container("b"),
                initContainers=[container("init")],
            )
        )
    assert str(exc.value) == (
        'pods "p" is forbidden: failed quota: compute: must specify limits.memory for: a,b,init;'
        " requests.cpu for: b,init"
    )
    assert used(store) == {"requests.cpu": "0", "limits.memory": "0"}


async def test_unsynced_quota_limits_nothing_and_unknown_usage_is_refused():
    store = await new_store()
    await store.create(resource_quota("fresh", {"pods": "0"}))
    await store.create(pod("a"))  # status.hard is empty: nothing to enforce yet
    q = await store.create(resource_quota("half", {"pods": "5"}))
    status = attrs.evolve(q.status, hard=q.spec.hard)  # hard known, used not yet
    await store.update_status(attrs.evolve(q, status=status))
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("b"))
    assert str(exc.value) == (
        'pods "b" is forbidden: status unknown for quota: half, resources: pods'
    )
    assert store.get_nowait("Pod", "b", namespace="default") is None


async def test_concurrent_creates_never_exceed_the_quota(autojump_clock):
    store = await new_store()
    await synced(store, resource_quota("compute", {"pods": "5", "requests.cpu": "2"}))
    results: list[str] = []

    async def create(i: int) -> None:
        await trio.lowlevel.checkpoint()
        try:
            await store.create(pod(f"p{i}", container(requests={"cpu": "300m"})))
            results.append("ok")
        except errors.Forbidden:
            results.append("forbidden")

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(create, i)
    assert results.count("ok") == 5  # 5 * 300m = 1500m <= 2; the pods limit bites
    assert len(store.list_nowait("Pod", namespace="default")) == 5
    assert used(store) == {"pods": "5", "requests.cpu": "1500m"}


async def test_a_write_refused_after_quota_admitted_it_charges_nothing():
    store = await new_store()

    class RefuseDoomed:
        def admit(self, op: str, obj: Any, old: Any) -> Any:
            if obj.metadata.name == "doomed":
                raise errors.Forbidden("doomed is not welcome", kind="Pod", name="doomed")
            return obj

    store.add_admission_step(RefuseDoomed())
    await synced(store, resource_quota("compute", {"pods": "3"}))
    with pytest.raises(errors.Forbidden, match=r"^doomed is not welcome$"):
        await store.create(pod("doomed"))
    await store.create(pod("a"))
    with pytest.raises(errors.AlreadyExists):
        await store.create(pod("a"))
    assert used(store) == {"pods": "1"}


async def test_every_covering_quota_is_charged_and_scopes_select_pods():
    store = await new_store()
    await synced(store, resource_quota("all", {"pods": "10", "count/pods": "10"}))
    await synced(store, resource_quota("best-effort", {"pods": "1"}, scopes=("BestEffort",)))
    await synced(store, resource_quota("burstable", {"pods": "5"}, scopes=("NotBestEffort",)))
    await synced(store, resource_quota("deadline", {"pods": "1"}, scopes=("Terminating",)))
    await store.create(pod("be"))
    await store.create(pod("bu", container(requests={"cpu": "100m"})))
    await store.create(pod("job", container(requests={"cpu": "100m"}), activeDeadlineSeconds=60))
    assert used(store, "all") == {"pods": "3", "count/pods": "3"}
    assert used(store, "best-effort") == {"pods": "1"}
    assert used(store, "burstable") == {"pods": "2"}
    assert used(store, "deadline") == {"pods": "1"}
    with pytest.raises(errors.Forbidden, match="exceeded quota: best-effort, requested: pods=1"):
        await store.create(pod("be2"))
    assert used(store, "all") == {"pods": "3", "count/pods": "3"}


async def test_services_and_node_ports_are_charged_on_create_and_on_type_change():
    store = await new_store()
    await synced(store, resource_quota("svc", {"services": "2", "services.nodeports": "2"}))
    await store.create(service("a"))
    s = await store.create(service("b", "NodePort", ports=1))
    assert used(store, "svc") == {"services": "2", "services.nodeports": "1"}
    with pytest.raises(errors.Forbidden, match=r"requested: services=1, used: services=2,"):
        await store.create(service("c"))
    a = store.get_nowait("Service", "a", namespace="default")
    await store.update(attrs.evolve(a, spec=attrs.evolve(a.spec, type="NodePort")))
    assert used(store, "svc") == {"services": "2", "services.nodeports": "2"}
    assert s.spec.type == "NodePort"


async def test_object_counts_of_other_kinds():
    store = await new_store()
    await synced(store, resource_quota("objects", {"count/configmaps": "1", "secrets": "1"}))
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}
    await store.create(from_dict({**cm, "metadata": {"name": "one", "namespace": "default"}}))
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(from_dict({**cm, "metadata": {"name": "two", "namespace": "default"}}))
    assert str(exc.value) == (
        'configmaps "two" is forbidden: exceeded quota: objects, requested: count/configmaps=1,'
        " used: count/configmaps=1, limited: count/configmaps=1"
    )
    assert used(store, "objects") == {"count/configmaps": "1", "secrets": "0"}


async def test_bad_quantities_in_a_quota_are_invalid_and_store_nothing():
    store = await new_store()
    with pytest.raises(errors.Invalid) as exc:
        from_dict(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "default"},
                "spec": {"hard": {"pods": "5x"}},
            }
        )
    assert [str(c) for c in exc.value.causes] == ['spec.hard.pods: invalid quantity "5x"']
    with pytest.raises(errors.Invalid) as exc:
        await store.create(resource_quota("q", {"pods": "-1"}))
    assert [c.field for c in exc.value.causes] == ["spec.hard.pods"]
    assert store.list_nowait("ResourceQuota") == []


async def test_defaulted_requests_from_a_limit_range_are_charged():
    store = await new_store(limit_range=True)
    await store.create(
        from_dict(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": "defaults", "namespace": "default"},
                "spec": {"limits": [{"type": "Container", "default": {"cpu": "400m"}}]},
            }
        )
    )
    await synced(store, resource_quota("compute", {"requests.cpu": "1", "limits.cpu": "1"}))
    await store.create(pod("a"))  # no resources: the LimitRange fills in cpu 400m/400m
    await store.create(pod("b"))
    assert used(store) == {"requests.cpu": "800m", "limits.cpu": "800m"}
    with pytest.raises(errors.Forbidden) as exc:
        await store.create(pod("c"))
    assert str(exc.value) == (
        'pods "c" is forbidden: exceeded quota: compute, requested: limits.cpu=400m,'
        "requests.cpu=400m, used: limits.cpu=800m,requests.cpu=800m, limited:"
        " limits.cpu=1,requests.cpu=1"
    )


# -- the pure evaluators -----------------------------------------------------------------

NOW = to_wall(1000)


def test_pod_usage_takes_the_init_container_peak_and_adds_sidecars():
    p = pod(
        "p",
        container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}),
        container("b", {"cpu": "100m"}),
        initContainers=[
            container("init", {"cpu": "500m"}),
            {**container("side", {"cpu": "50m"}), "restartPolicy": "Always"},
        ],
    )
    usage = {k: str(v) for k, v in quota.pod_usage(p, NOW).items()}
    assert usage == {
        "count/pods": "1",
        "pods": "1",
        "cpu": "500m",
        "requests.cpu": "500m",
        "limits.cpu": "200m",
        "memory": "64Mi",
        "requests.memory": "64Mi",
    }


def test_terminal_and_expired_terminating_pods_count_only_as_objects():
    p = pod("p", container(requests={"cpu": "1"}))
    done = attrs.evolve(p, status=attrs.evolve(p.status, phase="Succeeded"))
    assert quota.pod_usage(done, NOW) == {"count/pods": Q("1")}
    meta = attrs.evolve(p.metadata, deletion_timestamp=NOW, deletion_grace_period_seconds=30)
    terminating = attrs.evolve(p, metadata=meta)
    assert quota.pod_charged(terminating, NOW + timedelta(seconds=30))
    assert not quota.pod_charged(terminating, NOW + timedelta(seconds=31))


def test_update_is_charged_only_the_growth():
    q = resource_quota("svc", {"services.nodeports": "3", "services": "3"})
    q = attrs.evolve(q, status=quota.sync_status(q, {}, NOW))
    old = service("s", "NodePort", ports=1)
    new = service("s", "NodePort", ports=3)
    ((_, new_used),) = check_request([q], "update", new, old, NOW)
    assert {k: str(v) for k, v in new_used.items()} == {
        "services": "0",
        "services.nodeports": "2",
    }
    assert check_request([q], "update", old, new, NOW) == []  # shrinking charges nothing
