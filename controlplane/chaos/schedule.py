"""Chaos schedules as plain data: :class:`Target`, :class:`Fault`, :class:`Schedule`.

A schedule is a list of faults, each injected ``at`` seconds (virtual) after the run
starts and healed ``duration`` seconds later. It loads from and saves to YAML exactly
(``Schedule.from_yaml(s.to_yaml()) == s``) and is validated against the fault kinds'
table (:mod:`~controlplane.chaos.specs`) before any run: every problem is a
:class:`ScheduleError` naming the entry and the field, e.g.
``faults[2].kind: unknown fault kind 'explode'; known: ...``.

YAML shape::

    seed: 7            # optional: what generated it
    duration: 600      # optional: the run's length in seconds
    faults:
    - at: 30
      kind: node-crash
      duration: 60
      target: {mode: one}                       # nodes: names, selector (labels), mode
    - at: 45
      kind: probe-failure
      target: {namespace: default, selector: app=web, mode: fixed, value: 2}
      params: {probe: readiness}
      duration: 30
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import yaml

from controlplane.api.frozen import FrozenDict
from controlplane.api.labels import SelectorError, parse_selector
from controlplane.chaos.specs import KIND_SPECS

__all__ = ["MODES", "Fault", "Schedule", "ScheduleError", "Target"]

MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
"""Chaos Mesh's selection modes: one at random, all, ``value`` at random, ``value`` % at
random (rounded down, at least one if any match), a random count up to ``value`` %."""


class ScheduleError(ValueError):
    """A schedule that cannot run; the message names the entry and field."""


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _names(names: str | Iterable[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


@attrs.frozen
class Target:
    """Which objects a fault hits. With ``namespace`` (or for pod-only kinds) it selects
    pods, else nodes; ``names`` and ``selector`` (a label selector) narrow the
    candidates; ``mode``/``value`` pick among them from the runner's seeded rng."""

    namespace: str | None = None
    names: tuple[str, ...] = attrs.field(default=(), converter=_names)
    selector: str | None = None
    mode: str = "one"
    value: int | None = None


@attrs.frozen
class Fault:
    """One fault: ``kind`` (see ``KIND_SPECS``) injected ``at`` seconds into the run on
    ``target`` with ``params``; healed after ``duration`` seconds (None: at the next
    heal-all; instant kinds take none)."""

    at: float
    kind: str
    target: Target | None = None
    params: Mapping[str, Any] = attrs.field(factory=FrozenDict, converter=_freeze)
    duration: float | None = None


