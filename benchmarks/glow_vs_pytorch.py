"""Glow CIFAR-10 training step: ours (the engine's jitted step) vs the same Glow in PyTorch.

Issue 3's GPU comparison, on ``experiments/glow_cifar10``'s model: $L = 3$ levels of $K = 32$ steps
(actnorm with data-dependent init, LU-decomposed invertible 1x1 convolution, affine coupling with
$\\sigma = \\mathrm{sigmoid}(h + 2)$ and a 3x3 - 1x1 - zero 3x3 conditioner of width 512 computed
in bf16), squeeze before each level, half the channels factored out after each level but the last
with a learned conditional prior (a zero-initialised 3x3 convolution giving $\\hat z_2 = z_2 e^{s}
+ t$), and a learned top prior $\\mathcal N(\\mu, \\sigma^2)$ per position; images dequantized with
fresh uniform noise every step and centred, loss the NLL in nats/dim (bits/dim reported);
gradient clipping at norm 50 and Adam (lr 1e-3); batch 64.

* ours: ``kexue_jax.flows.make_flow_task`` (``architecture="glow"``, ``dtype="bfloat16"``) through
  ``kexue_jax.train.make_train_step``, the step ``kexue-jax train glow-cifar10`` runs (the $K$ steps
  of a level are one ``lax.scan``).
* PyTorch: :class:`TorchGlow` below, written for this benchmark from the paper (Kingma & Dhariwal
  2018) and our code's structure so that it is the *same* function with the same parameters: the
  coupling's conditioner sees the kept half ($c/2$ channels) and outputs the scale and shift of the
  transformed half ($c$ channels), as in Glow's own code, and so does the split prior's zero
  convolution; the LU factors are full $c \\times c$ matrices
  masked to their triangles; $P$ and the signs are fixed. Trained in eager mode with the
  conditioners under ``torch.autocast(bfloat16)``, fused Adam and cuDNN autotuning; and with every
  flow step under ``torch.compile`` (regional compilation: the 96 steps share four compiled graphs,
  one per level's shape plus the very first step, whose input needs no gradient; compiling the
  whole flow would trace all 96 steps into one graph and compile for much longer).

Before timing the script checks, at a small size in float32, that both sides have the same
parameters and, with ours copied into the PyTorch model and moved off the identity, the same
log-likelihood; at the benchmark size it checks the parameter counts and records the bits/dim of
the first step of each side (own inits on the same images: finite and close). Goals (issue 3):
ours >= 2x PyTorch eager; ours / compiled reported.

    python -m benchmarks.glow_vs_pytorch                       # GPU: L3 K32 width 512, batch 64, bf16
    python -m benchmarks.glow_vs_pytorch --small               # CPU: L3 K2 width 16, checks the script
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
import optax
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import pytorch_peer as peer
from benchmarks.harness import write_result
from kexue_jax.flows.flow_model import make_flow_task

IMAGE = (32, 32, 3)
LR, CLIP = 1e-3, 50.0
GOALS = {"ours_over_pytorch_eager": 2.0}
FIXED = ("p_order", "sign")  # LU buffers that get no gradient (Glow keeps them fixed; model state on our side)


# --- the PyTorch Glow -----------------------------------------------------------------------------


def _he_normal(conv: nn.Conv2d) -> nn.Conv2d:
    """Our conditioner's init: weights $\\mathcal N(0, 2/\\text{fan\\_in})$, zero bias."""
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    nn.init.normal_(conv.weight, std=math.sqrt(2.0 / fan_in))
    nn.init.zeros_(conv.bias)
    return conv


