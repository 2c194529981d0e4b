"""The object classes: frozen, evolvable, and the kinds table."""

from __future__ import annotations

import attrs
import pytest

from controlplane import errors
from controlplane.api import (
    KINDS,
    ConfigMap,
    Container,
    Deployment,
    HorizontalPodAutoscaler,
    Namespace,
    Node,
    ObjectMeta,
    Pod,
    PodSpec,
    Quantity,
    ResourceRequirements,
    apps,
    core,
    resolve_kind,
)
from controlplane.api.frozen import FrozenDict
from controlplane.api.kinds import kind_for_api_version


def test_objects_are_frozen() -> None:
    pod = Pod(metadata=ObjectMeta(name="p", labels={"a": "b"}))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        pod.metadata = ObjectMeta()  # type: ignore[misc]
    with pytest.raises(TypeError, match="read-only"):
        pod.metadata.labels["a"] = "c"  # type: ignore[index]
    assert isinstance(pod.metadata.labels, FrozenDict)


def test_collections_are_immutable() -> None:
    spec = PodSpec(containers=[Container(name="a")], node_selector={"zone": "a"})
    assert spec.containers == (Container(name="a"),)
    assert isinstance(spec.node_selector, FrozenDict)
    resources = ResourceRequirements(limits={"cpu": "500m", "memory": 1024})
    assert resources.limits == {"cpu": Quantity.parse("0.5"), "memory": Quantity.parse("1Ki")}
    assert isinstance(resources.limits["cpu"], Quantity)
    node = Node(status=core.NodeStatus(capacity={"cpu": "8", "pods": 110}))
    assert node.status.capacity["pods"] == Quantity.from_int(110)


def test_evolve() -> None:
    pod = Pod(metadata=ObjectMeta(name="p"), spec=PodSpec(containers=[Container(name="a")]))
    bound = attrs.evolve(pod, spec=attrs.evolve(pod.spec, node_name="node-1"))
    assert bound.spec.node_name == "node-1"
    assert pod.spec.node_name is None
    assert bound.spec.containers is pod.spec.containers
    assert bound.metadata is pod.metadata


def test_defaults_are_empty() -> None:
    pod = Pod()
    assert pod.metadata.name == ""
    assert pod.spec.containers == ()
    assert pod.status.phase is None
    assert Namespace().status.phase is None
    assert Deployment().spec.template == core.PodTemplateSpec()
    assert Deployment().spec.selector is None
    assert Deployment().status.replicas == 0
    assert ConfigMap().data == {}
    assert hash(Pod()) == hash(Pod())


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("Pod", Pod),
        ("pod", Pod),
        ("pods", Pod),
        ("po", Pod),
        ("no", Node),
        ("svc", core.Service),
        ("ep", core.Endpoints),
        ("ns", Namespace),
        ("rc", core.ReplicationController),
        ("rs", apps.ReplicaSet),
        ("deploy", Deployment),
        ("deployments", Deployment),
        ("hpa", HorizontalPodAutoscaler),
        ("cm", ConfigMap),
        ("quota", core.ResourceQuota),
        ("limits", core.LimitRange),
        ("ev", core.Event),
        ("sa", core.ServiceAccount),
        ("Lease", resolve_kind("leases").cls),
        ("jobs", resolve_kind("Job").cls),
    ],
)
def test_resolve_kind_by_name(name: str, cls: type) -> None:
    assert resolve_kind(name).cls is cls


def test_resolve_kind_by_class() -> None:
    info = resolve_kind(Pod)
    assert (info.kind, info.api_version, info.plural, info.namespaced) == (
        "Pod",
        "v1",
        "pods",
        True,
    )
    assert info.group == ""
    deployment = resolve_kind(Deployment)
    assert (deployment.group, deployment.plural) == ("apps", "deployments")
    assert resolve_kind(Node).namespaced is False
    assert resolve_kind(Namespace).namespaced is False
    assert resolve_kind("Lease").api_version == "coordination.k8s.io/v1"
    assert resolve_kind("hpa").api_version == "autoscaling/v2"


def test_resolve_unknown_kind() -> None:
    with pytest.raises(errors.BadRequest, match=r"^unknown kind 'Widget'$"):
        resolve_kind("Widget")
    with pytest.raises(errors.BadRequest, match=r"^unknown kind 'PodSpec'$"):
        resolve_kind(PodSpec)
    with pytest.raises(errors.BadRequest, match=r"served in apiVersion 'apps/v1beta1'"):
        kind_for_api_version("apps/v1beta1", "Deployment")


def test_kinds_table_is_consistent() -> None:
    names = [info.kind for info in KINDS]
    assert len(names) == len(set(names))
    aliases = [a for info in KINDS for a in (info.plural, *info.short_names)]
    assert len(aliases) == len(set(aliases))
    for info in KINDS:
        assert attrs.fields(info.cls)[0].name == "metadata"
        assert info.cls() == info.cls()
