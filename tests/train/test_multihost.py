"""Two processes on this machine, joined by ``jax.distributed`` (CPU collectives over gloo), train
the same run as one process: the multi-host path of the engine (per-process batch shares,
``make_array_from_process_local_data``, replicated state, orbax from every process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kexue_jax.train import read_metrics, train

from tests.train.tiny import tiny_config

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, sys
    pid, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    sys.path.insert(0, {repo!r})
    from kexue_jax.train import train
    from tests.train.tiny import tiny_config
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    result = train(tiny_config(steps=10, ema_decay=0.0), workdir)
    print("RESULT " + json.dumps(result.eval_metrics), flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("{repo!r}", repr(str(REPO))))
    port = str(_free_port())
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    procs = [
        subprocess.Popen([sys.executable, str(script), str(pid), port, str(tmp_path / "multi")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for pid in (0, 1)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-4000:]
            outs.append(out)
    finally:
        for p in procs:
            p.kill()
    evals = [json.loads(line[len("RESULT "):]) for out in outs for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(evals) == 2 and evals[0] == evals[1]  # both hosts see the same evaluation

    single = train(tiny_config(steps=10, ema_decay=0.0), tmp_path / "single")
    multi_losses = [r["loss"] for r in read_metrics(tmp_path / "multi" / "metrics.jsonl", "train")]
    single_losses = [r["loss"] for r in read_metrics(tmp_path / "single" / "metrics.jsonl", "train")]
    assert len(multi_losses) == 2
    np.testing.assert_allclose(multi_losses, single_losses, rtol=1e-5, atol=1e-6)
    for k, v in single.eval_metrics.items():
        np.testing.assert_allclose(evals[0][k], v, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "multi" / "checkpoints" / "10").is_dir()
