"""Objects to and from the Kubernetes JSON shape, and YAML manifests.

The object classes know nothing of JSON; this module owns the one cattrs converter that
maps them: snake_case attribute names become camelCase keys (``pod_ip`` -> ``podIP``, see
`json_name`), empty fields are omitted, ``apiVersion``/``kind`` lead every top-level
object, Quantities are their canonical strings and timestamps RFC 3339 in UTC.

Reading is as strict as kube-apiserver with strict field validation: an unknown field, a
value of the wrong JSON type or an invalid quantity is an `errors.Invalid` whose causes
name every bad field by its JSON path (``spec.containers[0].imagePullPolicyy``). Values are
read as Go's JSON decoder reads them: ``null`` is the zero value of the field, and there is
no silent coercion (``"3"`` is not an integer and ``true`` is not a string).

The public API is module functions, so the converter is built once, lazily, by a cached
factory (`_converter`) rather than passed in; it holds no state beyond its generated hooks.
Strict and lenient reading share it: ``from_dict(strict=False)`` sets a context variable
that the class hooks consult before rejecting unknown fields.
"""

from __future__ import annotations

import contextvars
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
import yaml
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from controlplane import errors
from controlplane.api import coordination, core
from controlplane.api.core_pod import freeze_json
from controlplane.api.frozen import EMPTY, FrozenDict
from controlplane.api.kinds import KINDS, kind_for_api_version
from controlplane.api.quantity import Quantity, QuantityError

__all__ = ["dump_yaml", "from_dict", "json_name", "load_yaml", "to_dict"]

#: Words Kubernetes writes in capitals inside a camelCase name (``podIP``, ``providerID``).
_WORDS: dict[str, str] = {
    "ip": "IP",
    "ips": "IPs",
    "cidr": "CIDR",
    "cidrs": "CIDRs",
    "id": "ID",
    "uuid": "UUID",
    "ipc": "IPC",
    "pid": "PID",
    "url": "URL",
    "uri": "URI",
}

#: MicroTime fields: serialised with microseconds (``metav1.MicroTime``).
_MICRO_TIME_FIELDS: frozenset[tuple[type[Any], str]] = frozenset(
    {
        (core.Event, "event_time"),
        (coordination.LeaseSpec, "acquire_time"),
        (coordination.LeaseSpec, "renew_time"),
    }
)

_KIND_CLASSES: frozenset[type[Any]] = frozenset(info.cls for info in KINDS)

#: Whether class hooks reject unknown fields; `from_dict` sets it per call.
_strict: contextvars.ContextVar[bool] = contextvars.ContextVar("kubetrio_strict", default=True)


@functools.cache
def json_name(attribute: str) -> str:
    """The JSON key of an attribute: ``pod_ip`` -> ``podIP``, ``http_get`` -> ``httpGet``."""
    first, *rest = attribute.split("_")
    return first + "".join(_WORDS.get(word) or word.capitalize() for word in rest)


# -- public API -------------------------------------------------------------------------


def to_dict(obj: Any) -> dict[str, Any]:
    """The Kubernetes JSON shape of ``obj``: plain dicts, lists, str, int, float and bool.

    Top-level objects lead with ``apiVersion`` and ``kind`` and always carry
    ``metadata``; fields equal to their default (None, empty) are omitted. Nested structs
    (a ``PodSpec``) are accepted too and give their JSON without ``apiVersion``/``kind``.
    """
    cls = type(obj)
    body = _converter().unstructure(obj, cls)
    if cls in _KIND_CLASSES:
        return {"apiVersion": cls.api_version, "kind": cls.kind, **body}
    return body


