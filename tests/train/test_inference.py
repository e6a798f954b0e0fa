"""load_for_inference restores into an abstract (eval_shape) target exactly what an eager fresh state would receive."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from kexue_jax.train import load_for_inference, loop, train
from kexue_jax.train.loop import abstract_state, initial_state, setup
from tests.diffusion.engine_config import engine_config_2d
from tests.train.tiny import tiny_config


def _signature(state):
    return jax.tree.map(lambda a: (tuple(a.shape), np.dtype(a.dtype), a.sharding), state)


def _assert_same_state(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert _signature(a) == _signature(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    config = tiny_config(steps=20)  # checkpoints at 10 and 20, EMA 0.9, model_state {"count"}
    result = train(config, workdir)
    return config, workdir, result


def test_load_for_inference_equals_a_restore_into_a_fresh_state(trained, monkeypatch):
    config, workdir, result = trained
    eager_run = setup(config, workdir)
    step, eager = eager_run.checkpointer.restore_latest(initial_state(eager_run))  # the former way
    eager_run.checkpointer.close()

    # No fresh state is computed: the checkpoint goes into jax.eval_shape's abstract target.
    def no_eager_init(run):
        raise AssertionError("load_for_inference ran an eager init")

    monkeypatch.setattr(loop, "initial_state", no_eager_init)
    run, state, got_step = load_for_inference(config, workdir)
    run.checkpointer.close()
    assert got_step == step == 20
    _assert_same_state(state, eager)
    _assert_same_state(state, result.state)
    assert state.ema_params is not None and int(state.model_state["count"]) == 20


def test_abstract_state_has_the_fresh_states_structure_shapes_dtypes_and_shardings(tmp_path):
    for ema in (0.9, 0.0):
        run = setup(tiny_config(steps=20, ema_decay=ema), tmp_path / str(ema))
        abstract, fresh = abstract_state(run), initial_state(run)
        assert all(isinstance(s, jax.ShapeDtypeStruct) for s in jax.tree.leaves(abstract))
        assert jax.tree.structure(abstract) == jax.tree.structure(fresh)
        assert _signature(abstract) == _signature(fresh)
        assert (abstract.ema_params is None) == (ema == 0.0)


def test_load_for_inference_of_a_2d_diffusion_model_with_model_state(tmp_path):
    # Fourier time features: fixed frequencies kept as model_state.
    c = engine_config_2d({"hidden": (8,), "embed_dim": 4, "time_embedding": "fourier", "num_steps": 20,
                          "sampler_steps": 5, "num_classes": 2, "labels": "angular_sector", "eval_points": 50,
                          "num_figure_samples": 16, "plot_resolution": 8},
                         data="moons", batch_size=64, eval_batch_size=200, steps=3, log_every=3,
                         checkpoint_every=3, ema_decay=0.5)
    run = setup(c, tmp_path)
    run.checkpointer.save(3, initial_state(run)._replace(step=np.int32(3)))
    run.checkpointer.close()
    eager_run = setup(c, tmp_path)
    _, eager = eager_run.checkpointer.restore_latest(initial_state(eager_run))
    eager_run.checkpointer.close()
    run, state, step = load_for_inference(c, tmp_path)
    run.checkpointer.close()
    assert step == 3 and jax.tree.leaves(state.model_state) and state.ema_params is not None
    _assert_same_state(state, eager)


def test_an_unreadable_newest_checkpoint_is_skipped_as_before(tmp_path):
    config = tiny_config(steps=20)
    train(config, tmp_path)
    for p in (tmp_path / "checkpoints" / "20").rglob("*"):
        if p.is_file() and p.stat().st_size > 0:
            p.write_bytes(b"\x00garbage" * 3)
    run, state, step = load_for_inference(config, tmp_path)
    run.checkpointer.close()
    assert step == 10 and int(state.step) == 10 and (tmp_path / "corrupt").is_dir()


def test_an_unreadable_named_checkpoint_is_a_value_error_naming_the_step(tmp_path):
    config = tiny_config(steps=20)
    train(config, tmp_path)
    for p in (tmp_path / "checkpoints" / "10").rglob("*"):
        if p.is_file() and p.stat().st_size > 0:
            p.write_bytes(b"\x00garbage" * 3)
    with pytest.raises(ValueError, match=r"step: the checkpoint at step 10 .* is unreadable"):
        load_for_inference(config, tmp_path, step=10)
    assert (tmp_path / "checkpoints" / "10").is_dir()  # named explicitly: reported, not quarantined


def test_load_for_inference_without_a_checkpoint_is_a_value_error(tmp_path):

    with pytest.raises(ValueError, match="workdir: no checkpoint found"):
        load_for_inference(tiny_config(steps=20), tmp_path)


def test_load_for_inference_of_a_named_step_takes_that_checkpoint_and_names_missing_ones(trained):
    config, workdir, result = trained
    run, state, step = load_for_inference(config, workdir, step=10)
    run.checkpointer.close()
    newest_run, newest, _ = load_for_inference(config, workdir)
    newest_run.checkpointer.close()
    assert step == 10 and int(state.step) == 10 and int(newest.step) == 20
    # The earlier checkpoint is really another state, not the newest relabelled.
    assert not np.array_equal(np.asarray(jax.tree.leaves(state.params)[0]), np.asarray(jax.tree.leaves(newest.params)[0]))
    _assert_same_state(newest, result.state)
    with pytest.raises(ValueError, match=r"step: no checkpoint at step 15 .* holds steps \[10, 20\]"):
        load_for_inference(config, workdir, step=15)
