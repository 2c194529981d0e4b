"""The ResourceQuota admission plugin: refuse a write that would take a namespace over a
quota, and charge an admitted one to the quota's ``status.used`` at once.

As the apiserver's plugin (``apiserver/pkg/admission/plugin/resourcequota``), it judges
against ``status.hard`` and ``status.used`` -- what the resource quota controller last
wrote -- so a quota nobody has synced yet limits nothing, and a quota whose ``used`` lacks
a name it limits refuses with ``status unknown for quota``. Messages are Kubernetes'::

    pods "web-2" is forbidden: exceeded quota: compute, requested: pods=1,
        used: pods=2, limited: pods=2          (one line)
    pods "web" is forbidden: failed quota: compute: must specify limits.cpu for: app

**Atomic charge.** Kubernetes admits and then compare-and-swaps the quota's
``status.used`` before the object is stored, so two concurrent creates cannot both fit
under the last free unit. Here a write is one synchronous step of the store: ``admit``
checks every covering quota and remembers the new usage; ``committed`` (called by the
store right after the write is stored, in the same synchronous step) writes it with
``Store.update_status_nowait``. Nothing else runs in between, so no other write can see
the quota un-charged; a write refused by any later step or check never reaches
``committed`` (its ``abort`` drops the plan) and changes no quota.
"""

from __future__ import annotations

from typing import Any

import attrs
import structlog

from controlplane import errors, quota
from controlplane.api.frozen import FrozenDict
from controlplane.api.kinds import resolve_kind
from controlplane.api.quantity import Quantity
from controlplane.clock import wall_now

__all__ = ["ResourceQuotaAdmission", "check_request"]

log = structlog.get_logger(__name__)

#: (quota as read, its new status.used)
Charge = tuple[Any, dict[str, Quantity]]


def _forbidden(obj: Any, detail: str) -> errors.Forbidden:
    info = resolve_kind(type(obj))
    meta = obj.metadata
    name = meta.name or meta.generate_name or "Unknown"
    return errors.Forbidden(
        f'{info.plural} "{name}" is forbidden: {detail}',
        kind=info.kind,
        namespace=meta.namespace,
        name=meta.name,
    )


def check_request(quotas: list[Any], op: str, obj: Any, old: Any | None, now: Any) -> list[Charge]:
    """``CheckRequest``: the quotas ``obj`` is charged to and their new ``status.used``.

    ``quotas`` are the ResourceQuotas of ``obj``'s namespace; ``op`` is ``create`` or
    ``update`` (updates are charged the growth of usage over ``old``); ``now`` is the
    wall-clock time (a pod past its deletion grace counts nothing).

    Raises:
        errors.Forbidden: a quota is exceeded, a container lacks a request or limit a
            quota requires, a quota's usage is not known yet, or usage is negative.
    """
    evaluator = quota.evaluator_for(resolve_kind(type(obj)).kind)
    if evaluator is None or op not in evaluator.operations:
        return []
    interesting: list[Any] = []
    for q in quotas:
        if not evaluator.matches(q, obj):
            continue
        restricted = evaluator.matching_resources(q.status.hard)
        if evaluator.kind == "Pod":
            missing = quota.missing_requirements(obj, restricted)
            if missing:
                detail = "; ".join(f"{r} for: {','.join(c)}" for r, c in missing.items())
                raise _forbidden(obj, f"failed quota: {q.metadata.name}: must specify {detail}")
        unknown = [r for r in restricted if r not in q.status.used]
        if unknown:
            raise _forbidden(
                obj,
                f"status unknown for quota: {q.metadata.name}, resources: {','.join(unknown)}",
            )
        interesting.append(q)
    if not interesting:
        return []
    usage = evaluator.usage(obj, now)
    negative = sorted(k for k, v in usage.items() if v < quota.ZERO)
    if negative:
        raise _forbidden(obj, f"quota usage is negative for resource(s): {','.join(negative)}")
    charges: list[Charge] = []
    for q in interesting:
        delta = usage
        if op == "update" and old is not None and evaluator.matches(q, old):
            previous = evaluator.usage(old, now)
            delta = {k: max(v - previous.get(k, quota.ZERO), quota.ZERO) for k, v in usage.items()}
        hard = q.status.hard
        requested = {k: v for k, v in quota.mask(delta, hard).items() if not v.is_zero}
        if not requested:
            continue
        new_used = quota.add(q.status.used, requested)
        exceeded = sorted(k for k in requested if new_used[k] > hard[k])
        if exceeded:
            raise _forbidden(
                obj,
                f"exceeded quota: {q.metadata.name},"
                f" requested: {quota.pretty(quota.mask(requested, exceeded))},"
                f" used: {quota.pretty(quota.mask(q.status.used, exceeded))},"
                f" limited: {quota.pretty(quota.mask(hard, exceeded))}",
            )
        charges.append((q, new_used))
    return charges


class ResourceQuotaAdmission:
    """The admission step (see the module docstring). Add it last, after
    :class:`~controlplane.admission.limitrange.LimitRangeAdmission`, so the requests a
    LimitRange defaults are charged.

    Args:
        store: the :class:`~controlplane.store.Store` it reads quotas from
            (``list_nowait``) and charges them through (``update_status_nowait``).
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        #: (kind, namespace, name, op) -> charges, between admit and committed/abort
        self._pending: dict[tuple[str, str, str, str], list[Charge]] = {}
        self._log = log.bind(component="resourcequota-admission")

    @staticmethod
    def _key(op: str, obj: Any) -> tuple[str, str, str, str]:
        meta = obj.metadata
        return (type(obj).kind, meta.namespace, meta.name, op)

    def admit(self, op: str, obj: Any, old: Any | None) -> Any:
        kind = type(obj).kind
        evaluator = quota.evaluator_for(kind)
        if evaluator is None or op not in evaluator.operations:
            return obj
        key = self._key(op, obj)
        self._pending.pop(key, None)
        quotas = self._store.list_nowait("ResourceQuota", namespace=obj.metadata.namespace)
        if not quotas:
            return obj
        charges = check_request(quotas, op, obj, old, wall_now())
        if charges:
            self._pending[key] = charges
        return obj

    def abort(self, op: str, obj: Any) -> None:
        """A later step refused the write: forget its charges."""
        self._pending.pop(self._key(op, obj), None)

    def committed(self, op: str, obj: Any, old: Any | None) -> None:
        """The write is stored: charge its quotas (same synchronous step)."""
        charges = self._pending.pop(self._key(op, obj), None)
        if not charges:
            return
        for q, used in charges:
            status = attrs.evolve(q.status, used=FrozenDict(used))
            self._store.update_status_nowait(attrs.evolve(q, status=status))
            self._log.debug(
                "quota_charged",
                namespace=q.metadata.namespace,
                quota=q.metadata.name,
                kind=type(obj).kind,
                name=obj.metadata.name,
                used=quota.pretty(used),
            )
