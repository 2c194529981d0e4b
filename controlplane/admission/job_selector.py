"""The Job selector the apiserver generates: ``jobStrategy.PrepareForCreate``'s
``generateSelector``, as an admission step (it needs the uid the store just assigned).

On create of a Job whose ``spec.manualSelector`` is not true, the pod template gets the
labels ``batch.kubernetes.io/controller-uid=<uid>``, ``batch.kubernetes.io/job-name=<name>``
and the legacy ``controller-uid``/``job-name`` (a label the user set is kept), and
``spec.selector.matchLabels`` gets ``batch.kubernetes.io/controller-uid=<uid>``: the Job's
pods, and only they, match its selector. A selector or labels that contradict the
generated ones (``controller-uid`` of another Job) are refused, as Kubernetes' validation
of the generated selector does. Updates and status writes are left alone (the selector
and template are immutable).
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane import errors
from controlplane.api.batch import Job
from controlplane.api.labels import Selector, SelectorError
from controlplane.api.meta import LabelSelector
from controlplane.api.validation_common import invalid
from controlplane.controllers.job_pods import CONTROLLER_UID_LABEL, generated_labels
from controlplane.store.admission import Operation

__all__ = ["JobSelector"]


class JobSelector:
    """The admission step (``AdmissionStep`` protocol); other kinds pass unchanged."""

    #: runs before validation (it changes the object)
    mutating = True

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        if op != "create" or not isinstance(obj, Job) or obj.spec.manual_selector:
            return obj
        spec = obj.spec
        template = spec.template
        labels = dict(template.metadata.labels)
        for key, value in generated_labels(obj).items():
            labels.setdefault(key, value)
        selector = spec.selector or LabelSelector()
        match_labels = dict(selector.match_labels)
        match_labels.setdefault(CONTROLLER_UID_LABEL, obj.metadata.uid)
        selector = attrs.evolve(selector, match_labels=match_labels)
        meta = obj.metadata
        try:
            matches = Selector.from_label_selector(selector).matches(labels)
        except SelectorError:
            return obj  # validation, which runs next, says what is wrong with it
        if not matches or labels.get(CONTROLLER_UID_LABEL) != meta.uid:
            raise errors.Invalid(
                [
                    invalid(
                        "spec.template.metadata.labels",
                        labels,
                        "`selector` does not match template `labels`",
                    )
                ],
                kind="Job",
                namespace=meta.namespace,
                name=meta.name,
            )
        template = attrs.evolve(template, metadata=attrs.evolve(template.metadata, labels=labels))
        return attrs.evolve(obj, spec=attrs.evolve(spec, selector=selector, template=template))
