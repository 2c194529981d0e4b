"""The EndpointSlice reconciler, pure: from a Service, its pods and its existing slices,
which slices to create, update and delete (``pkg/controller/endpointslice/reconciler.go``).

It minimises churn as Kubernetes does:

1. endpoints are grouped by the ports they serve (pods lacking a named port serve fewer);
2. per group, each existing slice keeps the endpoints still desired (updated in place if
   their conditions changed) and drops the rest; a slice left empty is deleted;
3. the endpoints not yet placed go first into slices already being updated (fullest
   first), then into the one unchanged slice they fit best, then into new slices of at
   most ``max_endpoints_per_slice``;
4. a slice to create takes over the name of one to delete (an update instead of a
   delete and a create); a Service with no endpoints at all keeps one empty placeholder
   slice.

Endpoints are placed in the order the pods come in, so a run replays identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from controlplane.api.core_pod import Pod
from controlplane.api.core_service import ObjectReference, Service
from controlplane.api.discovery import (
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
)
from controlplane.api.frozen import freeze
from controlplane.api.memo import IdentityMemo
from controlplane.api.meta import ObjectMeta
from controlplane.controllers.endpoints_decisions import (
    HEADLESS_LABEL,
    find_port,
    is_headless,
    pod_ip_for_service,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from controlplane.controllers.pods import is_ready, owner_reference

__all__ = [
    "CONTROLLER_NAME",
    "DEFAULT_MAX_ENDPOINTS_PER_SLICE",
    "SlicePlan",
    "desired_endpoints_by_ports",
    "endpoint_key",
    "pod_to_endpoint",
    "reconcile_slices",
    "slice_labels",
]

#: The value of ``endpointslice.kubernetes.io/managed-by`` on the slices it manages.
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
#: ``--max-endpoints-per-slice``.
DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100

#: An endpoint's identity within a Service: addresses, hostname, the pod's name.
EndpointKey = tuple[tuple[str, ...], str, str, str]
PortsKey = tuple[tuple[str, int, str, str], ...]


def endpoint_key(endpoint: Endpoint) -> EndpointKey:
    """What ``hashEndpoint`` hashes: an endpoint with the same key is the same backend
    (its conditions, node or zone may have changed)."""
    ref = endpoint.target_ref
    return (
        tuple(sorted(endpoint.addresses)),
        endpoint.hostname or "",
        (ref.namespace or "") if ref else "",
        (ref.name or "") if ref else "",
    )


def _ports_key(ports: Iterable[EndpointPort]) -> PortsKey:
    return tuple(
        sorted((p.name or "", p.port or 0, p.protocol or "", p.app_protocol or "") for p in ports)
    )


def pod_endpoint_ports(service: Service, pod: Pod) -> tuple[EndpointPort, ...]:
    """The service ports ``pod`` serves, resolved (``getEndpointPorts``)."""
    out = []
    for service_port in service.spec.ports:
        number = find_port(pod, service_port)
        if number is None:
            continue
        out.append(
            EndpointPort(
                name=service_port.name or "",
                port=number,
                protocol=service_port.protocol or "TCP",
                app_protocol=service_port.app_protocol,
            )
        )
    return tuple(out)


def pod_to_endpoint(pod: Pod, service: Service, zone: str | None) -> Endpoint | None:
    """``podToEndpoint``: serving is the pod's readiness; terminating is a deletion
    timestamp; ready is serving and not terminating (or publishNotReadyAddresses)."""
    ip = pod_ip_for_service(pod, service)
    if ip is None:
        return None
    serving = is_ready(pod)
    terminating = pod.metadata.deletion_timestamp is not None
    ready = bool(service.spec.publish_not_ready_addresses) or (serving and not terminating)
    meta = pod.metadata
    return Endpoint(
        addresses=(ip,),
        conditions=EndpointConditions(ready=ready, serving=serving, terminating=terminating),
        hostname=pod.spec.hostname if should_set_hostname(pod, service) else None,
        target_ref=ObjectReference(
            kind="Pod", namespace=meta.namespace, name=meta.name, uid=meta.uid
        ),
        node_name=pod.spec.node_name or None,
        zone=zone or None,
    )


@attrs.frozen
class _Group:
    ports: tuple[EndpointPort, ...]
    endpoints: dict[EndpointKey, Endpoint]


def desired_endpoints_by_ports(
    service: Service, pods: Iterable[Pod], zone_of: Callable[[str], str | None]
) -> dict[PortsKey, _Group]:
    """Every pod that belongs in the service's slices (terminating ones included, with
    their conditions), grouped by the ports it serves, in pod order."""
    groups: dict[PortsKey, _Group] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        zone = zone_of(pod.spec.node_name or "")
        memo = _POD_ENDPOINTS.get(pod)
        if memo is not None and memo[0] is service and memo[1] == zone:
            ports, key, endpoint = memo[2]
        else:
            ports = pod_endpoint_ports(service, pod)
            key = _ports_key(ports)
            endpoint = pod_to_endpoint(pod, service, zone)
            _POD_ENDPOINTS.put(pod, (service, zone, (ports, key, endpoint)))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(ports, {})
        if endpoint is not None:
            group.endpoints.setdefault(endpoint_key(endpoint), endpoint)
    return groups


#: Per pod (by identity): the service and zone it was computed for, its ports and its
#: endpoint. Syncs of a big Service re-read every pod; most are the same objects.
_POD_ENDPOINTS: IdentityMemo[Pod, tuple[Service, str | None, Any]] = IdentityMemo()


def slice_labels(service: Service, existing: Any = None) -> Any:
    """``setEndpointSliceLabels``: the service's labels (reserved keys excluded), the
    service-name and managed-by labels, and the headless label for a headless service."""
    labels = {
        k: v
        for k, v in service.metadata.labels.items()
        if k not in (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, HEADLESS_LABEL)
    }
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    labels[LABEL_SERVICE_NAME] = service.metadata.name
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return freeze(labels)


def owned_by(slice_: EndpointSlice, service: Service) -> bool:
    ref = slice_.metadata.controller_ref()
    return ref is not None and ref.kind == "Service" and ref.uid == service.metadata.uid


def new_slice(
    service: Service, ports: tuple[EndpointPort, ...], address_type: str
) -> EndpointSlice:
    """A slice to create (``newEndpointSlice``): ``generateName: <service>-``, owned by
    the service (controller reference)."""
    prefix = f"{service.metadata.name}-"
    if len(prefix) > 63 - 5:  # leave room for generateName's random suffix
        prefix = prefix[: 63 - 5]
    return EndpointSlice(
        metadata=ObjectMeta(
            generate_name=prefix,
            namespace=service.metadata.namespace,
            labels=slice_labels(service),
            owner_references=(owner_reference(service),),
        ),
        address_type=address_type,
        ports=ports,
    )


@attrs.frozen
class SlicePlan:
    """What to write: slices to create (no name yet), to update (full new content),
    and to delete."""

    create: tuple[EndpointSlice, ...] = ()
    update: tuple[EndpointSlice, ...] = ()
    delete: tuple[EndpointSlice, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def reconcile_slices(
    service: Service,
    pods: Iterable[Pod],
    existing: Sequence[EndpointSlice],
    *,
    zone_of: Callable[[str], str | None] = lambda _: None,
    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    address_type: str = "IPv4",
) -> SlicePlan:
    """The writes that make ``existing`` (this controller's slices for ``service``)
    carry the endpoints of ``pods`` (those the selector matches). See the module
    docstring."""
    labels = slice_labels(service)
    to_delete: list[EndpointSlice] = []
    by_ports: dict[PortsKey, list[EndpointSlice]] = {}
    for slice_ in existing:
        if slice_.address_type == address_type and owned_by(slice_, service):
            by_ports.setdefault(_ports_key(slice_.ports), []).append(slice_)
        else:
            to_delete.append(slice_)
    desired = desired_endpoints_by_ports(service, pods, zone_of)
    to_create: list[EndpointSlice] = []
    to_update: list[EndpointSlice] = []
    for key, group in desired.items():
        created, updated, deleted = _reconcile_group(
            service, group, by_ports.pop(key, []), labels, max_endpoints_per_slice, address_type
        )
        to_create += created
        to_update += updated
        to_delete += deleted
    for slices in by_ports.values():  # ports no pod serves any more
        to_delete += slices
    # No endpoints at all: keep (or create) one empty placeholder slice.
    if len(existing) == len(to_delete) and not to_create:
        placeholder = new_slice(service, (), address_type)
        if len(to_delete) == 1 and _is_placeholder(to_delete[0], placeholder, service):
            to_delete = []
        else:
            to_create.append(placeholder)
    # A slice to create reuses the name of one to delete: an update, not two writes.
    reused: list[EndpointSlice] = []
    for old in list(to_delete):
        if not to_create:
            break
        if old.address_type == to_create[0].address_type and owned_by(old, service):
            fresh = to_create.pop(0)
            meta = attrs.evolve(old.metadata, labels=fresh.metadata.labels)
            reused.append(attrs.evolve(fresh, metadata=meta))
            to_delete.remove(old)
    to_update += reused
    return SlicePlan(tuple(to_create), tuple(to_update), tuple(to_delete))


def _is_placeholder(slice_: EndpointSlice, placeholder: EndpointSlice, service: Service) -> bool:
    return (
        not slice_.endpoints
        and not slice_.ports
        and slice_.address_type == placeholder.address_type
        and slice_.metadata.labels == placeholder.metadata.labels
        and owned_by(slice_, service)
    )


def _reconcile_group(
    service: Service,
    group: _Group,
    existing: list[EndpointSlice],
    labels: Any,
    max_per_slice: int,
    address_type: str,
) -> tuple[list[EndpointSlice], list[EndpointSlice], list[EndpointSlice]]:
    """``reconcileByPortMapping`` for one group of endpoints serving the same ports."""
    remaining = dict(group.endpoints)
    by_name: dict[str, EndpointSlice] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    for slice_ in existing:
        name = slice_.metadata.name
        by_name[name] = slice_
        kept: list[Endpoint] = []
        changed = False
        for endpoint in slice_.endpoints:
            want = remaining.pop(endpoint_key(endpoint), None)
            if want is not None:
                kept.append(want)
                changed = changed or want != endpoint
        labels_changed = slice_.metadata.labels != labels
        if changed or len(kept) != len(slice_.endpoints):
            if not kept:
                to_delete.append(name)
                continue
            by_name[name] = _with(slice_, kept, labels)
            to_update.append(name)
        elif labels_changed:
            by_name[name] = _with(slice_, kept, labels)
            to_update.append(name)
        else:
            unchanged.append(name)
    pending = list(remaining.values())
    # Fill the slices being written anyway, fullest first.
    if pending and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n].endpoints)):
            room = max_per_slice - len(by_name[name].endpoints)
            if room > 0 and pending:
                taken, pending = pending[:room], pending[room:]
                by_name[name] = _with(by_name[name], [*by_name[name].endpoints, *taken], labels)
    created: list[EndpointSlice] = []
    while pending:
        target: EndpointSlice | None = None
        if len(pending) < max_per_slice and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(pending), max_per_slice)
        if target is None:
            target = new_slice(service, group.ports, address_type)
        room = max_per_slice - len(target.endpoints)
        taken, pending = pending[:room], pending[room:]
        target = _with(target, [*target.endpoints, *taken], labels)
        name = target.metadata.name
        if name:
            by_name[name] = target
            to_update.append(name)
            unchanged.remove(name)
        else:
            created.append(target)
    return created, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _with(slice_: EndpointSlice, endpoints: list[Endpoint], labels: Any) -> EndpointSlice:
    meta = slice_.metadata
    if meta.labels != labels:
        meta = attrs.evolve(meta, labels=labels)
    return attrs.evolve(slice_, metadata=meta, endpoints=tuple(endpoints))


def _slice_to_fill(
    slices: list[EndpointSlice], count: int, max_per_slice: int
) -> EndpointSlice | None:
    """``getSliceToFill``: the slice that ``count`` endpoints fill most closely."""
    best: EndpointSlice | None = None
    best_gap = max_per_slice
    for slice_ in slices:
        gap = max_per_slice - (count + len(slice_.endpoints))
        if 0 <= gap < best_gap:
            best, best_gap = slice_, gap
            if gap == 0:
                break
    return best
