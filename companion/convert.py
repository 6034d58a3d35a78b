"""The one conversion layer between parsers and the user: hostile content becomes InputError.

Deep nesting (RecursionError), a field of the wrong type (TypeError, KeyError, AttributeError),
numbers that are not finite or too large (OverflowError, Python's int-string digit limit as
ValueError), a half-typed value and an over-long path (ENAMETOOLONG) all reach the user as an
`InputError` that names the file and the next step, never as a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any, ParamSpec, TypeVar

from companion.errors import CompanionError, InputError
from companion.files import os_error

P = ParamSpec("P")
R = TypeVar("R")

_CONTENT_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    ArithmeticError,
    UnicodeError,
)


def as_input_error(
    exc: BaseException, what: str, hint: str, content: bool = True
) -> InputError | None:
    """The InputError a failure means, or None when it is not an input problem.

    `content=False` (a front door) converts only what no parser can rule out: deep nesting,
    overflow, memory and OS errors; a TypeError or IndexError there stays a bug.
    """
    if isinstance(exc, CompanionError):
        return None
    if isinstance(exc, RecursionError):
        return InputError(f"{what} is nested too deeply to read.", hint=hint)
    if isinstance(exc, OSError):
        return os_error(getattr(exc, "filename", None) or what, what, exc)
    if isinstance(exc, MemoryError):
        return InputError(f"{what} is too large to read in memory.", hint=hint)
    if isinstance(exc, OverflowError):
        return InputError(f"{what} holds a number too large to use ({exc}).", hint=hint)
    if content and isinstance(exc, _CONTENT_ERRORS):
        detail = str(exc)[:160] or type(exc).__name__
        return InputError(f"{what} holds a value companion cannot use ({detail}).", hint=hint)
    return None


@contextmanager
def guard(
    what: str, hint: str = "fix or replace the file.", content: bool = True
) -> Iterator[None]:
    """Turn a failure inside the block into an InputError about `what` (see as_input_error)."""
    try:
        yield
    except Exception as exc:
        converted = as_input_error(exc, what, hint, content)
        if converted is None:
            raise
        raise converted from None


def parser(
    what: str, hint: str = "fix or replace the file."
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of `guard` for a parser's entry point (a leading path is named)."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            named = f"{what} {args[0]}" if args and isinstance(args[0], str | PurePath) else what
            with guard(named, hint):
                return func(*args, **kwargs)

        return inner

    return wrap


def loads(raw: bytes | str, what: str, hint: str = "fix or replace the file.") -> Any:
    """json.loads with every failure (syntax, nesting, digit limit) as an InputError."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to read.", hint=hint) from None
    except (ValueError, UnicodeError) as exc:
        raise InputError(f"{what} is not valid JSON ({str(exc)[:120]}).", hint=hint) from None
