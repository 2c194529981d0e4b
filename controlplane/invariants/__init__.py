"""Invariants checked after every store change, and liveness conditions.

``InvariantChecker(cluster)`` observes every write of the cluster's store while its
``run`` task runs; the built-in invariants (:data:`BUILTIN`, plus ``watch-resumable``)
are described in :mod:`controlplane.invariants.builtin` and
:mod:`controlplane.invariants.watchaudit`. Users add their own with ``add(name, check)``
and ``eventually(name, condition, within=...)``; ``expect_convergence(within=...)``
checks that the cluster heals after the faults stop.
"""

from controlplane.invariants.builtin import BUILTIN
from controlplane.invariants.checker import InvariantChecker, Violation
from controlplane.invariants.convergence import convergence_problems
from controlplane.invariants.endpoints import endpoints_mismatch

__all__ = [
    "BUILTIN",
    "InvariantChecker",
    "Violation",
    "convergence_problems",
    "endpoints_mismatch",
]
