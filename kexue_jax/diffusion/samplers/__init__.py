"""Samplers: DDPM ancestral, DDIM, Euler–Maruyama, predictor–corrector, probability-flow ODE.

Every loop over steps is one ``lax.scan`` (or a diffrax solve): no Python loop, no host round trip.
"""

from kexue_jax.diffusion.samplers.ddim import ddim_decode, ddim_encode, ddim_sample
from kexue_jax.diffusion.samplers.ddpm import ddpm_sample
from kexue_jax.diffusion.samplers.euler_maruyama import (
    euler_maruyama,
    euler_maruyama_sample,
    euler_maruyama_step,
)
from kexue_jax.diffusion.samplers.ode import (
    ode_sample,
    ode_sample_adaptive,
    odeint_adaptive,
    odeint_fixed,
)
from kexue_jax.diffusion.samplers.pc import langevin_step, pc_sample
from kexue_jax.diffusion.samplers.registry import SAMPLERS, ModelFns, Sampler

__all__ = [
    "SAMPLERS",
    "ModelFns",
    "Sampler",
    "ddim_decode",
    "ddim_encode",
    "ddim_sample",
    "ddpm_sample",
    "euler_maruyama",
    "euler_maruyama_sample",
    "euler_maruyama_step",
    "langevin_step",
    "ode_sample",
    "ode_sample_adaptive",
    "odeint_adaptive",
    "odeint_fixed",
    "pc_sample",
]
