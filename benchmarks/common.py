"""Shared benchmark helpers: locate series, I/O floor, subprocess runs with peak memory,
machine description and table printing. Only the standard library and numpy at import time.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.gettempdir()) / "lungseg-bench"


def series_dir(path: str | Path) -> Path:
    """Return the folder holding the DICOM files of ``path``.

    ``path`` is a folder (searched recursively for ``*.dcm``) or a ``.tar.xz``/``.tar``
    archive, extracted once under the system temp folder.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or holds no ``.dcm`` file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"series path not found: {path}")
    if path.is_file() and ".tar" in path.name:
        target = WORK / "series" / path.name.split(".tar")[0]
        if not any(target.rglob("*.dcm")):
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:  # Python < 3.11.4: refuse absolute or parent-relative names
                    names = tar.getnames()
                    if any(n.startswith("/") or ".." in Path(n).parts for n in names):
                        raise ValueError(f"unsafe member names in {path}")
                    tar.extractall(target)
        path = target
    folders = sorted({p.parent for p in path.rglob("*.dcm")}, key=lambda p: -len(
        list(p.glob("*.dcm"))))
    if not folders:
        raise FileNotFoundError(f"no .dcm files under {path}")
    return folders[0]


def dicom_files(folder: Path) -> list[Path]:
    """Return the ``.dcm`` files of ``folder`` (sorted by name)."""
    return sorted(folder.glob("*.dcm"))


def io_floor(files: list[Path], repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to read and decode ``files`` with pydicom (one thread).

    The first pass also warms the page cache, as the end-to-end runs see it warm.
    """
    import pydicom

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for f in files:
            ds = pydicom.dcmread(f)
            _ = ds.pixel_array
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class ProcessRun:
    """Result of one subprocess run."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    output: str
    extra: dict = field(default_factory=dict)


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``cmd``; return its wall time and peak resident memory.

    The peak comes from ``/usr/bin/time`` when present: a child forked directly from this
    (large) benchmark process would inherit its resident-set high-water mark, since Linux
    keeps ``ru_maxrss`` across ``exec``. Without it, ``os.wait4``'s figure is reported and is
    an upper bound.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        timer = ["/usr/bin/time", "-f", "%M", "-o", str(report)]
        full = timer + cmd if Path(timer[0]).is_file() else cmd
        start = time.perf_counter()
        with open(Path(tmp) / "log", "w+b") as log:
            proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            log.seek(0)
            output = log.read().decode(errors="replace")
        kb = usage.ru_maxrss
        if report.is_file() and report.read_text().strip().splitlines():
            kb = int(report.read_text().strip().splitlines()[-1])
    return ProcessRun(os.waitstatus_to_exitcode(status), wall, kb / 1024.0, output)


def lungseg_command() -> list[str]:
    """Return the command that runs the ``lungseg`` CLI with this interpreter."""
    script = Path(sys.executable).with_name("lungseg")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pipeline.cli import main; sys.exit(main())"]


def run_segment(folder: Path, out: Path, engine: str, model: Path, threads: int,
                batch_size: int, options: tuple[str, ...] = ()) -> ProcessRun:
    """Run ``lungseg segment`` as a subprocess and attach lesions.json's timings.

    ``options`` are ``KEY=VALUE`` engine options (``--engine-option``).

    Raises
    ------
    RuntimeError
        If the command fails.
    """
    cmd = [*lungseg_command(), "segment", str(folder), "--out", str(out), "--engine", engine,
           "--model", str(model), "--segmenter", "model", "--threads", str(threads),
           "--batch-size", str(batch_size)]
    for option in options:
        cmd += ["--engine-option", option]
    run = run_measured(cmd)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.output[-2000:]}")
    summary = json.loads((out / "lesions.json").read_text())
    run.extra = {"timings": summary["timings_s"], "lesions": len(summary["lesions"])}
    return run


def source_revision() -> str:
    """``git describe --always --dirty`` of the repository (``unknown`` without git)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def cpu_threads() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def machine_description() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and load average (the machine may be shared)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 ** 2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return {"cpu": cpu, "cores": str(cpu_threads()), "memory": mem,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "load average (1/5/15 min)": load}


def table(rows: list[dict[str, object]], columns: list[str]) -> str:
    """Format ``rows`` as a Markdown table with ``columns``."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
