"""Manifests and a cluster for the Endpoints and EndpointSlice controller tests."""

from __future__ import annotations

from controlplane import open_cluster
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpointslice import EndpointSliceController
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.replicaset import ReplicaSetController

CONTROLLERS = [
    (EndpointsController.name, EndpointsController),
    (EndpointSliceController.name, EndpointSliceController),
    (ReplicaSetController.name, ReplicaSetController),
    (GarbageCollector.name, GarbageCollector),
]


def cluster(nodes=2, seed=1, controllers=None):
    return open_cluster(nodes=nodes, seed=seed, controllers=controllers or CONTROLLERS)


def service(name="web", selector=None, ports=None, labels=None, **spec):
    body = {
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}] if ports is None else ports,
        **spec,
    }
    if selector is not False:
        body["selector"] = selector or {"app": name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": body,
    }


def container(image="nginx", ports=(("http", 8080),), readiness=False):
    c = {
        "name": "app",
        "image": image,
        "ports": [{"name": n, "containerPort": p} for n, p in ports],
    }
    if readiness:
        c["readinessProbe"] = {"tcpSocket": {"port": ports[0][1]}, "periodSeconds": 5}
    return c


def replica_set(name="web", replicas=3, labels=None, **container_args):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container(**container_args)],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def pod(name, labels=None, node_selector=None, **container_args):
    spec = {"containers": [container(**container_args)]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": spec,
    }


def endpoints(cluster, name="web"):
    return cluster.get_nowait("Endpoints", name, namespace="default")


def addresses(ep):
    """(ready pod names, not-ready pod names), sorted, over all subsets."""
    if ep is None:
        return None
    ready = sorted(a.target_ref.name for s in ep.subsets for a in s.addresses)
    not_ready = sorted(a.target_ref.name for s in ep.subsets for a in s.not_ready_addresses)
    return ready, not_ready


def pod_names(cluster, selector="app=web"):
    return sorted(
        p.metadata.name
        for p in cluster.list_nowait("Pod", namespace="default", label_selector=selector)
    )


def warnings(cluster, reason):
    return [
        e
        for e in cluster.list_nowait("Event", namespace="default")
        if e.reason == reason and e.type == "Warning"
    ]
