"""The length-extrapolation table of a trained ``length-extrapolation`` run.

Loads the newest checkpoint of ``--workdir`` and evaluates next-token accuracy on held-out
``pysrc`` windows (repeated and natural text) at every length of the config's
``extrapolation.lengths``, under the inference-time schemes of
:func:`kexue_jax.attention.extrapolation.extrapolation_scheme`. Prints a Markdown table and writes
JSON (``--out``, default ``WORKDIR/extrapolation.json``).

    python experiments/length_extrapolation/table.py --workdir runs/length-extrapolation
    python experiments/length_extrapolation/table.py --config experiments/length_extrapolation/cpu.py \\
        --workdir runs/le-cpu-rope --schemes baseline,ntk,rerope-logn
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax

from kexue_jax.attention.extrapolation import (
    SCHEME_NAMES,
    extrapolation_scheme,
    extrapolation_table,
)
from kexue_jax.data.pysrc import load_bytes
from kexue_jax.train import load_config, load_for_inference
from kexue_jax.train.state import eval_params

HERE = Path(__file__).resolve().parent
# Rows evaluated by default: for a model trained without log n, the plain schemes and the log n†
# (inference-only) ones; for a model trained with log n, Su's "-logn" rows.
PLAIN_ROWS = ("baseline", "pi", "ntk", "ntk-mixed", "dynamic-ntk", "local", "rerope", "leaky-rerope",
              "baseline-logn", "ntk-logn", "ntk-mixed-logn", "local-logn", "rerope-logn", "leaky-rerope-logn")
LOGN_ROWS = ("baseline-logn", "pi-logn", "ntk-logn", "ntk-fixed-logn", "ntk-mixed-logn", "local-logn",
             "rerope-logn", "leaky-rerope-logn")


def rows_for(train_scheme, names, config):
    """``{row: scheme_at(T)}``: per-layer (HWFA) models are evaluated as trained only."""
    if isinstance(train_scheme, tuple):
        return {"hfwa (as trained)": lambda length: train_scheme}
    if not names:
        names = LOGN_ROWS if train_scheme.logn else PLAIN_ROWS
    ex = config.extrapolation
    return {
        name: (lambda length, name=name: extrapolation_scheme(
            name, eval_length=length, training_length=train_scheme.training_length,
            rerope_window=ex.rerope_window, base=train_scheme))
        for name in names
    }


def markdown(table, lengths):
    head = "| scheme | " + " | ".join(f"{n} rep / non-rep" for n in lengths) + " |"
    lines = [head, "|" + " --- |" * (len(lengths) + 1)]
    for name, row in table.items():
        cells = [f"{100 * row[str(n)]['repeated']:.2f} / {100 * row[str(n)]['non_repeated']:.2f}" for n in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE / "config.py"))
    p.add_argument("--workdir", required=True)
    p.add_argument("--schemes", default=None,
                   help=f"comma-separated rows (default: by the training scheme) from {', '.join(SCHEME_NAMES)}")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("overrides", nargs="*", help="section.key=value, as given to kexue-jax train")
    args = p.parse_args(argv)
    names = None
    if args.schemes:
        names = [n.strip() for n in args.schemes.split(",") if n.strip()]
        unknown = sorted(set(names) - set(SCHEME_NAMES))
        if unknown:
            p.error(f"--schemes: unknown {unknown}; choose from {list(SCHEME_NAMES)}")
    config = load_config(args.config, smoke=args.smoke, overrides=args.overrides)
    run, state, step = load_for_inference(config, args.workdir)
    try:
        params = eval_params(state)
        logits = run.task.extras["logits"]
        rows = rows_for(run.task.extras["scheme"], names, config)
        ex = config.extrapolation
        start = time.time()
        table = extrapolation_table(
            lambda tokens, scheme: logits(params, tokens, scheme),
            load_bytes("pysrc", "validation"),
            schemes=rows, lengths=tuple(ex.lengths), num_windows=ex.num_windows, batch_size=ex.batch_size,
        )
    finally:
        run.checkpointer.close()
    result = {
        "workdir": str(args.workdir), "step": step, "config": args.config, "overrides": args.overrides,
        "training_length": config.data.kwargs.seq_len - 1, "lengths": list(ex.lengths),
        "num_windows": ex.num_windows, "device": jax.devices()[0].device_kind,
        "seconds": round(time.time() - start, 1), "accuracy": table,
    }
    out = Path(args.out) if args.out else Path(args.workdir) / "extrapolation.json"
    out.write_text(json.dumps(result, indent=1))
    print(markdown(table, ex.lengths))
    print(f"written {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
