"""coordination.k8s.io/v1 kinds: Lease (node heartbeats, leader election).

Follows the conventions in ``controlplane.api.core`` (see its module docstring).
``acquire_time`` and ``renew_time`` are MicroTimes (serialised with microseconds).
"""

# Defaults that are instances (``metadata: ObjectMeta = ObjectMeta()``) are safe to share:
# the classes are frozen.
# ruff: noqa: RUF009

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from controlplane.api.meta import ObjectMeta

__all__ = ["Lease", "LeaseSpec"]


@attrs.frozen(kw_only=True)
class LeaseSpec:
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int | None = None


@attrs.frozen(kw_only=True)
class Lease:
    kind: ClassVar[str] = "Lease"
    api_version: ClassVar[str] = "coordination.k8s.io/v1"

    metadata: ObjectMeta = ObjectMeta()
    spec: LeaseSpec = LeaseSpec()
