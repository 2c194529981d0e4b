"""ClusterIP and NodePort allocation for Services: the apiserver's service REST storage
(``pkg/registry/core/service/storage``) with its ``ipallocator`` and ``portallocator``.

Two admission steps share the work, because the chain separates side-effect-free
mutation (before validation) from steps that may allocate (after it):

- :class:`ServiceAllocatedFields` (``mutating = True``, no side effects): keeps
  ``clusterIP`` and ``clusterIPs`` in sync (``normalizeClusterIPs``), copies what an
  update omits from the stored Service -- its cluster IP and node ports
  (``patchAllocatedValues``) -- so an update that leaves them out keeps them instead of
  failing validation's "field is immutable", and clears them when the type changes to
  one that has none (``dropTypeDependentFields``); fills ``ipFamilies`` and
  ``ipFamilyPolicy``. Running before validation means an update that omits them is a
  no-op when nothing else changed.
- :class:`ServiceIPAllocation` (validating, runs after validation and the store's own
  checks): checks the cluster-IP fields against this single-stack IPv4 cluster, then
  allocates the ClusterIP and node ports the write needs, in Kubernetes' words on
  refusal. It is transactional like the REST storage's ``transaction``: what ``admit``
  allocated is given back by ``abort`` if a later step refuses the write; what an update
  stops using is released only in ``committed`` (after the write is stored); everything
  a Service holds is released by ``removed`` when the store removes it (a DELETED
  write, after its finalizers are gone). A refused write leaks nothing.

**Allocation order.** Random, from the seeded ``random.Random`` the step is given, with
Kubernetes' static subrange (see :mod:`controlplane.admission.allocator`).

Not modelled: dual-stack (the cluster is IPv4 only; IPv6 or a second IP is refused),
``healthCheckNodePort`` (LoadBalancer with ``externalTrafficPolicy: Local``), dry-run,
and the repair controllers (the allocators start empty with the store).
"""

from __future__ import annotations

import ipaddress
import json
import random
from typing import Any

import attrs
import structlog

from controlplane import errors
from controlplane.admission.allocator import (
    NODE_PORT_RANGE,
    SERVICE_CIDR,
    AllocationError,
    IPAllocator,
    PortAllocator,
)
from controlplane.api.core_service import Service, ServicePort, ServiceSpec
from controlplane.api.meta import ObjectMeta
from controlplane.api.validation_common import duplicate, forbidden, invalid
from controlplane.errors import Cause
from controlplane.store.admission import Operation

__all__ = [
    "NODE_PORT_RANGE",
    "SERVICE_CIDR",
    "ServiceAllocatedFields",
    "ServiceIPAllocation",
    "kubernetes_service",
    "service_admission_steps",
]

log = structlog.get_logger(__name__)

NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


# -- what a Service holds --------------------------------------------------------------


def _is_ip(value: str) -> bool:
    return value not in ("", "None")


def held_ips(service: Any) -> tuple[str, ...]:
    """The cluster IPs ``service`` holds (none for ExternalName or headless)."""
    spec = service.spec
    if spec.type == "ExternalName":
        return ()
    return tuple(ip for ip in spec.cluster_ips if _is_ip(ip))


def held_node_ports(service: Any) -> frozenset[int]:
    """The node ports ``service`` holds (``collectServiceNodePorts``)."""
    return frozenset(p.node_port for p in service.spec.ports if p.node_port)


def needs_node_ports(spec: ServiceSpec) -> bool:
    return spec.type in NODE_PORT_TYPES


def _should_allocate_node_ports(spec: ServiceSpec) -> bool:
    if spec.type == "NodePort":
        return True
    return spec.type == "LoadBalancer" and spec.allocate_load_balancer_node_ports is not False


# -- the mutating step -----------------------------------------------------------------


def _normalize_cluster_ips(spec: ServiceSpec, old: ServiceSpec | None) -> ServiceSpec:
    """``normalizeClusterIPs``: guess what a client that sets only one of ``clusterIP``
    and ``clusterIPs`` meant; validation judges the result."""
    ip, ips = spec.cluster_ip or "", spec.cluster_ips
    if old is None:
        if ip and not ips:
            return attrs.evolve(spec, cluster_ips=(ip,))
        return spec
    old_ip, old_ips = old.cluster_ip or "", old.cluster_ips
    if old_ips and not ips and old_ip == ip:
        ips = old_ips
    if old_ip != ip:
        if old_ip and not ip:
            if ips == old_ips:
                ips = ()
        elif ips == old_ips:
            ips = (ip,)
    if ips == spec.cluster_ips:
        return spec
    return attrs.evolve(spec, cluster_ips=ips)


def _needs_cluster_ip(spec: ServiceSpec) -> bool:
    return spec.type != "ExternalName"