@attrs.frozen
class Schedule:
    """Faults in the order given (the runner orders them by ``at``, stably)."""

    faults: tuple[Fault, ...] = attrs.field(converter=tuple)
    seed: int | None = None
    duration: float | None = None

    def validate(self) -> None:
        """Check every fault against the kinds' table.

        Raises:
            ScheduleError: the first problem, naming ``faults[i].<field>``.
        """
        if self.duration is not None and _bad_number(self.duration):
            raise ScheduleError(f"duration: must be a number >= 0, got {self.duration!r}")
        for index, fault in enumerate(self.faults):
            _validate_fault(index, fault)

    def to_yaml(self) -> str:
        """The schedule as YAML (defaults omitted); ``from_yaml`` reads it back equal."""
        doc: dict[str, Any] = {}
        if self.seed is not None:
            doc["seed"] = self.seed
        if self.duration is not None:
            doc["duration"] = self.duration
        doc["faults"] = [_fault_to_dict(f) for f in self.faults]
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str) -> Schedule:
        """Parse and validate a schedule.

        Raises:
            ScheduleError: malformed YAML, an unknown field, or an invalid fault (the
                message names the entry: ``faults[3].duration: must be >= 0, got -5``).
        """
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScheduleError(f"invalid YAML: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Schedule:
        """Build and validate a schedule from its YAML shape (see the module doc).

        Raises:
            ScheduleError: as :meth:`from_yaml`.
        """
        if not isinstance(doc, Mapping):
            raise ScheduleError(f"schedule: must be a mapping with 'faults', got {doc!r}")
        _no_extra(doc, ("seed", "duration", "faults"), "schedule")
        seed = doc.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ScheduleError(f"seed: must be an integer, got {seed!r}")
        duration = doc.get("duration")
        if duration is not None:
            if _bad_number(duration):
                raise ScheduleError(f"duration: must be a number >= 0, got {duration!r}")
            duration = float(duration)
        entries = doc.get("faults")
        if not isinstance(entries, list):
            raise ScheduleError(f"faults: must be a list, got {entries!r}")
        faults = tuple(_fault_from_dict(i, entry) for i, entry in enumerate(entries))
        schedule = cls(faults=faults, seed=seed, duration=duration)
        schedule.validate()
        return schedule


def _bad_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or value < 0


def _no_extra(doc: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in doc:
        if key not in known:
            raise ScheduleError(f"{where}.{key}: unknown field; known: {', '.join(known)}")


def _fault_to_dict(fault: Fault) -> dict[str, Any]:
    out: dict[str, Any] = {"at": fault.at, "kind": fault.kind}
    if fault.target is not None:
        target = fault.target
        t: dict[str, Any] = {}
        if target.namespace is not None:
            t["namespace"] = target.namespace
        if target.names:
            t["names"] = list(target.names)
        if target.selector is not None:
            t["selector"] = target.selector
        t["mode"] = target.mode
        if target.value is not None:
            t["value"] = target.value
        out["target"] = t
    if fault.params:
        out["params"] = _thaw(fault.params)
    if fault.duration is not None:
        out["duration"] = fault.duration
    return out


def _fault_from_dict(index: int, entry: Any) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(entry, Mapping):
        raise ScheduleError(f"{where}: must be a mapping, got {entry!r}")
    _no_extra(entry, ("at", "kind", "target", "params", "duration"), where)
    if "at" not in entry:
        raise ScheduleError(f"{where}.at: required")
    if "kind" not in entry:
        raise ScheduleError(f"{where}.kind: required")
    at = entry["at"]
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise ScheduleError(f"{where}.at: must be a number, got {at!r}")
    duration = entry.get("duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise ScheduleError(f"{where}.duration: must be a number, got {duration!r}")
        duration = float(duration)
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise ScheduleError(f"{where}.params: must be a mapping, got {params!r}")
    raw_target = entry.get("target")
    target = None if raw_target is None else _target_from_dict(f"{where}.target", raw_target)
    return Fault(
        at=float(at),
        kind=entry["kind"],
        target=target,
        params=params,
        duration=duration,
    )


def _target_from_dict(where: str, raw: Any) -> Target:
    if not isinstance(raw, Mapping):
        raise ScheduleError(f"{where}: must be a mapping, got {raw!r}")
    _no_extra(raw, ("namespace", "names", "selector", "mode", "value"), where)
    names = raw.get("names", ())
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise ScheduleError(f"{where}.names: must be a list of names, got {names!r}")
    for field in ("namespace", "selector", "mode"):
        if raw.get(field) is not None and not isinstance(raw[field], str):
            raise ScheduleError(f"{where}.{field}: must be a string, got {raw[field]!r}")
    return Target(
        namespace=raw.get("namespace"),
        names=tuple(names),
        selector=raw.get("selector"),
        mode=raw.get("mode", "one"),
        value=raw.get("value"),
    )


def _validate_fault(index: int, fault: Fault) -> None:
    where = f"faults[{index}]"
    if _bad_number(fault.at):
        raise ScheduleError(f"{where}.at: must be >= 0, got {fault.at!r}")
    spec = KIND_SPECS.get(fault.kind)  # type: ignore[call-overload]
    if spec is None:
        raise ScheduleError(
            f"{where}.kind: unknown fault kind {fault.kind!r}; known: {', '.join(KIND_SPECS)}"
        )
    if fault.duration is not None:
        if spec.instant:
            raise ScheduleError(f"{where}.duration: {fault.kind} is instant and takes no duration")
        if _bad_number(fault.duration):
            raise ScheduleError(f"{where}.duration: must be >= 0, got {fault.duration!r}")
    _validate_target(where, fault, spec.target)
    for name, value in fault.params.items():
        param = spec.param(name)
        if param is None:
            known = ", ".join(p.name for p in spec.params) or "none"
            raise ScheduleError(
                f"{where}.params.{name}: unknown parameter of {fault.kind}; known: {known}"
            )
        problem = param.check(value)
        if problem is not None:
            raise ScheduleError(f"{where}.params.{name}: {problem}")
    for param in spec.params:
        if param.required and param.name not in fault.params:
            raise ScheduleError(f"{where}.params.{param.name}: required by {fault.kind}")


def _validate_target(where: str, fault: Fault, takes: str) -> None:
    target = fault.target
    if takes == "none":
        if target is not None:
            raise ScheduleError(f"{where}.target: {fault.kind} takes no target")
        return
    if target is None:
        if takes == "pods":
            raise ScheduleError(
                f"{where}.target: {fault.kind} needs a target (namespace, selector or names)"
            )
        return
    where = f"{where}.target"
    if takes == "nodes" and target.namespace is not None:
        raise ScheduleError(
            f"{where}.namespace: {fault.kind} acts on nodes; a namespace selects pods"
        )
    if not all(isinstance(n, str) and n for n in target.names):
        raise ScheduleError(f"{where}.names: must be non-empty strings, got {target.names!r}")
    if target.selector is not None:
        try:
            parse_selector(target.selector)
        except SelectorError as exc:
            raise ScheduleError(f"{where}.selector: {exc}") from None
    if target.mode not in MODES:
        raise ScheduleError(
            f"{where}.mode: unknown mode {target.mode!r}; known: {', '.join(MODES)}"
        )
    value = target.value
    if target.mode in ("one", "all"):
        if value is not None:
            raise ScheduleError(f"{where}.value: mode {target.mode} takes no value")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError(f"{where}.value: mode {target.mode} needs an integer, got {value!r}")
    if target.mode == "fixed" and value < 1:
        raise ScheduleError(f"{where}.value: must be >= 1, got {value}")
    if target.mode != "fixed" and not 0 < value <= 100:
        raise ScheduleError(f"{where}.value: must be a percentage in 1..100, got {value}")
