"""Objects to and from the Kubernetes JSON shape and YAML manifests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from controlplane import errors
from controlplane.api import (
    Container,
    Deployment,
    HorizontalPodAutoscaler,
    Job,
    ObjectMeta,
    Pod,
    PodSpec,
    Quantity,
    ReplicationController,
    ResourceRequirements,
    Service,
    core,
    dump_yaml,
    from_dict,
    load_yaml,
    to_dict,
)
from controlplane.api.coordination import Lease, LeaseSpec
from controlplane.api.serialization import json_name

MANIFESTS = Path(__file__).parent / "manifests"
MANIFEST_FILES = sorted(MANIFESTS.glob("*.yaml"))


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# -- real manifests ----------------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_manifest_loads_unchanged(path: Path) -> None:
    documents = _documents(path)
    objects = load_yaml(path.read_text())
    assert len(objects) == len(documents)
    for obj, document in zip(objects, documents, strict=True):
        assert to_dict(obj) == document


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_manifest_round_trips_through_dump_yaml(path: Path) -> None:
    objects = load_yaml(path.read_text())
    assert load_yaml(dump_yaml(objects)) == objects


def test_manifest_types() -> None:
    (deployment,) = load_yaml((MANIFESTS / "nginx-deployment.yaml").read_text())
    assert isinstance(deployment, Deployment)
    assert deployment.spec.replicas == 3
    assert deployment.spec.selector.match_labels == {"app.kubernetes.io/name": "nginx"}
    container = deployment.spec.template.spec.containers[0]
    assert container.ports[0].container_port == 80
    (rc,) = load_yaml((MANIFESTS / "replication.yaml").read_text())
    assert isinstance(rc, ReplicationController)
    assert rc.spec.selector == {"app": "nginx"}
    (job,) = load_yaml((MANIFESTS / "job.yaml").read_text())
    assert isinstance(job, Job)
    assert job.spec.backoff_limit == 4
    assert job.spec.template.spec.restart_policy == "Never"
    (hpa,) = load_yaml((MANIFESTS / "hpa-php-apache.yaml").read_text())
    assert isinstance(hpa, HorizontalPodAutoscaler)
    assert hpa.spec.metrics[0].resource.target.average_utilization == 50
    (service,) = load_yaml((MANIFESTS / "backend-service.yaml").read_text())
    assert isinstance(service, Service)
    assert service.spec.ports[0].target_port == "http"
    deployment, service = load_yaml((MANIFESTS / "php-apache.yaml").read_text())
    limits = deployment.spec.template.spec.containers[0].resources.limits
    assert limits["cpu"] == Quantity.parse("0.5")
    assert service.spec.ports[0].target_port is None
    (pod,) = load_yaml((MANIFESTS / "http-liveness.yaml").read_text())
    probe = pod.spec.containers[0].liveness_probe
    assert probe.http_get.port == 8080
    assert probe.http_get.http_headers[0].value == "Awesome"


def test_dump_yaml_key_order_and_separators() -> None:
    text = dump_yaml(load_yaml((MANIFESTS / "php-apache.yaml").read_text()))
    assert text.startswith("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n")
    assert "\n---\napiVersion: v1\nkind: Service\nmetadata:\n" in text
    assert text.index("\nspec:") < text.index("\n---\n")
    assert dump_yaml(Pod(metadata=ObjectMeta(name="p"))) == (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
    )


def test_to_dict_emits_metadata_and_json_types() -> None:
    assert to_dict(Pod()) == {"apiVersion": "v1", "kind": "Pod", "metadata": {}}
    pod = Pod(
        metadata=ObjectMeta(
            name="p", creation_timestamp=datetime(2025, 1, 1, tzinfo=UTC), labels={"a": "b"}
        ),
        spec=PodSpec(
            containers=[
                Container(
                    name="c", resources=ResourceRequirements(limits={"cpu": "1.5", "memory": 1024})
                )
            ],
            node_name="n1",
        ),
        status=core.PodStatus(phase="Running", pod_ip="10.0.0.1"),
    )
    data = to_dict(pod)
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert data["metadata"] == {
        "name": "p",
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "labels": {"a": "b"},
    }
    assert data["spec"] == {
        "containers": [{"name": "c", "resources": {"limits": {"cpu": "1500m", "memory": "1024"}}}],
        "nodeName": "n1",
    }
    assert data["status"] == {"phase": "Running", "podIP": "10.0.0.1"}


def test_micro_time() -> None:
    when = datetime(2025, 1, 1, 0, 0, 1, 250000, tzinfo=UTC)
    lease = Lease(metadata=ObjectMeta(name="n"), spec=LeaseSpec(renew_time=when))
    assert to_dict(lease)["spec"] == {"renewTime": "2025-01-01T00:00:01.250000Z"}
    assert from_dict(to_dict(lease)) == lease
    event = core.Event(metadata=ObjectMeta(name="e"), event_time=when, last_timestamp=when)
    assert to_dict(event)["eventTime"] == "2025-01-01T00:00:01.250000Z"
    assert to_dict(event)["lastTimestamp"] == "2025-01-01T00:00:01Z"


@pytest.mark.parametrize(
    ("attribute", "key"),
    [
        ("pod_ip", "podIP"),
        ("host_ip", "hostIP"),
        ("pod_ips", "podIPs"),
        ("cluster_ip", "clusterIP"),
        ("cluster_ips", "clusterIPs"),
        ("external_ips", "externalIPs"),
        ("pod_cidr", "podCIDR"),
        ("pod_cidrs", "podCIDRs"),
        ("uid", "uid"),
        ("http_get", "httpGet"),
        ("tcp_socket", "tcpSocket"),
        ("provider_id", "providerID"),
        ("image_id", "imageID"),
        ("container_id", "containerID"),
        ("ip_families", "ipFamilies"),
        ("load_balancer_ip", "loadBalancerIP"),
        ("system_uuid", "systemUUID"),
        ("host_pid", "hostPID"),
        ("api_version", "apiVersion"),
        ("termination_grace_period_seconds", "terminationGracePeriodSeconds"),
    ],
)
def test_json_names(attribute: str, key: str) -> None:
    assert json_name(attribute) == key


def test_irregular_names_read_and_written() -> None:
    data = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"], "providerID": "x://1"},
        "status": {"nodeInfo": {"machineID": "m", "systemUUID": "u", "bootID": "b"}},
    }
    node = from_dict(data)
    assert node.spec.pod_cidr == "10.0.1.0/24"
    assert node.status.node_info.system_uuid == "u"
    assert to_dict(node) == data


# -- errors ------------------------------------------------------------------------------


def _pod(**spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def _causes(data: dict, **kwargs: bool) -> list[tuple[str, str]]:
    with pytest.raises(errors.Invalid) as info:
        from_dict(data, **kwargs)
    return [(c.field, c.message) for c in info.value.causes]


def test_unknown_field_strict() -> None:
    data = _pod(containers=[{"name": "c", "image": "nginx", "imagePullPolicyy": "Always"}])
    with pytest.raises(
        errors.Invalid,
        match=re.escape(
            'Pod "web" is invalid: spec.containers[0].imagePullPolicyy: '
            'unknown field "imagePullPolicyy"'
        ),
    ) as info:
        from_dict(data)
    error = info.value
    assert (error.kind, error.name, error.namespace) == ("Pod", "web", "default")
    assert error.causes == (
        errors.Cause("spec.containers[0].imagePullPolicyy", 'unknown field "imagePullPolicyy"'),
    )


def test_unknown_fields_everywhere_collected() -> None:
    data = _pod(bogus=1)
    data["metadata"]["lables"] = {"a": "b"}
    data["extra"] = True
    assert _causes(data) == [
        ("metadata.lables", 'unknown field "lables"'),
        ("spec.bogus", 'unknown field "bogus"'),
        ("extra", 'unknown field "extra"'),
    ]


def test_unknown_field_lenient() -> None:
    data = _pod(containers=[{"name": "c", "image": "nginx", "imagePullPolicyy": "Always"}])
    pod = from_dict(data, strict=False)
    assert pod.spec.containers[0] == Container(name="c", image="nginx")


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]},
            "spec.containers[0].ports[0].containerPort",
            'expected integer, got string "80"',
        ),
        ({"nodeSelector": ["a"]}, "spec.nodeSelector", "expected object, got array"),
        ({"containers": {"name": "c"}}, "spec.containers", "expected array, got object"),
        ({"hostNetwork": "true"}, "spec.hostNetwork", 'expected boolean, got string "true"'),
        ({"hostname": True}, "spec.hostname", "expected string, got boolean true"),
        ({"priority": True}, "spec.priority", "expected integer, got boolean true"),
        ({"priority": 1.5}, "spec.priority", "expected integer, got number 1.5"),
        ({"nodeSelector": {"a": 1}}, "spec.nodeSelector.a", "expected string, got integer 1"),
        (
            {"containers": [{"name": "c", "livenessProbe": {"httpGet": {"port": 1.5}}}]},
            "spec.containers[0].livenessProbe.httpGet.port",
            "expected integer or string, got number 1.5",
        ),
        (
            {"containers": [{"name": "c", "resources": {"limits": {"cpu": "5x"}}}]},
            "spec.containers[0].resources.limits.cpu",
            'invalid quantity "5x"',
        ),
        (
            {"containers": [{"name": "c", "resources": {"limits": {"cpu": [1]}}}]},
            "spec.containers[0].resources.limits.cpu",
            "expected quantity, got array",
        ),
    ],
)
def test_wrong_types(spec: dict, field: str, message: str) -> None:
    assert _causes(_pod(**spec)) == [(field, message)]


def test_bad_quantity_message() -> None:
    data = _pod(containers=[{"name": "c", "resources": {"limits": {"cpu": "5x"}}}])
    with pytest.raises(errors.Invalid) as info:
        from_dict(data)
    assert (
        str(info.value.causes[0])
        == 'spec.containers[0].resources.limits.cpu: invalid quantity "5x"'
    )


def test_all_errors_collected() -> None:
    data = _pod(
        containers=[
            {"name": "a", "ports": [{"containerPort": "80"}, {"containerPort": 81, "x": 1}]},
            {"name": 7},
        ],
        hostNetwork="yes",
    )
    assert _causes(data) == [
        ("spec.containers[0].ports[0].containerPort", 'expected integer, got string "80"'),
        ("spec.containers[0].ports[1].x", 'unknown field "x"'),
        ("spec.containers[1].name", "expected string, got integer 7"),
        ("spec.hostNetwork", 'expected boolean, got string "yes"'),
    ]


def test_bad_timestamp() -> None:
    data = _pod()
    data["metadata"]["creationTimestamp"] = "yesterday"
    assert _causes(data) == [
        ("metadata.creationTimestamp", 'invalid timestamp "yesterday": expected RFC 3339')
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"apiVersion": "v1", "kind": "Pdo"}, "unknown kind 'Pdo' in apiVersion 'v1'"),
        (
            {"apiVersion": "v1", "kind": "Deployment"},
            "no kind 'Deployment' is served in apiVersion 'v1' (kubetrio serves 'apps/v1')",
        ),
        (
            {"apiVersion": "extensions/v1beta1", "kind": "Deployment"},
            "no kind 'Deployment' is served in apiVersion 'extensions/v1beta1' "
            "(kubetrio serves 'apps/v1')",
        ),
        ({"apiVersion": "v1"}, 'object has no "kind"'),
        ({"kind": "Pod"}, 'Pod has no "apiVersion"'),
        ([], "expected an object, got array"),
    ],
)
def test_unknown_kind_or_api_version(data: object, message: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        from_dict(data)  # type: ignore[arg-type]
    assert info.value.message == message


# -- what YAML gives ---------------------------------------------------------------------


def test_null_means_unset() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels:
  annotations: null
spec:
  nodeName: null
  containers:
  - name: c
    image: nginx
    args:
    resources:
    livenessProbe: null
  tolerations:
"""
    (pod,) = load_yaml(text)
    assert pod == Pod(
        metadata=ObjectMeta(name="p"), spec=PodSpec(containers=[Container(name="c", image="nginx")])
    )