def _zeros(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """``[b, c, h, w] -> [b, 4c, h/2, w/2]``, channel ``(2 dy + dx) c + i`` (ours' NHWC order)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


class ActNorm(nn.Module):
    """$y = e^{\\log s} x + b$ per channel; the first call sets the init batch to zero mean, unit std."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps
        self.pending_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pending_init:
            with torch.no_grad():
                mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
                self.log_scale.copy_(-torch.log(std + self.eps))
                self.bias.copy_(-mean * torch.exp(self.log_scale))
            self.pending_init = False
        y = x * self.log_scale.exp().view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y, x.shape[2] * x.shape[3] * self.log_scale.sum()


class InvConv1x1LU(nn.Module):
    """$W = P L (U + \\mathrm{diag}(\\mathrm{sign}\\, e^{\\log|s|}))$ from the LU of a random rotation."""

    def __init__(self, c: int):
        super().__init__()
        q, r = torch.linalg.qr(torch.randn(c, c))
        w0 = q * torch.sign(torch.diagonal(r))[None, :]
        p, lower, upper = torch.linalg.lu(w0)
        s = torch.diagonal(upper)
        self.register_buffer("p_order", torch.argsort(torch.argmax(p, dim=-1)).float())
        self.register_buffer("sign", torch.sign(s))
        self.register_buffer("eye", torch.eye(c))
        self.register_buffer("rows", torch.argsort(self.p_order))
        self.l = nn.Parameter(torch.tril(lower, -1))
        self.u = nn.Parameter(torch.triu(upper, 1))
        self.log_abs_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> torch.Tensor:
        lower = torch.tril(self.l, -1) + self.eye
        upper = torch.triu(self.u, 1) + torch.diag(self.sign * self.log_abs_s.exp())
        return (lower @ upper)[self.rows]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        return F.conv2d(x, self.weight().view(c, c, 1, 1)), x.shape[2] * x.shape[3] * self.log_abs_s.sum()


class AffineCoupling(nn.Module):
    """$y_2 = x_2 \\odot \\mathrm{sigmoid}(h + 2) + t$, $(h, t)$ from the conditioner of the kept half $x_1$."""

    def __init__(self, c: int, hidden: int, bf16: bool):
        super().__init__()
        half = c // 2
        self.conv1 = _he_normal(nn.Conv2d(half, hidden, 3, padding=1))
        self.conv2 = _he_normal(nn.Conv2d(hidden, hidden, 1))
        self.out = _zeros(nn.Conv2d(hidden, 2 * (c - half), 3, padding=1))
        self.bf16 = bf16

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = x.shape[1] // 2
        x1, x2 = x[:, :half], x[:, half:]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            h = F.relu(self.conv1(x1))
            h = F.relu(self.conv2(h))
            out = self.out(h).float()
        log_s = F.logsigmoid(out[:, :x2.shape[1]] + 2.0)
        y2 = x2 * log_s.exp() + out[:, x2.shape[1]:]
        return torch.cat([x1, y2], dim=1), log_s.sum(dim=(1, 2, 3))


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 convolution -> affine coupling."""

    def __init__(self, c: int, hidden: int, bf16: bool):
        super().__init__()
        self.actnorm = ActNorm(c)
        self.conv = InvConv1x1LU(c)
        self.coupling = AffineCoupling(c, hidden, bf16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld0 = self.actnorm(x)
        x, ld1 = self.conv(x)
        x, ld2 = self.coupling(x)
        return x, ld0 + ld1 + ld2


class SplitPrior(nn.Module):
    """The learned prior of the factored-out half: $\\hat z_2 = z_2 e^{s} + t$, $(s, t)$ = zero conv of $z_1$."""

    def __init__(self, c: int):
        super().__init__()
        half = c // 2
        self.conv = _zeros(nn.Conv2d(half, 2 * (c - half), 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = x.shape[1] // 2
        x1, x2 = x[:, :half], x[:, half:]
        out = self.conv(x1)
        log_s = out[:, :x2.shape[1]]
        z2 = x2 * log_s.exp() + out[:, x2.shape[1]:]
        return x1, z2, log_s.sum(dim=(1, 2, 3))


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _normal_log_prob(z: torch.Tensor, mean: torch.Tensor | None = None,
                     log_scale: torch.Tensor | None = None) -> torch.Tensor:
    """$\\sum \\log\\mathcal N(z; \\mu, e^{2\\log\\sigma})$ per example; the standard normal without moments."""
    if mean is None or log_scale is None:
        return (-0.5 * z.square() - _HALF_LOG_2PI).sum(dim=(1, 2, 3))
    eps = (z - mean) * torch.exp(-log_scale)
    return (-0.5 * eps.square() - log_scale - _HALF_LOG_2PI).sum(dim=(1, 2, 3))


class TorchGlow(nn.Module):
    """Glow on NCHW images in $[0, 1)$: centre, ``levels`` x (squeeze, ``depth`` steps, split)."""

    def __init__(self, image: tuple[int, int, int], *, levels: int, depth: int, hidden: int, bf16: bool):
        super().__init__()
        h, w, c = image
        self.levels = nn.ModuleList()
        self.splits = nn.ModuleList()
        for i in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.levels.append(nn.ModuleList([FlowStep(c, hidden, bf16) for _ in range(depth)]))
            if i < levels - 1:
                self.splits.append(SplitPrior(c))
                c //= 2
        self.top_mean = nn.Parameter(torch.zeros(c, h, w))
        self.top_log_scale = nn.Parameter(torch.zeros(c, h, w))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x)$ in nats per example, float32 ``[b]``."""
        x = x - 0.5
        total = torch.zeros(x.shape[0], device=x.device)
        for i, steps in enumerate(self.levels):
            x = squeeze(x)
            for step in steps:
                x, ld = step(x)
                total = total + ld
            if i < len(self.splits):
                x, z2, ld = self.splits[i](x)
                total = total + ld + _normal_log_prob(z2)
        return total + _normal_log_prob(x, self.top_mean, self.top_log_scale)

    def compile_steps(self) -> None:
        """Regional compilation: each flow step's ``forward`` under ``torch.compile``."""
        for steps in self.levels:
            for step in steps:
                step.compile(dynamic=False)  # one static graph per level shape

    def fixed_count(self) -> int:
        """Scalars of the fixed LU buffers (``p_order``, ``sign``), model state on our side too."""
        return sum(b.numel() for n, b in self.named_buffers() if n.rsplit(".", 1)[-1] in FIXED)

    @torch.no_grad()
    def load_ours(self, params: dict, state: dict) -> None:
        """Copy our Glow (``make_flow_task``'s nested dicts: params, and the state with the fixed
        LU buffers) into this model."""

        def put(dst: torch.Tensor, src: Any, perm: tuple[int, ...] | None = None) -> None:
            a = np.array(src, np.float32)
            dst.copy_(torch.from_numpy(np.ascontiguousarray(a.transpose(perm) if perm else a)))

        hwio = (3, 2, 0, 1)
        for i, steps in enumerate(self.levels):
            level = params["flow"][1][i]
            act, lu, cp = (level["level"][1][j] for j in range(3))
            lu = {**lu, **state["flow"][1][i]["level"][1][1]}
            for k, step in enumerate(steps):
                step.actnorm.pending_init = False
                put(step.actnorm.log_scale, act["log_scale"][k])
                put(step.actnorm.bias, act["bias"][k])
                for name in ("p_order", "sign", "l", "u", "log_abs_s"):
                    put(getattr(step.conv, name), lu[name][k])
                step.conv.rows.copy_(torch.argsort(step.conv.p_order))
                for name in ("conv1", "conv2", "out"):
                    put(getattr(step.coupling, name).weight, cp["st"][name]["w"][k], hwio)
                    put(getattr(step.coupling, name).bias, cp["st"][name]["b"][k])
            if i < len(self.splits):
                put(self.splits[i].conv.weight, level["split"]["st"]["w"], hwio)
                put(self.splits[i].conv.bias, level["split"]["st"]["b"])
        put(self.top_mean, params["prior"]["mean"], (2, 0, 1))
        put(self.top_log_scale, params["prior"]["log_scale"], (2, 0, 1))


# --- the benchmark --------------------------------------------------------------------------------


def glow_sizes(small: bool) -> dict[str, int]:
    return {"levels": 3, "depth": 2, "hidden": 16} if small else {"levels": 3, "depth": 32, "hidden": 512}


def flow_task(sizes: dict[str, int], dtype: str):
    return make_flow_task(dict(architecture="glow", preprocess="center", coupling="affine", scale="sigmoid",
                               permutation="conv1x1_lu", learn_top=True, dtype=dtype, event_shape=IMAGE,
                               num_bins=256, **sizes), None)


def our_counts(params: Any, state: Any) -> dict[str, int]:
    """Trainable scalars (``params``) and all scalars (plus the fixed LU buffers kept in ``state``)."""
    fixed = sum(int(np.prod(leaf.shape)) for path, leaf in jax.tree_util.tree_leaves_with_path(state)
                if getattr(path[-1], "key", None) in FIXED)
    trainable = peer.count_arrays(params)
    return {"total": trainable + fixed, "trainable": trainable}


def torch_counts(model: TorchGlow) -> dict[str, int]:
    trainable = peer.count_torch(model, trainable_only=True)
    return {"total": trainable + model.fixed_count(), "trainable": trainable}


def check_same_function(device: torch.device) -> dict[str, Any]:
    """At a small size in float32: same parameter count, and the same log p(x) with ours' parameters
    (moved off the identity by a random perturbation) copied into the PyTorch model."""
    sizes = glow_sizes(small=True)
    task = flow_task(sizes, "float32")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(8, *IMAGE), dtype=np.uint8)
    params, state = task.init({"image": images}, key=jax.random.key(1))

    @jax.jit
    def perturb(params: Any) -> Any:
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(2), len(leaves))
        return jax.tree.unflatten(treedef, [leaf + 0.05 * jax.random.normal(k, leaf.shape)
                                            for leaf, k in zip(leaves, keys, strict=True)])

    params = perturb(params)
    x = (images.astype(np.float32) + rng.uniform(size=images.shape).astype(np.float32)) / 256.0
    with jax.default_matmul_precision("float32"):
        ours = np.asarray(jax.jit(lambda p, x: task.extras["model"](p, state).log_prob(x))(params, x))
    model = TorchGlow(IMAGE, bf16=False, **sizes).to(device)
    model.load_ours(jax.device_get(params), jax.device_get(state))
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        theirs = model.log_prob(torch.as_tensor(x.transpose(0, 3, 1, 2).copy(), device=device)).cpu().numpy()
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    gap = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours)))
    counts = {"ours": our_counts(params, state), "pytorch": torch_counts(model)}
    if counts["ours"] != counts["pytorch"] or not gap < 1e-4 or not np.all(np.isfinite(ours)):
        raise SystemExit(f"the two Glows differ at the check size: counts {counts}, relative log p gap {gap:.2e}")
    return {"sizes": sizes, "params": counts, "max_relative_log_prob_gap": gap,
            "log_prob_ours": ours.tolist(), "log_prob_pytorch": theirs.tolist()}


