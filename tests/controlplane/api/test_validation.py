"""API defaulting and validation: each rule's field path and message, and the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from controlplane.api import from_dict, load_yaml, to_dict
from controlplane.api.defaults import apply_defaults, default_image_pull_policy
from controlplane.api.validation import validate
from controlplane.errors import Cause

MANIFESTS = Path(__file__).parent / "manifests"


def _pod(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", **meta},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]} if spec is None else spec,
    }


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "nginx", **fields}


def _deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [_container()]},
            },
            **spec,
        },
    }


def _messages(data: dict[str, Any]) -> list[str]:
    return [str(c) for c in validate(apply_defaults(from_dict(data)))]


# -- manifests are valid ---------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_are_valid(path: Path) -> None:
    for obj in load_yaml(path.read_text()):
        obj = attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, namespace="default"))
        assert validate(apply_defaults(obj)) == []


# -- rules -----------------------------------------------------------------------------

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "name required",
        _pod(name=""),
        ["metadata.name: Required value: name or generateName is required"],
    ),
    ("generateName suffices", _pod(name="", generateName="web-"), []),
    (
        "pod name is a subdomain",
        _pod(name="Web_1"),
        [f'metadata.name: Invalid value: "Web_1": {SUBDOMAIN_MESSAGE}'],
    ),
    (
        "namespace name is a label",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}},
        [f'metadata.name: Invalid value: "a.b": {LABEL_MESSAGE}'],
    ),
    (
        "namespace required for namespaced kinds",
        _pod(namespace=""),
        ["metadata.namespace: Required value"],
    ),
    (
        "label key",
        _pod(labels={"a b": "c"}),
        [
            'metadata.labels: Invalid value: "a b": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ],
    ),
    (
        "label value",
        _pod(labels={"a": "-x"}),
        [
            'metadata.labels: Invalid value: "-x": a valid label must be an empty string or '
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character"
        ],
    ),
    ("containers required", _pod({"containers": []}), ["spec.containers: Required value"]),
    (
        "container name",
        _pod({"containers": [_container(name="Web")]}),
        [f'spec.containers[0].name: Invalid value: "Web": {LABEL_MESSAGE}'],
    ),
    (
        "container name required",
        _pod({"containers": [_container(name="")]}),
        ["spec.containers[0].name: Required value"],
    ),
    (
        "container names unique",
        _pod({"containers": [_container(), _container()]}),
        ['spec.containers[1].name: Duplicate value: "c"'],
    ),
    (
        "image required",
        _pod({"containers": [{"name": "c"}]}),
        ["spec.containers[0].image: Required value"],
    ),
    (
        "image pull policy",
        _pod({"containers": [_container(imagePullPolicy="Sometimes")]}),
        [
            'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": '
            'supported values: "Always", "IfNotPresent", "Never"'
        ],
    ),
    (
        "container port range",
        _pod({"containers": [_container(ports=[{"containerPort": 70000}])]}),
        [
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
            "must be between 1 and 65535, inclusive"
        ],
    ),
    (
        "container port required",
        _pod({"containers": [_container(ports=[{"name": "http"}])]}),
        ["spec.containers[0].ports[0].containerPort: Required value"],
    ),
    (
        "port protocol",
        _pod({"containers": [_container(ports=[{"containerPort": 80, "protocol": "ICMP"}])]}),
        [
            'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": '
            'supported values: "SCTP", "TCP", "UDP"'
        ],
    ),
    (
        "negative quantity",
        _pod({"containers": [_container(resources={"limits": {"cpu": "-1"}})]}),
        [
            'spec.containers[0].resources.limits.cpu: Invalid value: "-1": '
            "must be greater than or equal to 0",
            'spec.containers[0].resources.requests.cpu: Invalid value: "-1": '
            "must be greater than or equal to 0",
        ],
    ),
    (
        "requests <= limits",
        _pod(
            {
                "containers": [
                    _container(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}})
                ]
            }
        ),
        [
            'spec.containers[0].resources.requests.cpu: Invalid value: "1500m": '
            "must be less than or equal to cpu limit of 1"
        ],
    ),
    (
        "probe needs a handler",
        _pod({"containers": [_container(livenessProbe={"periodSeconds": 5})]}),
        ["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
    ),
    (
        "probe has one handler",
        _pod(
            {
                "containers": [
                    _container(
                        readinessProbe={
                            "exec": {"command": ["true"]},
                            "tcpSocket": {"port": 80},
                        }
                    )
                ]
            }
        ),
        [
            "spec.containers[0].readinessProbe.tcpSocket: Forbidden: "
            "may not specify more than 1 handler type"
        ],
    ),
    (
        "probe timings",
        _pod(
            {
                "containers": [
                    _container(
                        livenessProbe={
                            "tcpSocket": {"port": 80},
                            "periodSeconds": -1,
                            "initialDelaySeconds": -2,
                            "successThreshold": 2,
                        }
                    )
                ]
            }
        ),
        [
            "spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -2: "
            "must be greater than or equal to 0",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: "
            "must be greater than or equal to 1",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ],
    ),
    (
        "restart policy",
        _pod({"containers": [_container()], "restartPolicy": "Sometimes"}),
        [
            'spec.restartPolicy: Unsupported value: "Sometimes": '
            'supported values: "Always", "Never", "OnFailure"'
        ],
    ),
    (
        "termination grace period",
        _pod({"containers": [_container()], "terminationGracePeriodSeconds": -1}),
        [
            "spec.terminationGracePeriodSeconds: Invalid value: -1: "
            "must be greater than or equal to 0"
        ],
    ),
    (
        "toleration operator",
        _pod({"containers": [_container()], "tolerations": [{"key": "k", "operator": "Is"}]}),
        [
            'spec.tolerations[0].operator: Unsupported value: "Is": '
            'supported values: "Equal", "Exists"'
        ],
    ),
    (
        "toleration Exists without value",
        _pod(
            {
                "containers": [_container()],
                "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}],
            }
        ),
        [
            'spec.tolerations[0].operator: Invalid value: "v": '
            "value must be empty when `operator` is 'Exists'"
        ],
    ),
    (
        "toleration effect",
        _pod({"containers": [_container()], "tolerations": [{"key": "k", "effect": "Never"}]}),
        [
            'spec.tolerations[0].effect: Unsupported value: "Never": '
            'supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"'
        ],
    ),
    (
        "tolerationSeconds needs NoExecute",
        _pod(
            {
                "containers": [_container()],
                "tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}],
            }
        ),
        [
            'spec.tolerations[0].effect: Invalid value: "NoSchedule": '
            "effect must be 'NoExecute' when `tolerationSeconds` is set"
        ],
    ),
    (
        "volume mount must name a volume",
        _pod({"containers": [_container(volumeMounts=[{"name": "data", "mountPath": "/data"}])]}),
        ['spec.containers[0].volumeMounts[0].name: Not found: "data"'],
    ),
    (
        "deployment replicas",
        _deployment(replicas=-1),
        ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    ),
    ("deployment selector required", _deployment(selector=None), ["spec.selector: Required value"]),
    (
        "deployment selector empty",
        _deployment(selector={}),
        ['spec.selector: Invalid value: "": empty selector is invalid for deployment'],
    ),
    (
        "deployment selector matches template",
        _deployment(selector={"matchLabels": {"app": "db"}}),
        [
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
            "`selector` does not match template `labels`"
        ],
    ),
    (
        "deployment template restart policy",
        _deployment(
            template={
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [_container()], "restartPolicy": "Never"},
            }
        ),
        [
            'spec.template.spec.restartPolicy: Unsupported value: "Never": '
            'supported values: "Always"'
        ],
    ),
    (
        "deployment max surge and unavailable both zero",
        _deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        [
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": '
            "may not be 0 when `maxSurge` is 0"
        ],
    ),
    (
        "deployment percent",
        _deployment(strategy={"rollingUpdate": {"maxSurge": "lots"}}),
        [
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "lots": a valid percent '
            "string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
            "regex used for validation is '[0-9]+%')"
        ],
    ),
    (
        "replication controller selector",
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "rc", "namespace": "default"},
            "spec": {
                "selector": {"app": "db"},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [_container()]},
                },
            },
        },
        [
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
            "`selector` does not match template `labels`"
        ],
    ),
    (
        "service ports required",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"selector": {"app": "web"}},
        },
        ["spec.ports: Required value"],
    ),
    (
        "service type and port",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"type": "Magic", "ports": [{"port": 0}]},
        },
        [
            'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", '
            '"ExternalName", "LoadBalancer", "NodePort"',
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ],
    ),
    (
        "headless service needs no ports",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"clusterIP": "None"},
        },
        [],
    ),
    (
        "job restart policy",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [_container()]}}},
        },
        [
            'spec.template.spec.restartPolicy: Unsupported value: "Always": '
            'supported values: "Never", "OnFailure"'
        ],
    ),
    (
        "job counts",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j", "namespace": "default"},
            "spec": {
                "parallelism": -1,
                "template": {"spec": {"containers": [_container()], "restartPolicy": "Never"}},
            },
        },
        ["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"],
    ),
    (
        "hpa replicas",
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 2,
            },
        },
        ["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"],
    ),
    (
        "hpa min replicas",
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 0,
                "maxReplicas": 2,
            },
        },
        ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"],
    ),
    (
        "quota quantities",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"hard": {"pods": "-1"}},
        },
        ['spec.hard.pods: Invalid value: "-1": must be greater than or equal to 0'],
    ),
    (
        "limit range min <= max",
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]},
        },
        [
            'spec.limits[0].min.cpu: Invalid value: "2": min value 2 is greater than max value 1',
        ],
    ),
    (
        "node taints",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1"},
            "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]},
        },
        [
            'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: '
            '"NoExecute", "NoSchedule", "PreferNoSchedule"'
        ],
    ),
    (
        "cluster-scoped kinds have no namespace",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "x"}},
        ["metadata.namespace: Forbidden: not allowed on this type"],
    ),
    (
        "lease duration",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "n", "namespace": "kube-node-lease"},
            "spec": {"leaseDurationSeconds": 0},
        },
        ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(data: dict[str, Any], expected: list[str]) -> None:
    assert _messages(data) == expected


def test_cause_reasons() -> None:
    causes = validate(from_dict(_pod({"containers": [{"name": "c"}, {"name": "c"}]})))
    assert causes == [
        Cause("spec.containers[0].image", "Required value", "FieldValueRequired"),
        Cause("spec.containers[1].image", "Required value", "FieldValueRequired"),
        Cause("spec.containers[1].name", 'Duplicate value: "c"', "FieldValueDuplicate"),
    ]


# -- updates ---------------------------------------------------------------------------


def _update(obj: Any, **spec: Any) -> Any:
    return attrs.evolve(obj, spec=attrs.evolve(obj.spec, **spec))


POD_UPDATE = (
    "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def test_pod_update() -> None:
    pod = apply_defaults(from_dict(_pod()))
    image = attrs.evolve(pod.spec.containers[0], image="nginx:2")
    assert validate(_update(pod, containers=(image,)), pod) == []
    assert validate(_update(pod, node_name="node-1"), pod) == []
    assert [str(c) for c in validate(_update(pod, restart_policy="Never"), pod)] == [POD_UPDATE]
    bound = _update(pod, node_name="node-1")
    assert [str(c) for c in validate(_update(bound, node_name="node-2"), bound)] == [POD_UPDATE]


def test_metadata_update() -> None:
    pod = apply_defaults(from_dict(_pod()))
    moved = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, namespace="other"))
    assert [str(c) for c in validate(moved, pod)] == [
        'metadata.namespace: Invalid value: "other": field is immutable'
    ]
    with_uid = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, uid="1"))
    changed = attrs.evolve(pod, metadata=attrs.evolve(pod.metadata, uid="2"))
    assert [str(c) for c in validate(changed, with_uid)] == [
        'metadata.uid: Invalid value: "2": field is immutable'
    ]


def test_deployment_selector_immutable() -> None:
    deployment = apply_defaults(from_dict(_deployment()))
    labels = {"app": "web", "tier": "front"}
    changed = from_dict(
        _deployment(
            selector={"matchLabels": labels},
            template={"metadata": {"labels": labels}, "spec": {"containers": [_container()]}},
        )
    )
    assert [str(c) for c in validate(apply_defaults(changed), deployment)] == [
        'spec.selector: Invalid value: "app=web,tier=front": field is immutable'
    ]
    assert validate(_update(deployment, replicas=5), deployment) == []


def test_service_cluster_ip_immutable() -> None:
    data = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"ports": [{"port": 80}], "clusterIP": "10.96.0.10"},
    }
    service = apply_defaults(from_dict(data))
    assert [str(c) for c in validate(_update(service, cluster_ip="10.96.0.11"), service)] == [
        'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
    ]


def test_job_template_immutable() -> None:
    (job,) = load_yaml((MANIFESTS / "job.yaml").read_text())
    job = apply_defaults(attrs.evolve(job, metadata=attrs.evolve(job.metadata, namespace="d")))
    template = attrs.evolve(
        job.spec.template, spec=attrs.evolve(job.spec.template.spec, restart_policy="OnFailure")
    )
    assert [c.field for c in validate(_update(job, template=template), job)] == ["spec.template"]


# -- defaults --------------------------------------------------------------------------


def test_pod_defaults() -> None:
    data = _pod(
        {
            "containers": [
                _container(
                    ports=[{"containerPort": 80}],
                    resources={"limits": {"cpu": "500m"}},
                    livenessProbe={"httpGet": {"port": 80}},
                    readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 3},
                )
            ]
        }
    )
    spec = to_dict(apply_defaults(from_dict(data)))["spec"]
    assert spec == {
        "containers": [
            {
                "name": "c",
                "image": "nginx",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}},
                "livenessProbe": {
                    "httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "exec": {"command": ["true"]},
                    "timeoutSeconds": 1,
                    "periodSeconds": 3,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "Always",
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
    }


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry:5000/team/app", "Always"),
        ("registry:5000/team/app:v1", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("nginx:latest@sha256:abcd", "Always"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert default_image_pull_policy(image) == policy


def test_deployment_defaults() -> None:
    (deployment,) = load_yaml((MANIFESTS / "php-apache.yaml").read_text())[:1]
    spec = to_dict(apply_defaults(deployment))["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    container = spec["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"limits": {"cpu": "500m"}, "requests": {"cpu": "200m"}}


def test_service_defaults() -> None:
    (service,) = load_yaml((MANIFESTS / "backend-service.yaml").read_text())
    spec = to_dict(apply_defaults(service))["spec"]
    assert spec == {
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
        "selector": {"app.kubernetes.io/name": "hello", "tier": "backend"},
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
    }
    _, service = load_yaml((MANIFESTS / "php-apache.yaml").read_text())
    assert apply_defaults(service).spec.ports[0].target_port == 80


def test_job_defaults() -> None:
    (job,) = load_yaml((MANIFESTS / "job.yaml").read_text())
    spec = apply_defaults(job).spec
    assert (spec.parallelism, spec.completions, spec.backoff_limit) == (1, 1, 4)
    assert (spec.completion_mode, spec.suspend) == ("NonIndexed", False)
    assert apply_defaults(attrs.evolve(job, spec=attrs.evolve(job.spec, completions=5))).spec == (
        attrs.evolve(spec, completions=5)
    )
    unset = apply_defaults(attrs.evolve(job, spec=attrs.evolve(job.spec, backoff_limit=None)))
    assert unset.spec.backoff_limit == 6
    parallel = apply_defaults(attrs.evolve(job, spec=attrs.evolve(job.spec, parallelism=3)))
    assert (parallel.spec.parallelism, parallel.spec.completions) == (3, None)


def test_replication_controller_defaults() -> None:
    data = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [_container()]},
            }
        },
    }
    rc = apply_defaults(from_dict(data))
    assert rc.spec.replicas == 1
    assert rc.spec.selector == {"app": "web"}
    assert rc.metadata.labels == {"app": "web"}


def test_hpa_defaults() -> None:
    data = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5},
    }
    spec = to_dict(apply_defaults(from_dict(data)))["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]


def test_namespace_defaults() -> None:
    data = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    assert to_dict(apply_defaults(from_dict(data))) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
        "status": {"phase": "Active"},
    }


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_defaults_idempotent_and_identity(path: Path) -> None:
    for obj in load_yaml(path.read_text()):
        once = apply_defaults(obj)
        twice = apply_defaults(once)
        assert twice == once
        assert twice is once


def test_pod_stamped_from_defaulted_template_is_not_rebuilt() -> None:
    (deployment,) = load_yaml((MANIFESTS / "nginx-deployment.yaml").read_text())
    template = apply_defaults(deployment).spec.template
    from controlplane.api import Pod

    pod = Pod(metadata=template.metadata, spec=template.spec)
    assert apply_defaults(pod) is pod


def test_objects_without_defaults_are_returned_as_is() -> None:
    data = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    config_map = from_dict(data)
    assert apply_defaults(config_map) is config_map
