"""Object builders shared by the garbage-collector and namespace-controller tests."""

from __future__ import annotations

from typing import Any

from controlplane.api import from_dict
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.namespace import NamespaceController

CONTROLLERS = [
    ("garbage-collector", GarbageCollector),
    ("namespace-controller", NamespaceController),
]


def owner_ref(owner: Any, *, block: bool | None = True, controller: bool | None = True) -> dict:
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": controller,
        "blockOwnerDeletion": block,
    }


def _meta(name: str, namespace: str, owners: list[dict] | None, **extra: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, **extra}
    if owners:
        meta["ownerReferences"] = [{k: v for k, v in o.items() if v is not None} for o in owners]
    return meta


def _template(app: str) -> dict:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
    }


def replica_set(name: str, *, namespace: str = "default", owners: list[dict] | None = None) -> Any:
    return from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": _meta(name, namespace, owners),
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": _template(name),
            },
        }
    )


def deployment(name: str, *, namespace: str = "default") -> Any:
    return from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, namespace, None),
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": _template(name),
            },
        }
    )


def replication_controller(name: str, *, namespace: str = "default") -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": _meta(name, namespace, None),
            "spec": {"replicas": 0, "selector": {"app": name}, "template": _template(name)},
        }
    )


def job(name: str, *, namespace: str = "default") -> Any:
    template = _template(name)
    template["spec"]["restartPolicy"] = "Never"
    return from_dict(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta(name, namespace, None),
            "spec": {"template": template},
        }
    )


def pod(
    name: str,
    *,
    namespace: str = "default",
    owners: list[dict] | None = None,
    grace: int | None = None,
    slow_stop: bool = False,
    finalizers: list[str] | None = None,
) -> Any:
    """A pod; ``slow_stop``: its container ignores SIGTERM, so a graceful delete takes
    the whole grace period."""
    container: dict[str, Any] = {"name": "c", "image": "nginx:1.27"}
    if slow_stop:
        container = {"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}
    spec: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    extra = {"finalizers": finalizers} if finalizers else {}
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(name, namespace, owners, **extra),
            "spec": spec,
        }
    )


def config_map(
    name: str,
    *,
    namespace: str = "default",
    owners: list[dict] | None = None,
    finalizers: list[str] | None = None,
) -> Any:
    extra = {"finalizers": finalizers} if finalizers else {}
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(name, namespace, owners, **extra),
            "data": {"k": "v"},
        }
    )


def service(name: str, *, namespace: str = "default") -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, namespace, None),
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
        }
    )


def namespace(name: str) -> Any:
    return from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
