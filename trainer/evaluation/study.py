"""The label-efficiency study: pretraining x label fraction, with the baselines.

``train`` stage: VAE, contrastive (from scratch and from the VAE) pretraining, then one
U-Net fine-tuning per (initialisation, label fraction), run as parallel subprocesses.
``report`` stage: export every fine-tuned model, evaluate it through the ONNX engine on the
held-out test patients' crops next to the thresholding and k-means baselines, and write
``docs/results.md`` with a plot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import TrainConfig

INITS = ("scratch", "vae", "contrastive", "vae+contrastive")
PRETRAIN_OF = {"vae": "vae", "contrastive": "contrastive", "vae+contrastive": "vae_contrastive"}
METHODS = INITS


@dataclass
class Job:
    """One ``trainer`` subprocess with the names of the jobs it waits for."""

    name: str
    args: list[str]
    deps: list[str] = field(default_factory=list)


def plan_jobs(config: str | None, root: Path, fractions: list[float], pretrain_steps: int,
              finetune_steps: int, overrides: list[str]) -> list[Job]:
    """Return the study's jobs in priority order (each one's deps come earlier)."""
    base = ["--config", config] if config else []
    sets = [a for o in overrides for a in ("--set", o)]

    def job(name, command, extra, deps=()):
        args = [command, *base, *sets, "--set", f"out_dir={root / name}", *extra]
        return Job(name, args, list(deps))

    pre = [
        job("vae", "pretrain-vae", ["--set", f"steps={pretrain_steps}"]),
        job("contrastive", "pretrain-contrastive", ["--set", f"steps={pretrain_steps}"]),
        job("vae_contrastive", "pretrain-contrastive",
            ["--set", f"steps={pretrain_steps}", "--set", f"init={root / 'vae' / 'final.pt'}"],
            ["vae"]),
    ]
    ordered = sorted(fractions, key=lambda f: (f not in (0.1, 1.0), f))
    fine = []
    for frac in ordered:
        for init in INITS:
            extra = ["--set", f"steps={finetune_steps}", "--set", f"label_fraction={frac}"]
            deps = []
            if init != "scratch":
                deps = [PRETRAIN_OF[init]]
                extra += ["--set", f"init={root / PRETRAIN_OF[init] / 'final.pt'}"]
            fine.append(job(run_name(init, frac), "finetune", extra, deps))
    return pre + fine


def run_name(init: str, fraction: float) -> str:
    """Folder name of one fine-tuning run."""
    return f"ft_{init.replace('+', '_').replace('-', '')}_{int(round(fraction * 100)):03d}"


def run_jobs(jobs: list[Job], max_parallel: int, log_dir: Path, deadline_s: float) -> dict:
    """Run jobs as ``python -m trainer.cli`` subprocesses, respecting deps and a deadline.

    Returns
    -------
    dict
        Job name -> ``{"rc": int or None, "seconds": float}`` (``rc`` None: not run).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, done = list(jobs), {}, {}
    t0 = time.time()
    while pending or running:
        for name, (proc, start) in list(running.items()):
            if proc.poll() is not None:
                done[name] = {"rc": proc.returncode, "seconds": time.time() - start}
                del running[name]
        ready = [j for j in pending if all(done.get(d, {}).get("rc") == 0 for d in j.deps)]
        failed = [j for j in pending if any(d in done and done[d]["rc"] != 0 for d in j.deps)]
        for j in failed:
            pending.remove(j)
            done[j.name] = {"rc": None, "seconds": 0.0}
        while ready and len(running) < max_parallel and time.time() - t0 < deadline_s:
            j = ready.pop(0)
            pending.remove(j)
            log = (log_dir / f"{j.name}.log").open("w")
            cmd = [sys.executable, "-m", "trainer.cli", *j.args]
            running[j.name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT),
                               time.time())
        if time.time() - t0 >= deadline_s and not running:
            break
        time.sleep(1.0)
    for j in pending:
        done.setdefault(j.name, {"rc": None, "seconds": 0.0})
    return done


def train_stage(cfg_path: str | None, overrides: list[str], root: Path, fractions: list[float],
                pretrain_steps: int, finetune_steps: int, max_parallel: int,
                deadline_s: float) -> dict:
    """Run the study's training jobs and write ``root/jobs.json``."""
    jobs = plan_jobs(cfg_path, root, fractions, pretrain_steps, finetune_steps, overrides)
    status = run_jobs(jobs, max_parallel, root / "logs", deadline_s)
    (root / "jobs.json").write_text(json.dumps(status, indent=2))
    return status


def test_patients(cfg: TrainConfig) -> list[str]:
    """Held-out test patients of the split the trainer uses (from the cache)."""
    from trainer.data.datasets import patient_split
    from trainer.data.patches import PatchCache

    split = patient_split(PatchCache(cfg.cache).patients(), cfg.test_fraction,
                          cfg.val_fraction, seed=0)
    return split["test"]
