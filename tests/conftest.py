"""Suite-wide settings: hypothesis profiles and a quiet, CPU-only JAX."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
