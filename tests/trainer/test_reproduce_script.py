"""Input checks of ``trainer/reproduce_default.sh`` (the full run takes about an hour)."""

import subprocess

import pytest

from trainer.config import REPO_ROOT

SCRIPT = REPO_ROOT / "trainer" / "reproduce_default.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=60)


def test_without_arguments_it_prints_the_usage():
    result = _run()
    assert result.returncode != 0 and "usage: trainer/reproduce_default.sh" in result.stderr


@pytest.mark.parametrize("case", ["series", "vois", "mask"])
def test_a_missing_input_is_named_and_nothing_is_written(tmp_path, case):
    series = tmp_path / "series"
    vois = tmp_path / "vois"
    if case != "series":
        series.mkdir()
    if case != "vois":
        (vois / "image").mkdir(parents=True)
    out = tmp_path / "out"
    held_out = [str(series), str(tmp_path / "absent.nii.gz")] if case == "mask" else []
    args = [str(series), *held_out]
    result = _run(*args, OUT=str(out), VOIS=str(vois))
    expected = {"series": f"negative series folder not found: {series}",
                "vois": f"crop folder not found: {vois}/image",
                "mask": "a held-out series needs its mask file"}[case]
    assert result.returncode == 2 and expected in result.stderr
    assert not out.exists()
