"""Explicit training loops: VAE and contrastive pretraining, U-Net fine-tuning.

Each command trains ``cfg.steps`` optimizer steps, logs metrics every ``cfg.eval_every``
steps (one "epoch"), keeps ``last.pt`` for resuming, and ends with ``final.pt``, a
``metrics.jsonl`` log and PNG curves (plus sample overlays for fine-tuning).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.quantize import dice
from trainer.config import TrainConfig
from trainer.data.augment import augment
from trainer.data.datasets import crop_split
from trainer.data.patches import PatchCache, PatchSampler
from trainer.evaluation.plots import plot_curves, plot_overlays
from trainer.nn.losses import dice_bce_loss, nt_xent, vae_loss
from trainer.nn.models import build_model
from trainer.nn.transfer import load_exported_weights, transfer_encoder
from trainer.train.checkpoint import load_checkpoint, save_checkpoint
from trainer.train.schedule import learning_rate


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for augmentation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Setup:
    """Shared state of a run: device, cache, patient split, samplers.

    A subclass may override :meth:`train_entries` and :meth:`split_info` to train on more
    crops than the labelled ones (as an experiment's self-training does).
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg.num_threads)
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device=cuda requested but CUDA is not available")
        self.device = torch.device(cfg.device)
        self.gen = seed_everything(cfg.seed)
        self.cache = PatchCache(cfg.cache)
        self.split, self.labelled = crop_split(self.cache.patients(), cfg.test_fraction,
                                               cfg.val_fraction, cfg.label_fraction)
        self.train = PatchSampler(self.cache, self.train_entries(), cfg.patch_size,
                                  cfg.seed, cfg.subsolid_weight, cfg.crop_canvas,
                                  cfg.scene_fraction)
        self.unlabelled = PatchSampler(self.cache, self.cache.entries(self.split["train"]),
                                       cfg.patch_size, cfg.seed + 1,
                                       scene_fraction=cfg.scene_fraction)
        val = PatchSampler(self.cache, self.cache.entries(self.split["val"]), cfg.patch_size, 123,
                           canvas=cfg.crop_canvas)
        self.val_x, self.val_y = val.sample(256, negative_fraction=cfg.negative_fraction)

    def train_entries(self) -> list[int]:
        """Return the cache entries fine-tuning draws crops from: the labelled patients'."""
        return self.cache.entries(self.labelled)

    def rng_state(self) -> dict:
        """Return every random stream the run draws from.

        Python, NumPy and torch (global; CUDA too on a GPU), the augmentation generator
        and the two training samplers.
        """
        state = {"python": random.getstate(), "numpy": np.random.get_state(),
                 "torch": torch.get_rng_state(), "augment": self.gen.get_state(),
                 "train": self.train.rng.bit_generator.state,
                 "unlabelled": self.unlabelled.rng.bit_generator.state}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore_rng(self, state: dict) -> None:
        """Set every stream of :meth:`rng_state` back to ``state``."""
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        self.gen.set_state(state["augment"])
        self.train.rng.bit_generator.state = state["train"]
        self.unlabelled.rng.bit_generator.state = state["unlabelled"]
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """Move a numpy batch to the run's device."""
        return torch.from_numpy(array).to(self.device)

    def split_info(self) -> dict:
        """Split and label subset, for checkpoints and the sidecar."""
        return {"split": self.split, "labelled_patients": self.labelled,
                "label_fraction": self.cfg.label_fraction}


