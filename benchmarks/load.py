"""Load: many series sent at once from two senders, each processed exactly once.

Starts its own Orthanc with the plugin (temp data dir, free ports, auth on), builds ``--series``
distinct series from a source series (default demo/LIDC-IDRI-0001: new study, series and
instance UIDs for each copy), sends them all at once with pynetdicom C-STORE over
``--associations`` parallel associations (one association per series) whose calling AE titles
alternate between two senders, waits until every job is final, checks that each series was
processed once (one attempt, one SEG and one SR in its study) and prints:

- throughput (series per minute, from the first C-STORE to the last job finished),
- queue wait (median and maximum: from queued to picked up by the worker),
- processing time per series (median and maximum, the worker's ``total``),
- peak resident memory (VmHWM) of the worker process and of Orthanc.

    .venv/bin/python -m benchmarks.load --series 20 [--associations 4] [--segmenter auto]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom

from orthanc_plugin.local_server import REPO, OrthancServer
from orthanc_plugin.orthanc_http import OrthancClient
from orthanc_plugin.results import find_series, wait_for_job
from pipeline.dimse import send_files

DEMO = REPO / "demo" / "LIDC-IDRI-0001"
SENDERS = ("SCANNER_A", "SCANNER_B")


def allowed_senders(senders: tuple[str, ...] = SENDERS) -> str:
    """``LUNGSEG_SENDERS`` admitting ``senders`` from this machine (C-STORE is restricted)."""
    return ",".join(f"{aet}@127.0.0.1" for aet in senders)


@dataclass
class SeriesCopy:
    """One copy of the source series, sent as its own study."""

    folder: Path
    study_uid: str
    series_uid: str
    sender: str = ""
    sent: int = 0
    send_s: float = 0.0
    series_id: str = ""
    job: dict | None = None


def make_copies(source: Path, dst: Path, count: int) -> list[SeriesCopy]:
    """Write ``count`` copies of the ``*.dcm`` files of ``source`` under ``dst``, each with new
    study, series and instance UIDs (pixels and geometry unchanged).

    Raises
    ------
    ValueError
        If ``count`` < 1 or ``source`` holds no ``*.dcm`` file.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    paths = sorted(source.glob("*.dcm"))
    if not paths:
        raise ValueError(f"no *.dcm file in {source}")
    datasets = [pydicom.dcmread(p) for p in paths]
    copies = []
    for k in range(count):
        root = f"2.25.{uuid.uuid4().int}"
        folder = dst / f"series-{k:03d}"
        folder.mkdir(parents=True)
        for i, ds in enumerate(datasets):
            ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{root}.1", f"{root}.2"
            ds.SOPInstanceUID = f"{root}.3.{i + 1}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)
        copies.append(SeriesCopy(folder, f"{root}.1", f"{root}.2"))
    return copies


def send_all(copies: list[SeriesCopy], port: int, associations: int,
             senders: tuple[str, ...] = SENDERS, called_aet: str = "ORTHANC") -> float:
    """Send every copy at once: one association per series, ``associations`` in parallel, the
    calling AE title taken in turn from ``senders``; return the time the first one started.

    Raises
    ------
    RuntimeError
        If an instance was not stored (the message names the series and the reason).
    """
    def one(item: tuple[int, SeriesCopy]) -> None:
        k, copy = item
        copy.sender = senders[k % len(senders)]
        start = time.perf_counter()
        report = send_files(sorted(copy.folder.glob("*.dcm")), "127.0.0.1", port,
                            calling_aet=copy.sender, called_aet=called_aet)
        copy.send_s = time.perf_counter() - start
        copy.sent = report.sent
        if report.failures:
            first = report.failures[0]
            raise RuntimeError(f"{copy.series_uid}: {len(report.failures)} instance(s) not "
                               f"stored from {copy.sender} ({first.message or first.status})")

    started = time.time()
    with ThreadPoolExecutor(max_workers=associations) as pool:
        list(pool.map(one, enumerate(copies)))
    return started


def wait_all(client: OrthancClient, copies: list[SeriesCopy], timeout_s: float) -> None:
    """Wait until every copy has a final job for all its instances (recorded in ``copy.job``).

    A sender slower than Orthanc's StableAge makes a series look complete early: its first
    job may end (rejected as too short) before the rest arrives and the grown series is
    queued again. Such an earlier job is waited past.

    Raises
    ------
    TimeoutError
        If a series is not in Orthanc or its job is not final in time.
    """
    deadline = time.monotonic() + timeout_s
    for copy in copies:
        copy.series_id = find_series(client, copy.series_uid) or ""
        if not copy.series_id:
            raise TimeoutError(f"series {copy.series_uid} is not in Orthanc")
        job = wait_for_job(client, copy.series_id, max(1.0, deadline - time.monotonic()))
        while job.get("instance_count", 0) < copy.sent:
            job = wait_for_job(client, copy.series_id, max(1.0, deadline - time.monotonic()),
                               finished_after=job.get("finished_at") or 0.0)
        copy.job = job