def _patch_allocated(spec: ServiceSpec, old: ServiceSpec) -> ServiceSpec:
    """``patchAllocatedValues``: an update that omits the allocated IP or node ports
    keeps the stored ones."""
    changes: dict[str, Any] = {}
    if _needs_cluster_ip(old) and _needs_cluster_ip(spec):
        if not spec.cluster_ip and old.cluster_ip:
            changes["cluster_ip"] = old.cluster_ip
        if not spec.cluster_ips and old.cluster_ips:
            changes["cluster_ips"] = old.cluster_ips
    if needs_node_ports(old) and needs_node_ports(spec):
        used = {p.node_port for p in old.ports if p.node_port} & {
            p.node_port for p in spec.ports if p.node_port
        }
        by_name = {p.name: p.node_port for p in old.ports}
        ports = tuple(
            attrs.evolve(p, node_port=by_name[p.name])
            if not p.node_port and by_name.get(p.name) and by_name[p.name] not in used
            else p
            for p in spec.ports
        )
        if ports != spec.ports:
            changes["ports"] = ports
    return attrs.evolve(spec, **changes) if changes else spec


def _drop_type_dependent(spec: ServiceSpec, old: ServiceSpec) -> ServiceSpec:
    """``dropTypeDependentFields``: a type change that makes a field meaningless clears
    it, if the client left it as it was."""
    changes: dict[str, Any] = {}
    if _needs_cluster_ip(old) and not _needs_cluster_ip(spec):
        if spec.cluster_ip == old.cluster_ip and spec.cluster_ips == old.cluster_ips:
            changes.update(cluster_ip=None, cluster_ips=())
        if spec.ip_families == old.ip_families:
            changes["ip_families"] = ()
        if spec.ip_family_policy == old.ip_family_policy:
            changes["ip_family_policy"] = None
    if needs_node_ports(old) and not needs_node_ports(spec):
        old_ports = {p.node_port for p in old.ports if p.node_port}
        if {p.node_port for p in spec.ports if p.node_port} <= old_ports:
            changes["ports"] = tuple(
                attrs.evolve(p, node_port=None) if p.node_port else p for p in spec.ports
            )
    return attrs.evolve(spec, **changes) if changes else spec


def _init_ip_families(spec: ServiceSpec, old: ServiceSpec | None) -> ServiceSpec:
    """``initIPFamilyFields`` for a single-stack IPv4 cluster: the policy defaults to the
    stored one, else SingleStack -- RequireDualStack for a headless Service without a
    selector, whose families are then both (Kubernetes' special case) -- and the
    families to IPv4."""
    if spec.type == "ExternalName":
        return spec
    policy, families = spec.ip_family_policy, spec.ip_families
    headless_selectorless = spec.cluster_ip == "None" and not spec.selector
    if policy is None:
        if old is not None and old.ip_family_policy is not None:
            policy = old.ip_family_policy
        elif headless_selectorless:
            policy = "RequireDualStack"
        else:
            policy = "SingleStack"
    if not families:
        families = ("IPv4",)
    if headless_selectorless and policy != "SingleStack" and len(families) == 1:
        families = (families[0], "IPv6" if families[0] == "IPv4" else "IPv4")
    if (policy, families) == (spec.ip_family_policy, spec.ip_families):
        return spec
    return attrs.evolve(spec, ip_family_policy=policy, ip_families=families)


class ServiceAllocatedFields:
    """The side-effect-free half (see the module docstring); other kinds pass."""

    #: runs before validation (it changes the object)
    mutating = True

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        if not isinstance(obj, Service) or op == "update_status":
            return obj
        spec = obj.spec
        old_spec = old.spec if op == "update" and old is not None else None
        spec = _normalize_cluster_ips(spec, old_spec)
        if old_spec is not None:
            spec = _patch_allocated(spec, old_spec)
            spec = _drop_type_dependent(spec, old_spec)
        spec = _init_ip_families(spec, old_spec)
        return obj if spec is obj.spec else attrs.evolve(obj, spec=spec)


# -- the allocating step ---------------------------------------------------------------


