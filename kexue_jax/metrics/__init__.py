"""Evaluation metrics shared by every model family."""

from kexue_jax.metrics.batched import apply_in_batches
from kexue_jax.metrics.bits_per_dim import bits_per_dim
from kexue_jax.metrics.frechet import feature_statistics, frechet_distance
from kexue_jax.metrics.inception import (
    extract_features,
    fid,
    fid_from_features,
    inception_activations,
    inception_features,
    inception_params_from_state_dict,
    load_inception_params,
    preprocess_images,
    random_inception_params,
    random_inception_state_dict,
    read_torch_state_dict,
    resize_bilinear,
)
from kexue_jax.metrics.sample_distance import mmd, sliced_wasserstein

__all__ = [
    "apply_in_batches",
    "bits_per_dim",
    "extract_features",
    "feature_statistics",
    "fid",
    "fid_from_features",
    "frechet_distance",
    "inception_activations",
    "inception_features",
    "inception_params_from_state_dict",
    "load_inception_params",
    "mmd",
    "preprocess_images",
    "random_inception_params",
    "random_inception_state_dict",
    "read_torch_state_dict",
    "resize_bilinear",
    "sliced_wasserstein",
]
