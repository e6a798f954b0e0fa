"""``kexue-jax``: train, evaluate and sample the experiments of ``experiments/``.

    kexue-jax list
    kexue-jax train vae-mnist5k [--workdir runs/vae-mnist5k] [--steps N] [--smoke] [train.lr=...]
    kexue-jax eval vae-mnist5k [--workdir ...]
    kexue-jax sample vae-mnist5k [--workdir ...] [--num 64] [--out samples.png] [--seed 0]

Overrides are ``section.key=value`` (``model.latent_dim=16``, ``optim.learning_rate=3e-4``).
``--smoke`` shrinks the experiment to seconds (CI). A second ``train`` in the same workdir resumes
from the newest checkpoint. Set ``KEXUE_JAX_DISTRIBUTED=1`` (or pass ``--distributed``) on every
host of a multi-host launch.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kexue-jax", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("name", help="experiment name (see `kexue-jax list`) or path to a config.py")
        sp.add_argument("--workdir", default=None, help="work directory (default: runs/NAME)")
        sp.add_argument("--smoke", action="store_true", help="shrink the config to seconds (CI)")
        sp.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize()")
        sp.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")

    sp = sub.add_parser("train", help="train an experiment (resumes from the newest checkpoint)")
    common(sp)
    sp.add_argument("--steps", type=int, default=None, help="total training steps")
    sp.add_argument("--stop-after", type=int, default=None,
                    help="stop with a checkpoint after this many steps of this invocation (job time limits)")
    sp = sub.add_parser("eval", help="evaluate the newest checkpoint on the evaluation split")
    common(sp)
    sp.add_argument("--step", type=int, default=None, help="evaluate this checkpoint instead of the newest")
    sp = sub.add_parser("sample", help="write a sample grid from the newest checkpoint")
    common(sp)
    sp.add_argument("--step", type=int, default=None, help="sample this checkpoint instead of the newest")
    sp.add_argument("--num", type=int, default=64)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default=None, help="PNG path (default: WORKDIR/samples/sample_seed<seed>.png)")
    sub.add_parser("list", help="list experiments, tasks and datasets")
    return p


def _config(args: argparse.Namespace):
    from kexue_jax.train import load_config

    return load_config(args.name, smoke=args.smoke, overrides=args.overrides, steps=getattr(args, "steps", None))


def _workdir(args: argparse.Namespace, config) -> Path:
    return Path(args.workdir) if args.workdir else Path("runs") / config.name


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may come before or after options: collect the ones argparse left over.
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*getattr(args, "overrides", []), *extra]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

    if args.command == "list":
        from kexue_jax.data import list_datasets
        from kexue_jax.train import list_experiments, task_names

        print("experiments:")
        for name, path in list_experiments().items():
            print(f"  {name:24s} {path}")
        print("tasks:    " + ", ".join(task_names()))
        print("datasets: " + ", ".join(list_datasets()) + " (and any tensorflow-datasets name)")
        return 0

    from kexue_jax.train import NonFiniteError, load_for_inference, maybe_initialize_distributed, train
    from kexue_jax.train import evaluate as run_eval

    maybe_initialize_distributed(True if args.distributed else None)
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        config = _config(args)
        workdir = _workdir(args, config)
        if args.command == "train":
            result = train(config, workdir, stop_after=args.stop_after)
            print(json.dumps({"workdir": str(workdir), "step": int(result.state.step), "eval": result.eval_metrics}))
            return 0
        run, state, step = load_for_inference(config, workdir, step=args.step)
        try:
            if args.command == "eval":
                print(json.dumps({"step": step, "eval": run_eval(run, state)}))
                return 0
            import jax
            import numpy as np

            from kexue_jax.train import save_grid
            from kexue_jax.train.state import eval_params

            if run.task.sample is None:
                raise ValueError(f"name: task {run.task.name} cannot sample")
            images = jax.jit(run.task.sample, static_argnums=2)(
                eval_params(state), state.model_state, args.num, key=jax.random.key(args.seed)
            )
            out = Path(args.out) if args.out else workdir / "samples" / f"sample_seed{args.seed}.png"
            save_grid(out, np.asarray(images), columns=run.task.grid_columns)
            print(json.dumps({"step": step, "samples": str(out)}))
            return 0
        finally:
            run.checkpointer.close()
    except (ValueError, NonFiniteError) as e:
        print(f"kexue-jax: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    except KeyboardInterrupt:
        print("kexue-jax: interrupted; the newest state is checkpointed, run the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    """SIGTERM (a scheduler's preemption) or Ctrl-C: checkpoint the step in flight, then exit.

    A running training loop is asked to stop after its current step (see ``request_stop``); outside
    one, or on a second signal, the interrupt is immediate.
    """
    from kexue_jax.train import request_stop

    if not request_stop():
        raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