def from_dict(data: Mapping[str, Any], *, strict: bool = True) -> Any:
    """Build the object a Kubernetes JSON/YAML document describes.

    ``apiVersion`` and ``kind`` choose the class. With ``strict`` (the default, like
    kubectl's strict field validation) unknown fields are errors; otherwise ignored.

    Raises:
        errors.BadRequest: ``data`` is not an object, or its kind/apiVersion is missing,
            unknown or not served.
        errors.Invalid: fields of the wrong type, unknown fields (strict), invalid
            quantities or timestamps; ``causes`` names each by its JSON path.
    """
    if not isinstance(data, Mapping):
        raise errors.BadRequest(f"expected an object, got {_json_type(data)}")
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        raise errors.BadRequest('object has no "kind"')
    if not isinstance(api_version, str) or not api_version:
        raise errors.BadRequest(f'{kind} has no "apiVersion"', kind=kind)
    info = kind_for_api_version(api_version, kind)
    body = {k: v for k, v in data.items() if k != "apiVersion" and k != "kind"}
    token = _strict.set(strict)
    try:
        return _converter().structure(body, info.cls)
    except (BaseValidationError, _FieldError, QuantityError) as exc:
        causes: list[errors.Cause] = []
        _collect_causes(exc, "", causes)
        name, namespace = _object_name(data)
        raise errors.Invalid(causes, kind=kind, name=name, namespace=namespace) from None
    finally:
        _strict.reset(token)


def load_yaml(text: str, *, strict: bool = True) -> list[Any]:
    """Every object in a (multi-document) YAML manifest, in order.

    Empty documents are skipped; a ``kind: List`` document (or ``PodList``...) expands to
    its ``items``. YAML is read as kubectl reads it: YAML 1.1 booleans (``yes``), but
    timestamps stay strings until a field says otherwise.

    Raises:
        errors.BadRequest: the text is not YAML, or a document is not an object of a
            known kind; the message names the document (counting from 0).
        errors.Invalid: as `from_dict`.
    """
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"invalid YAML: {exc}") from None
    objects: list[Any] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        try:
            objects.extend(_objects_of(document, strict))
        except errors.Invalid:
            raise
        except errors.BadRequest as exc:
            raise errors.BadRequest(f"document {index}: {exc.message}", kind=exc.kind) from None
    return objects


def dump_yaml(objs: Any | Iterable[Any]) -> str:
    """YAML for one object or several (``---`` between documents), in block style.

    Keys keep the JSON order: ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``.
    """
    if attrs.has(type(objs)) or isinstance(objs, Mapping):
        objs = [objs]
    docs = [obj if isinstance(obj, Mapping) else to_dict(obj) for obj in objs]
    return "---\n".join(
        yaml.dump(
            doc,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
        )
        for doc in docs
    )


def _objects_of(document: Any, strict: bool) -> list[Any]:
    if isinstance(document, Mapping):
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in document:
            items = document["items"] or []
            if not isinstance(items, list):
                raise errors.BadRequest(f"{kind}.items: expected array, got {_json_type(items)}")
            item_kind = kind[: -len("List")]
            api_version = document.get("apiVersion")
            defaults = {"apiVersion": api_version, "kind": item_kind} if item_kind else {}
            return [
                from_dict(
                    {**defaults, **item} if isinstance(item, Mapping) else item, strict=strict
                )
                for item in items
            ]
    return [from_dict(document, strict=strict)]


def _object_name(data: Mapping[str, Any]) -> tuple[str, str]:
    meta = data.get("metadata")
    if not isinstance(meta, Mapping):
        return "", ""
    name, namespace = meta.get("name"), meta.get("namespace")
    return (
        name if isinstance(name, str) else "",
        namespace if isinstance(namespace, str) else "",
    )


# -- YAML --------------------------------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader without implicit timestamps: Go's YAML reader keeps them strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_Dumper = _BaseDumper

# -- errors ------------------------------------------------------------------------------


class _FieldError(ValueError):
    """A value this module refused; the path is added from cattrs' notes."""


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _wrong_type(expected: str, value: Any) -> _FieldError:
    got = _json_type(value)
    if isinstance(value, bool):
        got = f"{got} {str(value).lower()}"
    elif isinstance(value, str):
        got = f'{got} "{value}"'
    elif isinstance(value, int | float):
        got = f"{got} {value}"
    return _FieldError(f"expected {expected}, got {got}")


def _collect_causes(exc: BaseException, path: str, out: list[errors.Cause]) -> None:
    """Flatten cattrs' exception groups into causes with Kubernetes JSON paths."""
    if isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            out.append(errors.Cause(_child(path, key), f'unknown field "{key}"'))
    elif isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            _collect_causes(sub, _sub_path(sub, path), out)
    else:
        out.append(errors.Cause(path, str(exc)))


def _sub_path(exc: BaseException, path: str) -> str:
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return _child(path, json_name(note.name))
        if isinstance(note, IterableValidationNote):
            if isinstance(note.index, int):
                return f"{path}[{note.index}]"
            return _child(path, str(note.index))
    return path


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- the converter -----------------------------------------------------------------------


