r"""The 9105 probe trained: can a Transformer map $n$ identical tokens to their positions?

Su (kexue.fm 9105) shows that if position enters a bidirectional Transformer only through the
pre-softmax logits $b_{ij}$ (a relative bias, RoPE, ...), then on $n$ copies of one token every
layer computes $o_i = \sum_j \mathrm{softmax}(b_{i,:})_j\, v = v$ (rows sum to one, values are
equal), so all positions stay identical and no readout can produce $[1, 2, \dots, n]$. This script
trains small models on that task and measures it, for the defective encodings and for each fix.

**Task.** Input: $n$ copies of one learned token embedding, $n \in$ ``train_lengths`` (every length
in 4..32 except the held-out ones); target: $y_i = i/n$ for $i = 1..n$ (the position scaled to
$(0, 1]$, so one readout serves every length). Loss: the mean squared error over the positions of
a sequence, averaged over sequences. There is nothing to sample: the input for a length is fixed,
so each step is one full batch of every training length, padded to ``max(train_lengths)`` with
padded keys masked. Test sets: the held-out lengths inside the training range and (extra
information) longer lengths.

**Model.** Pre-Norm Transformer: ``num_layers`` blocks of bidirectional attention
(``num_heads`` heads) + GELU MLP, a final LayerNorm and a linear readout, written as pure functions
over a parameter dict and trained with ``optax.adam`` (cosine decay). Variants differ only in the
attention of every layer:

* ``relative_bias``: softmax attention with a T5 relative bias
  (:func:`kexue_jax.position.t5_bias`): the defective model;
* ``rope``: softmax attention with RoPE (:func:`kexue_jax.position.apply_rope`) and no bias:
  defective;
* ``causal``: ``relative_bias`` with a causal mask: a contrast; still defective, because each
  causal row of the softmax also sums to one over identical values (a causal model without
  positions counts only from a distinct first token, which this input lacks);
* ``absolute_pe``: ``relative_bias`` + sinusoidal positions added to the input
  (:func:`kexue_jax.position.sinusoidal_embedding`);
* ``toeplitz_gate``: fix (a), $(A \odot C)V$ with a learned Toeplitz $C$
  (:func:`kexue_jax.attention.toeplitz_gated_attention`);
* ``no_denominator``: fix (b), GAU's $\mathrm{relu}^2(b_{ij})/n$
  (:func:`kexue_jax.attention.denominator_free_attention`);
* ``l2``: fix (c), $e^{b_{ij}}/\lVert e^{b_{i,:}}\rVert_2$
  (:func:`kexue_jax.attention.l2_normalized_attention`);
* ``boundary_tokens``: fix (d), ``[CLS] x [SEP]`` (:func:`kexue_jax.attention.add_boundary_tokens`).

All but ``rope`` use the same T5 bias (32 buckets, bidirectional). Reported per variant: the MSE on
the training, held-out and long lengths, and ``position_spread``, the largest over those sequences
of $\sqrt{\mathrm{mean}_i \lVert h_i - \bar h\rVert^2 / \mathrm{mean}_i \lVert h_i\rVert^2}$ for
the hidden states $h_i$ after the last block: 0 up to float error exactly when a variant is
defective. ``constant_mse`` is the error of the best constant prediction for each set, the floor
that a defective model cannot go below.

    python -m experiments.relative_defect_probe.probe            # 146 s CPU, 341 s wall (README)
    python -m experiments.relative_defect_probe.probe --smoke    # a few steps, seconds

References:
    https://kexue.fm/archives/9105 (相对位置编码Transformer的一个理论缺陷与对策);
    Luo et al. 2022, "Your Transformer May Not be as Powerful as You Expect", arXiv:2205.13401;
    https://kexue.fm/archives/8934 (GAU, relu²/n).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kexue_jax.attention import (
    add_boundary_tokens,
    attention_from_logits,
    attention_logits,
    denominator_free_attention,
    l2_normalized_attention,
    padding_mask,
    toeplitz,
    toeplitz_gated_attention,
)
from kexue_jax.position import (
    apply_rope,
    rope_inv_freq,
    sinusoidal_embedding,
    t5_bias,
)

HERE = Path(__file__).resolve().parent
VARIANTS = (
    "relative_bias",
    "rope",
    "causal",
    "absolute_pe",
    "toeplitz_gate",
    "no_denominator",
    "l2",
    "boundary_tokens",
)
# position only in the logits, softmax rows that sum to one
DEFECTIVE = ("relative_bias", "rope", "causal")
HELD_OUT = (6, 11, 17, 23, 29)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """Sizes and schedule of the probe (defaults: the run reported in README.md)."""

    train_lengths: tuple[int, ...] = tuple(n for n in range(4, 33) if n not in HELD_OUT)
    heldout_lengths: tuple[int, ...] = HELD_OUT
    long_lengths: tuple[int, ...] = (40, 48, 64)
    num_layers: int = 2
    d_model: int = 32
    num_heads: int = 4
    mlp_ratio: int = 2
    num_buckets: int = 32  # T5 bias: 16 buckets a side, exact up to distance 8
    max_distance: int = 128
    gate_distance: int = 16  # the Toeplitz table holds c(r) for |r| <= 16, clipped beyond
    steps: int = 1000
    # at 1e-2 (1,500 steps, seed 0) no_denominator fell back to the constant predictor by step 150
    # and stayed there; 3e-3 and 1e-3 both train it; every variant shares one learning rate
    learning_rate: float = 3e-3
    seed: int = 0
    # cheaper XLA compilation (see compiler_options) for --smoke, whose few steps cost far less
    # than its eight compilations
    fast_compile: bool = False

    def __post_init__(self):
        for name in ("train_lengths", "heldout_lengths", "long_lengths"):
            lengths = getattr(self, name)
            if not lengths or any(not isinstance(n, int) or n < 2 for n in lengths):
                raise ValueError(
                    f"{name}: expected a non-empty tuple of ints >= 2, got {lengths!r}"
                )
        for name in ("num_layers", "d_model", "num_heads", "mlp_ratio", "steps", "gate_distance"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)!r}")
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(
                f"d_model: expected a multiple of 2 * num_heads = {2 * self.num_heads} "
                f"(RoPE rotates pairs of each head's channels), got {self.d_model}"
            )


SMOKE = ProbeConfig(steps=5, num_layers=1, fast_compile=True)


def init_params(config: ProbeConfig, *, key: jax.Array) -> dict:
    """Parameters of every variant (each variant reads the entries it needs), float32.

    Every random entry is a slice of one normal draw times its scale: one random-number kernel to
    compile instead of one per shape (compilation dominates the cost of the smoke run). Layers are
    stacked along a leading axis and run under one ``lax.scan``.
    """
    d, h, n = config.d_model, config.num_heads, config.num_layers
    hidden = config.mlp_ratio * d
    random = {  # name: (shape, standard deviation)
        "token": ((d,), 1.0),
        "cls": ((d,), 1.0),
        "sep": ((d,), 1.0),
        "readout": ((d,), d**-0.5),
        "layers": {
            **{w: ((n, d, d), d**-0.5) for w in ("wq", "wk", "wv", "wo")},
            "w1": ((n, d, hidden), d**-0.5),
            "w2": ((n, hidden, d), hidden**-0.5),
            # std d^{-1/2} as Hugging Face's T5 (init_t5_bias's default 0.02 starts all but uniform)
            "t5": ((n, config.num_buckets, h), d**-0.5),
            # the gate C starts near 1 (plain softmax attention) with a little noise, + 1 below
            "gate": ((n, h, 2 * config.gate_distance + 1), 0.1),
        },
    }
    specs, treedef = jax.tree.flatten(random, is_leaf=lambda s: isinstance(s, tuple))
    sizes = [int(np.prod(shape)) for shape, _ in specs]
    draw = np.asarray(jax.random.normal(key, (sum(sizes),), jnp.float32))
    chunks = np.split(draw, np.cumsum(sizes)[:-1])
    params = jax.tree.unflatten(
        treedef, [std * c.reshape(shape) for c, (shape, std) in zip(chunks, specs, strict=True)]
    )
    params["layers"]["gate"] += 1.0
    norm = {"scale": np.ones((d,), np.float32), "bias": np.zeros((d,), np.float32)}
    stacked_norm = {k: np.stack([v] * n) for k, v in norm.items()}
    params["layers"].update(
        norm1=stacked_norm,
        norm2=stacked_norm,
        b1=np.zeros((n, hidden), np.float32),
        b2=np.zeros((n, d), np.float32),
    )
    params.update(norm_f=norm, readout_bias=np.zeros((), np.float32))
    return jax.tree.map(jnp.asarray, params)


def _layer_norm(x, p):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-6) * p["scale"] + p["bias"]


def _attention(p, x, variant, config, positions, mask, lengths):
    b, t, d = x.shape
    h = config.num_heads
    q, k, v = ((x @ p[w]).reshape(b, t, h, d // h) for w in ("wq", "wk", "wv"))
    if variant == "rope":
        inv_freq = rope_inv_freq(d // h)
        q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
        logits = attention_logits(q, k)
    else:
        bias = t5_bias(
            p["t5"],
            t,
            t,
            num_buckets=config.num_buckets,
            max_distance=config.max_distance,
            q_positions=positions,
            k_positions=positions,
        )
        logits = attention_logits(q, k) + bias
    if variant == "toeplitz_gate":
        o = toeplitz_gated_attention(logits, v, toeplitz(p["gate"], t), mask=mask)
    elif variant == "no_denominator":
        o = denominator_free_attention(logits, v, mask=mask, activation="relu2")  # 1/n, n = unpadded
    elif variant == "l2":
        o = l2_normalized_attention(logits, v, mask=mask)
    else:
        o = attention_from_logits(logits, v, mask=mask, is_causal=variant == "causal")
    return o.reshape(b, t, d) @ p["wo"]


def forward(params, lengths, t, *, variant: str, config: ProbeConfig):
    """Predictions ``[b, t]`` and last hidden states ``[b, t, d]`` for ``lengths`` padded to ``t``.

    Only the first ``lengths[b]`` positions of each row are meaningful.
    """
    b, d = lengths.shape[0], config.d_model
    x = jnp.broadcast_to(params["token"], (b, t, d))
    positions = jnp.broadcast_to(jnp.arange(t), (b, t))
    mask = padding_mask(lengths, t)
    if variant == "absolute_pe":
        x = x + sinusoidal_embedding(jnp.arange(t), d)
    if variant == "boundary_tokens":
        # [CLS] x_1..x_t [SEP], with SEP placed at position n + 1 of each row: the model sees
        # positions only through the relative bias, so this is [CLS] x_1..x_n [SEP] exactly once
        # the padded tokens n+1..t are masked out as keys.
        x = add_boundary_tokens(x, params["cls"], params["sep"])
        positions = jnp.concatenate([positions[:, :1], positions + 1, lengths[:, None] + 1], 1)
        keys = jnp.arange(t + 2)[None, :]
        mask = ((keys <= lengths[:, None]) | (keys == t + 1))[:, None, None, :]

    def block(x, p):
        x = x + _attention(p, _layer_norm(x, p["norm1"]), variant, config, positions, mask, lengths)
        y = _layer_norm(x, p["norm2"])
        return x + jax.nn.gelu(y @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"], None

    x, _ = jax.lax.scan(block, x, params["layers"])
    if variant == "boundary_tokens":
        x = x[:, 1:-1]
    pred = _layer_norm(x, params["norm_f"]) @ params["readout"] + params["readout_bias"]
    return pred, x


def targets(lengths, t):
    """``y[b, i] = (i + 1) / n_b`` on valid positions, 0 elsewhere, and the validity mask."""
    i = jnp.arange(1, t + 1)[None, :]
    valid = i <= lengths[:, None]
    return jnp.where(valid, i / lengths[:, None], 0.0), valid


def per_sequence_mse(pred, lengths):
    """``[b]``: the mean squared error over each sequence's valid positions."""
    y, valid = targets(lengths, pred.shape[1])
    return jnp.sum(jnp.where(valid, jnp.square(pred - y), 0.0), 1) / lengths


