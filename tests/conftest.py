"""Suite-wide settings: hypothesis profiles and a quiet, CPU-only JAX."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite is dominated by XLA:CPU compiles of small programs. Skipping LLVM's backend
# optimisations halves them (measured: 215 s -> 112 s for the flow multiscale and VAE model tests)
# and leaves the computation's HLO, hence every checked value, the same; subprocesses (the CLI
# tests) inherit it. Set XLA_FLAGS yourself to test with full optimisation.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=0".strip()

from hypothesis import HealthCheck, settings  # noqa: E402

# deadline=None: the first example of a property compiles with XLA, which takes seconds.
settings.register_profile(
    "ci",
    max_examples=8,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time; `dev` explores new ones
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
