"""End to end against a real Orthanc: C-STORE in, DICOM-SEG + TID 1500 SR back in the study."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from e2e_support import CONSENSUS, copy_as_new_series, send

from orthanc_plugin.orthanc_http import OrthancHttpError
from orthanc_plugin.results import find_series, result_of_model, wait_for_job

pytestmark = pytest.mark.integration


def study_series(client, study_uid):
    [study_id] = [h["ID"] for h in json.loads(client.request(
        "POST", "/tools/lookup", study_uid.encode(), "text/plain")) if h["Type"] == "Study"]
    return client.get_json(f"/studies/{study_id}/series")


def result_instance(client, processed, kind):
    series_id = processed.job["result"][f"{kind}_series"]
    [instance] = client.get_json(f"/series/{series_id}/instances")
    return pydicom.dcmread(io.BytesIO(client.request("GET", f"/instances/{instance['ID']}/file")))


def test_seg_and_sr_land_in_the_source_study(orthanc, processed):
    client = orthanc.client()
    series = study_series(client, processed.study_uid)
    modalities = sorted(s["MainDicomTags"]["Modality"] for s in series)
    assert modalities == ["CT", "SEG", "SR"]
    ids = {s["MainDicomTags"]["Modality"]: s["ID"] for s in series}
    assert ids["SEG"] == processed.job["result"]["seg_series"]
    assert ids["SR"] == processed.job["result"]["sr_series"]
    assert processed.job["result"]["lesions"], "no lesion recorded for LIDC-IDRI-0001"


def test_results_visible_over_qido(orthanc, processed):
    body = orthanc.client().request("GET", f"/dicom-web/studies/{processed.study_uid}/series")
    modalities = sorted(s["00080060"]["Value"][0] for s in json.loads(body))
    assert modalities == ["CT", "SEG", "SR"]


def test_seg_references_the_sent_instances(orthanc, processed):
    client = orthanc.client()
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in processed.folder.glob("*.dcm")}
    seg = hd.seg.Segmentation.from_dataset(result_instance(client, processed, "seg"))
    assert seg.SegmentationType == "BINARY"
    assert seg.get_source_image_uids()[0][1] == processed.series_uid
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced and referenced <= sent
    sr_ds = result_instance(client, processed, "sr")
    report = hd.sr.Comprehensive3DSR.from_dataset(sr_ds)
    groups = report.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(processed.job["result"]["lesions"])
    library = {str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
               for item in _image_library(sr_ds)}
    assert library and library <= sent


def _image_library(sr_ds):
    for item in sr_ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "111028":  # Image Library
            for group in item.ContentSequence:
                yield from group.ContentSequence
            return


def _seg_mask_on_source(seg_ds):
    """Label mask of the SEG on the source slices, keyed by SOPInstanceUID."""
    seg = hd.seg.Segmentation.from_dataset(seg_ds)
    uids = [uid for _, _, uid in seg.get_source_image_uids()]
    volume = seg.get_pixels_by_source_instance(
        uids, combine_segments=True, skip_overlap_checks=True,
        assert_missing_frames_are_empty=True)
    return dict(zip(uids, volume, strict=True))


def test_reader_consensus_nodule_is_covered(orthanc, processed):
    if not CONSENSUS.exists():
        pytest.skip(f"reference mask {CONSENSUS} absent (needs ../shared/data)")
    client = orthanc.client()
    masks = _seg_mask_on_source(result_instance(client, processed, "seg"))
    ref = sitk.ReadImage(str(CONSENSUS))
    ref_arr = sitk.GetArrayFromImage(ref) > 0
    covered, total = 0, int(ref_arr.sum())
    for path in processed.folder.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ipp = np.array(ds.ImagePositionPatient, float)
        x0, y0, z = ref.TransformPhysicalPointToContinuousIndex(ipp.tolist())
        assert abs(x0) < 0.01 and abs(y0) < 0.01, "reference mask not on the series' grid"
        k = int(round(z))
        if not 0 <= k < ref_arr.shape[0] or not ref_arr[k].any():
            continue
        seg_slice = masks.get(str(ds.SOPInstanceUID))
        if seg_slice is not None:
            covered += int((ref_arr[k] & (seg_slice > 0)).sum())
    fraction = covered / total
    print(f"\nconsensus nodule voxels covered by the SEG: {covered}/{total} = {fraction:.2f}")
    assert fraction >= 0.5, f"only {fraction:.2f} of the >=2-reader nodule covered"


def test_dciodvfy_finds_no_errors(orthanc, processed, tmp_path):
    client = orthanc.client()
    for kind in ("seg", "sr"):
        path = tmp_path / f"{kind}.dcm"
        result_instance(client, processed, kind).save_as(path, enforce_file_format=True)
        proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                              timeout=120)
        errors = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if line.startswith("Error")]
        assert not errors, f"dciodvfy errors in the {kind.upper()}:\n" + "\n".join(errors)


def test_rest_routes_answer_behind_auth(orthanc, processed):
    client = orthanc.client()
    answer = client.get_json("/lungseg/jobs")
    assert processed.series_id in [j["series"] for j in answer["jobs"]]
    assert answer["worker"]["running"] and answer["worker"]["pid"] > 0
    job = client.get_json(f"/lungseg/series/{processed.series_id}")
    assert job["state"] == "done" and job["reason"] == ""
    for stage in ("export", "inference", "write_seg", "write_sr", "store", "total"):
        assert job["timings"][stage] >= 0, stage
    assert 1.0 <= job["timings"]["stable_wait"] <= 10.0  # StableAge 2 s, 1 s resolution
    anonymous = type(client)(orthanc.url, "nobody", "wrong")
    with pytest.raises(OrthancHttpError) as err:
        anonymous.get_json("/lungseg/jobs")
    assert err.value.status == 401


def test_plugin_routes_and_the_rerun_need_credentials(orthanc, processed):
    before = orthanc.client().get_json(f"/lungseg/series/{processed.series_id}")
    routes = [("GET", "/lungseg/jobs"), ("GET", "/lungseg/status"),
              ("GET", f"/lungseg/series/{processed.series_id}"),
              ("POST", f"/lungseg/series/{processed.series_id}/run")]
    for method, path in routes:
        request = urllib.request.Request(orthanc.url + path, method=method,
                                         data=b"" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 401, (method, path)
        assert err.value.headers["WWW-Authenticate"].startswith("Basic")
    after = orthanc.client().get_json(f"/lungseg/series/{processed.series_id}")
    assert after["queued_at"] == before["queued_at"]  # the refused POST queued nothing


def test_second_send_and_rerun_create_no_duplicate(orthanc, processed):
    client = orthanc.client()
    before = {s["ID"]: s["Instances"] for s in study_series(client, processed.study_uid)}
    send(processed.folder, orthanc.dicom_port)
    start = time.time()
    rerun = client.request("POST", f"/lungseg/series/{processed.series_id}/run", b"")
    assert json.loads(rerun)["state"] in ("queued", "running")
    job = wait_for_job(client, processed.series_id, timeout_s=600, finished_after=start)
    assert job["state"] == "done" and job["attempts"] >= 2
    after = {s["ID"]: s["Instances"] for s in study_series(client, processed.study_uid)}
    assert after == before  # same series, same instances: deterministic UIDs replaced them


def test_result_of_another_model_version_is_run_again(orthanc, processed):
    client = orthanc.client()
    job = wait_for_job(client, processed.series_id, timeout_s=600)
    same = result_of_model(client, processed.series_id, job, job["model_version"], 600)
    assert same is job  # the current model's result: nothing is run
    before = {s["ID"]: s["Instances"] for s in study_series(client, processed.study_uid)}
    start = time.time()
    again = result_of_model(client, processed.series_id, job, "0.0.0-other", 600)
    assert again["state"] == "done" and again["finished_at"] > start
    assert again["attempts"] > job["attempts"]
    after = {s["ID"]: s["Instances"] for s in study_series(client, processed.study_uid)}
    assert after == before


def test_non_ct_and_short_series_rejected_with_reason(orthanc, processed, tmp_path):
    client = orthanc.client()
    root = f"2.25.{uuid.uuid4().int}"
    short = copy_as_new_series(processed.folder, tmp_path / "short", 5, root + ".1")
    mr = copy_as_new_series(processed.folder, tmp_path / "mr", 12, root + ".2", modality="MR")
    for folder in (short, mr):
        send(folder, orthanc.dicom_port)
    reasons = {}
    for name, folder in (("short", short), ("mr", mr)):
        uid = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        series_id = find_series(client, uid.SeriesInstanceUID)
        job = wait_for_job(client, series_id, timeout_s=120)
        assert job["state"] == "rejected", job
        reasons[name] = job["reason"]
    assert "NumberOfSlices 5" in reasons["short"]
    assert "MR" in reasons["mr"] and "CT" in reasons["mr"]


def _worker_pids(orthanc):
    return re.findall(r"worker process started \(pid (\d+)\)", orthanc.log())


def _segmenters_loaded(orthanc):
    return len(re.findall(r"lungseg-worker INFO segmenter .* loaded", orthanc.log()))


def test_killed_worker_is_restarted_and_a_grown_series_is_rerun(orthanc, processed, tmp_path):
    client = orthanc.client()
    pids = _worker_pids(orthanc)
    os.kill(int(pids[-1]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len(_worker_pids(orthanc)) == len(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_worker_pids(orthanc)) > len(pids), "worker not restarted"
    # Send once the new worker has loaded its segmenter: its start-up is a burst of CPU, and
    # a loaded machine is where pynetdicom can lose a C-STORE reply (see pipeline.dimse).
    while _segmenters_loaded(orthanc) < len(_worker_pids(orthanc)) and time.monotonic() < deadline:
        time.sleep(0.2)
    root = f"2.25.{uuid.uuid4().int}"
    part = copy_as_new_series(processed.folder, tmp_path / "part", 6, root)
    uid = pydicom.dcmread(next(part.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    send(part, orthanc.dicom_port)
    series_id = find_series(client, uid)
    first = wait_for_job(client, series_id, timeout_s=120)
    assert first["state"] == "rejected" and first["instance_count"] == 6
    grown = copy_as_new_series(processed.folder, tmp_path / "grown", 16, root)
    send(grown, orthanc.dicom_port)
    job = wait_for_job(client, series_id, timeout_s=300, finished_after=first["finished_at"])
    assert job["state"] == "done" and job["instance_count"] == 16, job
    marker = json.loads(client.request("GET", f"/series/{series_id}/metadata/LungSegResult"))
    assert marker == {"model_version": job["model_version"], "instances": 16,
                      "lesions": len(job["result"]["lesions"])}
    assert job["result"]["sr_series"]  # an SR even when no lesion is found


def test_job_store_survives_a_restart_and_unstable_series_are_scanned(orthanc, processed,
                                                                       tmp_path):
    client = orthanc.client()
    before = client.get_json(f"/lungseg/series/{processed.series_id}")
    pending = copy_as_new_series(processed.folder, tmp_path / "pending", 12,
                                 f"2.25.{uuid.uuid4().int}")
    uid = pydicom.dcmread(next(pending.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    send(pending, orthanc.dicom_port)
    orthanc.stop()  # before StableAge: this series never gets its STABLE_SERIES event
    with pytest.raises(OrthancHttpError):
        client.get_json("/system")
    orthanc.start()
    after = client.get_json(f"/lungseg/series/{processed.series_id}")
    assert after == before and after["state"] == "done"
    job = wait_for_job(client, find_series(client, uid), timeout_s=300)
    assert job["state"] == "done" and job["trigger"] == "startup-scan", job
