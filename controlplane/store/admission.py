"""The admission chain every write goes through before the store changes anything.

Order, as the apiserver runs it for a create or update:

1. namespace lifecycle (creates only): the object's namespace must exist and must not be
   terminating;
2. ``controlplane.api.defaults.apply_defaults``;
3. the *mutating* :class:`AdmissionStep` s (``mutating = True``: LimitRange defaults,
   default tolerations, a Job's generated selector), in the order they were added —
   Kubernetes' mutating admission, so what they add is validated like the rest, and an
   update that omits what they added on create gets it again before validation compares
   it with the stored object;
4. ``controlplane.api.validation.validate(obj, old)``: any cause -> ``errors.Invalid``;
5. the other (validating) steps (quota, ClusterIP allocation ...), in the order they
   were added. They run last, after the store's own checks (AlreadyExists, Conflict),
   so a step with side effects runs only for writes that will otherwise succeed. A step
   that allocates something may define ``abort(op, obj)``: it is called, in reverse
   order, for every step that admitted the object when a later step refused. A step may
   define ``committed(op, stored, old)``: called once the write is stored, in the same
   synchronous step (see :meth:`Admission.run_committed`).

Deletes do not run the chain (Kubernetes runs only validating webhooks on delete). When
the store *removes* an object (a DELETED write: a delete without finalizers, the last
finalizer gone, an expired Event), it calls each step's optional ``removed(obj)`` with
the object's last state, in the same synchronous step -- where an allocator gives back
what the object held, as the service REST storage's ``AfterDelete`` releases its IPs.
``removed`` runs after the write and must not raise.
A refused write raises an ``errors.ApiError`` and changes nothing in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from controlplane import errors
from controlplane.api import defaults, validation

__all__ = ["Admission", "AdmissionStep", "Operation"]

Operation = Literal["create", "update", "update_status"]


@runtime_checkable
class AdmissionStep(Protocol):
    """One admission plugin: return the object to store (possibly changed), or raise
    an ``errors.ApiError`` to refuse the write.

    ``op`` is ``"create"``, ``"update"`` or ``"update_status"``; ``old`` is the stored
    object (``None`` on create). Called synchronously on the write path: keep it cheap.
    """

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any: ...


class Admission:
    """Runs the chain above. ``namespace_phase(name)`` returns the phase of a namespace,
    ``None`` if it does not exist (the store passes a lookup into its own map)."""

    def __init__(
        self,
        namespace_phase: Callable[[str], str | None],
        steps: Sequence[AdmissionStep] = (),
    ) -> None:
        self._namespace_phase = namespace_phase
        self._steps: list[AdmissionStep] = list(steps)

    def add_step(self, step: AdmissionStep) -> None:
        self._steps.append(step)

    @property
    def steps(self) -> tuple[AdmissionStep, ...]:
        return tuple(self._steps)

    def check_namespace(self, plural: str, namespace: str, name: str) -> None:
        """Namespace lifecycle for a create of a namespaced object."""
        phase = self._namespace_phase(namespace)
        if phase is None:
            raise errors.NotFound(
                f'namespaces "{namespace}" not found',
                kind="Namespace",
                name=namespace,
            )
        if phase == "Terminating":
            raise errors.Forbidden(
                f'{plural} "{name}" is forbidden: unable to create new content in namespace'
                f" {namespace} because it is being terminated",
                kind=plural,
                namespace=namespace,
                name=name,
            )

    def default_and_validate(
        self, kind: str, obj: Any, old: Any | None, op: Operation | None
    ) -> Any:
        """Steps 2 to 4: the defaulted and mutated object, or ``errors.Invalid`` (or a
        mutating step's refusal). ``op`` None (a namespace's ``/finalize``) skips
        defaulting and the mutating steps."""
        if op is not None:
            obj = defaults.apply_defaults(obj)
            for step in self._steps:
                if getattr(step, "mutating", False):
                    obj = step.admit(op, obj, old)
        causes = validation.validate(obj, old)
        if causes:
            meta = obj.metadata
            raise errors.Invalid(causes, kind=kind, namespace=meta.namespace, name=meta.name)
        return obj

    def run_steps(self, op: Operation, obj: Any, old: Any | None) -> Any:
        """Step 5: the validating steps, with ``abort`` for earlier ones on refusal."""
        steps = [step for step in self._steps if not getattr(step, "mutating", False)]
        if not steps:
            return obj
        done: list[AdmissionStep] = []
        try:
            for step in steps:
                obj = step.admit(op, obj, old)
                done.append(step)
        except BaseException:
            for step in reversed(done):
                abort = getattr(step, "abort", None)
                if abort is not None:
                    abort(op, obj)
            raise
        return obj

    def run_committed(self, op: Operation, obj: Any, old: Any | None) -> None:
        """After the write is stored, in the same synchronous step: call the optional
        ``committed(op, stored, old)`` of each step (ResourceQuota charges the quota
        there, so nothing can run between the write and the charge)."""
        for step in self._steps:
            committed = getattr(step, "committed", None)
            if committed is not None:
                committed(op, obj, old)

    def run_removed(self, obj: Any) -> None:
        """After the store removed ``obj`` (its last state), in the same synchronous
        step: call the optional ``removed(obj)`` of each step."""
        for step in self._steps:
            removed = getattr(step, "removed", None)
            if removed is not None:
                removed(obj)
