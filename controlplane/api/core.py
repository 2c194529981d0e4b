"""Core v1 kinds: Namespace, Pod, Node, Service, Endpoints, Event, ConfigMap, ResourceQuota,
LimitRange.

Conventions every kind module follows (see ``Namespace`` below):
- ``@attrs.frozen(kw_only=True)``; ``kind`` and ``api_version`` are ``ClassVar`` strings;
- ``metadata: ObjectMeta`` first, then ``spec``/``status`` (or the kind's own top-level
  fields, e.g. ConfigMap's ``data``), each defaulting to an empty instance so ``Kind()``
  or ``Kind(metadata=ObjectMeta(name="x"))`` is valid;
- collections are tuples (``converter=tuple``) and maps are ``FrozenDict``
  (``converter=freeze``); optional scalars are ``None`` when unset.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from controlplane.api.meta import ObjectMeta


@attrs.frozen(kw_only=True)
class NamespaceSpec:
    finalizers: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class NamespaceStatus:
    phase: str | None = None


@attrs.frozen(kw_only=True)
class Namespace:
    kind: ClassVar[str] = "Namespace"
    api_version: ClassVar[str] = "v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: NamespaceSpec = NamespaceSpec()
    status: NamespaceStatus = NamespaceStatus()
