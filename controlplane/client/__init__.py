"""The client side of the control plane: the ``Client`` protocol, ``LocalClient``, and
client-go's informer (list + watch into an indexed cache) feeding a rate-limited,
de-duplicating work queue."""

from controlplane.client.cache import LABEL_INDEX, NAMESPACE_INDEX, NODE_NAME_INDEX, Cache
from controlplane.client.informer import EventHandler, Informer, InformerStatistics
from controlplane.client.local import LocalClient
from controlplane.client.protocol import Client, ObjectList, WatchEvent, WatchStream
from controlplane.client.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)
from controlplane.client.workqueue import (
    ShutDown,
    WorkQueue,
    WorkQueueStatistics,
    open_work_queue,
)

__all__ = [
    "LABEL_INDEX",
    "NAMESPACE_INDEX",
    "NODE_NAME_INDEX",
    "BucketRateLimiter",
    "Cache",
    "Client",
    "EventHandler",
    "Informer",
    "InformerStatistics",
    "ItemExponentialFailureRateLimiter",
    "LocalClient",
    "MaxOfRateLimiter",
    "ObjectList",
    "RateLimiter",
    "ShutDown",
    "WatchEvent",
    "WatchStream",
    "WorkQueue",
    "WorkQueueStatistics",
    "default_controller_rate_limiter",
    "open_work_queue",
]
