"""The registry of samplers, each behind one signature ``sample(model, shape, *, num_steps, key)``.

``model`` is a :class:`ModelFns` bundle holding both a discrete model (``schedule``, ``eps_fn``)
and a continuous one (``sde``, ``score_fn``); each sampler takes what it needs. The shared suite
``tests/suites/test_samplers.py`` runs every check (Gaussian mean and covariance with the exact
score, eager = jit = vmap, a 1000-step sampler compiling as fast as a 10-step one) over every
entry, so a sampler registered here is tested for free.

DDIM with $\\eta = 1$ is not a separate entry: it is ``ddpm_small`` step for step (same draws,
same means and variances; ``tests/diffusion/test_ddim_ddpm.py`` checks the equality).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.diffusion.samplers.ddim import ddim_sample
from kexue_jax.diffusion.samplers.ddpm import ddpm_sample
from kexue_jax.diffusion.samplers.euler_maruyama import euler_maruyama_sample
from kexue_jax.diffusion.samplers.ode import ode_sample, ode_sample_adaptive
from kexue_jax.diffusion.samplers.pc import pc_sample
from kexue_jax.diffusion.schedules import DiscreteSchedule
from kexue_jax.diffusion.sde import SDE


class ModelFns(NamedTuple):
    """A model in both parameterisations.

    Attributes:
        schedule: the discrete training schedule.
        eps_fn: $\\varepsilon_\\theta(x, t)$ with ``int32 t [b]``.
        sde: the continuous forward SDE.
        score_fn: $s_\\theta(x, t)$ with float32 ``t [b]``.
    """

    schedule: DiscreteSchedule
    eps_fn: Callable[[Array, Array], Array]
    sde: SDE
    score_fn: Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    Attributes:
        sample: ``(model, shape, *, num_steps, key) -> [b, ...]``.
        stochastic: whether the path after the prior draw uses randomness.
        fixed_steps: whether ``num_steps`` sets the work (False for adaptive solvers).
    """

    sample: Callable[..., Array]
    stochastic: bool
    fixed_steps: bool = True

    def __call__(self, model: ModelFns, shape: tuple[int, ...], *, num_steps: int, key: PRNGKey) -> Array:
        return self.sample(model, shape, num_steps=num_steps, key=key)


SAMPLERS: dict[str, Sampler] = {
    "ddpm_large": Sampler(
        lambda m, shape, *, num_steps, key: ddpm_sample(
            m.eps_fn, m.schedule, shape, num_steps=num_steps, sigma="large", key=key),
        stochastic=True),
    "ddpm_small": Sampler(
        lambda m, shape, *, num_steps, key: ddpm_sample(
            m.eps_fn, m.schedule, shape, num_steps=num_steps, sigma="small", key=key),
        stochastic=True),
    "ddim": Sampler(
        lambda m, shape, *, num_steps, key: ddim_sample(
            m.eps_fn, m.schedule, shape, num_steps=num_steps, eta=0.0, key=key),
        stochastic=False),
    "euler_maruyama": Sampler(
        lambda m, shape, *, num_steps, key: euler_maruyama_sample(
            m.sde, m.score_fn, shape, num_steps=num_steps, key=key),
        stochastic=True),
    "pc": Sampler(
        lambda m, shape, *, num_steps, key: pc_sample(
            m.sde, m.score_fn, shape, num_steps=num_steps, key=key),
        stochastic=True),
    "ode_heun": Sampler(
        lambda m, shape, *, num_steps, key: ode_sample(
            m.sde, m.score_fn, shape, num_steps=num_steps, method="heun", key=key),
        stochastic=False),
    "ode_tsit5": Sampler(
        lambda m, shape, *, num_steps, key: ode_sample_adaptive(
            m.sde, m.score_fn, shape, solver="tsit5", key=key),
        stochastic=False, fixed_steps=False),
}
