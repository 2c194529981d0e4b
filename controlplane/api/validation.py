"""Kubernetes API validation: ``validate(obj, old=None)`` lists every invalid field.

The rules are the essentials of ``pkg/apis/*/validation`` in Kubernetes, and so are the
field paths (JSON names: ``spec.containers[0].imagePullPolicy``; map keys as
``.key``: ``spec.containers[0].resources.limits.cpu``) and the messages:
``Required value``, ``Invalid value: "x": <why>``, ``Unsupported value: "x": supported
values: "a", "b"``, ``Duplicate value: "x"``, ``Forbidden: <why>``, ``Not found: "x"``.

The store validates after admission has filled in what the request implies: a name from
``generateName``, the namespace of the request, and the defaults (`apply_defaults`), so an
object without ``metadata.name`` here is invalid. With ``old`` given, the object is an
update of ``old`` and the immutability rules apply too.

Pure functions, no I/O; the rules for each kind are small functions that append to a list:
pods and pod templates in ``validation_pod``, workloads in ``validation_workloads``, the
other core kinds and Lease in ``validation_core``, shared messages and name rules in
``validation_common``. This module only dispatches by kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.api import apps, autoscaling, batch, coordination, core, discovery
from controlplane.api import validation_core as vcore
from controlplane.api import validation_discovery as vdisc
from controlplane.api import validation_pod as vpod
from controlplane.api import validation_workloads as vwork
from controlplane.api.kinds import KINDS
from controlplane.api.validation_common import (
    Causes,
    dns1123_label,
    dns1123_subdomain,
    validate_metadata,
    validate_metadata_update,
)
from controlplane.errors import Cause

__all__ = ["validate"]


def validate(obj: Any, old: Any = None) -> list[Cause]:
    """Every reason ``obj`` is invalid (as an update of ``old`` when given); empty if valid.

    Kinds without rules of their own get the metadata checks only.
    """
    out: Causes = []
    cls = type(obj)
    info = _KIND_INFO.get(cls)
    namespaced = info.namespaced if info is not None else True
    name_rule = dns1123_label if cls in _LABEL_NAMED_KINDS else dns1123_subdomain
    validate_metadata(obj.metadata, namespaced, name_rule, out)
    rules = _RULES.get(cls)
    if rules is not None:
        rules(obj, out)
    if old is not None:
        validate_metadata_update(obj.metadata, old.metadata, out)
        update_rules = _UPDATE_RULES.get(cls)
        if update_rules is not None:
            update_rules(obj, old, out)
    return out


_KIND_INFO = {info.cls: info for info in KINDS}
_LABEL_NAMED_KINDS = frozenset({core.Namespace, core.Service})

_RULES: dict[type[Any], Callable[[Any, Causes], None]] = {
    core.Pod: vpod.validate_pod,
    core.Node: vcore.validate_node,
    core.Service: vcore.validate_service,
    core.Endpoints: vcore.validate_endpoints,
    discovery.EndpointSlice: vdisc.validate_endpoint_slice,
    core.ConfigMap: vcore.validate_config_map,
    core.Secret: vcore.validate_secret,
    core.ResourceQuota: vcore.validate_resource_quota,
    core.LimitRange: vcore.validate_limit_range,
    core.ReplicationController: vwork.validate_replication_controller,
    apps.ReplicaSet: vwork.validate_replica_set,
    apps.Deployment: vwork.validate_deployment,
    batch.Job: vwork.validate_job,
    batch.CronJob: vwork.validate_cron_job,
    autoscaling.HorizontalPodAutoscaler: vwork.validate_hpa,
    coordination.Lease: vcore.validate_lease,
}

_UPDATE_RULES: dict[type[Any], Callable[[Any, Any, Causes], None]] = {
    core.Pod: vpod.validate_pod_update,
    core.Service: vcore.validate_service_update,
    discovery.EndpointSlice: vdisc.validate_endpoint_slice_update,
    core.ConfigMap: vcore.validate_immutable_data,
    core.Secret: vcore.validate_secret_update,
    apps.ReplicaSet: vwork.validate_replica_set_update,
    apps.Deployment: vwork.validate_replica_set_update,
    batch.Job: vwork.validate_job_update,
}
