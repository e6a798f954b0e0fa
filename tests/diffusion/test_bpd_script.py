"""The resumable test-split ODE bits/dim script of ddpm-mnist5k, in process, on a smoke checkpoint."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from kexue_jax.train import load_config
from kexue_jax.train.loop import initial_state, setup

REPO = Path(__file__).resolve().parents[2]
# A loose solve keeps the untrained smoke UNet's ODE short; the tolerances enter the fingerprint.
LOOSE = ["model.likelihood_rtol=1e-3", "model.likelihood_atol=1e-3"]


def _bpd_module():
    spec = importlib.util.spec_from_file_location("ddpm_mnist5k_bpd", REPO / "experiments/ddpm_mnist5k/bpd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory) -> Path:
    """A smoke checkpoint whose parameters are the initialisation plus noise.

    The UNet's output convolution starts at zero, so at initialisation the score is zero and every
    image gets the same bits/dim to float32 precision; the noise makes the score depend on the image.
    """
    workdir = tmp_path_factory.mktemp("ddpm-mnist5k")
    run = setup(load_config("ddpm-mnist5k", smoke=True), workdir)
    state = initial_state(run)
    leaves, treedef = jax.tree_util.tree_flatten(state.ema_params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [p + 0.05 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys, strict=True)]
    run.checkpointer.save(0, state._replace(ema_params=jax.tree_util.tree_unflatten(treedef, noisy)))
    run.checkpointer.close()
    return workdir


def _run(workdir: Path, out: Path, *args: str) -> dict:
    return _bpd_module().main(["--smoke", "--ddpm-workdir", str(workdir), "--out", str(out), *args, *LOOSE])


@pytest.mark.slow  # about 40 s: three loads of the checkpoint and three compiles of the ODE solve
def test_chunked_calls_give_the_values_of_one_call_and_refuse_another_model(smoke_workdir, tmp_path):
    chunked, whole = tmp_path / "chunked.json", tmp_path / "whole.json"
    _run(smoke_workdir, chunked, "--count", "2", "--batch-size", "2")
    result = _run(smoke_workdir, chunked, "--count", "2", "--batch-size", "2")
    _run(smoke_workdir, whole, "--count", "4", "--batch-size", "2")
    a, b = json.loads(chunked.read_text()), json.loads(whole.read_text())
    # The second call took the next two digits of the seeded order (not the first two again), and each
    # digit got the value of the single call: its dequantization noise depends on its index only, the
    # probes on the batch's first index.
    order = np.random.default_rng(0).permutation(1000)[:4]
    assert sorted(a["bpd"], key=int) == sorted(str(i) for i in order)
    assert sorted(order.tolist()) != [0, 1, 2, 3]  # a random sample of the class-sorted split
    assert a["bpd"] == b["bpd"] and a["fingerprint"] == b["fingerprint"]
    values = np.array(list(a["bpd"].values()))
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert len(set(values.tolist())) == 4  # distinct digits, distinct noise: not one value copied
    assert result["num_digits"] == 4 and result["num_test"] == 1000 and not result["complete"]
    assert math.isclose(result["mean_bpd"], values.mean(), rel_tol=1e-12)
    assert math.isclose(result["std_error"], values.std(ddof=1) / 2.0, rel_tol=1e-12)
    assert result.get("class_balanced_mean_bpd", "absent") is None  # four digits cannot cover ten classes
    # Another seed (other dequantization noise) must not be mixed into the same file.
    before = chunked.read_text()
    with pytest.raises(ValueError, match=r"--out: .*\(differs in \['seed'\]\)"):
        _run(smoke_workdir, chunked, "--count", "1", "--seed", "1")
    assert chunked.read_text() == before


@pytest.mark.parametrize("args, match", [
    (["--count", "-1"], "--count"),
    (["--batch-size", "0"], "--batch-size"),
    (["model.likelihood_rtol"], "overrides"),
])
def test_bpd_script_rejects_bad_arguments_by_name(args, match):
    with pytest.raises(ValueError, match=match):
        _bpd_module().main(args)


def test_summary_balances_classes_and_reports_per_class_means():
    summary = _bpd_module().summary
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # Class 0 over-represented among the digits done (3 of its 4 against 2 of class 1's).
    values = {"0": 1.0, "1": 2.0, "2": 3.0, "4": 10.0, "5": 12.0}
    s = summary(values, 8, labels)
    assert s["num_digits"] == 5 and not s["complete"]
    assert math.isclose(s["mean_bpd"], 28.0 / 5)
    assert s["per_class"] == {"0": {"num_digits": 3, "mean_bpd": 2.0}, "1": {"num_digits": 2, "mean_bpd": 11.0}}
    assert math.isclose(s["class_balanced_mean_bpd"], (2.0 + 11.0) / 2)  # not the plain mean 5.6
    assert math.isclose(s["class_balanced_std_error"], math.sqrt(1.0 / 3 + 2.0 / 2) / 2)
    # A class with fewer than two digits leaves the balanced estimate undefined.
    assert summary({"0": 1.0, "1": 2.0, "4": 10.0}, 8, labels)["class_balanced_mean_bpd"] is None
    full = summary({str(i): float(i) for i in range(8)}, 8, labels)
    assert full["complete"] and math.isclose(full["class_balanced_mean_bpd"], full["mean_bpd"])
