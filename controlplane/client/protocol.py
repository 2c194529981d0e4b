"""The ``Client`` protocol: the only way components reach the store.

Every component (scheduler, kubelet, controllers) is written against this protocol, never
against the store class, so the same code can later be pointed at a remote,
Kubernetes-compatible apiserver. Kinds are accepted as classes or as names (``"Pod"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeVar

import attrs

__all__ = [
    "Client",
    "KindLike",
    "ObjectList",
    "WatchEvent",
    "WatchEventType",
    "WatchStream",
]

T = TypeVar("T")
KindLike = str | type[Any]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@attrs.frozen
class ObjectList:
    """The result of ``list``: the items and the store revision they were read at."""

    items: tuple[Any, ...]
    resource_version: str


@attrs.frozen
class WatchEvent:
    """One change. For BOOKMARK, ``object`` is an empty instance of the watched kind whose
    ``metadata.resource_version`` is the revision the watcher has caught up to."""

    type: WatchEventType
    object: Any


class WatchStream(Protocol):
    """An open watch: iterate it for events; ``receive_batch`` drains all queued at once.

    Iteration ends when the server closes the watch (chaos ``close_watches``, shutdown);
    a watcher that fell too far behind gets ``actors.Lagged``. Either way the client
    re-watches from the last resourceVersion it saw (or re-lists on ``errors.Gone``).

    Optional: an ``int`` attribute ``pending`` (events ``receive_batch`` would return
    without waiting) lets informers stay counted as busy while a replay is in hand; the
    protocol does not require it.
    """

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def __anext__(self) -> WatchEvent: ...

    async def receive_batch(self) -> list[WatchEvent]:
        """Wait for at least one event, then return every event queued.

        Raises ``trio.EndOfChannel`` when the watch was closed and drained.
        """
        ...


class Client(Protocol):
    async def get(self, kind: KindLike, name: str, *, namespace: str = "") -> Any: ...

    async def list(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList: ...

    async def create(self, obj: T) -> T: ...

    async def update(self, obj: T) -> T: ...

    async def update_status(self, obj: T) -> T: ...

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
    ) -> Any: ...

    async def bind(
        self, name: str, node_name: str, *, namespace: str = "default", uid: str | None = None
    ) -> Any:
        """Assign an unbound pod to a node (the ``pods/binding`` subresource)."""
        ...

    async def finalize_namespace(self, namespace: Any) -> Any:
        """Replace a namespace's ``spec.finalizers`` (the ``/finalize`` subresource)."""
        ...

    def watch(
        self,
        kind: KindLike,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        allow_bookmarks: bool = False,
    ) -> AbstractAsyncContextManager[WatchStream]: ...
