"""Quality of ddpm-mnist5k samples judged by the mnist5k classifier: a Fréchet distance in its
feature space (not FID) and its accuracy on class-conditional samples, as JSON.

Loads the newest checkpoints of ``ddpm-mnist5k`` (the class-conditional DDPM), ``mnist5k-classifier``
(the clean judge) and, for classifier guidance, ``mnist5k-noisy-classifier``; draws
``--num-samples`` samples with labels $0, 1, \\dots, 9, 0, \\dots$ using

* classifier-free guidance of weight $w$ (``--guidance``; 0: the conditional model), or the
  unconditional model $\\varepsilon_\\theta(x, t, \\varnothing)$ (``--unconditional``), and on top
* classifier guidance of scale $\\gamma$ (``--classifier-scale``; Dhariwal & Nichol Alg. 2 with the
  noisy classifier, :func:`kexue_jax.diffusion.classifier_model.classifier_guided_fns`),

rounds them to the 256 pixel levels and reports

* ``classifier_frechet_distance``: the Fréchet distance between the samples and the 1,000 test
  digits in the classifier's penultimate features
  (:func:`kexue_jax.diffusion.sample_quality.classifier_frechet_distance`; **not FID**);
* ``classifier_frechet_distance_train_vs_test``: the same distance for as many *training* digits,
  with the samples' label counts (a fixed draw): about what a perfect model scores at this count;
* ``conditional_accuracy`` (and per class): the fraction of samples the classifier assigns to the
  requested label; ``classifier_test_accuracy``: the classifier's own accuracy on the test digits.

    python experiments/ddpm_mnist5k/quality.py --sampler ddim --steps 50 --guidance 1 --num-samples 1000
    python experiments/ddpm_mnist5k/quality.py --unconditional --classifier-scale 3 --num-samples 1000

``--smoke`` loads the ``--smoke`` configs (checkpoints from ``kexue-jax train NAME --smoke``).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax.diffusion.classifier_model import (
    check_same_process,
    classifier_guided_fns,
    classifier_log_prob_fn,
)
from kexue_jax.diffusion.sample_quality import (
    classifier_frechet_distance,
    conditional_accuracy,
    quantize_pixels,
)
from kexue_jax.diffusion.samplers.registry import SAMPLERS
from kexue_jax.train import load_config, load_for_inference
from kexue_jax.train.state import eval_params

METRIC_NOTE = ("classifier_frechet_distance is the Frechet distance between Gaussians fitted to the penultimate "
               "features of the mnist5k classifier (not Inception-v3): it is not FID and not comparable with FIDs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ddpm", default="ddpm-mnist5k", help="experiment of the diffusion model")
    p.add_argument("--ddpm-workdir", default=None, help="its work directory (default runs/NAME)")
    p.add_argument("--ddpm-step", type=int, default=None, help="its checkpoint (default: the newest)")
    p.add_argument("--classifier", default="mnist5k-classifier", help="experiment of the clean classifier")
    p.add_argument("--classifier-workdir", default=None)
    p.add_argument("--noisy-classifier", default="mnist5k-noisy-classifier",
                   help="experiment of the time-conditional classifier (used when --classifier-scale > 0)")
    p.add_argument("--noisy-classifier-workdir", default=None)
    p.add_argument("--sampler", default=None, help=f"one of {sorted(SAMPLERS)} (default: the config's)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's)")
    p.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance weight w")
    p.add_argument("--unconditional", action="store_true", help="base model eps(x, t, null) instead of CFG")
    p.add_argument("--classifier-scale", type=float, default=0.0, help="classifier guidance scale gamma")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100, help="samples per sampler call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default: in the DDPM work directory)")
    p.add_argument("--smoke", action="store_true", help="load the --smoke configs")
    return p.parse_args(argv)


def validate(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` naming the bad argument, before anything is loaded."""
    if args.sampler is not None and args.sampler not in SAMPLERS:
        raise ValueError(f"--sampler: expected one of {sorted(SAMPLERS)}, got {args.sampler!r}")
    if args.steps is not None and args.steps <= 0:
        raise ValueError(f"--steps: expected a positive number of sampler steps, got {args.steps}")
    if args.num_samples < 2:
        raise ValueError(f"--num-samples: the Frechet distance needs at least 2 samples, got {args.num_samples}")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size: expected a positive int, got {args.batch_size}")
    if args.classifier_scale < 0:
        raise ValueError(f"--classifier-scale: expected gamma >= 0, got {args.classifier_scale}")
    if args.unconditional and args.guidance != 0:
        raise ValueError(f"--guidance: the unconditional base (--unconditional) takes no classifier-free "
                         f"guidance, got --guidance {args.guidance}")


def _workdir(given: str | None, config) -> Path:
    return Path(given) if given else Path("runs") / config.name


def _load(name: str, workdir: str | None, *, smoke: bool, overrides: list[str] = (), step: int | None = None):
    """(task, params, model_state, step, run) of checkpoint ``step`` (default: the newest) of experiment ``name``."""
    config = load_config(name, smoke=smoke, overrides=overrides)
    run, state, step = load_for_inference(config, _workdir(workdir, config), step=step)
    run.checkpointer.close()
    return run.task, eval_params(state), state.model_state, step, run


