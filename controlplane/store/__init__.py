"""The store: the apiserver and etcd in one object (see ``store.Store``)."""

from controlplane.store.admission import Admission, AdmissionStep, Operation
from controlplane.store.faults import Fault, FaultHandle, Faults
from controlplane.store.store import Store, StoreStatistics
from controlplane.store.watch import WatchStream

__all__ = [
    "Admission",
    "AdmissionStep",
    "Fault",
    "FaultHandle",
    "Faults",
    "Operation",
    "Store",
    "StoreStatistics",
    "WatchStream",
]