def _go_strings(values: tuple[str, ...]) -> str:
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def _cluster_ip_causes(spec: ServiceSpec) -> list[Cause]:
    """``ValidateServiceClusterIPsRelatedFields`` and the allocator's family checks,
    for an IPv4-only cluster."""
    ips = spec.cluster_ips
    if spec.type == "ExternalName":
        if spec.cluster_ip or ips:
            return [forbidden("spec.clusterIPs", "may not be set for ExternalName services")]
        return []
    causes: list[Cause] = []
    listed = _go_strings(ips)
    if spec.cluster_ip:
        if not ips:
            causes.append(Cause("spec.clusterIPs", "Required value", "FieldValueRequired"))
        elif ips[0] != spec.cluster_ip:
            causes.append(
                Cause(
                    "spec.clusterIPs",
                    f"Invalid value: {listed}: first value must match `clusterIP`",
                )
            )
    elif ips:
        causes.append(
            Cause(
                "spec.clusterIPs",
                f"Invalid value: {listed}: must be empty when `clusterIP` is not specified",
            )
        )
    for i, ip in enumerate(ips):
        path = f"spec.clusterIPs[{i}]"
        if ip == "None":
            if i > 0 or len(ips) > 1:
                causes.append(
                    Cause(
                        "spec.clusterIPs",
                        f"Invalid value: {listed}: 'None' must be the first and only value",
                    )
                )
            continue
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            causes.append(
                invalid(path, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
            )
            continue
        if addr.version == 6:
            causes.append(invalid(path, ip, "IPv6 is not configured on this cluster"))
        elif i > 0:
            causes.append(
                Cause(
                    "spec.clusterIPs",
                    f"Invalid value: {listed}: may specify no more than one IP for each IP family",
                )
            )
    headless_selectorless = spec.cluster_ip == "None" and not spec.selector
    if not headless_selectorless:
        for i, family in enumerate(spec.ip_families):
            if family != "IPv4":
                causes.append(
                    invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
                )
        if spec.ip_family_policy == "RequireDualStack":
            causes.append(
                invalid(
                    "spec.ipFamilyPolicy",
                    spec.ip_family_policy,
                    "this cluster is not configured for dual-stack services",
                )
            )
    return causes


@attrs.define
class _Txn:
    """What one ``admit`` allocated, to give back if the write is refused."""

    ips: list[str] = attrs.Factory(list)
    ports: list[int] = attrs.Factory(list)


class ServiceIPAllocation:
    """The allocating half (see the module docstring); other kinds pass.

    Args:
        rng: the seeded stream random picks come from.
        service_cidr: ``--service-cluster-ip-range``.
        node_port_range: ``--service-node-port-range``.

    ``ips`` and ``node_ports`` are the allocators, readable for tests and tools.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        service_cidr: str = SERVICE_CIDR,
        node_port_range: str = NODE_PORT_RANGE,
    ) -> None:
        self.ips = IPAllocator(service_cidr, rng)
        self.node_ports = PortAllocator(node_port_range, rng)
        #: (namespace, name) -> what the write in flight allocated
        self._pending: dict[tuple[str, str], _Txn] = {}
        self._log = log.bind(component="service-ip-allocator")

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        if not isinstance(obj, Service) or op == "update_status":
            return obj
        meta = obj.metadata
        causes = _cluster_ip_causes(obj.spec)
        if causes:
            raise errors.Invalid(causes, kind="Service", namespace=meta.namespace, name=meta.name)
        old = old if op == "update" else None
        txn = _Txn()
        try:
            spec = self._allocate_ips(obj, old, txn)
            spec = self._allocate_node_ports(obj, spec, old, txn)
        except BaseException:
            self._revert(txn)
            raise
        if txn.ips or txn.ports:
            self._pending[(meta.namespace, meta.name)] = txn
            self._log.debug(
                "service_allocated",
                namespace=meta.namespace,
                name=meta.name,
                cluster_ips=txn.ips,
                node_ports=txn.ports,
            )
        return obj if spec is obj.spec else attrs.evolve(obj, spec=spec)

    def abort(self, op: Operation, obj: Any) -> None:
        """A later step refused the write: give back what ``admit`` allocated."""
        if isinstance(obj, Service):
            txn = self._pending.pop((obj.metadata.namespace, obj.metadata.name), None)
            if txn is not None:
                self._revert(txn)

    def committed(self, op: Operation, obj: Any, old: Any | None) -> None:
        """The write is stored: release what the old Service held and the new does not."""
        if not isinstance(obj, Service):
            return
        self._pending.pop((obj.metadata.namespace, obj.metadata.name), None)
        if op == "update" and old is not None:
            for ip in set(held_ips(old)) - set(held_ips(obj)):
                self.ips.release(ip)
            for port in held_node_ports(old) - held_node_ports(obj):
                self.node_ports.release(port)

    def removed(self, obj: Any) -> None:
        """The store removed ``obj``: release everything it held."""
        if not isinstance(obj, Service):
            return
        for ip in held_ips(obj):
            self.ips.release(ip)
        for port in held_node_ports(obj):
            self.node_ports.release(port)

    # -- internals -------------------------------------------------------------------

    def _revert(self, txn: _Txn) -> None:
        for ip in txn.ips:
            self.ips.release(ip)
        for port in txn.ports:
            self.node_ports.release(port)

    def _allocate_ips(self, obj: Service, old: Any | None, txn: _Txn) -> ServiceSpec:
        spec = obj.spec
        if spec.type == "ExternalName" or spec.cluster_ip == "None":
            return spec
        already = set(held_ips(old)) if old is not None else set()
        if not spec.cluster_ip:
            try:
                ip = self.ips.allocate_next()
            except AllocationError as exc:
                raise errors.ApiError(
                    f"Internal error occurred: failed to allocate a serviceIP: {exc}",
                    kind="Service",
                    namespace=obj.metadata.namespace,
                    name=obj.metadata.name,
                ) from None
            txn.ips.append(ip)
            return attrs.evolve(spec, cluster_ip=ip, cluster_ips=(ip,))
        for ip in spec.cluster_ips:
            if ip in already:
                continue
            try:
                self.ips.allocate(ip)
            except AllocationError as exc:
                detail = f"failed to allocate IP {ip}: {exc}"
                cause = Cause(
                    "spec.clusterIPs", f"Invalid value: {_go_strings(spec.cluster_ips)}: {detail}"
                )
                raise errors.Invalid(
                    [cause],
                    kind="Service",
                    namespace=obj.metadata.namespace,
                    name=obj.metadata.name,
                ) from None
            txn.ips.append(ip)
        return spec

    def _allocate_node_ports(
        self, obj: Service, spec: ServiceSpec, old: Any | None, txn: _Txn
    ) -> ServiceSpec:
        """``initNodePorts`` / ``updateNodePorts``: honour requested node ports (one a
        port held before keeps), allocate the rest; ports of one service port number
        (TCP and UDP) share a node port."""
        if not needs_node_ports(spec):
            return spec
        meta = obj.metadata

        def refuse(cause: Cause) -> errors.Invalid:
            return errors.Invalid([cause], kind="Service", namespace=meta.namespace, name=meta.name)

        seen: set[tuple[int, str | None]] = set()
        for i, p in enumerate(spec.ports):
            if p.node_port:
                if (p.node_port, p.protocol) in seen:
                    raise refuse(duplicate(f"spec.ports[{i}].nodePort", p.node_port))
                seen.add((p.node_port, p.protocol))
        held = (
            held_node_ports(old) if old is not None and needs_node_ports(old.spec) else frozenset()
        )
        requested: dict[int, int] = {}
        for p in spec.ports:
            if p.node_port:
                requested.setdefault(p.port, p.node_port)
        automatic = _should_allocate_node_ports(spec)
        taken: set[int] = set()
        by_port: dict[int, int] = {}
        ports: list[ServicePort] = []
        for i, p in enumerate(spec.ports):
            node_port = p.node_port or by_port.get(p.port) or requested.get(p.port)
            if not p.node_port and not automatic:
                ports.append(p)
                continue
            if node_port:
                if node_port not in held and node_port not in taken:
                    try:
                        self.node_ports.allocate(node_port)
                    except AllocationError as exc:
                        raise refuse(
                            invalid(f"spec.ports[{i}].nodePort", node_port, str(exc))
                        ) from None
                    txn.ports.append(node_port)
            else:
                try:
                    node_port = self.node_ports.allocate_next()
                except AllocationError as exc:
                    raise errors.ApiError(
                        f"Internal error occurred: failed to allocate a nodePort: {exc}",
                        kind="Service",
                        namespace=meta.namespace,
                        name=meta.name,
                    ) from None
                txn.ports.append(node_port)
            taken.add(node_port)
            by_port.setdefault(p.port, node_port)
            ports.append(p if p.node_port == node_port else attrs.evolve(p, node_port=node_port))
        new_ports = tuple(ports)
        return spec if new_ports == spec.ports else attrs.evolve(spec, ports=new_ports)


def service_admission_steps(
    rng: random.Random,
    *,
    service_cidr: str = SERVICE_CIDR,
    node_port_range: str = NODE_PORT_RANGE,
) -> list[Any]:
    """Both steps, in order: add them before ResourceQuota, so a Service the quota
    refuses gives its IP back through ``abort``."""
    return [
        ServiceAllocatedFields(),
        ServiceIPAllocation(rng, service_cidr=service_cidr, node_port_range=node_port_range),
    ]


def kubernetes_service(service_cidr: str = SERVICE_CIDR) -> Service:
    """The ``default/kubernetes`` Service the apiserver creates at start: HTTPS 443 to
    the apiserver's 6443, no selector (its endpoints are the apiserver's), asking for
    the first IP of the range (``10.96.0.1``), which random allocation never picks
    while the upper part of the range has room."""
    net = ipaddress.IPv4Network(service_cidr)
    ip = str(net.network_address + 1)
    return Service(
        metadata=ObjectMeta(
            name="kubernetes",
            namespace="default",
            labels={"component": "apiserver", "provider": "kubernetes"},
        ),
        spec=ServiceSpec(
            type="ClusterIP",
            cluster_ip=ip,
            cluster_ips=(ip,),
            ports=(ServicePort(name="https", port=443, protocol="TCP", target_port=6443),),
            session_affinity="None",
        ),
    )