def test_yaml_booleans_and_numbers() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostNetwork: yes
  enableServiceLinks: off
  terminationGracePeriodSeconds: 10
  containers:
  - name: c
    image: nginx
    tty: on
    resources: {limits: {cpu: 1, memory: 0.5}, requests: {cpu: 0.25}}
"""
    (pod,) = load_yaml(text)
    assert pod.spec.host_network is True
    assert pod.spec.enable_service_links is False
    container = pod.spec.containers[0]
    assert container.tty is True
    assert container.resources.limits == {
        "cpu": Quantity.parse("1"),
        "memory": Quantity.parse("500m"),
    }
    assert str(container.resources.requests["cpu"]) == "250m"


def test_yaml_boolean_is_not_a_string() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {enabled: yes}}
"""
    with pytest.raises(errors.Invalid) as info:
        load_yaml(text)
    assert [str(c) for c in info.value.causes] == [
        "metadata.labels.enabled: expected string, got boolean true"
    ]


def test_yaml_timestamps_stay_strings() -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  creationTimestamp: 2025-01-01T00:00:00Z
data:
  day: 2025-01-01
"""
    (config_map,) = load_yaml(text)
    assert config_map.data == {"day": "2025-01-01"}
    assert config_map.metadata.creation_timestamp == datetime(2025, 1, 1, tzinfo=UTC)


def test_load_yaml_list_and_empty_documents() -> None:
    text = """
