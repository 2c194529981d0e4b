"""kube-controller-manager: the controllers that keep the cluster in its desired state.

Each controller is an informer-fed work queue plus a ``sync(key)`` around pure decision
functions (see :mod:`controlplane.controllers.framework`); :class:`ControllerManager`
runs them all as one actor. :data:`DEFAULT_CONTROLLERS` is what ``open_cluster`` starts.
"""

from controlplane.controllers.framework import (
    Controller,
    ControllerContext,
    ControllerFactory,
    SharedInformers,
)
from controlplane.controllers.manager import ControllerManager
from controlplane.controllers.replicaset import ReplicaSetController, ReplicationManager

__all__ = [
    "DEFAULT_CONTROLLERS",
    "Controller",
    "ControllerContext",
    "ControllerFactory",
    "ControllerManager",
    "ReplicaSetController",
    "ReplicationManager",
    "SharedInformers",
]

#: ``(name, factory)`` for every controller a cluster runs, in start order.
DEFAULT_CONTROLLERS: tuple[ControllerFactory, ...] = (
    (ReplicaSetController.name, ReplicaSetController),
    (ReplicationManager.name, ReplicationManager),
)