def processed_once(client: OrthancClient, copy: SeriesCopy) -> list[str]:
    """Return what is wrong with a copy's processing (empty: its job done on every instance
    sent, with exactly one SEG and one SR of one instance each in its study)."""
    problems = []
    job = copy.job or {}
    if job.get("state") != "done" or job.get("instance_count") != copy.sent:
        problems.append(f"job {job.get('state')} on {job.get('instance_count')} of "
                        f"{copy.sent} instances after {job.get('attempts')} attempt(s) "
                        f"{job.get('reason', '')}".rstrip())
    study_id = client.get_json(f"/series/{copy.series_id}")["ParentStudy"]
    found: dict[str, list[int]] = {}
    for series in client.get_json(f"/studies/{study_id}/series"):
        found.setdefault(series["MainDicomTags"]["Modality"], []).append(
            len(series["Instances"]))
    for kind in ("SEG", "SR"):
        if found.get(kind) != [1]:
            problems.append(f"{kind} series/instances {found.get(kind)}, expected [1]")
    return problems


def peak_rss_mb(pid: int | None) -> float | None:
    """Peak resident memory (VmHWM) of a running process in MB, or None."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def summary(copies: list[SeriesCopy], started: float) -> dict[str, float]:
    """Throughput, queue wait and processing time of the finished copies."""
    jobs = [c.job or {} for c in copies]
    waits = [j["timings"].get("queue_wait", 0.0) for j in jobs]
    totals = [j["timings"].get("total", 0.0) for j in jobs]
    span = max(j["finished_at"] for j in jobs) - started
    return {"series": len(copies), "span_s": span, "per_min": 60 * len(copies) / span,
            "wait_median": statistics.median(waits), "wait_max": max(waits),
            "total_median": statistics.median(totals), "total_max": max(totals),
            "send_max": max(c.send_s for c in copies)}


def report(stats: dict[str, float], worker_mb: float | None, orthanc_mb: float | None,
           segmenter: str, slices: int, associations: int) -> str:
    """Format the result table."""
    def mb(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0f} MB"
    rows = [
        ("series (slices each)", f"{stats['series']:.0f} ({slices})"),
        ("senders, parallel associations", f"{len(SENDERS)}, {associations}"),
        ("segmenter", segmenter),
        ("first C-STORE -> last job done", f"{stats['span_s']:.1f} s"),
        ("throughput", f"{stats['per_min']:.1f} series/min"),
        ("queue wait median / max", f"{stats['wait_median']:.1f} s / {stats['wait_max']:.1f} s"),
        ("processing per series median / max",
         f"{stats['total_median']:.2f} s / {stats['total_max']:.2f} s"),
        ("longest send of one series", f"{stats['send_max']:.1f} s"),
        ("peak memory, worker (VmHWM)", mb(worker_mb)),
        ("peak memory, Orthanc (VmHWM)", mb(orthanc_mb)),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    """Run the load benchmark and print the table; 1 when a series was not processed once."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=20, help="series to send at once (default 20)")
    p.add_argument("--associations", type=int, default=4,
                   help="parallel C-STORE associations (default 4)")
    p.add_argument("--segmenter", default="auto", choices=("auto", "model", "threshold"))
    p.add_argument("--source", type=Path, default=DEMO, help="series folder to copy")
    p.add_argument("--stable-age", type=int, default=2, help="Orthanc StableAge (s)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the jobs")
    args = p.parse_args(argv)
    if args.series < 1 or args.associations < 1:
        p.error("--series and --associations must be >= 1")
    with tempfile.TemporaryDirectory(prefix="lungseg-load-") as tmp:
        copies = make_copies(args.source, Path(tmp) / "series", args.series)
        server = OrthancServer(Path(tmp) / "orthanc", stable_age=args.stable_age,
                               extra_env={"LUNGSEG_SEGMENTER": args.segmenter,
                                          "LUNGSEG_SENDERS": allowed_senders()})
        server.start()
        try:
            client = server.client()
            started = send_all(copies, server.dicom_port, args.associations)
            wait_all(client, copies, args.timeout)
            worker = peak_rss_mb(client.get_json("/lungseg/status")["worker"]["pid"])
            orthanc = peak_rss_mb(int((server.data_dir / "orthanc.pid").read_text()))
            problems = {c.series_uid: processed_once(client, c) for c in copies}
        finally:
            server.stop()
    slices = len(list(args.source.glob("*.dcm")))
    print(report(summary(copies, started), worker, orthanc, args.segmenter, slices,
                 args.associations))
    bad = {uid: issues for uid, issues in problems.items() if issues}
    for uid, issues in bad.items():
        print(f"NOT PROCESSED ONCE {uid}: {'; '.join(issues)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
