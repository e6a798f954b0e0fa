"""Experiment configs: discovery, loading, command-line overrides and the ``--smoke`` shrink.

An experiment is a folder ``experiments/<name with underscores>/`` holding ``config.py`` with a
``get_config()`` returning an ``ml_collections.ConfigDict`` with sections ``data``, ``model``,
``optim`` and ``train`` (see ``experiments/vae_mnist5k/config.py``), and optionally
``smoke(config)`` that shrinks it to seconds for CI. The CLI name uses dashes: ``vae-mnist5k``.

Experiments are looked up in ``$KEXUE_JAX_EXPERIMENTS``, ``./experiments`` and the repository
holding this package (an editable install), in that order; a path to a ``config.py`` also works.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import ml_collections


def experiment_dirs() -> list[Path]:
    dirs = []
    if env := os.environ.get("KEXUE_JAX_EXPERIMENTS"):
        dirs.append(Path(env))
    dirs.append(Path.cwd() / "experiments")
    dirs.append(Path(__file__).resolve().parents[2] / "experiments")
    seen, out = set(), []
    for d in dirs:
        d = d.resolve()
        if d not in seen and d.is_dir():
            seen.add(d)
            out.append(d)
    return out


def list_experiments() -> dict[str, Path]:
    """``{name: path to config.py}`` of every experiment found."""
    found: dict[str, Path] = {}
    for d in experiment_dirs():
        for cfg in sorted(d.glob("*/config.py")):
            found.setdefault(cfg.parent.name.replace("_", "-"), cfg)
    return found


def find_experiment(name: str) -> Path:
    """The ``config.py`` of experiment ``name`` (or ``name`` itself if it is a path to one)."""
    if name.endswith(".py") and Path(name).is_file():
        return Path(name)
    known = list_experiments()
    if name not in known:
        raise ValueError(
            f"name: unknown experiment {name!r}; known experiments: {sorted(known)} "
            f"(searched {[str(d) for d in experiment_dirs()]})"
        )
    return known[name]


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kexue_jax_experiment_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Apply ``section.key=value`` overrides (values parsed as Python literals, else strings)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"overrides: expected 'section.key=value', got {item!r}")
        path, _, raw = item.partition("=")
        *parents, leaf = path.strip().split(".")
        node = config
        for p in parents:
            if p not in node:
                raise ValueError(f"overrides: unknown config section {p!r} in {item!r}")
            node = node[p]
        if leaf not in node:
            raise ValueError(f"overrides: unknown config key {path!r}; {'.'.join(parents) or 'top level'} has {sorted(node.keys())}")
        value = _parse_value(raw)
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            node[leaf] = value
        except TypeError as e:
            raise ValueError(f"overrides: {path}={raw!r} has the wrong type for {old!r} ({e})") from None
    return config


# Engine settings every experiment has; a config file sets only those it changes.
TRAIN_DEFAULTS = dict(
    eval_every=0,  # 0: only at the end
    sample_every=0,
    checkpoint_every=0,
    keep_checkpoints=3,
    async_checkpoints=False,
    ema_decay=0.0,  # 0: no EMA parameters; else the decay d, warmed up as min(d, (1+n)/(10+n))
    num_samples=64,
    num_figure_examples=32,
    num_devices=0,  # 0: all devices
    prefetch=2,
    progress=True,
)


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fill the engine settings an experiment left out with :data:`TRAIN_DEFAULTS`."""
    with config.unlocked():
        for key, value in TRAIN_DEFAULTS.items():
            if key not in config.train:
                config.train[key] = value
        if "data_dir" not in config.data:
            config.data.data_dir = ""
    return config


def generic_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrink any config to a few seconds: few steps, every output written at least once."""
    t = config.train
    t.steps = min(int(t.steps), 20)
    t.log_every = 5
    t.eval_every = 10 if t.get("eval_every") else 0
    t.sample_every = 10 if t.get("sample_every") else 0
    t.checkpoint_every = 10
    if "num_samples" in t:
        t.num_samples = min(int(t.num_samples), 16)
    config.optim.warmup_steps = min(int(config.optim.get("warmup_steps", 0)), 2)
    return config


def load_config(
    name: str, *, smoke: bool = False, overrides: Sequence[str] = (), steps: int | None = None
) -> ml_collections.ConfigDict:
    """Load experiment ``name``; then ``--smoke`` shrinking, then overrides, then ``steps``."""
    path = find_experiment(name)
    module = _import(path)
    config = with_defaults(module.get_config())
    with config.unlocked():
        config.name = name if not name.endswith(".py") else path.parent.name.replace("_", "-")
    if smoke:
        config = generic_smoke(config)
        if hasattr(module, "smoke"):
            config = module.smoke(config)
    config = apply_overrides(config, overrides)
    if steps is not None:
        config.train.steps = int(steps)
    return config