---
# only a comment
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: team}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c, namespace: team}
---
apiVersion: v1
kind: PodList
items:
- metadata: {name: p}
"""
    objects = load_yaml(text)
    assert [type(o).__name__ for o in objects] == ["Namespace", "ConfigMap", "Pod"]


def test_load_yaml_errors_name_the_document() -> None:
    with pytest.raises(errors.BadRequest, match=r"^document 1: unknown kind 'Nope'"):
        load_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
            "apiVersion: v1\nkind: Nope\n"
        )
    with pytest.raises(errors.BadRequest, match=r"^document 0: expected an object, got string"):
        load_yaml("just text")
    with pytest.raises(errors.BadRequest, match=r"^invalid YAML: "):
        load_yaml("a: [")


# -- round trips -------------------------------------------------------------------------

_names = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_quantities = st.sampled_from(["100m", "1", "2Gi", "512Mi", "1500m", "0"]).map(Quantity.parse)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=0))


@st.composite
def _containers(draw: st.DrawFn) -> Container:
    return Container(
        name=draw(_names),
        image=draw(st.none() | _names),
        command=draw(st.lists(st.text(max_size=5), max_size=3)),
        ports=[
            core.ContainerPort(container_port=p, protocol=draw(st.none() | st.just("TCP")))
            for p in draw(st.lists(st.integers(1, 65535), max_size=2))
        ],
        resources=ResourceRequirements(
            limits=draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), _quantities)),
            requests=draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), _quantities)),
        ),
        liveness_probe=draw(
            st.none()
            | st.builds(
                core.Probe,
                http_get=st.builds(
                    core.HTTPGetAction, port=st.integers(1, 65535) | _names, path=st.just("/")
                ),
                period_seconds=st.none() | st.integers(1, 100),
            )
        ),
        tty=draw(st.none() | st.booleans()),
    )


@st.composite
def _pods(draw: st.DrawFn) -> Pod:
    return Pod(
        metadata=ObjectMeta(
            name=draw(_names),
            namespace=draw(st.sampled_from(["", "default"])),
            labels=draw(st.dictionaries(_names, _names, max_size=3)),
            creation_timestamp=draw(st.none() | _times),
        ),
        spec=PodSpec(
            containers=draw(st.lists(_containers(), min_size=1, max_size=3)),
            node_name=draw(st.none() | _names),
            restart_policy=draw(st.none() | st.sampled_from(["Always", "Never"])),
            termination_grace_period_seconds=draw(st.none() | st.integers(0, 100)),
            tolerations=draw(
                st.lists(
                    st.builds(
                        core.Toleration,
                        key=st.none() | _names,
                        operator=st.none() | st.just("Exists"),
                        toleration_seconds=st.none() | st.integers(0, 300),
                    ),
                    max_size=2,
                )
            ),
        ),
        status=core.PodStatus(
            phase=draw(st.none() | st.sampled_from(["Pending", "Running"])),
            start_time=draw(st.none() | _times),
            container_statuses=[
                core.ContainerStatus(
                    name=draw(_names),
                    ready=draw(st.booleans()),
                    restart_count=draw(st.integers(0, 10)),
                    state=core.ContainerState(
                        running=core.ContainerStateRunning(started_at=draw(_times))
                    ),
                )
                for _ in range(draw(st.integers(0, 2)))
            ],
        ),
    )


@given(_pods())
def test_pod_round_trip(pod: Pod) -> None:
    data = to_dict(pod)
    assert json.loads(json.dumps(data)) == data
    assert from_dict(data) == pod
    assert load_yaml(dump_yaml(pod)) == [pod]
