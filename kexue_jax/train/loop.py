"""The training loop: data → jitted sharded steps → logs, evaluations, grids and checkpoints.

``train(config, workdir)`` is the whole engine as one call; the CLI's ``kexue-jax train`` is a thin
wrapper. A run is a pure function of its config: batches are a function of ``(seed, step)``, the
step's randomness is ``fold_in(key, step)``, so rerunning or resuming reproduces the same numbers.

Work directory layout::

    workdir/config.json        the resolved config
    workdir/metrics.jsonl      one JSON object per log / eval (``split`` = "train" or "eval")
    workdir/checkpoints/<step> orbax checkpoints (last ``keep_checkpoints``)
    workdir/samples/step_<k>.png and workdir/figures/<name>_<k>.png   sample / figure grids
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from kexue_jax import data as kdata
from kexue_jax._src.random import key_data, make_key, split_named
from kexue_jax.optim import make_optimizer
from kexue_jax.train.checkpoint import Checkpointer
from kexue_jax.train.config import with_defaults
from kexue_jax.train.images import save_grid
from kexue_jax.train.mesh import check_batch_size, make_mesh, replicated, shard_batch
from kexue_jax.train.metrics_log import MetricsWriter
from kexue_jax.train.prefetch import Prefetcher
from kexue_jax.train.registry import build_task
from kexue_jax.train.state import TrainState, create_train_state, eval_params
from kexue_jax.train.step import make_eval_step, make_train_step
from kexue_jax.train.task import Task

log = logging.getLogger(__name__)

_STOP = threading.Event()  # a signal handler asked the running loop to checkpoint and stop
_RUNNING = threading.Event()  # a training loop is between its first and last step


def request_stop() -> bool:
    """Ask the running training loop to stop cleanly after the step in flight.

    For signal handlers (the CLI's SIGTERM and Ctrl-C): the loop finishes its current step,
    checkpoints it and raises ``KeyboardInterrupt``. An exception raised by the handler itself
    could land while a step's donated input is already consumed and its output not yet bound, and
    that step would be lost; the flag is only read between steps.

    Returns:
        ``False`` when no loop is running or a stop was already requested (a second Ctrl-C): the
        handler should then interrupt at once.
    """
    if not _RUNNING.is_set() or _STOP.is_set():
        return False
    _STOP.set()
    return True


class NonFiniteError(RuntimeError):
    """The loss or a gradient became NaN/inf; the run stopped with its last good checkpoint kept."""

    def __init__(self, step: int, last_checkpoint: int | None, workdir: Path):
        self.step = step
        self.last_checkpoint = last_checkpoint
        where = (
            f"the last good checkpoint is step {last_checkpoint} in {workdir / 'checkpoints'}"
            if last_checkpoint is not None
            else "no checkpoint had been written yet"
        )
        super().__init__(
            f"non-finite loss or gradient at step {step}: training stopped, the update of that step "
            f"was not applied, and {where}. Lower the learning rate, add warm-up or gradient "
            f"clipping (optim.warmup_steps, optim.grad_clip_norm) and run again to resume."
        )


@dataclasses.dataclass
class Run:
    """Everything a run is built from; made by :func:`setup` and used by train, eval and sample."""

    config: ml_collections.ConfigDict
    workdir: Path
    mesh: Mesh
    task: Task
    train_data: Any
    eval_data: Any | None
    batcher: Any
    optimizer: Any
    checkpointer: Checkpointer
    keys: dict[str, jax.Array]
    _compiled: dict[str, Any] = dataclasses.field(default_factory=dict)

    def compiled(self, name: str, make: Any) -> Any:
        """The jitted function ``name``, built once per run so that evaluations do not recompile."""
        if name not in self._compiled:
            self._compiled[name] = make()
        return self._compiled[name]


def _optimizer(config: ml_collections.ConfigDict):
    opt = dict(config.optim)
    return make_optimizer(
        opt.pop("name"),
        learning_rate=opt.pop("learning_rate"),
        schedule=opt.pop("schedule", "constant"),
        warmup_steps=opt.pop("warmup_steps", 0),
        total_steps=config.train.steps,
        end_factor=opt.pop("end_factor", 0.0),
        grad_clip_norm=opt.pop("grad_clip_norm", None),
        **opt,
    )


def setup(config: ml_collections.ConfigDict, workdir: str | Path, *, mesh: Mesh | None = None) -> Run:
    """Load data, build the task, the optimizer, the mesh and the checkpointer of a config."""
    workdir = Path(workdir)
    config = with_defaults(copy.deepcopy(config))
    mesh = mesh or make_mesh(config.train.num_devices or None)
    check_batch_size("data.batch_size", config.data.batch_size, mesh)
    # data.kwargs go to both loads; data.train_kwargs to the training split only (e.g. a larger
    # sample of a 2-D density for training, the same held-out sample for evaluation).
    dkw = dict(config.data.get("kwargs", {}) or {})
    train_kw = {**dkw, **dict(config.data.get("train_kwargs", {}) or {})}
    train_data = kdata.load(config.data.name, split=config.data.split, data_dir=config.data.get("data_dir") or None, **train_kw)
    eval_split = config.data.get("eval_split")
    eval_data = (
        kdata.load(config.data.name, split=eval_split, data_dir=config.data.get("data_dir") or None, **dkw)
        if eval_split
        else None
    )
    task = build_task(config.task, config.model, train_data.info)
    # The global batch is a function of (seed, step); each host gathers only its share of it.
    batcher = kdata.Batcher(
        train_data,
        config.data.batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    keys = split_named(make_key(config.seed), "init", "train", "eval", "sample")
    checkpointer = Checkpointer(
        workdir / "checkpoints",
        max_to_keep=config.train.keep_checkpoints,
        async_save=config.train.async_checkpoints,
    )
    return Run(config, workdir, mesh, task, train_data, eval_data, batcher, _optimizer(config), checkpointer, keys)


def _fresh_state(run: Run, first: Any) -> TrainState:
    params, model_state = run.task.init(first, key=run.keys["init"])
    return create_train_state(
        params,
        model_state,
        run.optimizer,
        use_ema=bool(run.config.train.ema_decay),
        key=run.keys["train"],
    )


def initial_state(run: Run) -> TrainState:
    """A fresh replicated state; ``task.init`` sees the first training batch."""
    first = shard_batch(run.batcher.batch_at(0), run.mesh)
    return jax.device_put(_fresh_state(run, first), replicated(run.mesh))


def abstract_state(run: Run) -> TrainState:
    """The structure, shapes, dtypes and shardings of :func:`initial_state`, computing nothing.

    ``jax.eval_shape`` traces ``task.init`` and the optimizer's init instead of running them (a
    UNet's eager init takes seconds on a CPU); the leaves are ``jax.ShapeDtypeStruct`` with the
    replicated sharding that :func:`initial_state` gives, the target a checkpoint is restored into.
    """
    first = shard_batch(run.batcher.batch_at(0), run.mesh)
    shapes = jax.eval_shape(lambda batch: _fresh_state(run, batch), first)
    sharding = replicated(run.mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def restore_or_init(run: Run) -> tuple[TrainState, int | None]:
    """The newest readable checkpoint of the run, or a fresh state; returns ``(state, step or None)``.

    A checkpoint is restored into :func:`abstract_state`, so a resumed run computes no fresh state
    (and no data-dependent init) only to overwrite it; a run without a readable checkpoint starts
    from :func:`initial_state`.
    """
    restored = run.checkpointer.restore_latest(abstract_state(run)) if run.checkpointer.all_steps() else None
    if restored is None:
        return initial_state(run), None
    step, state = restored
    return state, step


def _mean_metrics(records: list[dict[str, jax.Array]]) -> dict[str, float]:
    stacked = jax.device_get(records)
    return {k: float(np.mean([r[k] for r in stacked])) for k in stacked[0]}


def evaluate(run: Run, state: TrainState) -> dict[str, float]:
    """Average ``task.evaluate`` over the evaluation split, weighting batches by size."""
    if run.eval_data is None or run.task.evaluate is None:
        return {}
    eval_step = run.compiled("eval", lambda: make_eval_step(run.task, mesh=run.mesh))
    bs = run.config.data.get("eval_batch_size", run.config.data.batch_size)
    totals: dict[str, float] = {}
    count = 0
    for i, batch in enumerate(kdata.eval_batches(run.eval_data, bs)):
        n = len(next(iter(batch.values())))
        if jax.process_count() > 1 and n % jax.process_count() == 0:
            share = n // jax.process_count()
            batch = {k: v[jax.process_index() * share : (jax.process_index() + 1) * share] for k, v in batch.items()}
        metrics = jax.device_get(
            eval_step(state, shard_batch(batch, run.mesh), key_data(jax.random.fold_in(run.keys["eval"], i)))
        )
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) * n
        count += n
    return {k: v / count for k, v in totals.items()}


def write_grids(run: Run, state: TrainState, step: int) -> list[Path]:
    """Write the sample grid and the task's figures for ``step`` (process 0 only)."""
    paths: list[Path] = []
    if jax.process_index() != 0:
        return paths
    cols = run.task.grid_columns
    if run.task.sample is not None:
        num = run.config.train.num_samples
        images = run.compiled("sample", lambda: jax.jit(run.task.sample, static_argnums=2))(
            eval_params(state), state.model_state, num, key=run.keys["sample"]
        )
        paths.append(save_grid(run.workdir / "samples" / f"step_{step:07d}.png", np.asarray(images), columns=cols))
    if run.task.figures is not None and run.eval_data is not None:
        n = min(len(run.eval_data), run.config.train.num_figure_examples)
        batch = shard_batch(run.eval_data.get_batch(np.arange(n)), run.mesh)
        figures = run.compiled("figures", lambda: jax.jit(run.task.figures))(
            eval_params(state), state.model_state, batch, key=jax.random.fold_in(run.keys["sample"], 1)
        )
        for name, images in figures.items():
            paths.append(
                save_grid(run.workdir / "figures" / f"{name}_{step:07d}.png", np.asarray(images), columns=cols)
            )
    return paths


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    eval_metrics: dict[str, float]
    workdir: Path
    resumed_from: int | None


def train(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    mesh: Mesh | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``config`` in ``workdir``, resuming from its newest checkpoint if there is one.

    Args:
        config: an experiment config (see :mod:`kexue_jax.train.config`).
        workdir: where metrics, grids and checkpoints go; an existing run there is resumed.
        mesh: the device mesh (default: all devices on a ``data`` axis).
        stop_after: stop after this many steps of this invocation, with a checkpoint, as a
            job with a time limit would; the next call resumes (``--stop-after`` on the CLI).

    Raises:
        NonFiniteError: a loss or gradient became non-finite; the step is named and the last good
            checkpoint is kept.
    """
    config = with_defaults(copy.deepcopy(config))
    _validate(config)
    run = setup(config, workdir, mesh=mesh)
    run.workdir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    if is_main:
        (run.workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
    tc = config.train
    total = int(tc.steps)
    state, resumed_from = restore_or_init(run)
    start = int(state.step)
    if resumed_from is not None:
        log.info("resuming from checkpoint at step %d", resumed_from)
    writer = MetricsWriter(run.workdir / "metrics.jsonl", resume_step=resumed_from, enabled=is_main)
    step_fn = make_train_step(run.task, run.optimizer, mesh=run.mesh, ema_decay=tc.ema_decay or None)

    def check_finite(state: TrainState) -> None:
        bad = int(state.nonfinite_step)
        if bad >= 0:
            run.checkpointer.wait()
            raise NonFiniteError(bad, run.checkpointer.latest_step(), run.workdir)

    eval_metrics: dict[str, float] = {}
    window: list[dict[str, jax.Array]] = []
    prefetch = Prefetcher(lambda s: shard_batch(run.batcher.batch_at(s), run.mesh), start, total,
                          size=tc.prefetch)
    bar = tqdm(total=total, initial=start, disable=not (is_main and tc.progress),
               dynamic_ncols=True, mininterval=1.0, desc=config.get("name", run.task.name))
    t_window, s_window = time.perf_counter(), start
    _STOP.clear()
    _RUNNING.set()
    try:
        step = start
        for batch in prefetch:
            state, metrics = step_fn(state, batch)
            step += 1
            window.append(metrics)
            last = step == total
            if step % tc.log_every == 0 or last:
                check_finite(state)
                means = _mean_metrics(window)
                window = []
                now = time.perf_counter()
                means["steps_per_sec"] = (step - s_window) / max(now - t_window, 1e-9)
                t_window, s_window = now, step
                writer.write(step, "train", means)
                bar.set_postfix(loss=f"{means['loss']:.4g}", steps_s=f"{means['steps_per_sec']:.1f}")
                bar.update(step - bar.n)
            if (tc.eval_every and step % tc.eval_every == 0) or last:
                eval_metrics = evaluate(run, state)
                if eval_metrics:
                    writer.write(step, "eval", eval_metrics)
                    bar.write(f"step {step}: eval " + ", ".join(f"{k}={v:.4g}" for k, v in eval_metrics.items()))
            interrupted = _STOP.is_set()
            stopping = stop_after is not None and step - start >= stop_after
            # The checkpoint comes before the sample grids: sampling (a 1,000-step sampler at the
            # last step) can take longer than training did, and must not put the step at risk.
            if (tc.checkpoint_every and step % tc.checkpoint_every == 0) or last or stopping or interrupted:
                check_finite(state)
                run.checkpointer.save(step, state)
            if interrupted:
                run.checkpointer.wait()
                log.warning("interrupted: saved a checkpoint at step %d in %s; run again to resume", step,
                            run.checkpointer.directory)
                raise KeyboardInterrupt
            if (tc.sample_every and step % tc.sample_every == 0) or last:
                write_grids(run, state, step)
            if stopping:
                break
        if start >= total:  # nothing to do: already trained
            eval_metrics = evaluate(run, state)
    except KeyboardInterrupt:  # a stop request above, or a second Ctrl-C / an interrupt outside the CLI
        _save_on_interrupt(run, state)
        raise
    finally:
        _RUNNING.clear()
        _STOP.clear()
        prefetch.close()
        bar.close()
        run.checkpointer.close()
    return TrainResult(state, eval_metrics, run.workdir, resumed_from)


def _save_on_interrupt(run: Run, state: TrainState) -> None:
    """Checkpoint the newest good state of an interrupted run so that no finished step is lost."""
    try:
        step, bad = int(state.step), int(state.nonfinite_step)
    except Exception:  # noqa: BLE001 - interrupted inside a step: its donated input is gone
        log.warning("interrupted during a step; the newest checkpoint is step %s", run.checkpointer.latest_step())
        return
    if bad >= 0 or step in run.checkpointer.all_steps():
        return
    run.checkpointer.save(step, state)
    run.checkpointer.wait()
    log.warning("interrupted: saved a checkpoint at step %d in %s; run again to resume", step,
                run.checkpointer.directory)


def _validate(config: ml_collections.ConfigDict) -> None:
    tc = config.train
    for name in ("steps", "log_every"):
        if int(tc[name]) <= 0:
            raise ValueError(f"train.{name}: expected a positive integer, got {tc[name]!r}")
    for name in ("eval_every", "sample_every", "checkpoint_every"):
        value = tc.get(name) or 0
        if value and value % tc.log_every:
            raise ValueError(
                f"train.{name}: must be a multiple of train.log_every ({tc.log_every}) so that a resumed "
                f"run logs the same windows as an uninterrupted one; got {value}"
            )


def load_for_inference(
    config: ml_collections.ConfigDict, workdir: str | Path, *, step: int | None = None
) -> tuple[Run, TrainState, int]:
    """The run of ``config`` and the state of a checkpoint (for eval and sample).

    ``step=None`` takes the newest readable checkpoint (unreadable ones are quarantined, as when
    training resumes); an int takes exactly that checkpoint, so that a result can name the model
    it was computed from even after training went on (or a stopped run saved a later step). The
    checkpoint is restored into :func:`abstract_state`, so no fresh state is computed only to be
    overwritten.

    Raises:
        ValueError: naming ``workdir`` when it holds no checkpoint, or ``step`` when that
            checkpoint is not there (listing the steps present) or cannot be read.
    """
    run = setup(config, workdir)
    steps = run.checkpointer.all_steps()
    if step is not None:
        if step not in steps:
            run.checkpointer.close()
            raise ValueError(f"step: no checkpoint at step {step} in {Path(workdir) / 'checkpoints'}; "
                             f"it holds steps {steps}")
        try:
            return run, run.checkpointer.restore(step, abstract_state(run)), step
        except Exception as e:  # noqa: BLE001 - any failure to read: say which checkpoint, keep it in place
            run.checkpointer.close()
            raise ValueError(f"step: the checkpoint at step {step} in {Path(workdir) / 'checkpoints'} is "
                             f"unreadable ({type(e).__name__}: {e})") from e
    restored = run.checkpointer.restore_latest(abstract_state(run)) if steps else None
    if restored is None:
        run.checkpointer.close()
        raise ValueError(f"workdir: no checkpoint found in {Path(workdir) / 'checkpoints'}; train first")
    step, state = restored
    return run, state, step
