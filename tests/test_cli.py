"""The command line, run as a user would: in a subprocess.

Each test starts one fresh process (the entry point, its imports and registries as a user gets
them); the commands that follow it in the same work directory call ``main`` in-process, which runs
the same code without paying a second interpreter start, import and data load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kexue_jax.cli import main
from kexue_jax.train import read_metrics

from tests.launched_process import launched_env

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = launched_env(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "kexue_jax.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


def _main(*args: str, capsys) -> tuple[int, str]:
    """``main(args)`` in this process: its exit code and the last line it printed (its JSON)."""
    code = main(list(args))
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, lines[-1] if lines else captured.err[-4000:]


@pytest.mark.subprocess
def test_train_smoke_then_eval_and_sample(tmp_path, capsys):
    workdir = tmp_path / "run"
    proc = _cli("train", "vae-mnist5k", "--smoke", "--workdir", str(workdir), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["step"] == 20
    assert {"elbo_nats", "bpd"} <= set(out["eval"])
    records = read_metrics(workdir / "metrics.jsonl", "train")
    assert records and all(r["loss"] == r["loss"] for r in records)  # present and not NaN
    assert (workdir / "checkpoints" / "20").is_dir()
    assert list((workdir / "samples").glob("step_*.png"))
    assert {p.name.split("_")[0] for p in (workdir / "figures").glob("*.png")} >= {"reconstructions", "interpolation"}

    code, last = _main("eval", "vae-mnist5k", "--smoke", "--workdir", str(workdir), capsys=capsys)
    assert code == 0, last
    evaluated = json.loads(last)
    assert evaluated["step"] == 20
    assert abs(evaluated["eval"]["elbo_nats"] - out["eval"]["elbo_nats"]) < 1e-3 * abs(out["eval"]["elbo_nats"])
    # --step names a checkpoint; one that is not there is a clear error listing those that are.
    code, last = _main("eval", "vae-mnist5k", "--smoke", "--workdir", str(workdir), "--step", "20", capsys=capsys)
    assert code == 0 and json.loads(last)["step"] == 20, last
    code, last = _main("eval", "vae-mnist5k", "--smoke", "--workdir", str(workdir), "--step", "7", capsys=capsys)
    assert code == 2 and "step: no checkpoint at step 7" in last and "holds steps [10, 20]" in last, last

    png = tmp_path / "s.png"
    code, last = _main("sample", "vae-mnist5k", "--smoke", "--workdir", str(workdir), "--num", "9", "--out", str(png),
                       capsys=capsys)
    assert code == 0, last
    assert png.stat().st_size > 100


def test_list_names_the_experiment_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vae-mnist5k" in out and "mnist5k" in out and "vae" in out


def test_unknown_experiment_and_bad_override_are_clear_errors(tmp_path, capsys):
    assert main(["train", "no-such-experiment", "--workdir", str(tmp_path)]) == 2
    assert "unknown experiment 'no-such-experiment'" in capsys.readouterr().err
    assert main(["train", "vae-mnist5k", "--workdir", str(tmp_path), "train.no_such_key=3"]) == 2
    assert "unknown config key 'train.no_such_key'" in capsys.readouterr().err


def test_eval_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "vae-mnist5k", "--smoke", "--workdir", str(tmp_path)]) == 2
    assert "no checkpoint found" in capsys.readouterr().err


@pytest.mark.subprocess
def test_sigterm_checkpoints_the_newest_step_and_the_run_resumes(tmp_path, capsys):
    import signal
    import time

    workdir = tmp_path / "run"
    env = launched_env(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    args = ["train", "vae-mnist5k", "--workdir", str(workdir), "--steps", "100000", "train.log_every=10",
            "train.checkpoint_every=100000", "train.eval_every=0", "train.sample_every=0", "model.iwae_samples=2"]
    proc = subprocess.Popen([sys.executable, "-m", "kexue_jax.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(read_metrics(workdir / "metrics.jsonl", "train")) < 3:
            time.sleep(0.5)
        assert len(read_metrics(workdir / "metrics.jsonl", "train")) >= 3, "training never logged"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "saved a checkpoint at step" in err
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    logged = max(r["step"] for r in read_metrics(workdir / "metrics.jsonl", "train"))
    assert steps and steps[-1] >= logged >= 30  # nothing that was logged is lost
    code, last = _main(*args, "--stop-after", "10", capsys=capsys)  # the same command, resumed
    assert code == 0, last
    assert json.loads(last)["step"] == steps[-1] + 10
