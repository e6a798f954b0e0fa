"""Every experiment config loads, shrinks with --smoke, and runs through the engine.

Embedded-data experiments are run by the CLI test; tensorflow-datasets ones run here under
``tfds.testing.mock_data`` (random examples with the real feature specs), since no dataset can be
downloaded here.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kexue_jax.train import list_experiments, load_config, read_metrics, train
from kexue_jax.train.config import find_experiment

EMBEDDED = {"digits", "mnist5k", "pysrc", "moons", "eight_gaussians", "checkerboard", "spirals", "rings"}


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_config_loads_and_smoke_shrinks_it(name):
    full = load_config(name)
    smoke = load_config(name, smoke=True)
    assert smoke.train.steps <= 20 < full.train.steps or full.train.steps <= 20
    for section in ("data", "model", "optim", "train"):
        assert section in full, f"{name}: config has no {section!r} section"
    readme = find_experiment(name).parent / "README.md"
    assert readme.exists(), f"{name}: every experiment has a README with claim vs measurement"


@pytest.mark.parametrize(
    "name", sorted(n for n in list_experiments() if load_config(n).data.name not in EMBEDDED)
)
def test_tfds_experiment_smoke_runs_under_mock_data(name, tmp_path):
    config = load_config(name, smoke=True)
    config.train.steps = 6
    config.train.log_every = 3
    config.train.eval_every = 6
    config.train.sample_every = 6
    config.train.checkpoint_every = 6
    with tfds.testing.mock_data(num_examples=48):
        result = train(config, tmp_path)
    assert int(result.state.step) == 6
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert result.eval_metrics and all(np.isfinite(v) for v in result.eval_metrics.values())
    assert list((tmp_path / "samples").glob("*.png"))
