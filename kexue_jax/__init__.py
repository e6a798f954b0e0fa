"""kexue_jax: the generative models and Transformer techniques of kexue.fm, in JAX.

Pure functions live in the family subpackages (``data``, ``likelihoods``, ``latent``, ``metrics``,
``optim``, ...); Flax NNX shells in ``nn`` and the assembled models; the training engine in
``train``; the command line in ``cli``. Subpackages are imported on use: ``import kexue_jax`` is
cheap.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "attention",
    "data",
    "diffusion",
    "flows",
    "latent",
    "likelihoods",
    "metrics",
    "nn",
    "optim",
    "position",
    "train",
)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kexue_jax.{name}")
    raise AttributeError(f"module 'kexue_jax' has no attribute {name!r}")


__all__ = ["__version__", *_SUBPACKAGES]