def position_spread(hidden, lengths):
    r"""``[b]``: $\sqrt{\sum_i \lVert h_i - \bar h\rVert^2 / \sum_i \lVert h_i\rVert^2}$, valid $i$."""
    valid = (jnp.arange(hidden.shape[1])[None, :] < lengths[:, None])[..., None]
    n = lengths[:, None, None]
    mean = jnp.sum(jnp.where(valid, hidden, 0.0), 1, keepdims=True) / n
    dev = jnp.sum(jnp.where(valid, jnp.square(hidden - mean), 0.0), (1, 2))
    size = jnp.sum(jnp.where(valid, jnp.square(hidden), 0.0), (1, 2))
    return jnp.sqrt(dev / size)


def constant_mse(lengths) -> float:
    """The mean per-sequence MSE of the best constant prediction on ``lengths`` (float64)."""
    n = np.asarray(lengths, np.float64)
    # minimise mean_b mean_i (c - i/n_b)^2: c = mean_b mean_i i/n_b = mean_b (n_b + 1)/(2 n_b)
    c = np.mean((n + 1) / (2 * n))
    return float(np.mean([np.mean((c - np.arange(1, m + 1) / m) ** 2) for m in n]))


def compiler_options(config: ProbeConfig) -> dict | None:
    """XLA options of the compiled training run (``None`` unless ``fast_compile``).

    With ``fast_compile``: LLVM at optimisation level 0 and XLA's older elemental emitters,
    together about 3x faster to compile on CPU and a little slower to run.
    """
    if not config.fast_compile:
        return None
    return {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def train_variant(variant: str, config: ProbeConfig, params: dict) -> dict:
    """Train one variant from ``params`` (of :func:`init_params`); returns its metrics (JSON-ready).

    Training (a ``lax.scan`` over the steps) and evaluation are one compiled function.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    start = time.perf_counter()
    optimizer = optax.adam(
        optax.cosine_decay_schedule(config.learning_rate, config.steps, alpha=0.05)
    )
    train_lengths = jnp.asarray(config.train_lengths, jnp.int32)
    t_train = max(config.train_lengths)
    sets = {
        "train": config.train_lengths,
        "heldout": config.heldout_lengths,
        "long": config.long_lengths,
    }
    all_lengths = jnp.asarray(sum(sets.values(), ()), jnp.int32)
    t_eval = max(max(sum(sets.values(), ())), t_train)

    def loss_fn(p):
        pred, _ = forward(p, train_lengths, t_train, variant=variant, config=config)
        return jnp.mean(per_sequence_mse(pred, train_lengths))

    def step(carry, _):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    @functools.partial(jax.jit, compiler_options=compiler_options(config))
    def train_and_evaluate(p):
        (p, _), losses = jax.lax.scan(step, (p, optimizer.init(p)), length=config.steps)
        pred, hidden = forward(p, all_lengths, t_eval, variant=variant, config=config)
        return losses, per_sequence_mse(pred, all_lengths), position_spread(hidden, all_lengths)

    losses, mse, spread = (np.asarray(a, np.float64) for a in train_and_evaluate(params))
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(
            f"{variant}: non-finite loss at step {int(np.argmin(np.isfinite(losses)))}"
        )
    out, offset = {}, 0
    for name, lengths in sets.items():
        out[f"{name}_mse"] = float(mse[offset : offset + len(lengths)].mean())
        offset += len(lengths)
    out.update(
        defective_per_article=variant in DEFECTIVE,
        position_spread=float(spread.max()),
        position_spread_min=float(spread.min()),
        mse_per_length={
            int(n): float(m) for n, m in zip(np.asarray(all_lengths), mse, strict=True)
        },
        loss_curve={str(s): float(losses[s]) for s in _log_steps(config.steps)},
        seconds=round(time.perf_counter() - start, 2),
    )
    return out


def _log_steps(steps):
    return sorted({0, *range(steps // 10 or 1, steps, steps // 10 or 1), steps - 1})


def run(config: ProbeConfig, variants=VARIANTS) -> dict:
    """Train every variant from the same seed and collect the result dict written as JSON."""
    start, cpu_start, load_start = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    params = init_params(
        config, key=jax.random.key(config.seed)
    )  # the same start for every variant
    results = {}
    for variant in variants:
        results[variant] = train_variant(variant, config, params)
        r = results[variant]
        print(
            f"{variant:>16}: train {r['train_mse']:.2e}  held-out {r['heldout_mse']:.2e}  "
            f"long {r['long_mse']:.2e}  spread {r['position_spread']:.1e}  ({r['seconds']:.0f} s)",
            flush=True,
        )
    return {
        "config": dataclasses.asdict(config),
        "constant_mse": {
            name: constant_mse(getattr(config, f"{name}_lengths"))
            for name in ("train", "heldout", "long")
        },
        "variants": results,
        "runtime_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(
            time.process_time() - cpu_start, 1
        ),  # all threads; wall time depends on load
        "load_average": [
            round(load_start, 2),
            round(os.getloadavg()[0], 2),
        ],  # 1-min, start and end
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "device": str(jax.devices()[0]),
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
    }


def markdown(result: dict) -> str:
    """The README table of a result dict."""
    floor = result["constant_mse"]
    lines = [
        "| variant | defective (9105) | train MSE | held-out MSE | long MSE | position spread |",
        "| --- | --- | --- | --- | --- | --- |",
        (
            f"| best constant | — | {floor['train']:.2e} | {floor['heldout']:.2e} | "
            f"{floor['long']:.2e} | 0 |"
        ),
    ]
    for name, r in result["variants"].items():
        lines.append(
            f"| `{name}` | {'yes' if r['defective_per_article'] else 'no'} | "
            f"{r['train_mse']:.2e} | "
            f"{r['heldout_mse']:.2e} | {r['long_mse']:.2e} | {r['position_spread']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few steps (CI)")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--variants", help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON path (default results/probe.json; "
        "with --smoke none: nothing is written unless given)",
    )
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else ProbeConfig()
    overrides = {k: getattr(args, k) for k in ("steps", "seed") if getattr(args, k) is not None}
    config = dataclasses.replace(config, **overrides)
    variants = VARIANTS if args.variants is None else tuple(args.variants.split(","))
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"--variants: unknown variant {v!r}; expected some of {VARIANTS}")
    result = run(config, variants)
    print(markdown(result))
    print(f"{result['runtime_s']} s wall, {result['cpu_s']} s CPU")
    out = args.out or (None if args.smoke else HERE / "results" / "probe.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
