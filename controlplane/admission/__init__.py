"""Admission plugins: ``AdmissionStep`` s the store runs on every write after defaulting
and validation (see :mod:`controlplane.store.admission`), as the apiserver runs its
admission chain: default tolerations, LimitRange, ResourceQuota."""
