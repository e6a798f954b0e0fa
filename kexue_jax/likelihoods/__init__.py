"""Per-element log-likelihoods in float32 nats (pure JAX, no Flax).

Every function returns the log-probability (or log-density) of each scalar; sum over the event
axes (``kexue_jax._src.numerics.sum_except_batch``) for nats per example and pass that to
:func:`kexue_jax.metrics.bits_per_dim`.
"""

from kexue_jax.likelihoods.bernoulli import bernoulli_log_prob, bernoulli_mean
from kexue_jax.likelihoods.discretized_gaussian import discretized_gaussian_log_prob
from kexue_jax.likelihoods.discretized_logistic import (
    discretized_logistic_log_prob,
    discretized_logistic_mean,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_sample,
)
from kexue_jax.likelihoods.gaussian import gaussian_kl, gaussian_log_prob, standard_normal_kl

__all__ = [
    "bernoulli_log_prob",
    "bernoulli_mean",
    "discretized_gaussian_log_prob",
    "discretized_logistic_log_prob",
    "discretized_logistic_mean",
    "discretized_logistic_mixture_log_prob",
    "discretized_logistic_sample",
    "gaussian_kl",
    "gaussian_log_prob",
    "standard_normal_kl",
]
