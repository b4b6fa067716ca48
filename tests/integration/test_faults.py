"""Faults against a real Orthanc: each ends with nothing lost and exactly one SEG and one SR.

The worker killed mid-job, Orthanc stopped (SIGTERM) mid-job and started again, a series that
arrives in two parts, the model file missing or corrupt at start, the storage disk full while
the results are written (a size-limited tmpfs), a 1,000-slice series under a memory cap.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pydicom
import pytest
from e2e_support import (
    assert_one_seg_and_one_sr,
    require_orthanc,
    send,
    series_dir,
    sorted_slices,
    stacked_series,
    study_results,
    wait_for_state,
    write_as_new_study,
)

import engines
from orthanc_plugin.local_server import OrthancServer
from orthanc_plugin.results import find_series, wait_for_job

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 2


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """Orthanc whose jobs are given up after two broken attempts, retried 1 s later."""
    require_orthanc()
    server = OrthancServer(tmp_path_factory.mktemp("orthanc-faults"), stable_age=2, extra_env={
        "LUNGSEG_SEGMENTER": os.environ.get("LUNGSEG_TEST_SEGMENTER", "auto"),
        "LUNGSEG_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "LUNGSEG_RETRY_DELAY": "1",
        "LUNGSEG_WORKER_RESTART_DELAY": "0"})
    server.start()
    yield server
    server.stop()


NODULE_SLICES = (30, 58)
"""InstanceNumbers of LIDC-IDRI-0001 around its nodule (all of them in the demo subset)."""


def new_copy(tmp_path, name: str, instances: tuple[int, int] | None = None) -> tuple:
    """The test series as a new study, whole or only the slices whose InstanceNumber lies in
    ``instances``: (folder, study UID, series UID)."""
    root = f"2.25.{uuid.uuid4().int}"
    slices = [ds for ds in sorted_slices(series_dir())
              if instances is None or instances[0] <= int(ds.InstanceNumber) <= instances[1]]
    folder = write_as_new_study(slices, tmp_path / name, root)
    return folder, f"{root}.1", f"{root}.2"


def send_and_find(server, folder, series_uid) -> str:
    send(folder, server.dicom_port)
    series_id = find_series(server.client(), series_uid)
    assert series_id, "the sent series is not in Orthanc"
    return series_id


def kill_worker_during_attempt(client, series_id: str, attempt: int) -> int:
    """SIGKILL the worker while it runs ``attempt`` of the job; return the killed pid."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = wait_for_state(client, series_id, ("running",), timeout_s=300)
        worker = client.get_json("/lungseg/status")["worker"]
        if job["attempts"] == attempt and worker["state"] == "running":
            os.kill(worker["pid"], signal.SIGKILL)
            return worker["pid"]
        time.sleep(0.05)
    raise TimeoutError(f"attempt {attempt} never ran")


def referenced_by_seg(client, job: dict) -> int:
    """Number of source instances the stored SEG references."""
    [instance] = client.get_json(f"/series/{job['result']['seg_series']}/instances")
    seg = pydicom.dcmread(io.BytesIO(client.request("GET", f"/instances/{instance['ID']}/file")),
                          stop_before_pixels=True)
    return len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence)


def test_killed_worker_retries_the_job_then_fails_it_with_the_reason(faulty, tmp_path):
    client = faulty.client()
    folder, study_uid, series_uid = new_copy(tmp_path, "killed")
    series_id = send_and_find(faulty, folder, series_uid)
    killed = kill_worker_during_attempt(client, series_id, attempt=1)
    retried = wait_for_state(client, series_id, ("queued",), timeout_s=30)
    assert "killed by signal 9" in retried["reason"] and retried["retry_at"]
    job = wait_for_job(client, series_id, timeout_s=600)
    assert job["state"] == "done" and job["attempts"] == 2 and job["broken_attempts"] == 0, job
    assert_one_seg_and_one_sr(client, study_uid, job)
    assert "worker exited (killed by signal 9 (SIGKILL)) while serving" in faulty.log()
    assert client.get_json("/lungseg/status")["worker"]["pid"] != killed

    # A series that takes the worker down every time is given up after MaxAttempts.
    asked = time.time()
    client.request("POST", f"/lungseg/series/{series_id}/run", b"")
    for attempt in range(3, 3 + MAX_ATTEMPTS):
        kill_worker_during_attempt(client, series_id, attempt)
    failed = wait_for_job(client, series_id, timeout_s=120, finished_after=asked)
    assert failed["state"] == "failed"
    assert failed["reason"] == ("the worker process died (killed by signal 9 (SIGKILL)) during "
                                f"this job (attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS}; given up)")
    assert client.get_json("/lungseg/status")["worker"]["state"] in ("starting", "running")

    # Nothing is lost: run on request, it ends with one SEG and one SR.
    asked = time.time()
    client.request("POST", f"/lungseg/series/{series_id}/run", b"")
    job = wait_for_job(client, series_id, timeout_s=600, finished_after=asked)
    assert job["state"] == "done", job
    assert_one_seg_and_one_sr(client, study_uid, job)
    assert len(client.get_json(f"/series/{series_id}")["Instances"]) == len(list(
        folder.glob("*.dcm")))


