"""Admission plugins: ``AdmissionStep`` s the store runs on every write after defaulting
and validation (see :mod:`controlplane.store.admission`), as the apiserver runs its
admission chain: default tolerations, LimitRange, ResourceQuota."""

from __future__ import annotations

from typing import Any

from controlplane.admission.default_tolerations import DefaultTolerationSeconds
from controlplane.admission.job_selector import JobSelector
from controlplane.admission.limitrange import LimitRangeAdmission
from controlplane.admission.resourcequota import ResourceQuotaAdmission

__all__ = ["default_admission_steps"]


def default_admission_steps(store: Any) -> list[Any]:
    """The chain a cluster's store runs, in the apiserver's order: the Job selector
    (the registry's create strategy), LimitRanger, DefaultTolerationSeconds (mutating,
    before validation), ResourceQuota (validating, last: it charges what the others
    defaulted)."""
    return [
        JobSelector(),
        LimitRangeAdmission(store),
        DefaultTolerationSeconds(),
        ResourceQuotaAdmission(store),
    ]
