"""The environment of the processes the tests launch: CLI runs and notebook kernels."""

from __future__ import annotations

import os

# A launched process is one whole program run whose cost is mostly XLA:CPU compiles. XLA's older
# elemental emitters compile faster than its fusion emitters (the 9105 probe's ``fast_compile``
# uses them too); on top of conftest.py's ``--xla_backend_optimization_level=0`` they take the two
# notebook tests from 32 s to 23 s of CPU, and the two CLI tests from 20 s to 17 s. The in-process
# suite keeps the default emitters: some of its tests assert bit-equality between two different
# programs (guidance at gamma = 0 is the unguided model, a NaN-injecting training run equals a
# clean one up to the NaN), which holds with the fusion emitters and is an ulp off with the
# elemental ones. Nothing a CLI run or a notebook kernel computes is compared bit for bit with
# another program. An XLA without the flag would refuse to start: drop it here then.
_EMITTERS_FLAG = "xla_cpu_use_fusion_emitters"


def launched_xla_flags() -> str:
    """This process's ``XLA_FLAGS`` with the elemental emitters, unless the flag is already set."""
    flags = os.environ.get("XLA_FLAGS", "")
    return flags if _EMITTERS_FLAG in flags else f"{flags} --{_EMITTERS_FLAG}=false".strip()


def launched_env(**overrides: str) -> dict[str, str]:
    """``os.environ`` with :func:`launched_xla_flags` and ``overrides``, for ``subprocess``."""
    return dict(os.environ, XLA_FLAGS=launched_xla_flags(), **overrides)
