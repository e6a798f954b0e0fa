"""Diffusion models, pure core: schedules, SDEs, losses, samplers, likelihood and guidance.

Model functions are plain callables, ``eps_fn(x, t)`` with ``int32 t [b]`` (discrete) or
``score_fn(x, t)`` with float32 ``t [b]`` (continuous), so any network plugs in. No Flax here: the
engine tasks (``DiffusionConfig``, ``make_diffusion_task``, ``ClassifierConfig``,
``make_classifier_task``) are imported on first access from :mod:`.diffusion_model` and
:mod:`.classifier_model`.

References:
    Su Jianlin's diffusion series, https://kexue.fm/archives/9119 onwards.
"""

import importlib
from typing import Any

from kexue_jax.diffusion.divergence import divergence_exact, divergence_hutchinson, sample_probes
from kexue_jax.diffusion.gaussian import gaussian_eps_fn, gaussian_log_prob, gaussian_score_fn
from kexue_jax.diffusion.guidance import (
    check_labels,
    classifier_free_eps,
    classifier_guided_eps,
    classifier_guided_score,
    drop_labels,
)
from kexue_jax.diffusion.likelihood import ODELikelihood, ode_bits_per_dim, ode_log_prob
from kexue_jax.diffusion.losses import ddpm_loss, dsm_loss
from kexue_jax.diffusion.parameterization import (
    eps_fn_to_score_fn,
    eps_from_prediction,
    eps_from_v,
    eps_from_x0,
    score_from_eps,
    v_target,
    x0_from_eps,
)
from kexue_jax.diffusion.posterior import (
    marginal_coeffs,
    predict_x0_from_eps,
    q_posterior,
    q_sample,
)
from kexue_jax.diffusion.sample_quality import (
    apply_in_batches,
    classifier_frechet_distance,
    conditional_accuracy,
    quantize_pixels,
)
from kexue_jax.diffusion.samplers import (
    SAMPLERS,
    ModelFns,
    Sampler,
    ddim_decode,
    ddim_encode,
    ddim_sample,
    ddpm_sample,
    euler_maruyama,
    euler_maruyama_sample,
    euler_maruyama_step,
    langevin_step,
    ode_sample,
    ode_sample_adaptive,
    odeint_adaptive,
    odeint_fixed,
    pc_sample,
)
from kexue_jax.diffusion.schedules import (
    DiscreteSchedule,
    cosine_schedule,
    linear_schedule,
    respace,
    respaced_timesteps,
    schedule_from_betas,
    su_schedule,
)
from kexue_jax.diffusion.sde import (
    SDE,
    VESDE,
    VPSDE,
    ProbabilityFlow,
    ReverseSDE,
    SubVPSDE,
    probability_flow,
    reverse_sde,
)
from kexue_jax.diffusion.vlb import VLB, elbo_bits_per_dim, model_log_variance, vlb_terms

_LAZY = {
    "DiffusionConfig": "kexue_jax.diffusion.diffusion_model",
    "make_diffusion_task": "kexue_jax.diffusion.diffusion_model",
    "ClassifierConfig": "kexue_jax.diffusion.classifier_model",
    "make_classifier_task": "kexue_jax.diffusion.classifier_model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kexue_jax.diffusion' has no attribute {name!r}")


__all__ = [
    "ClassifierConfig",
    "DiffusionConfig",
    "SAMPLERS",
    "SDE",
    "VESDE",
    "VLB",
    "VPSDE",
    "DiscreteSchedule",
    "ModelFns",
    "ODELikelihood",
    "ProbabilityFlow",
    "ReverseSDE",
    "Sampler",
    "SubVPSDE",
    "apply_in_batches",
    "check_labels",
    "classifier_frechet_distance",
    "classifier_free_eps",
    "classifier_guided_eps",
    "classifier_guided_score",
    "conditional_accuracy",
    "cosine_schedule",
    "ddim_decode",
    "ddim_encode",
    "ddim_sample",
    "ddpm_loss",
    "ddpm_sample",
    "divergence_exact",
    "divergence_hutchinson",
    "drop_labels",
    "dsm_loss",
    "elbo_bits_per_dim",
    "eps_fn_to_score_fn",
    "eps_from_prediction",
    "eps_from_v",
    "eps_from_x0",
    "euler_maruyama",
    "euler_maruyama_sample",
    "euler_maruyama_step",
    "gaussian_eps_fn",
    "gaussian_log_prob",
    "gaussian_score_fn",
    "langevin_step",
    "linear_schedule",
    "make_classifier_task",
    "make_diffusion_task",
    "marginal_coeffs",
    "model_log_variance",
    "ode_bits_per_dim",
    "ode_log_prob",
    "ode_sample",
    "ode_sample_adaptive",
    "odeint_adaptive",
    "odeint_fixed",
    "pc_sample",
    "predict_x0_from_eps",
    "probability_flow",
    "q_posterior",
    "q_sample",
    "quantize_pixels",
    "respace",
    "respaced_timesteps",
    "reverse_sde",
    "sample_probes",
    "schedule_from_betas",
    "score_from_eps",
    "su_schedule",
    "v_target",
    "vlb_terms",
    "x0_from_eps",
]