class TorchSide(peer.TorchTrainer):
    """:class:`TorchGlow` trained on the same batches, eager or with regional ``torch.compile``."""

    def __init__(self, sizes: dict[str, int], images: np.ndarray, *, compile_steps: bool, bf16: bool, steps: int,
                 small: bool):
        device = peer.torch_device(torch, small=small)
        self.settings = peer.configure_torch(torch, device)
        torch.manual_seed(0)
        model = TorchGlow(IMAGE, bf16=bf16, **sizes).to(device)
        batches = [torch.as_tensor(np.ascontiguousarray(b.transpose(0, 3, 1, 2)), device=device) for b in images]
        num_dims = math.prod(IMAGE)

        def loss_fn(k_uint8: torch.Tensor) -> torch.Tensor:
            x = (k_uint8.float() + torch.rand(k_uint8.shape, device=device)) / 256.0
            return -model.log_prob(x).mean() / num_dims

        with torch.no_grad():  # actnorm's data-dependent init on the first batch
            self.init_bpd = float(loss_fn(batches[0])) / math.log(2.0) + 8.0
        if compile_steps:
            model.compile_steps()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=LR, fused=device.type == "cuda")
        self.model = model
        super().__init__(loss_fn, params, opt, batches, clip=CLIP, steps=steps, torch=torch, device=device)


