"""The registry of bijector factories, each with a small default configuration.

``BIJECTORS[name]()`` builds a bijector; the shared suite ``tests/suites/test_bijectors.py`` runs
every invariant (round trip, log-det = slogdet of the Jacobian, eager = jit = vmap, finite grads)
over every entry, so a new layer registered here is tested for free. Entries with
``event_ndims=3`` are tested on ``[2, 4, 4, 2]`` images, ``event_ndims=1`` on ``[2, 4]`` vectors,
the rest on both.

It lives apart from :mod:`kexue_jax.flows.bijector` so that the layer modules can import the
interface without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable

from kexue_jax.flows.actnorm import actnorm
from kexue_jax.flows.additive_coupling import additive_coupling
from kexue_jax.flows.affine_coupling import affine_coupling
from kexue_jax.flows.bijector import Bijector, chain
from kexue_jax.flows.conditioner import conv_conditioner, default_conditioner, mlp_conditioner
from kexue_jax.flows.conv1x1 import conv1x1, conv1x1_lu
from kexue_jax.flows.logit import logit
from kexue_jax.flows.permutation import reverse, shuffle
from kexue_jax.flows.repeat import repeat
from kexue_jax.flows.reshape import reshape
from kexue_jax.flows.scale import scale
from kexue_jax.flows.squeeze import squeeze


def _on_vectors(bij: Bijector) -> Bijector:
    # Vector variants keep the suite cheap: an MLP conditioner compiles much faster than a conv net.
    return bij._replace(event_ndims=1)


def _squeeze_actnorm_lu() -> Bijector:
    """A chain: squeeze → actnorm (data-dependent init on the squeezed input) → LU 1×1 conv.

    (The couplings are registered on their own; a full Glow step with a coupling is tested in
    ``tests/flows`` so that the suite compiles no second conv net.)
    """
    return chain(squeeze(), actnorm(), conv1x1_lu())


BIJECTORS: dict[str, Callable[..., Bijector]] = {
    "additive_coupling_vector": lambda **kw: _on_vectors(additive_coupling(
        mask="half", conditioner=mlp_conditioner(hidden=8), **kw)),
    "additive_coupling_checkerboard": lambda **kw: additive_coupling(
        mask="checkerboard", conditioner=conv_conditioner(hidden=8), **kw),
    "affine_coupling": lambda **kw: affine_coupling(
        conditioner=default_conditioner(hidden=8), **kw),
    "affine_coupling_sigmoid_vector": lambda **kw: _on_vectors(affine_coupling(
        mask="half", scale="sigmoid", parity=True, conditioner=mlp_conditioner(hidden=8), **kw)),
    "affine_coupling_tanh_vector": lambda **kw: _on_vectors(affine_coupling(
        mask="half", scale="tanh", conditioner=mlp_conditioner(hidden=8), **kw)),
    "affine_coupling_checkerboard": lambda **kw: affine_coupling(
        mask="checkerboard", conditioner=conv_conditioner(hidden=8), **kw),
    "affine_coupling_vector": lambda **kw: _on_vectors(affine_coupling(
        mask="half", conditioner=mlp_conditioner(hidden=8), **kw)),
    "scale": scale,
    "scale_data_init": lambda: scale(data_init=True),
    "squeeze": squeeze,
    "reverse": reverse,
    "shuffle": shuffle,
    "actnorm": actnorm,
    "conv1x1": conv1x1,
    "conv1x1_lu": conv1x1_lu,
    "logit": logit,
    "chain_squeeze_actnorm_lu": _squeeze_actnorm_lu,
    # Two scanned copies with stacked params (Glow's K steps per level, compiled once).
    "repeat_actnorm_lu": lambda: repeat(chain(actnorm(), conv1x1_lu()), 2),
    "reshape_flatten": lambda: reshape((4, 4, 2), (32,)),
}

__all__ = ["BIJECTORS"]
