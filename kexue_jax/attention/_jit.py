"""``jit`` for the public functions, keeping them plain Python functions.

Each public function validates its inputs (at trace time: the ``ValueError`` comes out of ``jit``
unchanged) and then runs as one compiled computation, so an eager call compiles once per shape and
configuration instead of dispatching dozens of small ops; under an outer ``jit`` it is inlined.
The wrapper keeps the docstring and signature (``help``, doctests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)


def jit_with_static(*static_argnames: str) -> Callable[[F], F]:
    """Decorate ``fn`` so that calls go through ``jax.jit(fn, static_argnames=static_argnames)``.

    The static arguments are the Python configuration (flags, sizes, names); they must be hashable
    (pass windows as tuples).
    """

    def decorate(fn: F) -> F:
        jitted = jax.jit(fn, static_argnames=static_argnames)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return jitted(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
