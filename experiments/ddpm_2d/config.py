"""Diffusion models on 2-D densities (kexue.fm 9119/9152/9164/9209): DDPM (default) or a score SDE,
evaluated by sliced-W2 / MMD of samples and by the probability-flow ODE NLL against the exact NLL.

    kexue-jax train ddpm-2d                                          # DDPM, linear schedule, moons
    kexue-jax train ddpm-2d data.name=eight_gaussians
    kexue-jax train ddpm-2d model.process=vp                         # VP SDE, Euler-Maruyama sampler
    kexue-jax train ddpm-2d model.schedule=su                        # Su's beta_t = 0.02 t / T

Class-conditional with classifier-free guidance (kexue.fm 9257; Ho & Salimans 2022): the label of a
point is its angular sector (for eight_gaussians, the nearest component), labels are dropped to the
null label with probability ``cfg_dropout``, and ``figure_guidance`` draws one histogram per weight:

    kexue-jax train ddpm-2d data.name=eight_gaussians model.num_classes=8 model.cfg_dropout=0.2 \\
        model.figure_guidance="(0.0, 1.0, 3.0)"

Smoke: ``--smoke`` (seconds).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "diffusion"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "moons", "split": "train", "eval_split": "test", "batch_size": 512, "eval_batch_size": 2000, "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "process": "ddpm",
            "schedule": "linear",
            "num_steps": 1000,
            "network": "mlp",
            "hidden": (128, 128, 128),
            "time_embedding": "sinusoidal",
            "embed_dim": 64,
            "sampler": "auto",  # ddpm: ddpm_large (Su's sigma_t = beta_t); vp/subvp: euler_maruyama; ve: pc
            "sampler_steps": 1000,
            "sigma_max": 10.0,
            "likelihood_eps": 1e-3,
            "eval_points": 1000,  # of each 2000-point eval batch; the other 1000 give the sw_ref/mmd_ref floor
            "plot_range": 4.0,
            # class-conditional (CFG) when num_classes is set; None: unconditional
            "num_classes": None,
            "labels": "angular_sector",  # the 2-D densities carry no labels
            "cfg_dropout": 0.1,
            "guidance": 0.0,  # w of the evaluation samples (given the data's labels) and of the sample histogram
            "figure_guidance": (),
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 2e-3, "schedule": "cosine", "warmup_steps": 200, "end_factor": 0.01,
             "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 20000, "log_every": 200, "eval_every": 0, "sample_every": 0, "checkpoint_every": 5000,
             "keep_checkpoints": 2, "ema_decay": 0.999, "num_samples": 1, "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.hidden = (16, 16)
    c.model.embed_dim = 8
    c.model.num_steps = 100
    c.model.sampler_steps = 20
    c.model.eval_points = 100
    c.model.num_figure_samples = 256
    c.model.plot_resolution = 32
    c.model.likelihood_rtol = 1e-2
    c.model.likelihood_atol = 1e-2
    c.data.batch_size = 64
    c.data.eval_batch_size = 5000
    return c
