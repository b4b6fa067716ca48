from pathlib import Path

from trainer.evaluation.report import findings, results_table
from trainer.evaluation.study import plan_jobs, run_name


def test_plan_orders_dependencies_and_names():
    jobs = plan_jobs(None, Path("r"), [0.05, 0.1, 1.0], 5, 7, ["seed=1"])
    names = [j.name for j in jobs]
    assert names[:3] == ["vae", "contrastive", "vae_contrastive"]
    assert len(jobs) == 3 + 3 * 4
    for j in jobs:
        assert all(names.index(d) < names.index(j.name) for d in j.deps)
    ft = next(j for j in jobs if j.name == run_name("vae+contrastive", 0.1))
    assert ft.deps == ["vae_contrastive"] and "init=r/vae_contrastive/final.pt" in ft.args
    assert "label_fraction=0.1" in ft.args and "seed=1" in ft.args
    assert names.index(run_name("scratch", 0.1)) < names.index(run_name("scratch", 0.05))


def test_findings_and_table_from_numbers():
    res = {run_name(i, 0.1): {"dice_mean": d} for i, d in
           (("scratch", 0.70), ("vae", 0.76), ("contrastive", 0.69), ("vae+contrastive", 0.71))}
    text = findings(res, [0.1])
    assert "vae +0.060" in text and "meets the claimed gain" in text
    res[run_name("vae", 0.1)]["dice_mean"] = 0.72
    assert "does NOT meet" in findings(res, [0.1])
    assert "| U-Net, vae init | 0.720 |" in results_table(res, [0.1])
