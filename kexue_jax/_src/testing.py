"""Test helpers shared by the test suite: tree comparison and the eager = jit = vmap check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np


def tree_allclose(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """True when two pytrees have the same structure and allclose leaves."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if ta != tb:
        return False
    return all(
        np.shape(x) == np.shape(y) and np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
        for x, y in zip(la, lb, strict=True)
    )


def assert_tree_allclose(a: Any, b: Any, *, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Assert :func:`tree_allclose`, reporting the first differing leaf and its max error."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"tree structures differ: {ta} vs {tb}"
    for i, (x, y) in enumerate(zip(la, lb, strict=True)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, f"leaf {i}: shape {x.shape} vs {y.shape}"
        if not np.allclose(x, y, rtol=rtol, atol=atol):
            err = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
            raise AssertionError(f"leaf {i}: max abs error {err:.3g} (rtol={rtol}, atol={atol})")


def assert_eager_jit_vmap(
    fn: Callable[..., Any],
    *example_args: Any,
    batch_size: int = 3,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    **kwargs: Any,
) -> None:
    """Check that ``fn`` gives the same result eagerly, under ``jit`` and under ``vmap``.

    ``example_args`` are single-example inputs. ``vmap`` is checked by stacking ``batch_size``
    perturbed copies of each array argument and comparing every row with the eager result on that
    row. Keyword arguments (e.g. ``key=``) are passed unchanged and are not mapped.
    """
    eager = fn(*example_args, **kwargs)
    jitted = jax.jit(lambda *a: fn(*a, **kwargs))(*example_args)
    assert_tree_allclose(eager, jitted, rtol=rtol, atol=atol)

    def stack(x: Any) -> Any:
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            scales = jnp.linspace(1.0, 0.5, batch_size, dtype=x.dtype).reshape((-1,) + (1,) * x.ndim)
            return x[None] * scales
        return jnp.broadcast_to(x, (batch_size, *x.shape))

    batched_args = jax.tree.map(stack, example_args)
    mapped = jax.vmap(lambda *a: fn(*a, **kwargs))(*batched_args)
    for i in range(batch_size):
        row_args = jax.tree.map(lambda x, i=i: x[i], batched_args)
        assert_tree_allclose(
            jax.tree.map(lambda x, i=i: x[i], mapped), fn(*row_args, **kwargs), rtol=rtol, atol=atol
        )


def assert_finite_grads(fn: Callable[..., Any], params: Any, *args: Any, **kwargs: Any) -> None:
    """Assert that ``grad`` of the scalar ``fn(params, *args)`` is finite in every leaf."""
    grads = jax.grad(lambda p: fn(p, *args, **kwargs))(params)
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(leaf))), f"non-finite gradient at {jax.tree_util.keystr(path)}"


def jaxpr_eqns(jaxpr: Any):
    """Every equation of ``jaxpr`` and of the jaxprs nested in it (``jit``, ``scan``, ``cond``, ...)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for inner in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(inner, "jaxpr", inner)
                if isinstance(inner, jax.extend.core.Jaxpr):
                    yield from jaxpr_eqns(inner)


def dot_operand_dtypes(fn: Callable[..., Any], *args: Any) -> set[str]:
    """The operand dtypes of every matrix product (``dot_general``) in ``fn(*args)``'s program.

    Walks nested jaxprs (``jit``, ``scan``, ``cond``, custom derivatives), so a mixed-precision
    policy (bf16 operands, float32 accumulation) can be checked without a GPU.
    """
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return {str(v.aval.dtype) for eqn in jaxpr_eqns(jaxpr) if eqn.primitive.name == "dot_general" for v in eqn.invars}
