"""Kubernetes resource quantities (``500m``, ``1.5Gi``, ``1e3``), exact and canonical.

This follows ``k8s.io/apimachinery/pkg/api/resource``::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <sign>            ::= "+" | "-"
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>   (an integer exponent)

A ``Quantity`` holds its value exactly, as an integer number of nano-units (Kubernetes
rounds every value to a multiple of 10^-9, away from zero, when it parses it), plus the
format it was written in. ``str()`` gives Kubernetes' canonical form (``CanonicalizeBytes``):

- zero is ``"0"``;
- DecimalSI and DecimalExponent print the largest exponent that is a multiple of 3 with an
  integer mantissa: ``0.5`` -> ``500m``, ``1000m`` -> ``1``, ``1.5k`` -> ``1500``,
  ``1e3`` -> ``1e3``, ``1.5e3`` -> ``1500``;
- DecimalSI has no suffix beyond ``E``: larger exponents print as ``e`` notation
  (``1000E`` -> ``1e21``);
- BinarySI prints the largest power-of-1024 suffix with an integer mantissa
  (``1024Mi`` -> ``1Gi``, ``1.5Gi`` -> ``1536Mi``, ``1.5Ki`` -> ``1536``), but prints as
  DecimalSI when the value is strictly between -1024 and 1024 or is not a whole number
  (``0.5Ki`` -> ``512``, ``1.0001Ki`` -> ``1024102400u``). Such a plain number reads back
  as DecimalSI, so ``str(parse(str(q)))`` can differ from ``str(q)`` for BinarySI values
  (``9.765625Ki`` -> ``10000`` -> ``10k``), exactly as in Kubernetes. Parsing a non-zero
  BinarySI value below one switches it to DecimalSI; BinarySI values are capped at 2^63-1.

Equality, ordering and hashing are by value only, like Kubernetes' ``Cmp``/``Equal``:
``Quantity.parse("1Gi") == Quantity.parse("1073741824")``.

Deviations from Kubernetes, all at the edges:

- a quantity must contain at least one digit: Go's parser reads ``"Mi"``, ``"."``, ``"-"``
  or ``"+"`` as zero; here they are errors;
- the magnitude of a value is limited to below 10^100 (Go has no limit for decimal
  formats); larger inputs raise ``QuantityError`` instead of allocating huge integers;
- ``Quantity.parse`` is Kubernetes' ``ParseQuantity``: surrounding whitespace is an error
  (Go's JSON decoder trims it first; our manifest loader passes strings through as-is).
"""

from __future__ import annotations

import enum
import functools
import math
import re
from fractions import Fraction

import attrs

__all__ = ["Quantity", "QuantityError", "QuantityFormat"]


class QuantityError(ValueError):
    """A string (or number) that is not a Kubernetes quantity.

    The message names only the value (``invalid quantity "5x"``); callers prefix the field
    path.
    """


class QuantityFormat(enum.Enum):
    """The notation a quantity was written in, which decides its canonical string."""

    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


_NANO = 10**9
#: Kubernetes caps BinarySI values at the largest int64 (``maxAllowed``).
_MAX_BINARY_NANOS = (2**63 - 1) * _NANO
#: Values must be smaller than 10**_MAX_DIGITS in magnitude (a deviation, see above).
_MAX_DIGITS = 100

_DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT: dict[int, str] = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER: tuple[str, ...] = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")


