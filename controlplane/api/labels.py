"""Label selectors: parse, validate, print and match, as ``k8s.io/apimachinery/pkg/labels``.

A `Selector` is an AND of `Requirement` s, compiled once and matched on the hot path
(informers, the store's watch fan-out, controllers) with one precompiled closure per
requirement and no regular expressions at match time. Three ways to build one:

- `parse_selector` reads the string form used by ``kubectl -l`` and list/watch calls::

      a=b,c!=d,e in (f,g),h notin (i),!j,k,l>5,m<10

  Whitespace between tokens is ignored; ``==`` is a synonym of ``=`` (and prints as
  ``=``); the empty string selects everything.
- `Selector.from_label_selector` compiles the structured ``metav1.LabelSelector`` of
  Deployments, ReplicaSets, Jobs... like ``metav1.LabelSelectorAsSelector``: ``None``
  selects nothing, an empty selector (no matchLabels, no matchExpressions) everything.
- `Selector.from_map` compiles the equality map of Services and ReplicationControllers
  like ``labels.SelectorFromSet``: an empty map selects everything. (A Service without a
  selector selects *no* pods; that is the caller's rule, not this module's.)

``str(selector)`` is the canonical string form: requirements sorted by key (then operator
and values), values sorted and de-duplicated, so ``parse_selector(str(s)) == s`` for every
selector except `Selector.nothing` (which prints as ``""``, like Kubernetes').

Quirks kept from Kubernetes: ``a=`` and ``a in ()`` mean the empty value; ``a in (b,)``
means ``b`` or the empty value; ``in`` and ``notin`` are keywords only where an operator
is expected, so they may be keys and values.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from controlplane.api.meta import LabelSelector

__all__ = [
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "parse_selector",
    "validate_label_key",
    "validate_label_value",
]


class SelectorError(ValueError):
    """A label or field selector that cannot be parsed or is invalid.

    ``field`` is the path of the offending part inside a structured selector
    (``matchExpressions[0].operator``), empty for string selectors; ``detail`` is the
    message without it. ``str()`` is ``"<field>: <detail>"`` (or just the detail), so a
    caller can prefix its own path: ``spec.selector.matchExpressions[0].operator: ...``.
    """

    def __init__(self, detail: str, *, field: str = "") -> None:
        self.detail = detail
        self.field = field
        super().__init__(f"{field}: {detail}" if field else detail)


# -- label key / value validation -------------------------------------------------------

_NAME_MAX = 63
_PREFIX_MAX = 253
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)


@functools.lru_cache(maxsize=4096)
def validate_label_key(key: str) -> str | None:
    """Check a label key (a qualified name: ``[prefix/]name``), as ``IsQualifiedName``.

    Returns None if ``key`` is valid, else a message saying why (several reasons are
    joined with ``"; "``), without the key itself, e.g.
    ``name part must be no more than 63 characters``.
    """
    errors: list[str] = []
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            return (
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character, with an optional "
                "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > _PREFIX_MAX:
                errors.append(f"prefix part must be no more than {_PREFIX_MAX} characters")
            if not _DNS1123_SUBDOMAIN.fullmatch(prefix):
                errors.append(f"prefix part {_SUBDOMAIN_MESSAGE}")
    if not name:
        errors.append("name part must be non-empty")
    else:
        if len(name) > _NAME_MAX:
            errors.append(f"name part must be no more than {_NAME_MAX} characters")
        if not _QUALIFIED_NAME.fullmatch(name):
            errors.append(f"name part {_NAME_MESSAGE}")
    return "; ".join(errors) if errors else None


@functools.lru_cache(maxsize=4096)
def validate_label_value(value: str) -> str | None:
    """Check a label value (empty, or a name of at most 63 characters), as Kubernetes does.

    Returns None if ``value`` is valid, else a message saying why.
    """
    if not value:
        return None
    errors: list[str] = []
    if len(value) > _NAME_MAX:
        errors.append(f"must be no more than {_NAME_MAX} characters")
    if not _QUALIFIED_NAME.fullmatch(value):
        errors.append(_VALUE_MESSAGE)
    return "; ".join(errors) if errors else None


_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 10, 64)``: None unless a plain base-10 int64."""
    if _INT64.fullmatch(text) is None:
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


# -- requirements -----------------------------------------------------------------------


