"""Admission plugins: ``AdmissionStep`` s the store runs on every write after defaulting
and validation (see :mod:`controlplane.store.admission`), as the apiserver runs its
admission chain: default tolerations, LimitRange, Service IPs, ResourceQuota."""

from __future__ import annotations

import random
from typing import Any

from controlplane.admission.default_tolerations import DefaultTolerationSeconds
from controlplane.admission.job_selector import JobSelector
from controlplane.admission.limitrange import LimitRangeAdmission
from controlplane.admission.resourcequota import ResourceQuotaAdmission
from controlplane.admission.serviceip import service_admission_steps

__all__ = ["default_admission_steps"]


def default_admission_steps(store: Any, *, seed: int = 0) -> list[Any]:
    """The chain a cluster's store runs, in the apiserver's order: the Job selector
    (the registry's create strategy), LimitRanger, DefaultTolerationSeconds (mutating,
    before validation), the Service IP and NodePort allocation (random from
    ``Random(f"{seed}:serviceip")``), ResourceQuota last (it charges what the others
    defaulted, and a Service it refuses gives its IP back)."""
    return [
        JobSelector(),
        LimitRangeAdmission(store),
        DefaultTolerationSeconds(),
        *service_admission_steps(random.Random(f"{seed}:serviceip")),
        ResourceQuotaAdmission(store),
    ]
