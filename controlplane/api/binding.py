"""``bound_pod_spec``: the spec of a pod once a node is assigned to it.

Binding derives a new spec object from an admitted one (only ``nodeName`` differs), and
every status update the kubelet then writes carries that object unchanged. Re-defaulting
and re-validating it on each of those writes is what the identity memos exist to avoid,
so a bound copy of a spec known to be defaulted and valid joins both memos -- after its
node name passes the same check validation would apply.
"""

from __future__ import annotations

import attrs

from controlplane.api import defaults, validation_pod
from controlplane.api.core_pod import PodSpec
from controlplane.api.validation_common import dns1123_subdomain

__all__ = ["bound_pod_spec"]


def bound_pod_spec(spec: PodSpec, node_name: str) -> PodSpec:
    """``spec`` with ``node_name`` set (the ``pods/binding`` subresource)."""
    bound = attrs.evolve(spec, node_name=node_name)
    if (
        defaults.is_defaulted(spec)
        and validation_pod.is_known_valid(spec)
        and not dns1123_subdomain(node_name)
    ):
        defaults.remember_defaulted(bound)
        validation_pod.remember_valid(bound)
    return bound