def test_orthanc_stopped_mid_job_resumes_it_after_a_restart(faulty, tmp_path):
    client = faulty.client()
    folder, study_uid, series_uid = new_copy(tmp_path, "sigterm")
    series_id = send_and_find(faulty, folder, series_uid)
    wait_for_state(client, series_id, ("running",), timeout_s=120)
    faulty.stop()  # SIGTERM, then waits until Orthanc has exited
    faulty.start()  # deploy/start-orthanc.sh, same data directory
    job = wait_for_job(client, series_id, timeout_s=600)
    assert job["state"] == "done", job
    assert_one_seg_and_one_sr(client, study_uid, job)
    assert f"series {series_id} interrupted: queued again" in faulty.log()


def test_series_in_two_parts_is_run_again_and_its_results_replaced(faulty, tmp_path):
    client = faulty.client()
    slices = sorted_slices(series_dir())
    cut = max(len(slices) * 2 // 3, 24)  # LIDC-IDRI-0001's nodule is in the first part
    root = f"2.25.{uuid.uuid4().int}"
    first = write_as_new_study(slices[:cut], tmp_path / "first", root)
    second = write_as_new_study(slices[cut:], tmp_path / "second", root)
    study_uid = f"{root}.1"
    series_id = send_and_find(faulty, first, f"{root}.2")
    job1 = wait_for_job(client, series_id, timeout_s=600)
    assert job1["state"] == "done" and job1["instance_count"] == cut, job1
    assert_one_seg_and_one_sr(client, study_uid, job1)
    assert referenced_by_seg(client, job1) == cut
    send(second, faulty.dicom_port)
    job2 = wait_for_job(client, series_id, timeout_s=600, finished_after=job1["finished_at"])
    assert job2["state"] == "done" and job2["instance_count"] == len(slices), job2
    assert job2["trigger"] == "stable"
    assert_one_seg_and_one_sr(client, study_uid, job2)
    assert referenced_by_seg(client, job2) == len(slices)  # the new SEG, not the old one


@pytest.fixture()
def model_dir(tmp_path):
    return tmp_path / "model"


def _status(server) -> dict:
    return server.client().get_json("/lungseg/status")


def _wait_given_up(server, timeout_s=60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker = _status(server)["worker"]
        if worker["state"] == "stopped":
            return worker
        time.sleep(0.2)
    raise TimeoutError(f"worker not given up: {worker}")


def test_missing_then_corrupt_model_keeps_orthanc_serving_without_a_crash_loop(tmp_path,
                                                                              model_dir):
    require_orthanc()
    model = model_dir / "site-model.onnx"
    server = OrthancServer(tmp_path / "orthanc", stable_age=1, extra_env={
        "LUNGSEG_SEGMENTER": "model", "LUNGSEG_MODEL": str(model),
        "LUNGSEG_WORKER_MAX_STARTS": "3", "LUNGSEG_WORKER_RESTART_DELAY": "1"})
    server.start()
    try:
        worker = _wait_given_up(server)
        assert worker["reason"] == (
            f"the worker process could not start: ConfigError: model file not found: {model} "
            "(LungSeg.ModelPath) (gave up after 3 failed starts; jobs stay queued: fix the "
            "cause and restart Orthanc)")
        time.sleep(3)  # no further start: the supervisor has given up
        assert _status(server)["worker"]["starts"] == 3
        client = server.client()
        assert client.get_json("/system")["Version"]
        folder, study_uid, series_uid = new_copy(tmp_path, "waiting", NODULE_SLICES)
        series_id = send_and_find(server, folder, series_uid)
        queued = wait_for_state(client, series_id, ("queued",), timeout_s=60)
        assert queued["reason"] == ""
        assert client.request("GET", f"/dicom-web/studies/{study_uid}/series")

        real = engines.default_model_path()
        model_dir.mkdir()
        model.write_bytes(real.read_bytes()[:100_000])  # an interrupted copy
        shutil.copy(real.with_suffix(".json"), model.with_suffix(".json"))
        server.stop()
        server.start()
        worker = _wait_given_up(server)
        assert "ONNX Runtime could not load" in worker["reason"] and str(model) in worker[
            "reason"], worker
        assert client.get_json(f"/lungseg/series/{series_id}")["state"] == "queued"

        shutil.copy(real, model)
        server.stop()
        server.start()
        job = wait_for_job(client, series_id, timeout_s=300)
        assert job["state"] == "done", job
        assert_one_seg_and_one_sr(client, study_uid, job)
        assert _status(server)["worker"]["state"] == "running"
    finally:
        server.stop()
    log = server.log()
    assert len(re.findall(r"worker process started", log)) == 3 + 3 + 1
    assert "Traceback" not in log


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture()
def small_disk(tmp_path):
    """A 64 MB tmpfs mounted on a temp folder (needs root, or sudo without a password)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    proc = subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", "size=64m,mode=0700",
                           "lungseg-test", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        msg = f"cannot mount a tmpfs ({proc.stderr.strip()}): run as root or with sudo"
        if _ci():
            pytest.fail(msg + " (CI=true: the disk-full test must run)", pytrace=False)
        pytest.skip(msg)
    yield mount
    subprocess.run([*prefix, "umount", "-l", str(mount)], check=True, timeout=60)


def fill(disk, leave_bytes: int):
    """Take all the space of ``disk`` but ``leave_bytes``; return the filler file."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(0, free - leave_bytes))
    return filler


def test_full_disk_fails_the_job_with_the_reason_and_a_retry_succeeds(small_disk, tmp_path):
    require_orthanc()
    server = OrthancServer(tmp_path / "orthanc", stable_age=1, extra_env={
        "LUNGSEG_STORAGE_DIR": str(small_disk),
        "LUNGSEG_SEGMENTER": os.environ.get("LUNGSEG_TEST_SEGMENTER", "auto")})
    server.start()
    try:
        client = server.client()
        folder, study_uid, series_uid = new_copy(tmp_path, "full", NODULE_SLICES)
        series_id = send_and_find(server, folder, series_uid)
        wait_for_state(client, series_id, ("running",), timeout_s=120)
        filler = fill(small_disk, leave_bytes=64 * 1024)  # the SEG needs about 275 kB
        failed = wait_for_job(client, series_id, timeout_s=300)
        print(f"\nfull disk: {failed['reason']}")
        assert failed["state"] == "failed", failed
        assert failed["reason"].startswith("StoreFailed: storing the SEG in Orthanc failed")
        assert f"MB free on {small_disk})" in failed["reason"]
        assert set(study_results(client, study_uid)) == {"CT"}  # no SEG without its SR
        assert client.get_json("/system")["Version"]

        filler.unlink()
        asked = time.time()
        client.request("POST", f"/lungseg/series/{series_id}/run", b"")
        job = wait_for_job(client, series_id, timeout_s=300, finished_after=asked)
        assert job["state"] == "done", job
        assert_one_seg_and_one_sr(client, study_uid, job)
        sent = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
                for p in folder.glob("*.dcm")}
        stored = set()
        for instance in client.get_json(f"/series/{series_id}/instances"):
            ds = pydicom.dcmread(io.BytesIO(client.request(
                "GET", f"/instances/{instance['ID']}/file")))
            assert ds.pixel_array.shape == (512, 512)
            stored.add(ds.SOPInstanceUID)
        assert stored == sent  # every CT instance is still there and readable
    finally:
        server.stop()


@pytest.mark.slow
def test_thousand_slices_under_a_memory_cap_fail_cleanly_or_complete(tmp_path):
    require_orthanc()
    root = f"2.25.{uuid.uuid4().int}"
    big = stacked_series(series_dir(), tmp_path / "big", root, 1000)
    server = OrthancServer(tmp_path / "orthanc", stable_age=2, extra_env={
        "LUNGSEG_SEGMENTER": os.environ.get("LUNGSEG_TEST_SEGMENTER", "auto"),
        "LUNGSEG_WORKER_MEMORY_MB": "2048"})
    server.start()
    try:
        client = server.client()
        series_id = send_and_find(server, big, f"{root}.2")
        failed = wait_for_job(client, series_id, timeout_s=900)
        print(f"\n1,000 slices under 2048 MiB: {failed['state']} {failed['reason']}")
        assert failed["state"] == "failed" and failed["instance_count"] == 1000, failed
        assert failed["reason"].startswith("MemoryError: Unable to allocate")
        assert "LungSeg.WorkerMemoryLimitMB" in failed["reason"]
        assert set(study_results(client, f"{root}.1")) == {"CT"}
        status = client.get_json("/lungseg/status")["worker"]
        assert status["state"] == "running" and status["starts"] == 1  # no crash, no restart
        folder, study_uid, series_uid = new_copy(tmp_path, "after", NODULE_SLICES)
        job = wait_for_job(client, send_and_find(server, folder, series_uid), timeout_s=300)
        assert job["state"] == "done", job  # the worker goes on with the next series
        assert_one_seg_and_one_sr(client, study_uid, job)

        server.stop()
        server.extra_env["LUNGSEG_WORKER_MEMORY_MB"] = "6144"
        server.start()
        asked = time.time()
        client.request("POST", f"/lungseg/series/{series_id}/run", b"")
        job = wait_for_job(client, series_id, timeout_s=900, finished_after=asked)
        print(f"1,000 slices under 6144 MiB: {job['state']} in {job['timings']['total']:.1f} s")
        assert job["state"] == "done" and job["instance_count"] == 1000, job
        assert_one_seg_and_one_sr(client, f"{root}.1", job)
    finally:
        server.stop()