def _matching_subset(data_labels: np.ndarray, sample_labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of data with as many examples of each label as ``sample_labels`` has (a fixed random draw)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(sample_labels, minlength=int(data_labels.max()) + 1)
    picks = [rng.permutation(np.flatnonzero(data_labels == k))[:c] for k, c in enumerate(counts)]
    return np.sort(np.concatenate(picks))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    validate(args)
    overrides = [f"model.sampler={args.sampler}"] if args.sampler else []
    if args.steps is not None:
        overrides.append(f"model.sampler_steps={args.steps}")
    d_task, d_params, d_state, d_step, d_run = _load(args.ddpm, args.ddpm_workdir, smoke=args.smoke,
                                                     overrides=overrides, step=args.ddpm_step)
    dconf = d_task.extras["config"]
    if not dconf.images:
        raise ValueError(f"--ddpm: expected an image diffusion model, got network={dconf.network!r}")
    c_task, c_params, c_state, c_step, c_run = _load(args.classifier, args.classifier_workdir, smoke=args.smoke)
    cconf = c_task.extras["config"]
    if cconf.time_conditional or cconf.event_shape != dconf.event_shape:
        raise ValueError(f"--classifier: expected a clean classifier of {dconf.event_shape} images, got "
                         f"noise={cconf.noise!r}, event_shape={cconf.event_shape}")
    guide = None
    if args.classifier_scale > 0:
        g_task, g_params, g_state, g_step, _ = _load(args.noisy_classifier, args.noisy_classifier_workdir,
                                                     smoke=args.smoke)
        check_same_process(g_task.extras["config"], dconf)
        guide = (g_task, g_params, g_state, g_step)

    num_classes = cconf.num_classes
    n, bs = args.num_samples, args.batch_size
    num_batches = -(-n // bs)
    labels = np.arange(num_batches * bs, dtype=np.int32) % num_classes
    null = dconf.num_classes
    sampler = SAMPLERS[dconf.sampler]

    @jax.jit
    def sample_batch(d_params, g_params, y, key):
        net = d_task.extras["model"](d_params, d_state)
        if not dconf.conditional:
            fns = net.model_fns()
        elif args.unconditional:
            fns = net.model_fns(jnp.full_like(y, null), 0.0)
        else:
            fns = net.model_fns(y, args.guidance)
        if guide is not None:
            fns = classifier_guided_fns(fns, classifier_log_prob_fn(guide[0], g_params, guide[2]), y,
                                        scale=args.classifier_scale)
        x = sampler(fns, (y.shape[0], *dconf.event_shape), num_steps=dconf.sampler_steps, key=key)
        return quantize_pixels(x, dconf.num_bins)

    key = jax.random.key(args.seed)
    start = time.perf_counter()
    batches = [np.asarray(sample_batch(d_params, guide[1] if guide else None, jnp.asarray(labels[i * bs:(i + 1) * bs]),
                                       jax.random.fold_in(key, i)))
               for i in range(num_batches)]
    seconds = time.perf_counter() - start
    samples, labels = np.concatenate(batches)[:n], labels[:n]

    net_fn = jax.jit(lambda p, s, x, what: getattr(c_task.extras["model"](p, s), what)(x), static_argnums=3)
    features_fn = functools.partial(net_fn, c_params, c_state, what="features")
    logits_fn = functools.partial(net_fn, c_params, c_state, what="logits")
    test = c_run.eval_data.get_batch(np.arange(len(c_run.eval_data)))
    test_x = np.asarray(c_task.extras["inputs"](test))
    train_labels = np.asarray(c_run.train_data.get_batch(np.arange(len(c_run.train_data)))["label"])
    subset = _matching_subset(train_labels, labels, args.seed)
    train_x = np.asarray(c_task.extras["inputs"](c_run.train_data.get_batch(subset)))

    accuracy, per_class = conditional_accuracy(logits_fn, samples, labels)
    test_accuracy, _ = conditional_accuracy(logits_fn, test_x, np.asarray(test["label"]))
    result = {
        "metric_note": METRIC_NOTE,
        "ddpm": {"experiment": args.ddpm, "workdir": str(d_run.workdir), "step": d_step, "sampler": dconf.sampler,
                 "steps": dconf.sampler_steps, "guidance_w": None if args.unconditional else args.guidance,
                 "unconditional_base": bool(args.unconditional or not dconf.conditional)},
        "classifier_guidance": None if guide is None else {
            "scale": args.classifier_scale, "experiment": args.noisy_classifier, "step": guide[3]},
        "classifier": {"experiment": args.classifier, "workdir": str(c_run.workdir), "step": c_step,
                       "feature_dim": cconf.feature_dim},
        "num_samples": n,
        "seed": args.seed,
        "classifier_frechet_distance": classifier_frechet_distance(features_fn, samples, test_x),
        "classifier_frechet_distance_train_vs_test": classifier_frechet_distance(features_fn, train_x, test_x),
        "conditional_accuracy": accuracy,
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "classifier_test_accuracy": test_accuracy,
        "sampling_seconds": seconds,
        "device": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
        "smoke": bool(args.smoke),
    }
    out = Path(args.out) if args.out else d_run.workdir / (
        f"quality_{dconf.sampler}{dconf.sampler_steps}_w{args.guidance:g}"
        f"{'_uncond' if args.unconditional else ''}_gamma{args.classifier_scale:g}_n{n}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = str(out)
    return result


if __name__ == "__main__":
    try:
        summary = main()
    except ValueError as err:
        print(f"quality.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: summary[k] for k in ("classifier_frechet_distance", "classifier_frechet_distance_train_vs_test",
                                               "conditional_accuracy", "classifier_test_accuracy", "out")}))
