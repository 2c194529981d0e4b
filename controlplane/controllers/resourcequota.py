"""The resource quota controller: keep every ResourceQuota's ``status`` true.

Kubernetes' ``pkg/controller/resourcequota``: ``status.hard`` is set to ``spec.hard``
and ``status.used`` to the usage of the objects in the namespace, as
:mod:`controlplane.quota` measures it. A quota is synced

- when it is created or its ``spec`` changes (status writes -- ours and the admission
  plugin's charges -- are ignored);
- when usage may have dropped (*replenishment*): an object of a kind it limits is
  deleted, a pod turns terminal (Succeeded/Failed), a Service changes type; creates
  need nothing, the admission plugin charged them already;
- when a terminating pod's deletion grace runs out (it stops counting then; a lost node
  must not hold quota): a pod being marked for deletion triggers a sync, which re-queues
  the quota for that moment (Kubernetes leaves this to the next periodic resync);
- every 5 minutes regardless (``--resource-quota-sync-period``, default 5m).

**Exactness.** Kubernetes computes usage from its informer caches, which may lag the
quota the admission plugin just charged, so a sync can briefly under-count. Here the
sync reads the quota first and then lists the namespace's objects live (both from the
store's current state), and writes status with the quota's resourceVersion: an object
created after the quota was read charged the quota, changed its resourceVersion, and
the write fails with Conflict and is retried. So a written ``status.used`` never
forgets an admitted object. (Informers still drive *when* to sync.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs

from controlplane import errors, quota
from controlplane.clock import wall_now
from controlplane.controllers.framework import ControllerContext

__all__ = ["RESYNC_PERIOD", "ResourceQuotaController", "next_grace_expiry"]

#: ``--resource-quota-sync-period``: every quota is recomputed this often (seconds).
RESYNC_PERIOD = 300.0

#: Kinds whose deletes are not watched: their objects change constantly (node leases
#: renew every 10 s, endpoints follow every pod) and are rarely quota'd; quotas on them
#: are still exact after each sync, replenished at the periodic resync.
UNMONITORED = frozenset({"Lease", "Endpoints"})


def next_grace_expiry(pods: list[Any], now: Any) -> float | None:
    """Seconds until the first charged, terminating pod stops counting (its deletion
    grace period runs out), or None if no pod is waiting for that."""
    best: float | None = None
    for pod in pods:
        meta = pod.metadata
        if meta.deletion_timestamp is None or meta.deletion_grace_period_seconds is None:
            continue
        if not quota.pod_charged(pod, now):
            continue
        expiry = meta.deletion_timestamp + timedelta(seconds=meta.deletion_grace_period_seconds)
        # charged while now <= expiry; wall time has whole seconds: one more second.
        wait = (expiry - now).total_seconds() + 1.0
        if best is None or wait < best:
            best = wait
    return best


class ResourceQuotaController:
    """Recomputes ``status`` of ResourceQuotas (see the module docstring).

    Build it through the controller manager: ``("resourcequota-controller",
    ResourceQuotaController)``.
    """

    name = "resourcequota-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self._ctx = ctx
        self._client = ctx.client
        self._queue = ctx.queue
        self._log = ctx.log
        self._quotas = ctx.informers.informer("ResourceQuota")
        self._quotas.add_event_handler(on_add=self._enqueue_quota, on_update=self._quota_updated)
        for kind in quota.counted_kinds():
            if kind in UNMONITORED:
                continue
            informer = ctx.informers.informer(kind)
            informer.add_event_handler(
                on_update=self._update_handler(kind), on_delete=self._delete_handler(kind)
            )

    # -- event handlers (cheap: they only enqueue keys) -------------------------------

    def _enqueue_quota(self, q: Any) -> None:
        self._queue.add(f"{q.metadata.namespace}/{q.metadata.name}")

    def _quota_updated(self, old: Any, new: Any) -> None:
        if old.spec != new.spec:
            self._enqueue_quota(new)

    def _replenish(self, kind: str, namespace: str) -> None:
        """Sync every quota of ``namespace`` that limits something ``kind`` uses."""
        evaluator = quota.evaluator_for(kind)
        if evaluator is None:
            return
        for q in self._quotas.cache.list(namespace):
            names = {*q.spec.hard, *q.status.hard}
            if evaluator.matching_resources(names):
                self._enqueue_quota(q)

    def _update_handler(self, kind: str) -> Callable[[Any, Any], None]:
        if kind == "Pod":

            def on_update(old: Any, new: Any) -> None:
                now = wall_now()
                if quota.pod_charged(old, now) and not quota.pod_charged(new, now):
                    self._replenish(kind, new.metadata.namespace)
                elif old.metadata.deletion_timestamp is None and new.metadata.deletion_timestamp:
                    # a sync now sets the timer for when its grace runs out
                    self._replenish(kind, new.metadata.namespace)

        elif kind == "Service":

            def on_update(old: Any, new: Any) -> None:
                if quota.service_usage(old) != quota.service_usage(new):
                    self._replenish(kind, new.metadata.namespace)

        else:

            def on_update(old: Any, new: Any) -> None:
                return None

        return on_update

    def _delete_handler(self, kind: str) -> Callable[[Any], None]:
        def on_delete(obj: Any) -> None:
            self._replenish(kind, obj.metadata.namespace)

        return on_delete

    # -- the worker -------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        """Recompute the quota ``key`` names; return when to look again.

        Raises:
            errors.Conflict: the quota changed (a charge) while we counted: retried.
        """
        namespace, _, name = key.partition("/")
        if self._quotas.cache.get_by_key(key) is None:
            return None  # deleted: nothing to keep
        try:
            current = await self._client.get("ResourceQuota", name, namespace=namespace)
        except errors.NotFound:
            return None
        objects: dict[str, list[Any]] = {}
        for kind in quota.quota_kinds(current.spec.hard):
            listed = await self._client.list(kind, namespace=namespace)
            objects[kind] = list(listed.items)
        now = wall_now()
        status = quota.sync_status(current, objects, now)
        if status != current.status:
            await self._client.update_status(attrs.evolve(current, status=status))
            self._log.debug(
                "quota_synced", namespace=namespace, name=name, used=quota.pretty(status.used)
            )
        requeue = RESYNC_PERIOD
        grace = next_grace_expiry(objects.get("Pod", []), now)
        if grace is not None and grace < requeue:
            requeue = grace
        return requeue
