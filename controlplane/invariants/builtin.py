"""The built-in invariants, checked incrementally after every store change.

Each check keeps its own small index fed by the change stream -- counts per owner,
names to uids, pending deadlines -- so one change costs O(1) (plus the Services of the
pod's namespace), never a re-list: a cluster of 100 nodes and 1,000 pods stays fast.
Current objects are read from the store (``get_nowait``), which already holds the state
the change produced.

``watch-order``
    The change feed is ordered with no gaps or duplicates: each revision is the previous
    one plus 1, and each written object carries its revision as ``resourceVersion``.
``resource-version``
    An object's ``resourceVersion`` strictly increases with each write to it.
``unique-names``
    At most one object per kind, namespace and name; a name gets another uid only by a
    delete then a create (never by an update).
``replica-bound``
    A pod created for a ReplicaSet/ReplicationController never takes its active pods
    (terminating and terminal ones excluded: the "+ still terminating" allowance) above
    ``spec.replicas`` (+ the owning Deployment's maxSurge), nor a Deployment's active
    pods above ``replicas + maxSurge``. Checked when pods are created: a scale-down
    always passes through a moment with more pods than the new spec, which is no fault.
    Pods adopted by an update are not counted as created.
``rollout-availability``
    While no fault is active, a pod deletion never takes a Deployment's ready pods below
    ``replicas - maxUnavailable`` (Deployments being deleted are exempt). Ready pods
    bound available ones from above, so a violation here is a real one. Only deletions
    count: readiness lost to a crash or a probe is the workload's or a fault's doing,
    not the rollout's.
``pod-node-exists``
    A pod bound to a node that does not exist is gone (or its node is back) within
    ``orphan_bound`` seconds (PodGC's job).
``single-incarnation``
    A pod name that was deleted and re-created does not run on one node while its old
    incarnation still runs on another (read from the machines' container runtimes).
``endpoints-match``
    ``endpoints_bound`` seconds after the last change to a Service or a pod it selects
    (deferred while a fault is active), its Endpoints list exactly the IPs of its ready
    pods (all of them with ``publishNotReadyAddresses``; pods that resolve none of its
    ports left out, as the endpoints controller does).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from controlplane.api.kinds import KINDS
from controlplane.controllers.endpoints_decisions import manages_endpoints
from controlplane.controllers.pods import is_active, is_ready
from controlplane.controllers.rollout import fenceposts
from controlplane.invariants.endpoints import endpoints_mismatch, selects
from controlplane.kubelet.labels import POD_UID
from controlplane.store.history import Change
from runtime.cri import ContainerState

if TYPE_CHECKING:
    from controlplane.invariants.checker import InvariantChecker

__all__ = ["BUILTIN", "BuiltinChecks"]

BUILTIN = (
    "watch-order",
    "resource-version",
    "unique-names",
    "replica-bound",
    "rollout-availability",
    "pod-node-exists",
    "single-incarnation",
    "endpoints-match",
)

_REPLICA_KINDS = ("ReplicaSet", "ReplicationController")
#: Re-created pod names remembered for ``single-incarnation`` (oldest forgotten first).
_GONE_LIMIT = 10_000

PodKey = tuple[str, str]


def _controller_ref(obj: Any) -> Any:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


def _key(obj: Any) -> PodKey:
    return (obj.metadata.namespace, obj.metadata.name)


def _replicas(obj: Any) -> int:
    replicas = obj.spec.replicas
    return 1 if replicas is None else replicas


class BuiltinChecks:
    """The incremental state and the checks of :data:`BUILTIN` (see module docstring)."""

    names = BUILTIN

    def __init__(
        self, checker: InvariantChecker, *, endpoints_bound: float, orphan_bound: float
    ) -> None:
        self._checker = checker
        self._cluster = checker.cluster
        self._store = checker.cluster.store
        self._endpoints_bound = endpoints_bound
        self._orphan_bound = orphan_bound
        self._last_revision: int | None = None
        #: (kind, namespace, name) -> uid of every stored object
        self._uids: dict[tuple[str, str, str], str] = {}
        #: pod -> (owner uid, deployment uid, counted ready for the deployment)
        self._contrib: dict[PodKey, tuple[str | None, str | None, bool]] = {}
        self._active: dict[str, int] = {}  # owner or deployment uid -> active pods
        self._ready: dict[str, int] = {}  # deployment uid -> ready active pods
        self._rs_owner: dict[str, str | None] = {}  # RS/RC uid -> deployment uid
        self._deployments: dict[str, PodKey] = {}  # deployment uid -> key
        self._nodes: set[str] = set()
        #: namespace -> service name -> selector (only services with a selector)
        self._services: dict[str, dict[str, Mapping[str, str]]] = {}
        #: (namespace, service) -> time of the last relevant change, while pending
        self._ep_pending: dict[PodKey, float] = {}
        #: re-creatable pod names -> [(uid, node)] of incarnations that were removed
        self._gone: OrderedDict[PodKey, list[tuple[str, str]]] = OrderedDict()

    # ----- seeding from current state ---------------------------------------------------

    def seed(self, store: Any) -> None:
        """Build the indexes from what the store holds now (``run`` calls this)."""
        self._last_revision = store.revision
        for info in KINDS:
            for obj in store.list_nowait(info.kind):
                meta = obj.metadata
                self._uids[(info.kind, meta.namespace, meta.name)] = meta.uid
        for node in store.list_nowait("Node"):
            self._nodes.add(node.metadata.name)
        for dep in store.list_nowait("Deployment"):
            self._deployments[dep.metadata.uid] = _key(dep)
        for kind in _REPLICA_KINDS:
            for rs in store.list_nowait(kind):
                self._index_replica_set(rs)
        for svc in store.list_nowait("Service"):
            self._index_service(None, svc)
        for pod in store.list_nowait("Pod"):
            self._count_pod(_key(pod), pod)
            node = pod.spec.node_name
            if node and node not in self._nodes:
                self._watch_orphan(pod)

    # ----- the per-change entry point ---------------------------------------------------

    def on_change(self, change: Change) -> None:
        self._check_feed(change)
        kind = change.kind
        if kind == "Pod":
            self._on_pod(change)
        elif kind == "Node":
            self._on_node(change)
        elif kind in _REPLICA_KINDS:
            if change.type == "DELETED":
                self._rs_owner.pop(change.new.metadata.uid, None)
            else:
                self._index_replica_set(change.new)
        elif kind == "Deployment":
            meta = change.new.metadata
            if change.type == "DELETED":
                self._deployments.pop(meta.uid, None)
            else:
                self._deployments[meta.uid] = _key(change.new)
        elif kind == "Service":
            self._index_service(change.old, None if change.type == "DELETED" else change.new)
            self._touch_service(_key(change.new))

    # ----- watch-order, resource-version, unique-names ----------------------------------

    def _check_feed(self, change: Change) -> None:
        report = self._checker.report
        revision = change.revision
        last = self._last_revision
        if last is not None and revision != last + 1:
            what = "a gap" if revision > last + 1 else "a duplicate or out-of-order change"
            report(
                "watch-order",
                f"revision {revision} follows {last}: {what} in the change feed",
                change=change,
            )
        self._last_revision = revision if last is None else max(last, revision)
        new_meta = change.new.metadata
        if new_meta.resource_version != str(revision):
            report(
                "watch-order",
                f"change {revision} carries resourceVersion {new_meta.resource_version!r}",
                change=change,
            )
        if change.old is not None:
            old_rv = change.old.metadata.resource_version
            new_rv = new_meta.resource_version
            if not (old_rv.isdigit() and new_rv.isdigit() and int(old_rv) < int(new_rv)):
                report(
                    "resource-version",
                    f"resourceVersion went from {old_rv} to {new_rv}",
                    change=change,
                )
        key = (change.kind, new_meta.namespace, new_meta.name)
        uids = self._uids
        stored = uids.get(key)
        if change.type == "ADDED":
            if stored is not None:
                report(
                    "unique-names",
                    f"created while uid {stored} holds the name (new uid {new_meta.uid})",
                    change=change,
                )
            uids[key] = new_meta.uid
        elif stored != new_meta.uid:
            report(
                "unique-names",
                f"{change.type} of uid {new_meta.uid} but the name belongs to uid {stored}"
                " (a uid may change only by delete then create)",
                change=change,
            )
            uids[key] = new_meta.uid
        if change.type == "DELETED":
            uids.pop(key, None)

    # ----- pods: replica-bound, rollout-availability, incarnations, orphans -------------

    def _index_replica_set(self, rs: Any) -> None:
        ref = _controller_ref(rs)
        self._rs_owner[rs.metadata.uid] = (
            ref.uid if ref is not None and ref.kind == "Deployment" else None
        )

    def _contribution(self, pod: Any) -> tuple[str | None, str | None, bool]:
        ref = _controller_ref(pod)
        if ref is None or ref.kind not in _REPLICA_KINDS or not is_active(pod):
            return (None, None, False)
        dep = self._rs_owner.get(ref.uid)
        return (ref.uid, dep, dep is not None and is_ready(pod))

    def _count_pod(self, key: PodKey, pod: Any | None) -> tuple[Any, Any]:
        """Replace the pod's recorded contribution; return (old, new) contributions."""
        old = self._contrib.pop(key, (None, None, False))
        new = self._contribution(pod) if pod is not None else (None, None, False)
        if new[0] is not None:
            self._contrib[key] = new
        if old != new:
            active, ready = self._active, self._ready
            for uid in old[:2]:
                if uid is not None:
                    active[uid] -= 1
            if old[2]:
                ready[old[1]] -= 1  # type: ignore[index]
            for uid in new[:2]:
                if uid is not None:
                    active[uid] = active.get(uid, 0) + 1
            if new[2]:
                ready[new[1]] = ready.get(new[1], 0) + 1  # type: ignore[arg-type,index]
        return old, new

    def _on_pod(self, change: Change) -> None:
        old_pod = change.old
        new_pod = None if change.type == "DELETED" else change.new
        key = _key(change.new)
        old, new = self._count_pod(key, new_pod)
        if change.type == "ADDED" and new[0] is not None:
            self._check_replica_bound(change, new[0], new[1])
        if old[2] and not new[2]:
            deleted = new_pod is None or (
                new_pod.metadata.deletion_timestamp is not None
                and old_pod.metadata.deletion_timestamp is None
            )
            if deleted and not self._checker.in_fault:
                self._check_availability(change, old[1])
        if new_pod is not None:
            node = new_pod.spec.node_name
            if node and node not in self._nodes and (old_pod is None or not old_pod.spec.node_name):
                self._watch_orphan(new_pod)
            if (
                new_pod.status.phase == "Running"
                and (old_pod is None or old_pod.status.phase != "Running")
                and key in self._gone
            ):
                self._check_incarnations(change, new_pod)
        else:
            self._remember_gone(change.new)
        self._pod_touches_services(old_pod, new_pod)

    def _check_replica_bound(self, change: Change, owner_uid: str, dep_uid: str | None) -> None:
        ref = _controller_ref(change.new)
        ns = change.new.metadata.namespace
        owner = self._store.get_nowait(ref.kind, ref.name, namespace=ns)
        if owner is None or owner.metadata.uid != owner_uid:
            return
        surge = 0
        dep = None
        if dep_uid is not None and dep_uid in self._deployments:
            dep = self._store.get_nowait("Deployment", self._deployments[dep_uid][1], namespace=ns)
            if dep is not None and dep.metadata.uid == dep_uid:
                surge = fenceposts(dep)[0]
            else:
                dep = None
        active = self._active.get(owner_uid, 0)
        bound = _replicas(owner) + surge
        if active > bound:
            extra = f" + maxSurge {surge}" if surge else ""
            self._checker.report(
                "replica-bound",
                f"{ref.kind} {ns}/{ref.name} has {active} active pods after this create,"
                f" more than spec.replicas {_replicas(owner)}{extra}",
                change=change,
            )
        if dep is not None:
            total = self._active.get(dep_uid, 0)  # type: ignore[arg-type]
            limit = _replicas(dep) + surge
            if total > limit:
                self._checker.report(
                    "replica-bound",
                    f"Deployment {ns}/{dep.metadata.name} has {total} active pods after this"
                    f" create, more than replicas {_replicas(dep)} + maxSurge {surge}",
                    change=change,
                )

    def _check_availability(self, change: Change, dep_uid: str | None) -> None:
        if dep_uid is None or dep_uid not in self._deployments:
            return
        ns, name = self._deployments[dep_uid]
        dep = self._store.get_nowait("Deployment", name, namespace=ns)
        if dep is None or dep.metadata.uid != dep_uid or dep.metadata.deletion_timestamp:
            return
        unavailable = fenceposts(dep)[1]
        minimum = _replicas(dep) - unavailable
        ready = self._ready.get(dep_uid, 0)
        if ready < minimum:
            self._checker.report(
                "rollout-availability",
                f"Deployment {ns}/{name} is down to {ready} ready pods after this deletion,"
                f" below replicas {_replicas(dep)} - maxUnavailable {unavailable}",
                change=change,
            )

    def _remember_gone(self, pod: Any) -> None:
        node = pod.spec.node_name
        if not node or pod.metadata.generate_name:
            return  # generated names are never re-created
        key = _key(pod)
        gone = self._gone
        entries = gone.pop(key, [])
        entries = [*entries[-3:], (pod.metadata.uid, node)]
        gone[key] = entries
        if len(gone) > _GONE_LIMIT:
            gone.popitem(last=False)

    def _check_incarnations(self, change: Change, pod: Any) -> None:
        machines = getattr(self._cluster, "machines", None)
        if machines is None:
            return
        node = pod.spec.node_name
        for old_uid, old_node in self._gone[_key(pod)]:
            if old_node == node or old_node not in machines:
                continue
            engine = machines.get(old_node).runtime
            for info in engine.list_containers():
                if info.labels.get(POD_UID) == old_uid and info.state is ContainerState.RUNNING:
                    ns, name = _key(pod)
                    self._checker.report(
                        "single-incarnation",
                        f"pod {ns}/{name} runs on {node} (uid {pod.metadata.uid}) while its"
                        f" old incarnation (uid {old_uid}) still runs on {old_node}",
                        change=change,
                    )
                    return

    # ----- pod-node-exists ---------------------------------------------------------------

    def _on_node(self, change: Change) -> None:
        name = change.new.metadata.name
        if change.type == "DELETED":
            self._nodes.discard(name)
            for pod in self._store.list_nowait("Pod", field_selector=f"spec.nodeName={name}"):
                self._watch_orphan(pod)
        else:
            self._nodes.add(name)

    def _watch_orphan(self, pod: Any) -> None:
        ns, name = _key(pod)
        uid, node = pod.metadata.uid, pod.spec.node_name
        since = trio.current_time()

        def deadline() -> None:
            current = self._store.get_nowait("Pod", name, namespace=ns)
            if (
                current is None
                or current.metadata.uid != uid
                or node in self._nodes
                or (current.metadata.deletion_timestamp and current.metadata.finalizers)
            ):
                return
            self._checker.report(
                "pod-node-exists",
                f"pod {ns}/{name} is still bound to missing node {node}"
                f" {trio.current_time() - since:g}s later",
                kind="Pod",
                name=f"{ns}/{name}",
            )

        self._checker.schedule(since + self._orphan_bound, deadline)

    # ----- endpoints-match ---------------------------------------------------------------

    def _index_service(self, old: Any, new: Any) -> None:
        if old is not None:
            self._services.get(old.metadata.namespace, {}).pop(old.metadata.name, None)
        if new is not None and manages_endpoints(new):
            self._services.setdefault(new.metadata.namespace, {})[new.metadata.name] = (
                new.spec.selector
            )

    def _pod_touches_services(self, old: Any, new: Any) -> None:
        pod = new if new is not None else old
        if pod is None:
            return
        services = self._services.get(pod.metadata.namespace)
        if not services:
            return
        for name, selector in services.items():
            if (new is not None and selects(selector, new.metadata.labels)) or (
                old is not None and selects(selector, old.metadata.labels)
            ):
                self._touch_service((pod.metadata.namespace, name))

    def _touch_service(self, key: PodKey) -> None:
        now = trio.current_time()
        pending = key in self._ep_pending
        self._ep_pending[key] = now
        if not pending:
            self._checker.schedule(now + self._endpoints_bound, lambda: self._ep_deadline(key))

    def _ep_deadline(self, key: PodKey) -> None:
        last = self._ep_pending.get(key)
        if last is None:
            return
        now = trio.current_time()
        due = last + self._endpoints_bound
        if due > now:
            self._checker.schedule(due, lambda: self._ep_deadline(key))
            return
        if self._checker.in_fault:
            self._ep_pending[key] = now
            self._checker.schedule(now + self._endpoints_bound, lambda: self._ep_deadline(key))
            return
        del self._ep_pending[key]
        message = endpoints_mismatch(self._store, *key)
        if message:
            self._checker.report(
                "endpoints-match",
                f"{message} {self._endpoints_bound:g}s after the last change",
                kind="Service",
                name=f"{key[0]}/{key[1]}",
            )
