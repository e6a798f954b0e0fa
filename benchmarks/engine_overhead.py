"""Engine overhead: time per step of ``kexue_jax.train.train`` vs a bare jitted update loop.

Both run the same task, optimizer, batch size and number of steps in one process. The bare loop is
the least a user could write: ``jit(value_and_grad(loss) + optax update)`` over batches staged on
the device beforehand, blocked once at the end. The engine adds everything a real run has: data
gathering on a background thread, device placement, fold_in keys, the NaN guard, metric windows
and the progress bar. Checkpoints, evaluation and grids are switched off between the first and
last step (they are not per-step costs).

    python benchmarks/engine_overhead.py [--experiment vae-mnist5k] [--steps 600] [--repeats 3]

Goal (issue 2): engine overhead ≤ 5%, i.e. ratio engine/bare ≤ 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import optax

from benchmarks.harness import write_result
from kexue_jax._src.random import step_key, wrap_key
from kexue_jax.train import load_config, read_metrics, train
from kexue_jax.train.loop import initial_state, setup
from kexue_jax.train.mesh import shard_batch


def bare_seconds_per_step(config, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run = setup(config, tmp)
        state = initial_state(run)
        task, opt = run.task, run.optimizer
        batches = [shard_batch(run.batcher.batch_at(s), run.mesh) for s in range(steps)]

        @jax.jit
        def update(params, opt_state, batch, key):
            def loss_fn(p):
                return task.loss(p, state.model_state, batch, key=key).loss

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        base = wrap_key(state.key)
        params, opt_state = state.params, state.opt_state
        params, opt_state, loss = update(params, opt_state, batches[0], step_key(base, 0))  # compile
        jax.block_until_ready(loss)
        t = time.perf_counter()
        for s in range(1, steps):
            params, opt_state, loss = update(params, opt_state, batches[s], step_key(base, s))
        jax.block_until_ready((params, loss))
        run.checkpointer.close()
        return (time.perf_counter() - t) / (steps - 1)


def engine_seconds_per_step(config, steps: int) -> float:
    config.train.eval_every = 0
    config.train.sample_every = 0
    config.train.checkpoint_every = 0
    config.train.progress = True
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp)
        windows = read_metrics(f"{tmp}/metrics.jsonl", "train")
    # the first window holds compilation; the rest are steady state
    return statistics.median(1.0 / w["steps_per_sec"] for w in windows[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--experiment", default="vae-mnist5k")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    def config():
        c = load_config(args.experiment, steps=args.steps)
        c.train.log_every = args.log_every
        return c

    bare, engine = [], []
    for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
        bare.append(bare_seconds_per_step(config(), args.steps))
        engine.append(engine_seconds_per_step(config(), args.steps))
    b, e = statistics.median(bare), statistics.median(engine)
    result = {
        "experiment": args.experiment,
        "steps": args.steps,
        "batch_size": config().data.batch_size,
        "bare_s_per_step": b,
        "engine_s_per_step": e,
        "bare_runs": bare,
        "engine_runs": engine,
        "ratio_engine_over_bare": e / b,
        "goal": "ratio <= 1.05",
    }
    path = write_result("engine_overhead", result)
    print(f"bare {b * 1e3:.2f} ms/step, engine {e * 1e3:.2f} ms/step, ratio {e / b:.3f} -> {path}")


if __name__ == "__main__":
    main()
