"""Turn a Flax NNX module into pure pieces for the engine, and back.

The engine (``kexue_jax.train``) only handles pytrees of arrays: parameters as **plain nested
dicts** (so that checkpoints do not depend on Flax's classes) and the non-parameter state (batch
statistics, EMA codebooks, counters) as another plain dict. :func:`split_module` produces them
with ``nnx.split`` + ``nnx.to_pure_dict``; :func:`merge_module` rebuilds the module, inside
``jit`` if need be, with ``nnx.merge``.

Note:
    ``nnx.merge`` given plain dicts matches leaves **by position** in the flattened tree, not by
    name. ``nnx.List`` entries have integer keys, which sort numerically, but a dict that went
    through a string-keyed format (JSON, some checkpoint layouts) has ``"10" < "2"`` and would be
    loaded into the wrong layers without any error. :func:`merge_module` therefore turns digit
    strings back into ints and checks the tree structure against the graph, raising
    ``ValueError`` on any difference.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

__all__ = ["merge_module", "split_module"]


def split_module(
    module: nnx.Module, params_filter: Any = nnx.Param
) -> tuple[nnx.GraphDef, dict[Any, Any], dict[Any, Any]]:
    """Split ``module`` into ``(graphdef, params, state)``.

    Args:
        module: any NNX module (or graph node).
        params_filter: the NNX filter of the trainable variables (default ``nnx.Param``).

    Returns:
        ``graphdef`` (static, hashable; pass it to :func:`merge_module`), ``params`` (nested dict
        of the arrays selected by ``params_filter``) and ``state`` (nested dict of every other
        variable; ``{}`` when there is none). The arrays are the module's own buffers, not copies.
    """
    graphdef, params, state = nnx.split(module, params_filter, ...)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(state)


def _canonical_keys(tree: Any) -> Any:
    if not isinstance(tree, dict):
        return tree
    out = {}
    for k, v in tree.items():
        key = int(k) if isinstance(k, str) and k.isdigit() else k
        out[key] = _canonical_keys(v)
    return out


def _paths(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def merge_module(
    graphdef: nnx.GraphDef, params: dict[Any, Any], state: dict[Any, Any] | None = None
) -> Any:
    """Rebuild the module from :func:`split_module`'s pieces (works under ``jit``/``grad``/``vmap``).

    Args:
        graphdef: the static graph from :func:`split_module`.
        params: nested dict of parameters (integer keys may have become digit strings).
        state: nested dict of the other variables, or ``None``/``{}`` when there are none.

    Returns:
        A new module whose variables hold the given arrays (tracers inside a transformation).

    Raises:
        ValueError: when ``params``/``state`` do not have exactly the leaves the graph expects.
    """
    params = _canonical_keys(dict(params))
    state = _canonical_keys(dict(state or {}))
    try:
        module = nnx.merge(graphdef, params, state)
    except ValueError as err:
        raise ValueError(f"params/state: do not match the module's graph: {err}") from err
    # merge is positional; re-splitting names every leaf, so renamed or swapped entries are caught.
    _, params_back, state_back = nnx.split(module, nnx.Param, ...)
    for name, given, back in (("params", params, params_back), ("state", state, state_back)):
        expected = _paths(nnx.to_pure_dict(back))
        if name == "state" and not expected and not jax.tree.leaves(given):
            continue
        got = _paths(given)
        if got != expected:
            missing = sorted(set(expected) - set(got))
            extra = sorted(set(got) - set(expected))
            raise ValueError(
                f"{name}: keys do not match the module's graph; missing {missing[:5]}, "
                f"unexpected {extra[:5]}"
            )
    return module
