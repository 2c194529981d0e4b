"""The harness users embed in their tests: ``open_cluster`` and the ``Cluster`` it yields.

This is the one composition root (STYLE.md point 7): it builds the store, the client and
every component, passes dependencies in, and runs them under one supervisor. Nothing
here decides anything a component should decide; it wires, waits and reports.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog
import trio

from actors import WorkTracker, open_supervisor
from controlplane import errors
from controlplane.api import from_dict, load_yaml
from controlplane.api.core import Namespace
from controlplane.api.meta import ObjectMeta
from controlplane.chaos import Chaos
from controlplane.client.local import LocalClient
from controlplane.determinism import seeded_scheduler
from controlplane.nodes import NodeTemplate, node_object
from controlplane.store import Store

__all__ = ["Cluster", "open_cluster"]

log = structlog.get_logger(__name__)

#: The namespaces every Kubernetes cluster starts with.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

Manifest = str | Mapping[str, Any] | object


def _objects_of(manifest: Manifest | Iterable[Manifest]) -> list[Any]:
    """Normalise what ``apply`` accepts (YAML text, a dict, an object, or a list of them)."""
    if isinstance(manifest, str):
        return load_yaml(manifest)
    if isinstance(manifest, Mapping):
        return [from_dict(manifest)]
    if isinstance(manifest, list | tuple):
        return [obj for item in manifest for obj in _objects_of(item)]
    if hasattr(manifest, "metadata") and hasattr(type(manifest), "kind"):
        return [manifest]
    raise TypeError(
        f"cannot apply {type(manifest).__name__}: expected YAML text, a dict, an API object"
        " or a list of them"
    )


@attrs.define(eq=False)
class Cluster:
    """A running in-process cluster. Get one from :func:`open_cluster`.

    ``client`` is what components and tests write through (the Kubernetes API);
    the ``*_nowait`` reads, ``wait_for`` and ``settle`` are test conveniences that read the
    store's current state directly.
    """

    store: Store
    client: LocalClient
    chaos: Chaos
    rng: random.Random
    seed: int
    _tracker: WorkTracker

    async def apply(self, manifest: Manifest | Iterable[Manifest]) -> Any:
        """Create or update each object in ``manifest``; return what was stored.

        ``manifest`` is YAML text (one or many documents), a dict, an API object or a list
        of these. Like ``kubectl apply``, an object that exists is updated — its spec,
        labels and annotations replaced by the manifest's, its status kept. Returns the
        stored object for a single object, else a list.

        Raises:
            errors.ApiError: the first rejected object; objects before it stay applied
                (like ``kubectl apply -f`` on a multi-document file).
        """
        objs = _objects_of(manifest)
        stored = [await self._apply_one(obj) for obj in objs]
        single = not isinstance(manifest, list | tuple) and len(stored) == 1
        return stored[0] if single else stored

    async def _apply_one(self, obj: Any) -> Any:
        meta = obj.metadata
        if not meta.name:
            return await self.client.create(obj)
        try:
            current = await self.client.get(type(obj), meta.name, namespace=meta.namespace)
        except errors.NotFound:
            return await self.client.create(obj)
        merged_meta = attrs.evolve(
            current.metadata,
            labels=meta.labels,
            annotations=meta.annotations,
            owner_references=meta.owner_references or current.metadata.owner_references,
            finalizers=meta.finalizers or current.metadata.finalizers,
        )
        update = attrs.evolve(obj, metadata=merged_meta)
        return await self.client.update(update)

    def get_nowait(self, kind: str | type[Any], name: str, *, namespace: str = "") -> Any:
        """The current stored object, or None if there is none. Does not block."""
        return self.store.get_nowait(kind, name, namespace=namespace)

    def list_nowait(
        self,
        kind: str | type[Any],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Any]:
        """The current stored objects of ``kind`` matching the selectors. Does not block."""
        return self.store.list_nowait(
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 60,  # noqa: ASYNC109 - `timeout=` is the public API (DESIGN.md)
        description: str | None = None,
    ) -> Any:
        """Wait until ``predicate()`` returns something truthy; return that value.

        The predicate is checked now and again after every store change — never on a
        timer — so it should read current state (``get_nowait``, ``list_nowait``).
        ``timeout`` is in (virtual) seconds.

        Raises:
            TimeoutError: the predicate stayed falsy for ``timeout`` seconds; the message
                names what was waited for (``description``, else the predicate's name).
        """
        with trio.move_on_after(timeout):
            while True:
                revision = self.store.revision
                result = predicate()
                if result:
                    return result
                await self.store.wait_changed(revision)
        what = description or getattr(predicate, "__qualname__", repr(predicate))
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")

    async def settle(self) -> None:
        """Return once no component has queued work (events to handle, keys to reconcile).

        Work scheduled for later (a requeue after 10 s, a backoff) does not count.
        """
        await self._tracker.wait_idle()

    def history_digest(self) -> str:
        """A digest of every write so far: same seed + same workload → same digest."""
        return self.store.history_digest()

    async def add_node(
        self,
        name: str,
        *,
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Any] = (),
    ) -> Any:
        """Register a Node with the given capacity; returns the stored Node."""
        template = NodeTemplate.build(
            cpu=cpu, memory=memory, pods=pods, labels=labels, taints=taints
        )
        return await self.client.create(node_object(name, template))

    async def remove_node(self, name: str) -> None:
        """Delete the Node object ``name``."""
        await self.client.delete("Node", name)


@asynccontextmanager
async def open_cluster(
    *,
    nodes: int = 0,
    seed: int = 0,
    node_template: NodeTemplate | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Cluster]:
    """Start an in-process cluster; yield a :class:`Cluster`; stop everything on exit.

    Args:
        nodes: how many Nodes to register (``node-1`` … ``node-N``), each with
            ``node_template``'s capacity (4 CPU, 16 Gi, 110 pods by default).
        seed: the root of all randomness (uids, generated names, faults, trio's task
            scheduling): the same seed and workload give the same history.
        store_options: keyword arguments for :class:`controlplane.store.Store`
            (history limits, watch buffer sizes, bookmark interval).

    Runs under any trio clock; under ``MockClock(autojump_threshold=0)`` it runs in
    virtual time. The supervisor fails the block loudly if a component keeps crashing.
    """
    template = node_template or NodeTemplate()
    with seeded_scheduler(seed):
        rng = random.Random(f"{seed}:cluster")
        tracker = WorkTracker()
        store = Store(
            random.Random(f"{seed}:store"),
            fault_rng=random.Random(f"{seed}:faults"),
            work_tracker=tracker,
            **dict(store_options or {}),
        )
        async with open_supervisor(name="cluster") as supervisor:
            await supervisor.start_child("store", store.run)
            client = LocalClient(store)
            cluster = Cluster(
                store=store,
                client=client,
                chaos=Chaos(store=store, supervisor=supervisor),
                rng=rng,
                seed=seed,
                tracker=tracker,
            )
            for ns in SYSTEM_NAMESPACES:
                await client.create(Namespace(metadata=ObjectMeta(name=ns)))
            for i in range(1, nodes + 1):
                await client.create(node_object(f"node-{i}", template))
            log.debug("cluster_started", seed=seed, nodes=nodes)
            try:
                yield cluster
            finally:
                supervisor.cancel()
