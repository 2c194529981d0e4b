"""Kubernetes API objects: the kind classes, their metadata, and their JSON/YAML forms.

``from controlplane.api import Pod, from_dict, to_dict, load_yaml, dump_yaml``. The
nested structs of each kind live in its group module (``core``, ``apps``, ``batch``,
``autoscaling``, ``coordination``); defaulting and validation are in ``defaults`` and
``validation``.
"""

from controlplane.api.apps import Deployment, ReplicaSet
from controlplane.api.autoscaling import HorizontalPodAutoscaler
from controlplane.api.batch import CronJob, Job
from controlplane.api.coordination import Lease
from controlplane.api.core import (
    ConfigMap,
    Container,
    Endpoints,
    Event,
    LimitRange,
    Namespace,
    Node,
    ObjectReference,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplateSpec,
    ReplicationController,
    ResourceQuota,
    ResourceRequirements,
    Secret,
    Service,
    ServiceAccount,
)
from controlplane.api.discovery import EndpointSlice
from controlplane.api.kinds import KINDS, KindInfo, resolve_kind
from controlplane.api.meta import (
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    OwnerReference,
)
from controlplane.api.quantity import Quantity
from controlplane.api.serialization import dump_yaml, from_dict, load_yaml, to_dict

__all__ = [
    "KINDS",
    "ConfigMap",
    "Container",
    "CronJob",
    "Deployment",
    "EndpointSlice",
    "Endpoints",
    "Event",
    "HorizontalPodAutoscaler",
    "Job",
    "KindInfo",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Lease",
    "LimitRange",
    "Namespace",
    "Node",
    "ObjectMeta",
    "ObjectReference",
    "OwnerReference",
    "Pod",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "Quantity",
    "ReplicaSet",
    "ReplicationController",
    "ResourceQuota",
    "ResourceRequirements",
    "Secret",
    "Service",
    "ServiceAccount",
    "dump_yaml",
    "from_dict",
    "load_yaml",
    "resolve_kind",
    "to_dict",
]
