"""Probability-flow ODE bits/dim of ddpm-mnist5k on the whole test split, digit by digit, resumable.

Su Jianlin, 生成扩散模型漫谈（十二）：“硬刚”扩散ODE, https://kexue.fm/archives/9280, and Song et
al., *Score-Based Generative Modeling through Stochastic Differential Equations*, ICLR 2021, §4.3
and App. D.2: with the probability-flow drift $\\tilde f(x, t) = f(x, t) - \\tfrac12 g(t)^2
s_\\theta(x, t)$,

$$\\log p_\\epsilon(x) = \\log p_1(x_1) + \\int_\\epsilon^1 \\nabla\\cdot\\tilde f(x_t, t)\\,\\mathrm dt$$

on uniformly dequantized images $2(k + u)/K - 1$ (bin width $2/K$), reported as
$\\mathrm{bpd} = -(\\log p + D\\log(2/K)) / (D\\ln 2)$ with $D = 784$, Tsit5 at the config's
``likelihood_rtol``/``likelihood_atol`` (1e-5 as score_sde), Hutchinson divergence with one
Rademacher probe; the unconditional model (the null label). The model side is
:meth:`kexue_jax.diffusion.diffusion_model.DiffusionModel.bits_per_dim`.

One test digit costs hundreds of UNet calls with their vector-Jacobian products (about 14 s on this
project's 2-core CPU), so the 1,000 test digits take hours. The script therefore works through the
split in chunks: each call takes the next ``--count`` test digits not yet in ``--out``, in a fixed
random order of the split (so the digits done so far are a uniform sample of it; the split itself is
sorted by class), solves them ``--batch-size`` at a time and rewrites ``--out`` (atomically) after
every batch, so a killed run loses at most one batch and the next call goes on. The file holds one
value per digit and a fingerprint of what produced it (the checkpoint step, a SHA-256 of the
parameters, the solver settings); a call whose fingerprint differs refuses to add to it. The summary
has the plain mean with its standard error and, from the labels, per-class means and the
class-balanced mean (an unbiased estimate of the split's mean for any mix of digits done, the split being
balanced).

The dequantization noise of test digit $i$ is drawn from ``fold_in(key(seed), i)``, so a digit
gets the same $u$ whichever chunk it falls in; the probe key is folded in from the batch's first
index. Digits of one batch share the adaptive solver's steps, so a digit's value depends on its
batch-mates within the tolerance.

    python experiments/ddpm_mnist5k/bpd.py --count 100 --out experiments/ddpm_mnist5k/results/ode_bpd_test.json
    python experiments/ddpm_mnist5k/bpd.py --count 0 --out ...      # only print the summary

``--smoke`` loads the ``--smoke`` config; trailing ``key=value`` arguments override the config as
in ``kexue-jax train`` (e.g. ``model.likelihood_rtol=1e-3``; they enter the fingerprint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax.train import load_config, load_for_inference
from kexue_jax.train.state import eval_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="config overrides key=value, as for kexue-jax train")
    p.add_argument("--ddpm", default="ddpm-mnist5k", help="experiment of the diffusion model")
    p.add_argument("--ddpm-workdir", default=None, help="its work directory (default runs/NAME)")
    p.add_argument("--ddpm-step", type=int, default=None, help="its checkpoint (default: the newest)")
    p.add_argument("--count", type=int, default=100, help="test digits to add in this call (0: summary only)")
    p.add_argument("--batch-size", type=int, default=50, help="digits per ODE solve")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default: ode_bpd_test.json in the work directory)")
    p.add_argument("--smoke", action="store_true", help="load the --smoke config")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the bad argument, before anything is loaded."""
    if args.count < 0:
        raise ValueError(f"--count: expected an int >= 0, got {args.count}")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size: expected a positive int, got {args.batch_size}")
    for o in args.overrides:
        if "=" not in o:
            raise ValueError(f"overrides: expected key=value, got {o!r}")


