"""kube-controller-manager: the controllers that keep the cluster in its desired state.

Each controller is an informer-fed work queue plus a ``sync(key)`` around pure decision
functions (see :mod:`controlplane.controllers.framework`); :class:`ControllerManager`
runs them all as one actor. :func:`default_controllers` is what ``open_cluster`` starts.
"""

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpointslice import EndpointSliceController
from controlplane.controllers.framework import (
    Controller,
    ControllerContext,
    ControllerFactory,
    SharedInformers,
)
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.hpa import HorizontalPodAutoscalerController, hpa_controller
from controlplane.controllers.job import JobController
from controlplane.controllers.manager import ControllerManager
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.podgc import PodGarbageCollector
from controlplane.controllers.replicaset import ReplicaSetController, ReplicationManager
from controlplane.controllers.resourcequota import ResourceQuotaController
from controlplane.controllers.taint_eviction import TaintEvictionController
from controlplane.metrics import MetricsStore

__all__ = [
    "Controller",
    "ControllerContext",
    "ControllerFactory",
    "ControllerManager",
    "DeploymentController",
    "ReplicaSetController",
    "ReplicationManager",
    "SharedInformers",
    "default_controllers",
]


def default_controllers(metrics: MetricsStore) -> tuple[ControllerFactory, ...]:
    """``(name, factory)`` for every controller a cluster runs, in start order; the
    HorizontalPodAutoscaler reads pod usage from ``metrics``."""
    return (
        (ReplicaSetController.name, ReplicaSetController),
        (ReplicationManager.name, ReplicationManager),
        (DeploymentController.name, DeploymentController),
        (EndpointsController.name, EndpointsController),
        (EndpointSliceController.name, EndpointSliceController),
        (JobController.name, JobController),
        (GarbageCollector.name, GarbageCollector),
        (NamespaceController.name, NamespaceController),
        (ResourceQuotaController.name, ResourceQuotaController),
        (NodeLifecycleController.name, NodeLifecycleController),
        (TaintEvictionController.name, TaintEvictionController),
        (PodGarbageCollector.name, PodGarbageCollector),
        (HorizontalPodAutoscalerController.name, hpa_controller(metrics)),
    )
