"""Suite-wide settings: hypothesis profiles and a quiet, CPU-only JAX with a compilation cache."""

from __future__ import annotations

import os
import shutil
import tempfile

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


# Many tests build a program they have built before from fresh closures, which XLA compiles again:
# every train() call jits its own step, eval, sample and figures, and the engine and resume tests
# train the same config several times. A compilation cache private to this process and this
# session serves the repeats (measured: tests/train/test_engine.py and the flow actnorm resume
# test, 43 s -> 27 s of CPU). The same HLO under the same flags compiles to the same
# executable, so no checked value changes. Compiles under 0.05 s are not written: a hypothesis
# example rarely repeats, and writing them all costs more than it saves. Processes the tests
# launch do not use the cache (two writers of one entry could leave a reader half a file).
_XLA_CACHE_DIR: str | None = None


def pytest_configure(config):  # noqa: ARG001 - pytest hook signature
    global _XLA_CACHE_DIR
    import jax

    if jax.config.jax_compilation_cache_dir:  # the user's own cache
        return
    _XLA_CACHE_DIR = tempfile.mkdtemp(prefix="kexue-jax-test-xla-cache-")
    jax.config.update("jax_compilation_cache_dir", _XLA_CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)


def pytest_unconfigure(config):  # noqa: ARG001 - pytest hook signature
    if _XLA_CACHE_DIR is not None:
        shutil.rmtree(_XLA_CACHE_DIR, ignore_errors=True)