def params_sha256(params) -> str:
    """SHA-256 over the parameter leaves (in tree order, with their paths, shapes and dtypes)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        a = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}:{a.shape}:{a.dtype};".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def summary(values: dict[str, float], num_test: int, labels: np.ndarray | None = None) -> dict:
    """Mean bits/dim over the digits done, its standard error, and the class-balanced mean.

    ``num_test`` is the size of the split; ``labels`` its labels (``None`` if it has none). The
    class-balanced mean $\\frac1K\\sum_c \\bar b_c$ weighs each class's mean equally; on a split
    with equal class counts (mnist5k's test split: 100 per class) it is an unbiased estimate of the
    whole split's mean even when the digits done so far are not spread evenly over the classes. Its
    standard error is $\\frac1K\\sqrt{\\sum_c s_c^2 / n_c}$; both are ``None`` until every class has
    two digits.
    """
    idx = np.asarray([int(k) for k in values], np.int64)
    v = np.asarray(list(values.values()), np.float64)
    n = v.size
    out = {"num_digits": int(n), "num_test": num_test,
           "mean_bpd": float(v.mean()) if n else None,
           "std_error": float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
           "complete": n == num_test}
    if labels is not None:
        classes = np.unique(labels)
        done = labels[idx] if n else np.zeros(0, labels.dtype)
        per = {int(c): v[done == c] for c in classes}
        out["per_class"] = {str(c): {"num_digits": int(x.size), "mean_bpd": float(x.mean()) if x.size else None}
                            for c, x in per.items()}
        full = all(x.size >= 2 for x in per.values())
        out["class_balanced_mean_bpd"] = float(np.mean([x.mean() for x in per.values()])) if full else None
        out["class_balanced_std_error"] = (float(math.sqrt(sum(x.var(ddof=1) / x.size for x in per.values()))
                                                 / len(per)) if full else None)
    return out


def _write_atomic(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    validate(args)
    config = load_config(args.ddpm, smoke=args.smoke, overrides=list(args.overrides))
    workdir = Path(args.ddpm_workdir) if args.ddpm_workdir else Path("runs") / config.name
    run, state, step = load_for_inference(config, workdir, step=args.ddpm_step)
    run.checkpointer.close()
    task = run.task
    dconf = task.extras["config"]
    if not dconf.images:
        raise ValueError(f"--ddpm: expected an image diffusion model, got network={dconf.network!r}")
    params, model_state = eval_params(state), state.model_state
    fingerprint = {
        "experiment": args.ddpm, "step": int(step), "params_sha256": params_sha256(params),
        "process": dconf.process, "likelihood_eps": dconf.likelihood_eps, "rtol": dconf.likelihood_rtol,
        "atol": dconf.likelihood_atol, "num_bins": dconf.num_bins, "seed": args.seed,
        "divergence": "hutchinson, one Rademacher probe", "solver": "Tsit5",
    }
    out = Path(args.out) if args.out else workdir / "ode_bpd_test.json"
    record = {"fingerprint": fingerprint, "bpd": {}, "seconds": 0.0}
    if out.exists():
        old = json.loads(out.read_text())
        if old.get("fingerprint") != fingerprint:
            diff = sorted(k for k in set(fingerprint) | set(old.get("fingerprint", {}))
                          if fingerprint.get(k) != old.get("fingerprint", {}).get(k))
            raise ValueError(f"--out: {out} holds values of another model or solver (differs in {diff}); "
                             f"name a new file")
        record = old

    test = run.eval_data.get_batch(np.arange(len(run.eval_data)))
    levels = np.asarray(test["image"])
    labels = np.asarray(test["label"]) if "label" in test else None
    num_test = levels.shape[0]
    # A fixed random order, so that the digits done after any number of calls are a uniform sample
    # of the split (mnist5k's test split is sorted by class: the first 100 digits are all zeros).
    order = np.random.default_rng(args.seed).permutation(num_test)
    todo = [int(i) for i in order if str(i) not in record["bpd"]][:args.count]

    key = jax.random.key(args.seed)
    k_deq, k_probe = jax.random.split(key)
    bin_width = 2.0 / dconf.num_bins

    @jax.jit
    def batch_bpd(params, k, idx):
        u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(k_deq, i), k.shape[1:], jnp.float32))(idx)
        x = (k.astype(jnp.float32) + u) * bin_width - 1.0
        net = task.extras["model"](params, model_state)
        return net.bits_per_dim(x, method="ode", key=jax.random.fold_in(k_probe, idx[0]))

    for start in range(0, len(todo), args.batch_size):
        idx = np.asarray(todo[start:start + args.batch_size], np.int32)
        t0 = time.perf_counter()
        bpd = np.asarray(batch_bpd(params, jnp.asarray(levels[idx]), jnp.asarray(idx)))
        record["seconds"] += time.perf_counter() - t0
        if not np.all(np.isfinite(bpd)):
            raise FloatingPointError(f"non-finite bits/dim for test digits {idx[~np.isfinite(bpd)].tolist()}")
        record["bpd"].update({str(int(i)): float(b) for i, b in zip(idx, bpd, strict=True)})
        record["summary"] = summary(record["bpd"], num_test, labels)
        record["device"] = jax.devices()[0].device_kind
        record["jax_version"] = jax.__version__
        _write_atomic(out, record)
        print(json.dumps({"digits": [int(idx[0]), int(idx[-1])], **record["summary"]}), flush=True)
    record["summary"] = summary(record["bpd"], num_test, labels)
    if not todo and args.count:
        print(f"all {num_test} test digits are done", file=sys.stderr)
    result = dict(record["summary"], out=str(out), step=int(step))
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
