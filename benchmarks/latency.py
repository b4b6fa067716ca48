"""Latency from the last C-STORE to SEG+SR queryable over QIDO-RS, split by stage.

Starts its own Orthanc with the plugin (temp data dir, free ports, auth on; StableAge from
--stable-age) unless --url is given, sends LIDC-IDRI-0001 (the 133-slice series from
../shared/data when present, else demo/LIDC-IDRI-0001) with pynetdicom C-STORE, polls QIDO-RS
until the SEG and SR are listed, and reads the per-stage timings from the job store
(GET /lungseg/series/{id}). Each run deletes the series and its results first.

    .venv/bin/python benchmarks/latency.py [--runs 3] [--stable-age 2] [--segmenter auto]
    .venv/bin/python benchmarks/latency.py --url http://127.0.0.1:8042 --dicom-port 4242 \
        --user lungseg --password ...   # an Orthanc already running (StableAge as configured)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom

from orthanc_plugin.local_server import REPO, OrthancServer
from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError
from orthanc_plugin.results import find_series, wait_for_job
from pipeline.dimse import send_files

FULL = sorted((REPO.parent / "shared" / "data" / "lidc-series").glob("LIDC-IDRI-0001/*/*/"))
DEMO = REPO / "demo" / "LIDC-IDRI-0001"

# table row -> job-store timing keys summed into it
STAGES = [
    ("queue wait", ["queue_wait"]),
    ("export (download from Orthanc)", ["export"]),
    ("select + load (decode, sort, HU)", ["select", "load"]),
    ("preprocess (lung mask)", ["preprocess"]),
    ("inference / segmentation", ["inference"]),
    ("post-processing + measurements", ["postprocess", "measure"]),
    ("writing SEG + SR (highdicom)", ["write_seg", "write_sr"]),
    ("storing (delete old, POST, marker)", ["store"]),
]


def wait_queryable(client: OrthancClient, study_uid: str, timeout_s: float) -> float:
    """Poll QIDO-RS until the study lists a SEG and an SR; return the time it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.request("GET", f"/dicom-web/studies/{study_uid}/series")
        modalities = {s["00080060"]["Value"][0] for s in json.loads(body or b"[]")}
        if {"SEG", "SR"} <= modalities:
            return time.time()
        time.sleep(0.05)
    raise TimeoutError(f"SEG+SR not queryable within {timeout_s:g} s")


def delete_previous(client: OrthancClient, series_uid: str) -> None:
    """Delete the series and the SEG/SR made from it (a clean start for one run)."""
    series_id = find_series(client, series_uid)
    if series_id is None:
        return
    try:
        result = client.get_json(f"/lungseg/series/{series_id}").get("result", {})
    except OrthancHttpError:
        result = {}
    for key in ("seg_series", "sr_series"):
        if result.get(key):
            client.delete(f"/series/{result[key]}")
    client.delete(f"/series/{series_id}")


def one_run(client: OrthancClient, dicom_port: int, files: list[Path],
            timeout_s: float) -> dict[str, float]:
    """Send the series once and return the stage durations in seconds."""
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    delete_previous(client, str(header.SeriesInstanceUID))
    start = time.time()
    report = send_files(files, "127.0.0.1", dicom_port)
    last_store = time.time()
    if report.failures:
        raise RuntimeError(f"{len(report.failures)} instance(s) not stored: "
                           f"{report.failures[0].message}")
    queryable = wait_queryable(client, str(header.StudyInstanceUID), timeout_s)
    series_id = find_series(client, str(header.SeriesInstanceUID))
    job = wait_for_job(client, series_id, timeout_s, finished_after=start)  # timings recorded
    if job["state"] != "done":
        raise RuntimeError(f"job ended {job['state']}: {job['reason']}")
    t = job["timings"]
    row = {"C-STORE (not in total)": last_store - start,
           "stable wait (StableAge)": job["queued_at"] - last_store}
    for name, keys in STAGES:
        row[name] = sum(t.get(k, 0.0) for k in keys)
    row["other (polling, bookkeeping)"] = (queryable - last_store) - sum(
        v for k, v in row.items() if not k.startswith("C-STORE"))
    row["TOTAL last C-STORE -> SEG+SR queryable"] = queryable - last_store
    row["_lesions"] = len(job["result"].get("lesions", []))
    row["_segmenter"] = job["result"].get("segmenter", "")
    return row


def print_table(rows: list[dict[str, float]], n_files: int, stable_age: str) -> None:
    """Print median (and min/max with several runs) per stage."""
    print(f"\nseries: {n_files} instances; StableAge {stable_age}; segmenter "
          f"{rows[0]['_segmenter']}; lesions found {rows[0]['_lesions']}; runs {len(rows)}")
    names = [k for k in rows[0] if not k.startswith("_")]
    print(f"{'stage':<44} {'median s':>9} {'min s':>8} {'max s':>8}")
    print("-" * 72)
    for name in names:
        values = [r[name] for r in rows]
        print(f"{name:<44} {statistics.median(values):>9.2f} {min(values):>8.2f} "
              f"{max(values):>8.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=Path, default=FULL[0] if FULL else DEMO)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--stable-age", type=int, default=2, help="StableAge of the own Orthanc")
    p.add_argument("--segmenter", default="auto", help="LungSeg.Segmenter of the own Orthanc")
    p.add_argument("--url", help="use a running Orthanc instead of starting one")
    p.add_argument("--dicom-port", type=int, default=4242)
    p.add_argument("--user", default="lungseg")
    p.add_argument("--password")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be >= 1, got {args.runs}")
    files = sorted(args.series.glob("*.dcm"))
    if not files:
        p.error(f"no *.dcm files in {args.series}")
    server = None
    if args.url:
        if not args.password:
            p.error("--password is required with --url")
        client, port, stable = (OrthancClient(args.url, args.user, args.password),
                                args.dicom_port, "as configured")
    else:
        server = OrthancServer(Path(tempfile.mkdtemp(prefix="lungseg-bench-")),
                               stable_age=args.stable_age,
                               extra_env={"LUNGSEG_SEGMENTER": args.segmenter})
        server.start()
        client, port, stable = server.client(), server.dicom_port, f"{args.stable_age} s"
    try:
        rows = [one_run(client, port, files, args.timeout) for _ in range(args.runs)]
    finally:
        if server is not None:
            server.stop()
    print_table(rows, len(files), stable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