class Operator(enum.StrEnum):
    """A requirement's operator; the value is its spelling in the string form."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = ">"
    LESS_THAN = "<"


_OPERATOR_ORDER = {op: index for index, op in enumerate(Operator)}
_SET_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
_SINGLE_VALUE_OPERATORS = frozenset({Operator.EQUALS, Operator.NOT_EQUALS})
_NUMERIC_OPERATORS = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN})
_UNARY_OPERATORS = frozenset({Operator.EXISTS, Operator.DOES_NOT_EXIST})

_Matcher = Callable[[Mapping[str, str]], bool]


def _sorted_values(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def _compile(key: str, op: Operator, values: tuple[str, ...]) -> _Matcher:
    if op is Operator.EQUALS and len(values) == 1:
        (value,) = values
        return lambda labels: labels.get(key) == value
    if op is Operator.NOT_EQUALS and len(values) == 1:
        (value,) = values
        return lambda labels: labels.get(key) != value
    if op is Operator.IN or op is Operator.EQUALS:
        allowed = frozenset(values)
        return lambda labels: labels.get(key) in allowed
    if op is Operator.NOT_IN or op is Operator.NOT_EQUALS:
        forbidden = frozenset(values)
        return lambda labels: labels.get(key) not in forbidden
    if op is Operator.EXISTS:
        return lambda labels: key in labels
    if op is Operator.DOES_NOT_EXIST:
        return lambda labels: key not in labels
    bound = _parse_int64(values[0]) if len(values) == 1 else None
    if bound is None:
        return lambda labels: False
    greater = op is Operator.GREATER_THAN

    def compare(labels: Mapping[str, str]) -> bool:
        text = labels.get(key)
        if text is None:
            return False
        number = _parse_int64(text)
        if number is None:
            return False
        return number > bound if greater else number < bound

    return compare


@attrs.frozen
class Requirement:
    """One clause of a selector: ``key``, ``operator`` and the sorted, distinct ``values``.

    The constructor only normalizes; build validated requirements with
    `Requirement.create`. ``str()`` is the clause in the string form.
    """

    key: str
    operator: Operator = attrs.field(converter=Operator)
    values: tuple[str, ...] = attrs.field(default=(), converter=_sorted_values)
    _match: _Matcher = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_match", _compile(self.key, self.operator, self.values))

    @staticmethod
    def create(
        key: str, operator: Operator | str, values: Iterable[str] = (), *, field: str = ""
    ) -> Requirement:
        """A validated requirement (Kubernetes' ``NewRequirement``).

        ``operator`` may be the enum or its spelling (``"="``, ``"=="``, ``"in"``...).

        Raises:
            SelectorError: naming ``field`` (or its ``.key``/``.values`` child) if the key
                or a value is not a valid label key/value, or the number of values does
                not suit the operator.
        """
        op = _coerce_operator(operator, field)
        values = tuple(values)
        prefix = f"{field}." if field else ""
        problem = validate_label_key(key)
        if problem is not None:
            raise SelectorError(f'invalid key "{key}": {problem}', field=f"{prefix}key")
        if op in _SET_OPERATORS and not values:
            raise SelectorError(f"values set can't be empty for '{op}'", field=f"{prefix}values")
        if op in _SINGLE_VALUE_OPERATORS and len(set(values)) != 1:
            raise SelectorError(
                f"exactly one value is required for '{op}'", field=f"{prefix}values"
            )
        if op in _UNARY_OPERATORS and values:
            raise SelectorError(
                "values set must be empty for exists and does not exist",
                field=f"{prefix}values",
            )
        if op in _NUMERIC_OPERATORS:
            if len(values) != 1:
                raise SelectorError(
                    f"exactly one value is required for '{op}'", field=f"{prefix}values"
                )
            if _parse_int64(values[0]) is None:
                raise SelectorError(
                    f"value \"{values[0]}\" for '{op}' must be an integer",
                    field=f"{prefix}values[0]",
                )
        for index, value in enumerate(values):
            problem = validate_label_value(value)
            if problem is not None:
                raise SelectorError(
                    f'invalid value "{value}": {problem}', field=f"{prefix}values[{index}]"
                )
        return Requirement(key, op, values)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        return self._match(labels)

    def sort_key(self) -> tuple[str, int, tuple[str, ...]]:
        return (self.key, _OPERATOR_ORDER[self.operator], self.values)

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op in _SET_OPERATORS:
            return f"{self.key} {op.value} ({','.join(self.values)})"
        return f"{self.key}{op.value}{self.values[0] if self.values else ''}"


def _coerce_operator(operator: Operator | str, field: str) -> Operator:
    if isinstance(operator, Operator):
        return operator
    if operator == "==":
        return Operator.EQUALS
    try:
        return Operator(operator)
    except ValueError:
        raise SelectorError(
            f'"{operator}" is not a valid label selector operator',
            field=f"{field}.operator" if field else "",
        ) from None


# -- selectors --------------------------------------------------------------------------

_LABEL_SELECTOR_OPERATORS: dict[str, Operator] = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def _sorted_requirements(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(requirements, key=Requirement.sort_key))


@attrs.frozen
class Selector:
    """A compiled label selector: the AND of ``requirements`` (kept sorted).

    ``Selector()`` (no requirements) selects everything; `Selector.nothing` selects
    nothing. Instances are immutable, hashable and compare by their requirements.
    """

    requirements: tuple[Requirement, ...] = attrs.field(default=(), converter=_sorted_requirements)
    #: True only for `Selector.nothing`, which matches no label set at all.
    matches_nothing: bool = attrs.field(default=False, kw_only=True)
    _matchers: tuple[_Matcher, ...] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_matchers", tuple(r._match for r in self.requirements))

    @staticmethod
    def everything() -> Selector:
        """The selector that matches every label set (including the empty one)."""
        return _EVERYTHING

    @staticmethod
    def nothing() -> Selector:
        """The selector that matches no label set (a nil ``metav1.LabelSelector``)."""
        return _NOTHING

    @staticmethod
    def from_map(mapping: Mapping[str, str]) -> Selector:
        """``key=value`` for every item (Service / ReplicationController selectors).

        An empty mapping selects everything, like ``labels.SelectorFromSet``.

        Raises:
            SelectorError: with field ``[key]`` if a key or value is invalid.
        """
        if not mapping:
            return _EVERYTHING
        return Selector(_map_requirement(key, value, field="") for key, value in mapping.items())

    @staticmethod
    def from_label_selector(selector: LabelSelector | None) -> Selector:
        """Compile a ``metav1.LabelSelector``, as ``LabelSelectorAsSelector`` does.

        ``None`` selects nothing; a selector with neither matchLabels nor
        matchExpressions selects everything; otherwise every matchLabels item and every
        matchExpressions entry must hold.

        Raises:
            SelectorError: naming the offending field relative to the selector
                (``matchLabels[app]``, ``matchExpressions[0].operator``,
                ``matchExpressions[1].values``...) if a key, value or operator is invalid,
                In/NotIn has no values, or Exists/DoesNotExist has some.
        """
        if selector is None:
            return _NOTHING
        if not selector.match_labels and not selector.match_expressions:
            return _EVERYTHING
        requirements = [
            _map_requirement(key, value, field="matchLabels")
            for key, value in selector.match_labels.items()
        ]
        for index, expression in enumerate(selector.match_expressions):
            field = f"matchExpressions[{index}]"
            op = _LABEL_SELECTOR_OPERATORS.get(expression.operator)
            if op is None:
                raise SelectorError(
                    f'"{expression.operator}" is not a valid label selector operator'
                    " (In, NotIn, Exists, DoesNotExist)",
                    field=f"{field}.operator",
                )
            if op in _SET_OPERATORS and not expression.values:
                raise SelectorError(
                    "must be specified when operator is In or NotIn", field=f"{field}.values"
                )
            if op in _UNARY_OPERATORS and expression.values:
                raise SelectorError(
                    "may not be specified when operator is Exists or DoesNotExist",
                    field=f"{field}.values",
                )
            requirements.append(
                Requirement.create(expression.key, op, expression.values, field=field)
            )
        return Selector(requirements)

    @property
    def empty(self) -> bool:
        """Whether this selector has no requirements (and so matches everything)."""
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every requirement."""
        for match in self._matchers:
            if not match(labels):
                return False
        return not self.matches_nothing

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have to match (``key=v`` or ``key in (v)``), else None."""
        for requirement in self.requirements:
            if (
                requirement.key == key
                and requirement.operator in (Operator.EQUALS, Operator.IN)
                and len(requirement.values) == 1
            ):
                return requirement.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_EVERYTHING = Selector()
_NOTHING = Selector(matches_nothing=True)


def _map_requirement(key: str, value: str, *, field: str) -> Requirement:
    where = f"{field}[{key}]" if field else f"[{key}]"
    problem = validate_label_key(key)
    if problem is not None:
        raise SelectorError(f'invalid key "{key}": {problem}', field=where)
    problem = validate_label_value(value)
    if problem is not None:
        raise SelectorError(f'invalid value "{value}": {problem}', field=where)
    return Requirement(key, Operator.EQUALS, (value,))


# -- the string form --------------------------------------------------------------------

_SPECIALS = frozenset("=!(),><")
_SYMBOLS = ("==", "!=", "=", "!", "(", ")", ",", ">", "<")
_WHITESPACE = frozenset(" \t\r\n")
_END = ""  # the token kind (and literal) that ends the input


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Split ``text`` into ``(kind, literal)``: kind is a symbol, ``"id"`` or ``_END``."""
    tokens: list[tuple[str, str]] = []
    position = 0
    length = len(text)
    while True:
        while position < length and text[position] in _WHITESPACE:
            position += 1
        if position >= length:
            tokens.append((_END, _END))
            return tokens
        char = text[position]
        if char in _SPECIALS:
            for symbol in _SYMBOLS:  # longest first where it matters: "==", "!="
                if text.startswith(symbol, position):
                    tokens.append((symbol, symbol))
                    position += len(symbol)
                    break
            continue
        start = position
        while (
            position < length
            and text[position] not in _SPECIALS
            and text[position] not in _WHITESPACE
        ):
            position += 1
        tokens.append(("id", text[start:position]))


def _describe(literal: str) -> str:
    return f'"{literal}"' if literal else "end of string"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    def fail(self, detail: str) -> SelectorError:
        return SelectorError(f'invalid label selector "{self.text}": {detail}')

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        if self.peek()[0] == _END:
            return requirements
        while True:
            requirements.append(self.requirement())
            kind, literal = self.take()
            if kind == _END:
                return requirements
            if kind != ",":
                raise self.fail(f'expected "," or end of string, found {_describe(literal)}')
            if self.peek()[0] not in ("id", "!"):
                raise self.fail(
                    f'expected a requirement after ",", found {_describe(self.peek()[1])}'
                )

    def requirement(self) -> Requirement:
        kind, literal = self.take()
        negated = kind == "!"
        if negated:
            kind, literal = self.take()
        if kind != "id":
            where = ' after "!"' if negated else ""
            raise self.fail(f"expected a key{where}, found {_describe(literal)}")
        key = literal
        problem = validate_label_key(key)
        if problem is not None:
            raise self.fail(f'invalid key "{key}": {problem}')
        if negated:
            return Requirement(key, Operator.DOES_NOT_EXIST)
        kind, literal = self.peek()
        if kind in (_END, ","):
            return Requirement(key, Operator.EXISTS)
        self.take()
        op: Operator
        if kind in ("=", "=="):
            op = Operator.EQUALS
        elif kind == "!=":
            op = Operator.NOT_EQUALS
        elif kind == ">":
            op = Operator.GREATER_THAN
        elif kind == "<":
            op = Operator.LESS_THAN
        elif kind == "id" and literal in ("in", "notin"):
            op = Operator.IN if literal == "in" else Operator.NOT_IN
        else:
            raise self.fail(
                f'expected an operator (=, ==, !=, in, notin, >, <) after "{key}",'
                f" found {_describe(literal)}"
            )
        values = self.value_list(literal) if op in _SET_OPERATORS else (self.value(literal),)
        if op in _NUMERIC_OPERATORS and _parse_int64(values[0]) is None:
            raise self.fail(f'value "{values[0]}" for "{literal}" must be an integer')
        for value in values:
            problem = validate_label_value(value)
            if problem is not None:
                raise self.fail(f'invalid value "{value}" for key "{key}": {problem}')
        return Requirement(key, op, values)

    def value(self, operator: str) -> str:
        kind, literal = self.peek()
        if kind in (_END, ","):
            return ""
        self.take()
        if kind != "id":
            raise self.fail(f'expected a value after "{operator}", found {_describe(literal)}')
        return literal

    def value_list(self, operator: str) -> list[str]:
        kind, literal = self.take()
        if kind != "(":
            raise self.fail(f'expected "(" after "{operator}", found {_describe(literal)}')
        values: list[str] = []
        expect_value = True  # at the start and after each ","
        while True:
            kind, literal = self.take()
            if kind == "id" and expect_value:
                values.append(literal)
                expect_value = False
            elif kind == ",":
                if expect_value:
                    values.append("")  # "(,", ",,": Kubernetes reads an empty value
                expect_value = True
            elif kind == ")":
                if expect_value:
                    values.append("")  # "()", ",)"
                return values
            else:
                expected = 'a value, "," or ")"' if expect_value else '"," or ")"'
                raise self.fail(
                    f'expected {expected} in the list after "{operator}",'
                    f" found {_describe(literal)}"
                )


@functools.lru_cache(maxsize=1024)
def parse_selector(text: str) -> Selector:
    """Parse the string form of a label selector (``"app=web,tier in (a,b),!canary"``).

    The empty string (or only whitespace) selects everything. Results are cached: the
    same string gives the same (immutable) `Selector`.

    Raises:
        SelectorError: ``invalid label selector "<text>": <what is wrong>``.
    """
    requirements = _Parser(text).parse()
    return Selector(requirements) if requirements else _EVERYTHING