@functools.cache
def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True)
    _register_scalars(conv)
    conv.register_structure_hook_factory(_is_union, functools.partial(_union_hook, conv))
    conv.register_structure_hook_factory(_is_tuple, functools.partial(_tuple_structure, conv))
    conv.register_unstructure_hook_factory(_is_tuple, functools.partial(_tuple_unstructure, conv))
    conv.register_structure_hook_factory(_is_map, functools.partial(_map_structure, conv))
    conv.register_unstructure_hook_factory(_is_map, functools.partial(_map_unstructure, conv))
    conv.register_structure_hook_factory(attrs.has, functools.partial(_class_structure, conv))
    conv.register_unstructure_hook_factory(attrs.has, functools.partial(_class_unstructure, conv))
    # Quantity is an attrs class: its hooks must win over the attrs factories above.
    conv.register_structure_hook(Quantity, _structure_quantity)
    conv.register_unstructure_hook(Quantity, str)
    return conv


def _register_scalars(conv: cattrs.Converter) -> None:
    def structure_str(value: Any, _: Any) -> str:
        if type(value) is str:
            return value
        if value is None:
            return ""
        raise _wrong_type("string", value)

    def structure_int(value: Any, _: Any) -> int:
        if type(value) is int:
            return value
        if value is None:
            return 0
        raise _wrong_type("integer", value)

    def structure_float(value: Any, _: Any) -> float:
        if type(value) is float or type(value) is int:
            return float(value)
        if value is None:
            return 0.0
        raise _wrong_type("number", value)

    def structure_bool(value: Any, _: Any) -> bool:
        if type(value) is bool:
            return value
        if value is None:
            return False
        raise _wrong_type("boolean", value)

    conv.register_structure_hook(str, structure_str)
    conv.register_structure_hook(int, structure_int)
    conv.register_structure_hook(float, structure_float)
    conv.register_structure_hook(bool, structure_bool)
    conv.register_structure_hook(datetime, _structure_time)
    conv.register_unstructure_hook(datetime, _format_time)


def _structure_int_or_str(value: Any, _: Any) -> int | str:
    if type(value) is int or type(value) is str:
        return value
    if value is None:
        return 0
    raise _wrong_type("integer or string", value)


def _structure_quantity(value: Any, _: Any) -> Quantity:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return Quantity.parse(value)
    raise _wrong_type("quantity", value)


