"""ObjectMeta and the pieces every API object shares.

Field names are Python's snake_case; ``controlplane.api.serialization`` maps them to the
Kubernetes camelCase JSON shape. Timestamps are timezone-aware ``datetime`` values that the
store derives from trio's clock plus a fixed epoch (see ``controlplane.clock``), so they are
virtual under ``MockClock``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from controlplane.api.frozen import EMPTY, FrozenDict, freeze

__all__ = [
    "KubeObject",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ObjectMeta",
    "OwnerReference",
    "object_key",
]


@attrs.frozen(kw_only=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@attrs.frozen(kw_only=True)
class ObjectMeta:
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    deletion_grace_period_seconds: int | None = None
    labels: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    annotations: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    finalizers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    owner_references: tuple[OwnerReference, ...] = attrs.field(default=(), converter=tuple)

    def controller_ref(self) -> OwnerReference | None:
        """The owner reference marked ``controller: true``, if any."""
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None


@runtime_checkable
class KubeObject(Protocol):
    """What every API object class provides: its kind and apiVersion, and its metadata."""

    kind: ClassVar[str]
    api_version: ClassVar[str]
    metadata: ObjectMeta


def object_key(obj: Any) -> str:
    """The ``namespace/name`` key used by caches and work queues (``name`` if cluster-scoped)."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


@attrs.frozen(kw_only=True)
class LabelSelectorRequirement:
    """One ``matchExpressions`` entry: ``operator`` is In, NotIn, Exists or DoesNotExist."""

    key: str
    operator: str
    values: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class LabelSelector:
    """The structured selector of Deployments, ReplicaSets, Jobs (``metav1.LabelSelector``).

    This is only the API shape; ``controlplane.api.labels`` compiles it for matching.
    """

    match_labels: FrozenDict[str, str] = attrs.field(default=EMPTY, converter=freeze)
    match_expressions: tuple[LabelSelectorRequirement, ...] = attrs.field(
        default=(), converter=tuple
    )
