"""The extrapolation protocol (scheme presets, evaluation windows, the table) and the LM task."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.attention.extrapolation import (
    SCHEME_NAMES,
    extrapolation_scheme,
    extrapolation_table,
    extrapolation_windows,
    next_token_accuracy,
)
from kexue_jax.attention.lm_model import lm_config, make_lm_task
from kexue_jax.attention.positional import PositionScheme


def test_scheme_presets_scale_with_the_evaluation_length():
    for name in SCHEME_NAMES:
        at_train = extrapolation_scheme(name, eval_length=512, training_length=512)
        at_8x = extrapolation_scheme(name, eval_length=4096, training_length=512)
        assert at_train.rope_scale == 1.0 and at_train.logn == name.endswith("-logn")
        scaled = name.removesuffix("-logn") in ("pi", "ntk", "ntk-old", "ntk-fixed", "ntk-mixed")
        assert at_8x.rope_scale == (8.0 if scaled else 1.0), name
    assert extrapolation_scheme("local", eval_length=4096, training_length=512).local_window == 512
    rerope = extrapolation_scheme("leaky-rerope-logn", eval_length=4096, training_length=512)
    assert (rerope.rerope_window, rerope.leaky_scale, rerope.logn) == (128, 16.0, True)
    kept = extrapolation_scheme(
        "ntk", eval_length=1024, training_length=512, base=PositionScheme(theta=500.0, bias="alibi")
    )
    assert (kept.theta, kept.bias, kept.rope) == (500.0, "alibi", "ntk_aware")
    # "-logn" keeps a model's trained (unclipped) log n, and is log n† (clipped) on other models
    trained = PositionScheme(logn=True, logn_clip=False)
    assert not extrapolation_scheme("ntk-logn", eval_length=8, training_length=4, base=trained).logn_clip
    assert extrapolation_scheme("ntk-logn", eval_length=8, training_length=4).logn_clip
    assert not extrapolation_scheme("ntk", eval_length=8, training_length=4, base=trained).logn
    with pytest.raises(ValueError, match="name"):
        extrapolation_scheme("xpos", eval_length=8, training_length=4)


def test_windows_are_deterministic_and_repeated_windows_repeat():
    stream = np.arange(1000) % 251
    natural = extrapolation_windows(stream, length=20, num=5, repeated=False)
    assert natural.shape == (5, 21)
    np.testing.assert_array_equal(natural, extrapolation_windows(stream, length=20, num=5, repeated=False))
    for row in natural:  # consecutive tokens of the stream
        assert np.all(np.diff(row) % 251 == 1)
    rep = extrapolation_windows(stream, length=20, num=5, repeated=True)
    assert rep.shape == (5, 21)
    np.testing.assert_array_equal(rep[:, 11:], rep[:, :10])  # span 11, then itself again
    with pytest.raises(ValueError, match="stream"):
        extrapolation_windows(stream[:50], length=20, num=5, repeated=False)
    with pytest.raises(ValueError, match="stream"):
        extrapolation_windows(stream.reshape(10, 100), length=20, num=5, repeated=False)


def test_next_token_accuracy():
    logits = jax.nn.one_hot(jnp.array([[1, 2, 3, 0]]), 4)
    assert float(next_token_accuracy(logits, jnp.array([[1, 2, 0, 0]]))) == 0.75
    with pytest.raises(ValueError, match="logits"):
        next_token_accuracy(logits, jnp.array([1, 2, 3, 0]))


def test_table_of_an_oracle_that_copies_from_half_a_window_back():
    # A "model" that predicts token m + 1 as token m + 1 - span (correct exactly on the second half
    # of repeated windows): the table must report ~1/2 on repeated text and ~0 on natural text.
    stream = (np.arange(5000) * 7919) % 256

    def logits_fn(tokens, scheme):
        t = tokens.shape[1]
        span = (t + 2) // 2
        prev = jnp.roll(tokens, span - 1, axis=1)
        return jax.nn.one_hot(prev, 256) * (jnp.arange(t) >= span - 1)[None, :, None]

    table = extrapolation_table(
        logits_fn, stream, schemes={"copy": lambda n: None}, lengths=(20, 40), num_windows=6, batch_size=4
    )
    for n in ("20", "40"):
        assert 0.4 < table["copy"][n]["repeated"] <= 0.55
        assert table["copy"][n]["non_repeated"] < 0.1


def test_lm_task_loss_metrics_and_config_validation():
    task = make_lm_task(dict(d_model=16, num_layers=1, num_heads=2, scheme=dict(logn=True, training_length=8)))
    batch = {"tokens": jax.random.randint(jax.random.key(0), (2, 9), 0, 256).astype(jnp.uint8)}
    params, state = task.init(batch, key=jax.random.key(1))
    loss_fn = jax.jit(task.loss)
    out = loss_fn(params, state, batch, key=jax.random.key(2))
    # An untrained byte LM is close to uniform: ~log 256 nats.
    assert abs(float(out.loss) - np.log(256)) < 0.5
    assert abs(float(out.metrics["bits_per_token"]) - float(out.loss) / np.log(2)) < 1e-5
    grads = jax.jit(jax.grad(lambda p: task.loss(p, state, batch, key=jax.random.key(2)).loss))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    ev = jax.jit(task.evaluate)(params, state, batch, key=jax.random.key(3))
    np.testing.assert_allclose(ev["loss"], out.loss, rtol=1e-6)
    assert task.extras["scheme"].logn
    # another scheme through extras["logits"]
    lg = task.extras["logits"](params, batch["tokens"][:, :-1].astype(jnp.int32), PositionScheme(rerope_window=2))
    assert lg.shape == (2, 8, 256)
    with pytest.raises(ValueError, match="unknown keys"):
        make_lm_task(dict(d_model=16, widht=3))
    with pytest.raises(ValueError, match="scheme"):
        make_lm_task(dict(d_model=16, num_heads=2, scheme=dict(window=3)))
    with pytest.raises(ValueError, match="batch"):
        task.loss(params, state, {"image": batch["tokens"]}, key=jax.random.key(0))

    class Info:
        num_classes = 300

    with pytest.raises(ValueError, match="vocab_size"):
        lm_config(dict(d_model=16, num_heads=2), Info())
    _, schemes = lm_config(dict(d_model=16, num_heads=2, num_layers=3, hfwa_window=4))
    assert len(schemes) == 3 and schemes[-1].rope is None


def _table_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "length_extrapolation" / "table.py"
    spec = importlib.util.spec_from_file_location("length_extrapolation_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_script_rows_follow_the_trained_scheme():
    table = _table_script()

    class Config:
        class extrapolation:  # noqa: N801 - mimics the ConfigDict section
            rerope_window = 32

    plain = table.rows_for(PositionScheme(training_length=128), None, Config)
    assert tuple(plain) == table.PLAIN_ROWS
    assert plain["ntk"](1024).rope_scale == 8.0 and plain["rerope-logn"](256).logn_clip  # log n†
    trained = table.rows_for(PositionScheme(logn=True, logn_clip=False, training_length=128), None, Config)
    assert tuple(trained) == table.LOGN_ROWS
    assert not trained["rerope-logn"](512).logn_clip and trained["rerope-logn"](512).rerope_window == 32
    hfwa = table.rows_for((PositionScheme(), PositionScheme(rope=None)), None, Config)
    assert list(hfwa) == ["hfwa (as trained)"] and len(hfwa["hfwa (as trained)"](512)) == 2
    picked = table.rows_for(PositionScheme(), ["pi", "local"], Config)
    assert list(picked) == ["pi", "local"]
    md = table.markdown({"pi": {"8": {"repeated": 0.5, "non_repeated": 0.25}}}, (8,))
    assert md.splitlines()[2] == "| pi | 50.00 / 25.00 |"
