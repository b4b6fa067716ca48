"""Follow a series through Orthanc from outside: find it, wait for its job, show the lesions.

Used by the demo, the integration tests and the latency benchmark::

    python -m orthanc_plugin.results --url URL --user U --password P --series-uid UID
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from orthanc_plugin.jobstore import FINAL_STATES
from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError


def find_series(client: OrthancClient, series_uid: str) -> str | None:
    """Return the Orthanc ID of the series with this SeriesInstanceUID, or None.

    Raises
    ------
    ValueError
        If ``series_uid`` is empty.
    OrthancHttpError
        If Orthanc fails.
    """
    if not isinstance(series_uid, str) or not series_uid:
        raise ValueError(f"series_uid must be a non-empty string, got {series_uid!r}")
    hits = client.request("POST", "/tools/lookup", series_uid.encode(), "text/plain")
    ids = [h["ID"] for h in json.loads(hits) if h.get("Type") == "Series"]
    return ids[0] if ids else None


def wait_for_job(client: OrthancClient, series_id: str, timeout_s: float,
                 finished_after: float = 0.0, poll_s: float = 0.2) -> dict[str, Any]:
    """Poll ``/lungseg/series/{id}`` until the job is final (and finished after a time).

    Parameters
    ----------
    client : OrthancClient
        Orthanc client with a user allowed on the REST API.
    series_id : str
        Orthanc ID of the source series.
    timeout_s : float
        Give up after this many seconds.
    finished_after : float
        UNIX time; an older finished job does not count (e.g. before a re-send).
    poll_s : float
        Polling interval in seconds.

    Returns
    -------
    dict
        The job as ``GET /lungseg/series/{id}`` answers it.

    Raises
    ------
    TimeoutError
        If no final job appears in time (the message shows the last state).
    ValueError
        If ``timeout_s`` or ``poll_s`` is not positive.
    """
    if timeout_s <= 0 or poll_s <= 0:
        raise ValueError(f"timeout_s and poll_s must be > 0, got {timeout_s!r}, {poll_s!r}")
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            job = client.get_json(f"/lungseg/series/{series_id}")
        except OrthancHttpError as exc:
            if exc.status != 404:
                raise
        done = job.get("state") in FINAL_STATES and not job.get("rerun_pending")
        if done and (job.get("finished_at") or 0) > finished_after:
            return job
        time.sleep(poll_s)
    raise TimeoutError(f"series {series_id}: no final job within {timeout_s:g} s "
                       f"(last state {job.get('state', 'none')!r})")


def result_of_model(client: OrthancClient, series_id: str, job: dict[str, Any],
                    model_version: str, timeout_s: float) -> dict[str, Any]:
    """Return ``job`` if the current model made it; otherwise run the series again and wait.

    A series sent again with the same instances keeps its earlier result (the plugin does
    not process it twice). When that result came from another model version, e.g. before an
    upgrade, ``POST /lungseg/series/{id}/run`` makes the current model process it; the new
    SEG and SR replace the old ones.

    Raises
    ------
    TimeoutError
        If the new job does not finish in time.
    OrthancHttpError
        If Orthanc fails.
    """
    if not model_version or job.get("model_version") == model_version:
        return job
    asked = time.time()
    client.request("POST", f"/lungseg/series/{series_id}/run", b"")
    return wait_for_job(client, series_id, timeout_s, finished_after=asked)


def lesion_table(job: dict[str, Any]) -> str:
    """Format the lesions recorded with a job as a text table."""
    lesions = job.get("result", {}).get("lesions", [])
    head = (f"{'#':>3} {'volume mm3':>11} {'long mm':>8} {'short mm':>9} {'mean HU':>8} "
            f"{'z index':>8}")
    rows = [head, "-" * len(head)]
    for les in lesions:
        rows.append(f"{les.get('label', 0):>3} {les.get('volume_mm3', 0):>11.1f} "
                    f"{les.get('long_axis_mm', 0):>8.1f} {les.get('short_axis_mm', 0):>9.1f} "
                    f"{les.get('mean_hu', 0):>8.0f} {les.get('key_slice', 0):>8}")
    if not lesions:
        rows.append("(no lesion found)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Wait for a series' result and print its job and lesion table."""
    p = argparse.ArgumentParser(prog="python -m orthanc_plugin.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8042")
    p.add_argument("--user", default=os.environ.get("LUNGSEG_USER", "lungseg"))
    p.add_argument("--password", default=os.environ.get("LUNGSEG_PASSWORD"),
                   help="default: $LUNGSEG_PASSWORD")
    p.add_argument("--series-uid", required=True, help="SeriesInstanceUID of the source CT")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait (default 300)")
    p.add_argument("--model-version", default="",
                   help="if the series' result is from another model version, run it again")
    args = p.parse_args(argv)
    if not args.password:
        p.error("--password (or LUNGSEG_PASSWORD) is required")
    client = OrthancClient(args.url, args.user, args.password)
    deadline = time.monotonic() + args.wait
    series_id = None
    while series_id is None and time.monotonic() < deadline:
        series_id = find_series(client, args.series_uid)
        time.sleep(0 if series_id else 0.5)
    if series_id is None:
        print(f"series {args.series_uid} is not in Orthanc", file=sys.stderr)
        return 1
    job = wait_for_job(client, series_id, max(1.0, deadline - time.monotonic()))
    job = result_of_model(client, series_id, job, args.model_version,
                          max(1.0, deadline - time.monotonic()))
    print(f"job: {job['state']} {job['reason']}".rstrip()
          + f" (model {job.get('model_version') or 'none'})")
    print("stage timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in job["timings"].items()))
    print(lesion_table(job))
    return 0 if job["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