def _structure_time(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _FieldError(f'invalid timestamp "{value}": expected RFC 3339') from None
    else:
        raise _wrong_type("timestamp string", value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _format_time(value: datetime) -> str:
    """RFC 3339 in whole seconds, like ``metav1.Time``: ``2025-01-01T00:00:00Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_micro_time(value: datetime) -> str:
    """RFC 3339 with microseconds, like ``metav1.MicroTime``."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- unions, tuples, maps ----------------------------------------------------------------


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _union_hook(conv: cattrs.Converter, t: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(t)
    rest = tuple(a for a in args if a is not type(None))
    nullable = len(rest) < len(args)
    inner: Callable[[Any, Any], Any]
    if set(rest) == {int, str}:
        inner, inner_type = _structure_int_or_str, rest
    elif len(rest) == 1:
        inner, inner_type = conv.get_structure_hook(rest[0]), rest[0]
    else:
        raise TypeError(f"kubetrio objects use no union like {t}")
    if not nullable:
        return inner

    def structure_optional(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return structure_optional


def _is_tuple(t: Any) -> bool:
    return typing.get_origin(t) is tuple


def _tuple_structure(conv: cattrs.Converter, t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    item_type = typing.get_args(t)[0]
    structure_item = conv.get_structure_hook(item_type)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise _wrong_type("array", value)
        items = []
        failures = []
        for index, item in enumerate(value):
            try:
                items.append(structure_item(item, item_type))
            except Exception as exc:  # collected, re-raised as a group
                exc.add_note(IterableValidationNote(f"@ index {index}", index, item_type))
                failures.append(exc)
        if failures:
            raise IterableValidationError(f"while structuring {t}", failures, t)
        return tuple(items)

    return structure_tuple


def _tuple_unstructure(conv: cattrs.Converter, t: Any) -> Callable[[Any], list[Any]]:
    item_type = typing.get_args(t)[0]
    if item_type in (str, int, float, bool):
        return list
    unstructure_item = conv.get_unstructure_hook(item_type)
    return lambda value: [unstructure_item(item) for item in value]


def _is_map(t: Any) -> bool:
    return typing.get_origin(t) in (FrozenDict, dict, Mapping)


def _map_structure(conv: cattrs.Converter, t: Any) -> Callable[[Any, Any], FrozenDict[str, Any]]:
    _, value_type = typing.get_args(t)
    structure_value = None if value_type is Any else conv.get_structure_hook(value_type)

    def structure_map(value: Any, _: Any) -> FrozenDict[str, Any]:
        if value is None:
            return EMPTY
        if not isinstance(value, Mapping):
            raise _wrong_type("object", value)
        if not value:
            return EMPTY
        result = {}
        failures = []
        for key, item in value.items():
            key = _map_key(key)
            if structure_value is None:
                result[key] = item
                continue
            try:
                result[key] = structure_value(item, value_type)
            except Exception as exc:  # collected, re-raised as a group
                exc.add_note(IterableValidationNote(f"@ key {key!r}", key, value_type))
                failures.append(exc)
        if failures:
            raise IterableValidationError(f"while structuring {t}", failures, t)
        return FrozenDict(result)

    return structure_map


def _map_key(key: Any) -> str:
    """Map keys as the YAML-to-JSON step before Go's decoder gives them: strings."""
    if isinstance(key, bool):
        return str(key).lower()
    return key if isinstance(key, str) else str(key)


def _map_unstructure(conv: cattrs.Converter, t: Any) -> Callable[[Any], dict[str, Any]]:
    _, value_type = typing.get_args(t)
    if value_type in (str, int, float, bool):
        return dict
    if value_type is Any:
        return _thaw
    unstructure_value = conv.get_unstructure_hook(value_type)
    return lambda value: {key: unstructure_value(item) for key, item in value.items()}


def _thaw(value: Any) -> Any:
    """Frozen JSON back to plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


# -- attrs classes -----------------------------------------------------------------------


def _json_fields(cls: type[Any]) -> dict[str, str]:
    """attribute name -> JSON key for every field ``cls`` reads and writes."""
    return {
        a.name: json_name(a.name)
        for a in attrs.fields(cls)
        if not (cls is core.Volume and a.name == "other")
    }


def _class_structure(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    names = _json_fields(cls)
    overrides = {attr: override(rename=key) for attr, key in names.items()}
    if cls is core.Volume:
        overrides["other"] = override(omit=True)
    generated = make_dict_structure_fn(
        cls, conv, _cattrs_forbid_extra_keys=False, _cattrs_detailed_validation=True, **overrides
    )
    known = frozenset(names.values())
    permissive = cls is core.Volume

    def structure_object(value: Any, _: Any) -> Any:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise _wrong_type("object", value)
        extra = value.keys() - known
        if extra and not permissive and not _strict.get():
            value = {k: v for k, v in value.items() if k in known}
            extra = set()
        try:
            obj = generated(value, cls)
        except ClassValidationError as exc:
            if extra and not permissive:
                excs = [*exc.exceptions, ForbiddenExtraKeysError("", cls, set(extra))]
                raise ClassValidationError(exc.message, excs, cls) from None
            raise
        if extra:
            if not permissive:
                raise ForbiddenExtraKeysError("", cls, set(extra))
            obj = attrs.evolve(obj, other=freeze_json({k: value[k] for k in extra}))
        return obj

    return structure_object


def _class_unstructure(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    overrides = {}
    for attr, key in _json_fields(cls).items():
        kwargs: dict[str, Any] = {"rename": key}
        if attr == "metadata" and cls in _KIND_CLASSES:
            kwargs["omit_if_default"] = False
        if (cls, attr) in _MICRO_TIME_FIELDS:
            kwargs["unstruct_hook"] = _format_micro_time
        overrides[attr] = override(**kwargs)
    if cls is not core.Volume:
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **overrides)
    overrides["other"] = override(omit=True)
    generated = make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **overrides)

    def unstructure_volume(volume: core.Volume) -> dict[str, Any]:
        data = generated(volume)
        if volume.other:
            data.update(_thaw(volume.other))
        return data

    return unstructure_volume
