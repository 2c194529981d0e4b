"""The error hierarchy every kubetrio component raises, mirroring Kubernetes status reasons.

A client of a real apiserver branches on ``Status.reason`` (``NotFound``, ``Conflict`` ...)
and ``Status.code``; code written against kubetrio branches on the exception class, and
the HTTP layer maps each class back to the same reason and code. Every error names the
object it is about (``kind``, ``namespace``, ``name``) so a log line or a test failure
says which object was refused and why.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Cause",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "Timeout",
    "TooManyRequests",
]


@attrs.frozen
class Cause:
    """One reason a write was invalid: the field path (``spec.containers[0].image``) and why."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ApiError(Exception):
    """Root of the hierarchy: a request the store refused.

    ``reason`` and ``code`` are the Kubernetes ``Status`` reason and HTTP code of the
    subclass; ``kind``/``namespace``/``name`` identify the object (empty when unknown).
    """

    reason: str = "InternalError"
    code: int = 500

    def __init__(
        self, message: str, *, kind: str = "", namespace: str = "", name: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.namespace = namespace
        self.name = name

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(ApiError):
    """The request itself is malformed (unknown kind, unparsable selector, bad options)."""

    reason = "BadRequest"
    code = 400


class NotFound(ApiError):
    reason = "NotFound"
    code = 404


class AlreadyExists(ApiError):
    reason = "AlreadyExists"
    code = 409


class Conflict(ApiError):
    """An update carried a stale resourceVersion: re-read the object and try again."""

    reason = "Conflict"
    code = 409


class Invalid(ApiError):
    """The object failed defaulting or validation; ``causes`` lists every bad field.

    The message reads like kubectl's: ``Pod "web" is invalid: spec.containers[0].image:
    Required value``; with a single cause it is just that cause when no object is known.
    """

    reason = "Invalid"
    code = 422

    def __init__(
        self,
        causes: Iterable[Cause],
        *,
        kind: str = "",
        namespace: str = "",
        name: str = "",
    ) -> None:
        self.causes: tuple[Cause, ...] = tuple(causes)
        detail = "; ".join(str(c) for c in self.causes)
        if kind and name:
            message = f'{kind} "{name}" is invalid: {detail}'
        elif kind:
            message = f"{kind} is invalid: {detail}"
        else:
            message = detail
        super().__init__(message, kind=kind, namespace=namespace, name=name)


class Forbidden(ApiError):
    reason = "Forbidden"
    code = 403


class MethodNotAllowed(ApiError):
    reason = "MethodNotAllowed"
    code = 405


class Gone(ApiError):
    """The requested resourceVersion is older than the retained history: re-list."""

    reason = "Expired"
    code = 410


class TooManyRequests(ApiError):
    reason = "TooManyRequests"
    code = 429


class Timeout(ApiError):
    reason = "Timeout"
    code = 504