def train_loop(
    setup: Setup, model: torch.nn.Module, step_fn: Callable[[], torch.Tensor],
    eval_fn: Callable[[], dict], run_dir: Path,
) -> tuple[list[dict], float]:
    """Run the optimisation with resume, per-epoch metrics and checkpoints.

    A run resumed from ``last.pt`` continues the random streams saved there, so it draws
    the patches and augmentations the uninterrupted run would have drawn; on the CPU it
    ends with the same weights. A checkpoint written before the streams were saved
    resumes with fresh ones, and says so.

    Returns
    -------
    history : list of dict
        One entry per epoch.
    seconds : float
        Wall time of the steps run by this call.
    """
    cfg = setup.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history = 0, []
    if (run_dir / "last.pt").is_file():
        state = load_checkpoint(run_dir / "last.pt")
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        start, history = state["step"], state["history"]
        if "rng" in state:
            setup.restore_rng(state["rng"])
        else:
            print(f"{run_dir / 'last.pt'} holds no random-number state (older checkpoint): "
                  "resuming with fresh random streams", file=sys.stderr)
    t0, losses = time.perf_counter(), []
    bar = tqdm(range(start, cfg.steps), desc=run_dir.name, mininterval=10)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg.steps, cfg.lr, cfg.warmup_steps)
        model.train()
        loss = step_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            model.eval()
            with torch.no_grad():
                entry = {"step": step + 1, "epoch": len(history) + 1,
                         "train_loss": float(np.mean(losses)), **eval_fn()}
            history.append(entry)
            losses = []
            bar.set_postfix({k: round(v, 4) for k, v in entry.items() if isinstance(v, float)})
            with (run_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
            save_checkpoint(run_dir / "last.pt", model, opt, cfg, step + 1, len(history),
                            history, setup.split_info(), rng=setup.rng_state())
    return history, time.perf_counter() - t0


def finish(setup: Setup, model: torch.nn.Module, history: list[dict], seconds: float,
           run_dir: Path) -> Path:
    """Write ``final.pt`` and the loss curves of a finished run; return the checkpoint path."""
    info = {**setup.split_info(), "train_seconds": seconds}
    path = save_checkpoint(run_dir / "final.pt", model, None, setup.cfg, setup.cfg.steps,
                           len(history), history, info)
    if history:
        plot_curves(history, run_dir / "curves.png")
    return path


def run_dir_of(cfg: TrainConfig) -> Path:
    """Create the run folder ``cfg.out_dir`` with the run's ``config.json``; return it."""
    path = Path(cfg.out_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    return path


def pretrain_vae(cfg: TrainConfig) -> Path:
    """Train the VAE on unlabelled patches; return the final checkpoint path."""
    setup, run_dir = Setup(cfg), run_dir_of(cfg)
    model = build_model("VAE", cfg).to(setup.device)

    def step() -> torch.Tensor:
        x, _ = setup.unlabelled.sample(cfg.batch_size, cfg.negative_fraction)
        x, _ = augment(setup.tensor(x), generator=setup.gen)
        recon, mu, logvar = model(x)
        return vae_loss(recon, x, mu, logvar, cfg.beta)[0]

    def evaluate() -> dict:
        x = setup.tensor(setup.val_x)
        mu, logvar = model.encode(x)
        total, rec, kl = vae_loss(model.decode(mu), x, mu, logvar, cfg.beta)
        return {"val_loss": float(total), "val_recon": float(rec), "val_kl": float(kl)}

    history, seconds = train_loop(setup, model, step, evaluate, run_dir)
    return finish(setup, model, history, seconds, run_dir)


def pretrain_contrastive(cfg: TrainConfig) -> Path:
    """Train encoder + projection head with NT-Xent (optionally from ``cfg.init``)."""
    setup, run_dir = Setup(cfg), run_dir_of(cfg)
    model = build_model("ContrastiveModel", cfg)
    if cfg.init:
        transfer_encoder(model, load_checkpoint(cfg.init)["state_dict"])
    model.to(setup.device)

    def views(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = setup.tensor(x)
        return augment(t, generator=setup.gen)[0], augment(t, generator=setup.gen)[0]

    def step() -> torch.Tensor:
        entries = setup.unlabelled.sample_distinct_patients(cfg.batch_size)
        x, _ = setup.unlabelled.sample(len(entries), 0.0, entries=list(entries))
        v1, v2 = views(x)
        return nt_xent(model(v1), model(v2), cfg.temperature)

    def evaluate() -> dict:
        v1, v2 = views(setup.val_x[:128])
        z1, z2 = model(v1), model(v2)
        norm = torch.nn.functional.normalize
        sim = norm(z1, dim=1) @ norm(z2, dim=1).t()
        acc = (sim.argmax(1) == torch.arange(len(z1), device=sim.device)).float().mean()
        return {"val_loss": float(nt_xent(z1, z2, cfg.temperature)), "val_top1": float(acc)}

    history, seconds = train_loop(setup, model, step, evaluate, run_dir)
    return finish(setup, model, history, seconds, run_dir)


InitWeights = Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], list[str]]
"""Copies pretrained weights (a state dict) into a model; returns the names copied."""


def finetune(cfg: TrainConfig, setup: Setup | None = None,
             init_weights: InitWeights = transfer_encoder) -> Path:
    """Train the U-Net with Dice + BCE on the labelled patients of ``cfg.label_fraction``.

    ``setup`` (default ``Setup(cfg)``) and ``init_weights`` (how ``cfg.init`` enters the
    U-Net; default its encoder) let an experiment change what is trained on and how the
    U-Net starts.
    """
    setup = Setup(cfg) if setup is None else setup
    run_dir = run_dir_of(cfg)
    model = build_model("UNet", cfg)
    if cfg.init:
        init_weights(model, load_checkpoint(cfg.init)["state_dict"])
    if cfg.init_model:
        load_exported_weights(model, cfg.init_model)
    model.to(setup.device)
    aug = cfg.augment_params()

    def step() -> torch.Tensor:
        x, y = setup.train.sample(cfg.batch_size, cfg.negative_fraction)
        x, y = augment(setup.tensor(x), setup.tensor(y), generator=setup.gen, params=aug)
        return dice_bce_loss(model(x), y, cfg.bce_weight, cfg.dice_mode)

    def evaluate() -> dict:
        x, y = setup.tensor(setup.val_x), setup.tensor(setup.val_y)
        logits = model(x)
        return {"val_loss": float(dice_bce_loss(logits, y, cfg.bce_weight, cfg.dice_mode)),
                "val_dice": dice(logits.cpu().numpy() > 0.0, y.cpu().numpy() > 0.5)}

    history, seconds = train_loop(setup, model, step, evaluate, run_dir)
    model.eval()
    with torch.no_grad():
        prob = torch.sigmoid(model(setup.tensor(setup.val_x[:8]))).cpu().numpy()
    plot_overlays(setup.val_x[:8], setup.val_y[:8], (prob > 0.5).astype(np.float32),
                  run_dir / "overlays.png")
    return finish(setup, model, history, seconds, run_dir)
