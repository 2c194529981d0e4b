"""``LocalClient``: the ``Client`` protocol over the in-process store.

Components take a ``Client`` and never see the store class, so a remote client (HTTP to a
Kubernetes-compatible apiserver) can replace this one without touching them. This class
only forwards: kinds (classes or names) are resolved, and every error raised, by the store.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from controlplane.client.protocol import Client, KindLike, ObjectList, WatchStream

__all__ = ["LocalClient"]

T = TypeVar("T")


class LocalClient(Client):
    """A ``Client`` that calls the store's methods directly, in the caller's task.

    Args:
        store: the in-process ``controlplane.store.Store`` (typed loosely so this module
            does not import the store package).
        track_work: count events queued on this client's watches as outstanding work
            (the harness gives components such a client so ``settle`` sees their
            backlog; a test's own client does not, so an undrained watch cannot block
            ``settle``).
    """

    __slots__ = ("_store", "_track_work")

    def __init__(self, store: Any, *, track_work: bool = False) -> None:
        self._store = store
        self._track_work = track_work

    def __repr__(self) -> str:
        return f"LocalClient({self._store!r})"

    async def get(self, kind: KindLike, name: str, *, namespace: str = "") -> Any:
        return await self._store.get(kind, name, namespace=namespace)

    async def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        return await self._store.list(
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    async def create(self, obj: T) -> T:
        return await self._store.create(obj)

    async def update(self, obj: T) -> T:
        return await self._store.update(obj)

    async def update_status(self, obj: T) -> T:
        return await self._store.update_status(obj)

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
        return await self._store.delete(
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
        return await self._store.bind(name, node_name, namespace=namespace, uid=uid)

    async def finalize_namespace(self, namespace: Any) -> Any:
        return await self._store.finalize_namespace(namespace)

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
        return self._store.watch(
            kind,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
            track_work=self._track_work,
        )
