"""Flax NNX building blocks shared by the model families, and the module <-> pure-pytree bridge."""

from kexue_jax.nn.classifier import Classifier
from kexue_jax.nn.conv import ConvDecoder, ConvEncoder
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.mlp import MLP
from kexue_jax.nn.time_mlp import TimeMLP
from kexue_jax.nn.transformer import TransformerConfig, TransformerLM
from kexue_jax.nn.unet import UNet, UNetConfig, timestep_embedding

__all__ = [
    "MLP",
    "Classifier",
    "ConvDecoder",
    "ConvEncoder",
    "TimeMLP",
    "TransformerConfig",
    "TransformerLM",
    "UNet",
    "UNetConfig",
    "merge_module",
    "split_module",
    "timestep_embedding",
]
