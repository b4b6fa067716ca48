"""The label-efficiency study: pretraining x label fraction, with the baselines.

``train`` stage: VAE, contrastive (from scratch and from the VAE) pretraining, then one
U-Net fine-tuning per (initialisation, label fraction), and for each fraction below 100 %
self-training (pseudo-labels of the VAE-init model on the unlabelled training crops, then a
U-Net fine-tuned on both), run as parallel subprocesses.
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
SELF_TRAINING = "vae+self-training"
"""The VAE-init model of a label fraction labels the crops of the other training patients
(:mod:`trainer.pseudo`); a U-Net from the VAE is fine-tuned on both."""
METHODS = (*INITS, SELF_TRAINING)


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
    return pre + fine + _self_training_jobs(job, root, ordered, finetune_steps)


def pseudo_name(fraction: float) -> str:
    """Folder of the pseudo-labels made by the VAE-init model of ``fraction``."""
    return "pseudo_" + run_name("vae", fraction)


def _self_training_jobs(job, root: Path, fractions: list[float], steps: int) -> list[Job]:
    jobs = []
    for frac in (f for f in fractions if f < 1.0):
        teacher, labels = run_name("vae", frac), root / pseudo_name(frac) / "labels.npz"
        common = ["--set", f"label_fraction={frac}"]
        jobs.append(job(pseudo_name(frac), "pseudo-label",
                        [*common, "--teacher", str(root / teacher / "final.pt"),
                         "--out", str(labels)], [teacher]))
        jobs.append(job(run_name(SELF_TRAINING, frac), "finetune",
                        [*common, "--set", f"steps={steps}",
                         "--set", f"init={root / 'vae' / 'final.pt'}",
                         "--set", f"pseudo_labels={labels}"], [pseudo_name(frac), "vae"]))
    return jobs


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

    cache = PatchCache(cfg.cache)
    patients = sorted({cache.meta[i]["patient"] for i in cache.entries()})
    return patient_split(patients, cfg.test_fraction, cfg.val_fraction, seed=0)["test"]
