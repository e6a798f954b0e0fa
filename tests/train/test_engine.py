"""Engine invariants: exact resume, NaN guard, corrupt checkpoints, 1 vs 8 devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax._src.testing import assert_tree_allclose
from kexue_jax.train import NonFiniteError, read_metrics, request_stop, train
from kexue_jax.train.metrics_log import MetricsWriter
from kexue_jax.train.checkpoint import Checkpointer

from tests.train.tiny import tiny_config

REPO = Path(__file__).resolve().parents[2]


def _leaves_equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_writes_metrics_checkpoints_and_grids(tmp_path):
    result = train(tiny_config(), tmp_path)
    assert int(result.state.step) == 20
    train_lines = read_metrics(tmp_path / "metrics.jsonl", "train")
    eval_lines = read_metrics(tmp_path / "metrics.jsonl", "eval")
    assert [r["step"] for r in train_lines] == [5, 10, 15, 20]
    assert [r["step"] for r in eval_lines] == [10, 20]
    assert all(np.isfinite(r["loss"]) for r in train_lines)
    # softmax regression on digits learns: eval NLL well below log(10)
    assert eval_lines[-1]["nll"] < 0.8 * np.log(10)
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_0000010.png", "step_0000020.png"]
    assert Checkpointer(tmp_path / "checkpoints").all_steps() == [10, 20]
    assert json.loads((tmp_path / "config.json").read_text())["task"] == "tiny"


def test_resume_equals_uninterrupted_run(tmp_path):
    full = train(tiny_config(), tmp_path / "full")
    first = train(tiny_config(), tmp_path / "resumed", stop_after=15)
    assert int(first.state.step) == 15
    second = train(tiny_config(), tmp_path / "resumed")
    assert second.resumed_from == 15
    _leaves_equal(full.state, second.state)
    full_lines = read_metrics(tmp_path / "full" / "metrics.jsonl")
    resumed_lines = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in rs]  # noqa: E731
    assert strip(full_lines) == strip(resumed_lines)


def test_stop_request_checkpoints_the_step_in_flight_and_resume_is_exact(tmp_path, monkeypatch):
    assert request_stop() is False  # no loop is running: a signal handler must interrupt itself
    full = train(tiny_config(), tmp_path / "full")
    write = MetricsWriter.write

    def write_then_signal(self, step, split, values):  # a SIGTERM arriving while step 5 is logged
        write(self, step, split, values)
        if step == 5:
            assert request_stop() is True
            assert request_stop() is False  # a second signal interrupts at once

    monkeypatch.setattr(MetricsWriter, "write", write_then_signal)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(), tmp_path / "stopped")
    monkeypatch.undo()
    assert Checkpointer(tmp_path / "stopped" / "checkpoints").all_steps() == [5]
    resumed = train(tiny_config(), tmp_path / "stopped")
    assert resumed.resumed_from == 5
    _leaves_equal(full.state, resumed.state)


def test_the_last_step_is_checkpointed_before_its_sample_grids(tmp_path, monkeypatch):
    """Sampling at the end of a run (minutes of a 1,000-step sampler) must not put the trained step at
    risk: a failure while drawing the final grids leaves the final checkpoint written."""
    from kexue_jax.train import loop

    def failing_grids(run, state, step):
        raise RuntimeError(f"sampler failed at step {step}")

    monkeypatch.setattr(loop, "write_grids", failing_grids)
    with pytest.raises(RuntimeError, match="step 10"):
        train(tiny_config(steps=10, sample_every=0, checkpoint_every=0), tmp_path)
    assert Checkpointer(tmp_path / "checkpoints").all_steps() == [10]


def test_resume_drops_metrics_written_after_the_last_checkpoint(tmp_path):
    train(tiny_config(), tmp_path, stop_after=15)
    with (tmp_path / "metrics.jsonl").open("a") as f:  # as if the run died after logging step 17
        f.write(json.dumps({"step": 17, "split": "train", "loss": 123.0}) + "\n")
    train(tiny_config(), tmp_path)
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert steps == [5, 10, 15, 20]


def test_nan_stops_run_names_step_and_keeps_last_good_checkpoint(tmp_path):
    config = tiny_config(steps=40)
    config.model.nan_at = 13  # the 14th update (state.step == 13) produces NaN
    with pytest.raises(NonFiniteError) as info:
        train(config, tmp_path)
    assert info.value.step == 13
    assert info.value.last_checkpoint == 10
    assert "step 13" in str(info.value)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.all_steps() == [10]
    good = train(tiny_config(steps=40), tmp_path / "reference", stop_after=10)  # same schedule
    restored = ckpt.restore(10, good.state)
    _leaves_equal(restored.params, good.state.params)
    for leaf in jax.tree.leaves(restored):
        if np.issubdtype(np.asarray(leaf).dtype, np.floating):
            assert np.all(np.isfinite(leaf))


def _corrupt(step_dir: Path) -> None:
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert files, f"no files in {step_dir}"
    for p in files:
        p.write_bytes(b"\x00garbage" * 3)


def test_corrupt_latest_checkpoint_is_reported_and_previous_used(tmp_path, caplog):
    train(tiny_config(steps=30), tmp_path, stop_after=20)
    _corrupt(tmp_path / "checkpoints" / "20")
    with caplog.at_level("WARNING"):
        result = train(tiny_config(steps=30), tmp_path)
    assert result.resumed_from == 10
    assert any("step 20" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "corrupt").is_dir()
    reference = train(tiny_config(steps=30), tmp_path / "reference")
    _leaves_equal(reference.state, result.state)


def test_one_device_equals_eight_devices(tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        import jax
        assert len(jax.devices()) == 8, jax.devices()
        from kexue_jax.train import make_mesh, read_metrics, train
        from tests.train.tiny import tiny_config
        out = {{}}
        for n in (1, 8):
            train(tiny_config(steps=15, ema_decay=0.0), {str(tmp_path)!r} + f"/d{{n}}", mesh=make_mesh(n))
            out[n] = [r["loss"] for r in read_metrics({str(tmp_path)!r} + f"/d{{n}}/metrics.jsonl", "train")]
        bad = tiny_config()
        bad.data.batch_size = 30
        try:
            train(bad, {str(tmp_path)!r} + "/bad", mesh=make_mesh(8))
        except ValueError as e:
            out["error"] = str(e)
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(losses["1"]) == 3
    np.testing.assert_allclose(losses["1"], losses["8"], rtol=1e-5, atol=1e-6)
    assert "data.batch_size" in losses["error"] and "30" in losses["error"] and "8 devices" in losses["error"]


def test_interval_not_multiple_of_log_every_raises(tmp_path):
    with pytest.raises(ValueError, match="train.checkpoint_every"):
        train(tiny_config(checkpoint_every=7), tmp_path)


def test_ema_follows_its_recursion(tmp_path):
    """ema_{n+1} = d_n * ema_n + (1 - d_n) * params_{n+1}, d_n = min(d, (1 + n)/(10 + n)), checked over
    real steps of the step fn: in the warm-up (n = 1) and after it (n = 40)."""
    from kexue_jax.train.loop import initial_state, setup
    from kexue_jax.train.mesh import shard_batch
    from kexue_jax.train.step import ema_decay_at, make_train_step

    config = tiny_config(ema_decay=0.75)
    run = setup(config, tmp_path)
    state = initial_state(run)
    step = make_train_step(run.task, run.optimizer, mesh=run.mesh, ema_decay=0.75, donate=False)
    s1, _ = step(state, shard_batch(run.batcher.batch_at(0), run.mesh))
    for n, decay in ((1, 2.0 / 11.0), (40, 0.75)):
        s1 = s1._replace(step=jnp.asarray(n, jnp.int32))
        s2, _ = step(s1, shard_batch(run.batcher.batch_at(1), run.mesh))
        assert float(ema_decay_at(n, 0.75)) == pytest.approx(decay, rel=1e-6)
        expected = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * p, s1.ema_params, s2.params)
        assert_tree_allclose(s2.ema_params, expected, rtol=1e-6, atol=1e-7)
        assert not np.allclose(np.asarray(s2.ema_params["w1"]), np.asarray(s2.params["w1"]))
    run.checkpointer.close()


def test_ema_of_a_short_run_forgets_the_initial_parameters(tmp_path):
    """With d = 0.999 a constant-decay EMA would still be 98% the initialisation after 20 steps; the
    warmed-up one sits among the recent iterates: closer to the final parameters than to the init."""
    from kexue_jax.train.loop import initial_state, setup

    config = tiny_config(steps=20, ema_decay=0.999)
    run = setup(config, tmp_path / "init")
    init = initial_state(run).params
    run.checkpointer.close()
    final = train(config, tmp_path / "run").state
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    ema, params, start = flat(final.ema_params), flat(final.params), flat(init)
    assert np.linalg.norm(ema - params) < 0.5 * np.linalg.norm(ema - start)


def test_low_precision_params_are_refused():
    import jax.numpy as jnp
    import optax

    from kexue_jax.train.state import create_train_state

    params = {"dense": {"kernel": jnp.zeros((2, 3), jnp.bfloat16)}}
    with pytest.raises(ValueError, match=r"params\['dense'\]\['kernel'\]: parameters must be float32.*bfloat16"):
        create_train_state(params, {}, optax.adam(1e-3), use_ema=False, key=jax.random.key(0))
    state = create_train_state(jax.tree.map(lambda x: x.astype(jnp.float32), params), {}, optax.adam(1e-3),
                               use_ema=True, key=jax.random.key(0))
    assert state.ema_params["dense"]["kernel"].dtype == jnp.float32


def test_repeated_evaluation_and_grids_compile_once(tmp_path):
    from kexue_jax.train.loop import evaluate, initial_state, setup, write_grids

    run = setup(tiny_config(), tmp_path)
    state = initial_state(run)
    first = evaluate(run, state)
    second = evaluate(run, state)
    assert first == second  # fixed evaluation keys: evaluation is deterministic
    write_grids(run, state, 1)
    write_grids(run, state, 2)
    # digits' test split (355) in batches of 100: one shape for full batches, one for the last
    assert run._compiled["eval"]._cache_size() == 2
    assert run._compiled["sample"]._cache_size() == 1
    run.checkpointer.close()


def test_async_checkpoints_resume_exactly(tmp_path):
    """Orbax's background writes must not race the donated state buffers of the next steps."""
    full = train(tiny_config(), tmp_path / "sync")
    train(tiny_config(async_checkpoints=True), tmp_path / "async", stop_after=15)
    resumed = train(tiny_config(async_checkpoints=True), tmp_path / "async")
    assert resumed.resumed_from == 15
    _leaves_equal(full.state, resumed.state)


def test_engine_settings_have_defaults_and_can_be_overridden():
    from kexue_jax.train.config import TRAIN_DEFAULTS, load_config

    config = load_config("vae-mnist5k", overrides=["train.async_checkpoints=True", "train.num_devices=1"])
    assert config.train.async_checkpoints is True and config.train.num_devices == 1
    assert set(TRAIN_DEFAULTS) <= set(config.train)