def main(argv=None) -> int:
    args = peer.parse_args(__doc__, argv, batch=64, steps=5, repeats=5, peer="the PyTorch Glow")
    small, batch, steps, dtype = args.small, args.batch, args.steps, args.dtype
    sizes = glow_sizes(small)
    check = check_same_function(peer.torch_device(torch, small=small))

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, batch, *IMAGE), dtype=np.uint8)
    task = flow_task(sizes, dtype)
    optimizer = optax.chain(optax.clip_by_global_norm(CLIP), optax.adam(LR))
    ours = peer.EngineSide(task, optimizer, [{"image": x} for x in images], steps=steps, key=jax.random.key(0))
    counts = {"ours": our_counts(ours.state.params, ours.state.model_state)}
    compiled = ours.compile()
    ours_first = ours.first_metrics()
    peer.warm_up(ours.run)

    def torch_side(compile_steps: bool) -> TorchSide:
        return TorchSide(sizes, images, compile_steps=compile_steps, bf16=dtype == "bfloat16", steps=steps,
                         small=small)

    eager = torch_side(False)
    counts["pytorch"] = torch_counts(eager.model)
    if counts["ours"] != counts["pytorch"]:
        raise SystemExit(f"parameter counts differ: {counts}")
    eager_first = peer.warm_up(eager.run)

    result: dict[str, Any] = {
        "config": {"batch": batch, "image": IMAGE, "dtype": dtype, "steps_per_repeat": steps,
                   "repeats": args.repeats, **sizes, "coupling": "affine", "scale": "sigmoid",
                   "permutation": "conv1x1_lu", "learn_top": True,
                   "optimizer": f"clip_by_global_norm({CLIP}) + Adam(lr={LR})", "torch_settings": eager.settings,
                   "torch_compile": "regional: each flow step's forward (nn.Module.compile(dynamic=False))"},
        "params": counts,
        "check_same_function": check,
        "init_bpd": {"ours": ours_first["bpd"], "pytorch": eager.init_bpd},
        "xla_compiled_step_flops_per_image": (compiled["step_flops"] or float("nan")) / batch,
        "compile_s": {"ours": compiled["compile_s"], "pytorch_eager_first_call": eager_first},
        "goals": GOALS,
        "versions": peer.torch_environment(torch, eager.device),
    }
    if small:  # full-size counts: ours from abstract shapes, PyTorch's by building it on the CPU
        full = glow_sizes(False)
        abstract = jax.eval_shape(lambda: flow_task(full, "float32").init(
            {"image": np.zeros((2, *IMAGE), np.uint8)}, key=jax.random.key(0)))
        result["params_full_size"] = {"ours": our_counts(*abstract),
                                      "pytorch": torch_counts(TorchGlow(IMAGE, bf16=False, **full))}
    for side, bpd in result["init_bpd"].items():
        if not math.isfinite(bpd):
            raise SystemExit(f"{side}: bits/dim at init is not finite ({bpd})")

    def final(sides: dict[str, Any]) -> dict[str, float]:  # nats/dim of each side's last step
        return {k: float(s.metrics["loss"]) if k == "ours" else s.last_loss() for k, s in sides.items()}

    name = "glow_vs_pytorch" + ("_small" if small else "")
    peer.time_phases(result, name, ours=ours, eager=eager,
                     compiled=(lambda: torch_side(True)) if args.compile else None, peer="pytorch",
                     repeats=args.repeats, final=final, batch=batch, steps=steps)
    if args.compile:
        result["torch_compile_stats"] = {k: int(v) for k, v in torch._dynamo.utils.counters["stats"].items()}
        result["path"] = str(write_result(name, result))

    print(f"check at {check['sizes']} (float32): params {check['params']['ours']}, relative log p gap "
          f"{check['max_relative_log_prob_gap']:.1e}")
    print(f"params: {counts}" + (f"; full size: {result['params_full_size']}" if small else ""))
    print(f"bits/dim at init: {result['init_bpd']}")
    peer.print_rows(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
