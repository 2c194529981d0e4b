"""The table of built-in kinds: names, apiVersions, REST plurals, scope.

This is a constant, not a registry: nothing registers into it at run time. Components
accept a kind as a class or a name (``"Pod"``, ``"pods"``, ``"po"``) and resolve it here.
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane import errors
from controlplane.api import apps, autoscaling, batch, coordination, core, discovery

__all__ = ["KINDS", "KindInfo", "resolve_kind"]


@attrs.frozen
class KindInfo:
    cls: type[Any]
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    #: Whether ``status`` is a subresource: ``update`` ignores status changes and
    #: ``update_status`` ignores everything else, as in Kubernetes.
    has_status: bool = True

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def api_version(self) -> str:
        return self.cls.api_version

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


KINDS: tuple[KindInfo, ...] = (
    KindInfo(core.Namespace, "namespaces", namespaced=False, short_names=("ns",)),
    KindInfo(core.Node, "nodes", namespaced=False, short_names=("no",)),
    KindInfo(core.Pod, "pods", namespaced=True, short_names=("po",)),
    KindInfo(core.Service, "services", namespaced=True, short_names=("svc",)),
    KindInfo(core.Endpoints, "endpoints", namespaced=True, short_names=("ep",), has_status=False),
    KindInfo(discovery.EndpointSlice, "endpointslices", namespaced=True, has_status=False),
    KindInfo(core.Event, "events", namespaced=True, short_names=("ev",), has_status=False),
    KindInfo(core.ConfigMap, "configmaps", namespaced=True, short_names=("cm",), has_status=False),
    KindInfo(core.Secret, "secrets", namespaced=True, has_status=False),
    KindInfo(
        core.ServiceAccount,
        "serviceaccounts",
        namespaced=True,
        short_names=("sa",),
        has_status=False,
    ),
    KindInfo(core.ResourceQuota, "resourcequotas", namespaced=True, short_names=("quota",)),
    KindInfo(
        core.LimitRange, "limitranges", namespaced=True, short_names=("limits",), has_status=False
    ),
    KindInfo(
        core.ReplicationController, "replicationcontrollers", namespaced=True, short_names=("rc",)
    ),
    KindInfo(apps.ReplicaSet, "replicasets", namespaced=True, short_names=("rs",)),
    KindInfo(apps.Deployment, "deployments", namespaced=True, short_names=("deploy",)),
    KindInfo(batch.Job, "jobs", namespaced=True),
    KindInfo(batch.CronJob, "cronjobs", namespaced=True, short_names=("cj",)),
    KindInfo(
        autoscaling.HorizontalPodAutoscaler,
        "horizontalpodautoscalers",
        namespaced=True,
        short_names=("hpa",),
    ),
    KindInfo(coordination.Lease, "leases", namespaced=True, has_status=False),
)

_BY_NAME: dict[str, KindInfo] = {}
for _info in KINDS:
    for _alias in (_info.kind, _info.kind.lower(), _info.plural, *_info.short_names):
        _BY_NAME[_alias] = _info
_BY_CLASS: dict[type[Any], KindInfo] = {info.cls: info for info in KINDS}
_BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KINDS}


def resolve_kind(kind: str | type[Any]) -> KindInfo:
    """Look up a kind by class, kind name, lower-case name, plural or short name.

    Raises:
        errors.BadRequest: the kind is not one kubetrio serves.
    """
    info = _BY_CLASS.get(kind) if isinstance(kind, type) else _BY_NAME.get(kind)
    if info is None:
        name = kind.__name__ if isinstance(kind, type) else kind
        raise errors.BadRequest(f"unknown kind {name!r}", kind=str(name))
    return info


def kind_for_api_version(api_version: str, kind: str) -> KindInfo:
    """Resolve ``apiVersion`` + ``kind`` as written in a manifest.

    Raises:
        errors.BadRequest: unknown kind, or the kind is not served at that apiVersion.
    """
    info = _BY_KIND.get(kind)
    if info is None:
        raise errors.BadRequest(f"unknown kind {kind!r} in apiVersion {api_version!r}", kind=kind)
    if info.api_version != api_version:
        raise errors.BadRequest(
            f"no kind {kind!r} is served in apiVersion {api_version!r}"
            f" (kubetrio serves {info.api_version!r})",
            kind=kind,
        )
    return info
