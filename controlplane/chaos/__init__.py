"""Chaos: faults as data, seeded schedules, and the runner that plays them.

- :class:`Chaos` (``cluster.chaos``): every fault imperatively, for scripts;
- :class:`Schedule` of :class:`Fault` s with :class:`Target` s, loaded from and saved to
  YAML, validated (:class:`ScheduleError` names the entry);
- :func:`generate_schedule`: a seeded schedule of a mix of faults ending in heal-all;
- :class:`ChaosRunner`: plays a schedule on a cluster, recording :class:`InjectedFault` s;
- :data:`FAULT_KINDS`: every fault kind (parameters, targets, injection).
"""

from controlplane.chaos.generator import DEFAULT_MIX, generate_schedule
from controlplane.chaos.imperative import Chaos
from controlplane.chaos.kinds import FAULT_KINDS, FaultKind
from controlplane.chaos.runner import ChaosRunner, InjectedFault
from controlplane.chaos.schedule import MODES, Fault, Schedule, ScheduleError, Target
from controlplane.chaos.specs import KIND_SPECS, KindSpec, Param
from controlplane.chaos.targets import select_targets

__all__ = [
    "DEFAULT_MIX",
    "FAULT_KINDS",
    "KIND_SPECS",
    "MODES",
    "Chaos",
    "ChaosRunner",
    "Fault",
    "FaultKind",
    "InjectedFault",
    "KindSpec",
    "Param",
    "Schedule",
    "ScheduleError",
    "Target",
    "generate_schedule",
    "select_targets",
]
