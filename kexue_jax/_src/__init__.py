"""Shared internals: typing aliases, validation, keys, float32 numerics, test helpers."""