def _ceil_div_away(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded away from zero (``denominator > 0``)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder:
        quotient += 1
    return -quotient if numerator < 0 else quotient


@attrs.frozen(eq=False, order=False, repr=False)
class Quantity:
    """An exact Kubernetes quantity: ``nanos`` nano-units written in ``format``.

    Build one with `Quantity.parse`, `Quantity.from_int` or `Quantity.from_milli`; the
    constructor takes the raw representation. Instances compare, hash and order by value;
    ``str()`` is the Kubernetes canonical form.
    """

    _nanos: int
    format: QuantityFormat = QuantityFormat.DECIMAL_SI

    # -- constructors -------------------------------------------------------------------

    @staticmethod
    def parse(value: str | int | float | Quantity) -> Quantity:
        """Parse a quantity as it appears in a manifest.

        Strings use the Kubernetes grammar; ints and floats are what a YAML/JSON number
        (``cpu: 2``, ``cpu: 0.5``) decodes to and are read through their decimal text.
        A ``Quantity`` is returned unchanged.

        Raises:
            QuantityError: if ``value`` is not a quantity (``invalid quantity "5x"``).
        """
        if isinstance(value, str):
            return _parse_string(value)
        if isinstance(value, Quantity):
            return value
        if isinstance(value, bool):
            raise QuantityError(f'invalid quantity "{value}"')
        if isinstance(value, int):
            return Quantity.from_int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise QuantityError(f'invalid quantity "{value!r}"')
            return _parse_string(repr(value))
        raise QuantityError(f'invalid quantity "{value}"')

    @staticmethod
    def from_int(value: int, *, binary: bool = False) -> Quantity:
        """The whole number ``value``, in BinarySI format if ``binary`` (else DecimalSI)."""
        fmt = QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI
        return Quantity(value * _NANO, fmt)

    @staticmethod
    def from_milli(value: int) -> Quantity:
        """``value`` thousandths, in DecimalSI format (``from_milli(250)`` is ``250m``)."""
        return Quantity(value * 1_000_000, QuantityFormat.DECIMAL_SI)

    # -- values -------------------------------------------------------------------------

    @property
    def nanos(self) -> int:
        """The exact value in units of 10^-9."""
        return self._nanos

    def as_fraction(self) -> Fraction:
        """The exact value."""
        return Fraction(self._nanos, _NANO)

    def value(self) -> int:
        """The value as a whole number, rounded away from zero (Kubernetes' ``Value``)."""
        return _ceil_div_away(self._nanos, _NANO)

    def milli_value(self) -> int:
        """The value in thousandths, rounded away from zero (Kubernetes' ``MilliValue``)."""
        return _ceil_div_away(self._nanos, 1_000_000)

    @property
    def is_zero(self) -> bool:
        return self._nanos == 0

    def __bool__(self) -> bool:
        return self._nanos != 0

    # -- comparison ---------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._nanos == other._nanos
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._nanos != other._nanos
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        if isinstance(other, Quantity):
            return self._nanos < other._nanos
        return NotImplemented

    def __le__(self, other: Quantity) -> bool:
        if isinstance(other, Quantity):
            return self._nanos <= other._nanos
        return NotImplemented

    def __gt__(self, other: Quantity) -> bool:
        if isinstance(other, Quantity):
            return self._nanos > other._nanos
        return NotImplemented

    def __ge__(self, other: Quantity) -> bool:
        if isinstance(other, Quantity):
            return self._nanos >= other._nanos
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._nanos)

    # -- arithmetic ---------------------------------------------------------------------
    # Like Kubernetes' Add/Sub: the result keeps the left operand's format, unless the
    # left operand is zero, in which case it takes the right operand's.

    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = self.format if self._nanos else other.format
        return Quantity(self._nanos + other._nanos, fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = self.format if self._nanos else other.format
        return Quantity(self._nanos - other._nanos, fmt)

    def __neg__(self) -> Quantity:
        return Quantity(-self._nanos, self.format)

    def __mul__(self, factor: int) -> Quantity:
        if isinstance(factor, bool) or not isinstance(factor, int):
            return NotImplemented
        return Quantity(self._nanos * factor, self.format)

    __rmul__ = __mul__

    # -- text ---------------------------------------------------------------------------

    def __str__(self) -> str:
        return _canonical(self._nanos, self.format)

    def __repr__(self) -> str:
        return f"Quantity({_canonical(self._nanos, self.format)!r})"


@functools.lru_cache(maxsize=4096)
def _parse_string(text: str) -> Quantity:
    match = _NUMBER.fullmatch(text)
    if match is None:  # pragma: no cover - the pattern matches every string
        raise QuantityError(f'invalid quantity "{text}"')
    sign, whole, fraction, suffix = match.groups()
    fraction = fraction or ""
    if not whole and not fraction:
        raise QuantityError(f'invalid quantity "{text}"')

    fmt: QuantityFormat
    exponent10 = 0
    exponent2 = 0
    if suffix in _DECIMAL_SUFFIXES:
        fmt = QuantityFormat.DECIMAL_SI
        exponent10 = _DECIMAL_SUFFIXES[suffix]
    elif suffix in _BINARY_SUFFIXES:
        fmt = QuantityFormat.BINARY_SI
        exponent2 = _BINARY_SUFFIXES[suffix]
    else:
        exp_match = _EXPONENT.fullmatch(suffix)
        if exp_match is None:
            raise QuantityError(f'invalid quantity "{text}"')
        fmt = QuantityFormat.DECIMAL_EXPONENT
        exponent10 = int(exp_match.group(1))

    whole = whole.lstrip("0")
    digits_text = (whole + fraction).lstrip("0")
    if not digits_text:
        return Quantity(0, fmt)
    digits = int(digits_text)

    # value = digits * 10**(exponent10 - len(fraction)) * 2**exponent2
    scale = exponent10 - len(fraction) + 9  # as a power of ten, in nano-units
    # Order of magnitude of the value: bounded to keep arithmetic cheap.
    magnitude = len(digits_text) + scale - 9 + (exponent2 * 3 + 9) // 10
    if magnitude > _MAX_DIGITS:
        raise QuantityError(f'invalid quantity "{text}": out of range')
    if scale >= 0:
        nanos = digits * 10**scale * 2**exponent2
    elif -scale > len(digits_text) + exponent2:
        # Far below one nano-unit: Kubernetes rounds any non-zero value up to 1n.
        nanos = 1
    else:
        nanos = _ceil_div_away(digits * 2**exponent2, 10**-scale)
    if sign == "-":
        nanos = -nanos
    if fmt is QuantityFormat.BINARY_SI:
        if nanos > _MAX_BINARY_NANOS:
            nanos = _MAX_BINARY_NANOS
        elif nanos < -_MAX_BINARY_NANOS:
            nanos = -_MAX_BINARY_NANOS
        elif -_NANO < nanos < _NANO:
            # A non-zero binary quantity below one: Kubernetes switches it to DecimalSI.
            fmt = QuantityFormat.DECIMAL_SI
    return Quantity(nanos, fmt)


@functools.lru_cache(maxsize=4096)
def _canonical(nanos: int, fmt: QuantityFormat) -> str:
    if nanos == 0:
        return "0"
    negative = nanos < 0
    amount = -nanos if negative else nanos
    sign = "-" if negative else ""
    if fmt is QuantityFormat.BINARY_SI and amount >= 1024 * _NANO and amount % _NANO == 0:
        units = amount // _NANO
        power = 0
        while power < len(_BINARY_BY_POWER) - 1 and units % 1024 == 0:
            units //= 1024
            power += 1
        return f"{sign}{units}{_BINARY_BY_POWER[power]}"

    exponent = -9
    while amount % 10 == 0:
        amount //= 10
        exponent += 1
    remainder = exponent % 3
    if remainder:
        amount *= 10**remainder
        exponent -= remainder
    if fmt is QuantityFormat.DECIMAL_EXPONENT or exponent > 18:
        # DecimalSI has no suffix beyond E (10^18): like Kubernetes, fall back to "e".
        return f"{sign}{amount}" if exponent == 0 else f"{sign}{amount}e{exponent}"
    return f"{sign}{amount}{_DECIMAL_BY_EXPONENT[exponent]}"
