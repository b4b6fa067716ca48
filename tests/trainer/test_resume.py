"""Resuming an interrupted run from ``last.pt`` ends where the uninterrupted run ends."""

from pathlib import Path

import pytest
import torch

import trainer.train.loop
from tests.trainer.conftest import TINY
from trainer.cli import main
from trainer.train.checkpoint import load_checkpoint


class Interrupted(Exception):
    """Stands in for a killed process right after a checkpoint was written."""


def _run_interrupted(args: list[str], monkeypatch) -> None:
    """Run ``trainer`` with ``args`` and stop it right after its first ``last.pt``."""
    real = trainer.train.loop.save_checkpoint

    def save_then_stop(path, *a, **kw):
        real(path, *a, **kw)
        if Path(path).name == "last.pt":
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(trainer.train.loop, "save_checkpoint", save_then_stop)
        with pytest.raises(Interrupted):
            main(args)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "final.pt")["state_dict"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def tiny_run(demo_vois, tmp_path):
    """``finetune`` arguments for a 4-step run (checkpoints at steps 2 and 4), one thread,
    and an uninterrupted reference run's directory."""
    common = ["--config", TINY, "--set", f"vois_dir={demo_vois[0]}",
              "--set", f"cache={tmp_path / 'cache.npz'}"]
    assert main(["cache", *common]) == 0
    args = ["finetune", *common, "--set", "steps=4", "--set", "num_threads=1"]
    assert main([*args, "--set", f"out_dir={tmp_path / 'whole'}"]) == 0
    return args, tmp_path


@pytest.mark.slow
def test_resumed_run_matches_uninterrupted_run(tiny_run, monkeypatch):
    args, root = tiny_run
    resumed = ["--set", f"out_dir={root / 'resumed'}"]
    _run_interrupted([*args, *resumed], monkeypatch)
    assert load_checkpoint(root / "resumed" / "last.pt")["step"] == 2
    assert not (root / "resumed" / "final.pt").exists()
    assert main([*args, *resumed]) == 0
    assert _same(_weights(root / "whole"), _weights(root / "resumed"))
    history = load_checkpoint(root / "resumed" / "final.pt")["history"]
    assert history == load_checkpoint(root / "whole" / "final.pt")["history"]


@pytest.mark.slow
def test_checkpoint_without_random_state_resumes_with_fresh_streams(tiny_run, monkeypatch,
                                                                    capsys):
    args, root = tiny_run
    resumed = ["--set", f"out_dir={root / 'old'}"]
    _run_interrupted([*args, *resumed], monkeypatch)
    last = root / "old" / "last.pt"
    state = torch.load(last, weights_only=False)
    del state["rng"]
    torch.save(state, last)
    capsys.readouterr()
    assert main([*args, *resumed]) == 0
    assert "holds no random-number state" in capsys.readouterr().err
    assert load_checkpoint(root / "old" / "final.pt")["step"] == 4
    # the saved streams are what makes the resumed run exact
    assert not _same(_weights(root / "whole"), _weights(root / "old"))
