"""``NodeClient``: one node's path to the API, with fault points of its own.

Every machine's kubelet and kube-proxy talk to the store through a ``NodeClient``, so
chaos can make the store slow or failing *for one node* (node↔store traffic) while the
rest of the cluster is fine: ``machine.api_faults.inject(error=errors.Timeout)`` is what
a node cut off from the apiserver sees. The fault points are
:class:`controlplane.store.faults.Faults`, drawing from the node's own seeded stream.
A watch that is already open keeps delivering (only opening one is subject to faults).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from controlplane import errors
from controlplane.api.kinds import resolve_kind
from controlplane.client.protocol import Client, KindLike, ObjectList, WatchStream
from controlplane.store.faults import Faults

__all__ = ["NodeClient"]

T = TypeVar("T")


class NodeClient(Client):
    """Forwards to ``client`` after passing each request through ``faults`` (one
    attribute test when none is injected)."""

    __slots__ = ("_client", "faults")

    def __init__(self, client: Client, faults: Faults) -> None:
        self._client = client
        self.faults = faults

    def __repr__(self) -> str:
        return f"NodeClient({self._client!r})"

    async def _hit(self, verb: str, kind: KindLike, name: str = "", namespace: str = "") -> None:
        try:
            info = resolve_kind(kind)
        except errors.BadRequest:
            return  # the request itself fails next
        await self.faults.hit(verb, info.kind, info.plural, name, namespace)

    async def get(self, kind: KindLike, name: str, *, namespace: str = "") -> Any:
        if self.faults.active:
            await self._hit("get", kind, name, namespace)
        return await self._client.get(kind, name, namespace=namespace)

    async def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        if self.faults.active:
            await self._hit("list", kind, namespace=namespace or "")
        return await self._client.list(
            kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector
        )

    async def _write(self, verb: str, obj: Any) -> None:
        if self.faults.active:
            meta = obj.metadata
            await self._hit(verb, type(obj), meta.name, meta.namespace or "")

    async def create(self, obj: T) -> T:
        await self._write("create", obj)
        return await self._client.create(obj)

    async def update(self, obj: T) -> T:
        await self._write("update", obj)
        return await self._client.update(obj)

    async def update_status(self, obj: T) -> T:
        await self._write("update_status", obj)
        return await self._client.update_status(obj)

    async def delete(
        self,
        kind: KindLike,
        name: str,
        *,
        namespace: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions_uid: str | None = None,
        preconditions_resource_version: str | None = None,
    ) -> Any:
        if self.faults.active:
            await self._hit("delete", kind, name, namespace)
        return await self._client.delete(
            kind,
            name,
            namespace=namespace,
            grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            preconditions_uid=preconditions_uid,
            preconditions_resource_version=preconditions_resource_version,
        )

    async def bind(
        self, name: str, node_name: str, *, namespace: str = "default", uid: str | None = None
    ) -> Any:
        if self.faults.active:
            await self._hit("bind", "Pod", name, namespace)
        return await self._client.bind(name, node_name, namespace=namespace, uid=uid)

    async def finalize_namespace(self, namespace: Any) -> Any:
        await self._write("finalize", namespace)
        return await self._client.finalize_namespace(namespace)

    def watch(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
    ) -> AbstractAsyncContextManager[WatchStream]:
        inner = self._client.watch(
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
        )
        if not self.faults.active:
            return inner
        return self._faulty_watch(kind, namespace or "", inner)

    @asynccontextmanager
    async def _faulty_watch(
        self, kind: KindLike, namespace: str, inner: AbstractAsyncContextManager[WatchStream]
    ) -> AsyncIterator[WatchStream]:
        await self._hit("watch", kind, namespace=namespace)
        async with inner as stream:
            yield stream
