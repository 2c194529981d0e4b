"""Core v1 kinds: Namespace, Pod, Node, Service, Endpoints, Event, ConfigMap, Secret,
ServiceAccount, ResourceQuota, LimitRange, ReplicationController.

Pod lives in ``core_pod``, Node in ``core_node``, Service and Endpoints in
``core_service``; this module re-exports them, so ``core.Pod`` is the name to use.

Conventions every kind module follows (see ``Namespace`` below):
- ``@attrs.frozen(kw_only=True)``; ``kind`` and ``api_version`` are ``ClassVar`` strings;
- ``metadata: ObjectMeta`` first, then ``spec``/``status`` (or the kind's own top-level
  fields, e.g. ConfigMap's ``data``), each defaulting to an empty instance so ``Kind()``
  or ``Kind(metadata=ObjectMeta(name="x"))`` is valid;
- collections are tuples (``converter=tuple``) and maps are ``FrozenDict``
  (``converter=freeze``); optional scalars are ``None`` when unset;
- nested structs that Go embeds by value default to an empty instance (absent == empty),
  those Go holds by pointer default to ``None``;
- fields Kubernetes requires (a container's ``name``, a port number) default to the zero
  value (``""``, ``0``) so that a manifest missing them still loads and validation can say
  ``Required value``; counters in ``status`` (``replicas``, ``readyReplicas``...) default
  to ``0``, which Kubernetes treats like absent;
- resource maps are ``FrozenDict[str, Quantity]`` (``freeze_quantities`` parses strings);
- IntOrString fields (``targetPort``, ``maxSurge``) are ``int | str``; timestamps are
  timezone-aware UTC ``datetime`` values.
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.core_node import *  # noqa: F403
from controlplane.api.core_node import __all__ as _node_all
from controlplane.api.core_pod import *  # noqa: F403
from controlplane.api.core_pod import (
    LocalObjectReference,
    PodTemplateSpec,
    as_tuple,
    freeze_quantities,
)
from controlplane.api.core_pod import __all__ as _pod_all
from controlplane.api.core_service import *  # noqa: F403
from controlplane.api.core_service import ObjectReference
from controlplane.api.core_service import __all__ as _service_all
from controlplane.api.frozen import EMPTY, FrozenDict, freeze
from controlplane.api.meta import ObjectMeta
from controlplane.api.quantity import Quantity

__all__ = [
    *_node_all,
    *_pod_all,
    *_service_all,
    "ConfigMap",
    "Event",
    "EventSource",
    "LimitRange",
    "LimitRangeItem",
    "LimitRangeSpec",
    "Namespace",
    "NamespaceCondition",
    "NamespaceSpec",
    "NamespaceStatus",
    "ReplicationController",
    "ReplicationControllerCondition",
    "ReplicationControllerSpec",
    "ReplicationControllerStatus",
    "ResourceQuota",
    "ResourceQuotaSpec",
    "ResourceQuotaStatus",
    "Secret",
    "ServiceAccount",
]


@attrs.frozen(kw_only=True)
class NamespaceSpec:
    finalizers: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class NamespaceCondition:
    """What the namespace controller reports while deleting a namespace's content
    (``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``...)."""

    type: str = ""
    status: str = ""
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class NamespaceStatus:
    phase: str | None = None
    conditions: tuple[NamespaceCondition, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class Namespace:
    kind: ClassVar[str] = "Namespace"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: NamespaceSpec = NamespaceSpec()
    status: NamespaceStatus = NamespaceStatus()


# -- Event -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EventSource:
    component: str | None = None
    host: str | None = None


@attrs.frozen(kw_only=True)
class Event:
    """A core/v1 Event: something that happened to ``involved_object`` (no spec or status).

    ``event_time`` is a MicroTime (serialised with microseconds); the other timestamps
    are whole seconds.
    """

    kind: ClassVar[str] = "Event"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    involved_object: ObjectReference = ObjectReference()
    reason: str | None = None
    message: str | None = None
    source: EventSource = EventSource()
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None
    count: int | None = None
    #: Normal or Warning.
    type: str | None = None
    event_time: datetime | None = None
    action: str | None = None
    related: ObjectReference | None = None
    reporting_component: str | None = None
    reporting_instance: str | None = None


# -- configuration ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ConfigMap:
    kind: ClassVar[str] = "ConfigMap"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    data: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    #: Values are base64 strings, as in the JSON form.
    binary_data: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    immutable: bool | None = None


@attrs.frozen(kw_only=True)
class Secret:
    kind: ClassVar[str] = "Secret"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    #: Values are base64 strings, as in the JSON form.
    data: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    string_data: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    type: str | None = None
    immutable: bool | None = None


@attrs.frozen(kw_only=True)
class ServiceAccount:
    kind: ClassVar[str] = "ServiceAccount"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    secrets: tuple[ObjectReference, ...] = attrs.field(default=(), converter=as_tuple)
    image_pull_secrets: tuple[LocalObjectReference, ...] = attrs.field(
        default=(), converter=as_tuple
    )
    automount_service_account_token: bool | None = None


# -- policy ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResourceQuotaSpec:
    hard: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class ResourceQuotaStatus:
    hard: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    used: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)


@attrs.frozen(kw_only=True)
class ResourceQuota:
    kind: ClassVar[str] = "ResourceQuota"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: ResourceQuotaSpec = ResourceQuotaSpec()
    status: ResourceQuotaStatus = ResourceQuotaStatus()


@attrs.frozen(kw_only=True)
class LimitRangeItem:
    """Limits for one ``type`` of object: Container, Pod or PersistentVolumeClaim."""

    type: str = ""
    max: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    min: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    default: FrozenDict[str, Quantity] = attrs.field(default=EMPTY, converter=freeze_quantities)
    default_request: FrozenDict[str, Quantity] = attrs.field(
        default=EMPTY, converter=freeze_quantities
    )
    max_limit_request_ratio: FrozenDict[str, Quantity] = attrs.field(
        default=EMPTY, converter=freeze_quantities
    )


@attrs.frozen(kw_only=True)
class LimitRangeSpec:
    limits: tuple[LimitRangeItem, ...] = attrs.field(default=(), converter=as_tuple)


@attrs.frozen(kw_only=True)
class LimitRange:
    kind: ClassVar[str] = "LimitRange"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: LimitRangeSpec = LimitRangeSpec()


# -- ReplicationController -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReplicationControllerSpec:
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    template: PodTemplateSpec | None = None


@attrs.frozen(kw_only=True)
class ReplicationControllerCondition:
    type: str = ""
    status: str = ""
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class ReplicationControllerStatus:
    replicas: int = 0
    fully_labeled_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    observed_generation: int = 0
    conditions: tuple[ReplicationControllerCondition, ...] = attrs.field(
        default=(), converter=as_tuple
    )


@attrs.frozen(kw_only=True)
class ReplicationController:
    kind: ClassVar[str] = "ReplicationController"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: ReplicationControllerSpec = ReplicationControllerSpec()
    status: ReplicationControllerStatus = ReplicationControllerStatus()
