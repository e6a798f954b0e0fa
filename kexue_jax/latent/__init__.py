"""Latent-variable models: the VAE (pure functions in :mod:`.vae`, NNX model and task in
:mod:`.vae_model`).

The pure functions are imported eagerly; the Flax-based model is imported on first access, so
that ``import kexue_jax.latent.vae`` never imports Flax (DESIGN.md: only ``nn/``, ``train/`` and
the assembled models import Flax).
"""

from __future__ import annotations

import importlib
from typing import Any

from kexue_jax.latent.vae import (
    ElboTerms,
    binarize,
    elbo,
    iwae_bound,
    kl_to_standard_normal,
    log_importance_weight,
    prior_path,
    reparameterize,
)

_LAZY = {"VAE": "kexue_jax.latent.vae_model", "VAEConfig": "kexue_jax.latent.vae_model",
         "make_vae_task": "kexue_jax.latent.vae_model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VAE",
    "ElboTerms",
    "VAEConfig",
    "binarize",
    "elbo",
    "iwae_bound",
    "kl_to_standard_normal",
    "log_importance_weight",
    "make_vae_task",
    "prior_path",
    "reparameterize",
]
