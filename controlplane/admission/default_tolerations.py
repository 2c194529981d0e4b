"""``DefaultTolerationSeconds``: every pod tolerates a not-ready or unreachable node for
5 minutes, unless it says otherwise.

The apiserver's admission plugin of that name: on a pod create or update, a pod that
does not already tolerate ``node.kubernetes.io/not-ready:NoExecute`` (resp.
``node.kubernetes.io/unreachable:NoExecute``) gets a toleration ``Exists``,
``NoExecute``, ``tolerationSeconds: 300``. A toleration counts as covering the taint if
its key is that key or empty and its effect is NoExecute or empty -- whatever its
operator, exactly as the plugin checks. Status writes are left alone (Kubernetes skips
subresources). So a pod on a node that dies is evicted 300 s after the node is tainted,
and a pod that says ``tolerationSeconds: 10`` (or tolerates forever) keeps its own.
"""

from __future__ import annotations

from typing import Any

import attrs

from controlplane.api.core_pod import Toleration
from controlplane.store.admission import Operation

__all__ = ["DEFAULT_TOLERATION_SECONDS", "DefaultTolerationSeconds"]

#: ``--default-not-ready-toleration-seconds`` / ``--default-unreachable-toleration-seconds``.
DEFAULT_TOLERATION_SECONDS = 300

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def _covers(toleration: Toleration, key: str) -> bool:
    return (toleration.key in (key, "", None)) and (toleration.effect in ("NoExecute", "", None))


class DefaultTolerationSeconds:
    """The admission step (``AdmissionStep`` protocol). Idempotent: a pod that has the
    tolerations (or broader ones) is returned unchanged, the very same object.

    Args:
        not_ready_seconds, unreachable_seconds: the tolerationSeconds to add (300).

    Raises:
        TypeError: a seconds value that is not an int.
        ValueError: a negative seconds value.
    """

    #: runs before validation (it changes the object)
    mutating = True

    def __init__(
        self,
        *,
        not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS,
        unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS,
    ) -> None:
        for name, value in (
            ("not_ready_seconds", not_ready_seconds),
            ("unreachable_seconds", unreachable_seconds),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        self._not_ready = Toleration(
            key=NOT_READY,
            operator="Exists",
            effect="NoExecute",
            toleration_seconds=not_ready_seconds,
        )
        self._unreachable = Toleration(
            key=UNREACHABLE,
            operator="Exists",
            effect="NoExecute",
            toleration_seconds=unreachable_seconds,
        )

    def admit(self, op: Operation, obj: Any, old: Any | None) -> Any:
        """Add the missing default tolerations to a pod being created or updated."""
        if op not in ("create", "update") or getattr(type(obj), "kind", None) != "Pod":
            return obj
        tolerations = obj.spec.tolerations
        missing = []
        if not any(_covers(t, NOT_READY) for t in tolerations):
            missing.append(self._not_ready)
        if not any(_covers(t, UNREACHABLE) for t in tolerations):
            missing.append(self._unreachable)
        if not missing:
            return obj
        spec = attrs.evolve(obj.spec, tolerations=(*tolerations, *missing))
        return attrs.evolve(obj, spec=spec)
