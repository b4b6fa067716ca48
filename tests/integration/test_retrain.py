"""Retraining from the archive against a real Orthanc: pull, fine-tune, compare, promote.

Three site patients (copies of the demo series with real-looking names and IDs) are stored
over STOW and processed by the plugin; readers' SEGs follow over STOW as OHIF stores them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import DEMO_SERIES, require_orthanc  # noqa: E402
from retrain_support import ball, reader_seg, site_copy, stow  # noqa: E402

from orthanc_plugin.local_server import OrthancServer  # noqa: E402
from orthanc_plugin.results import find_series, wait_for_job  # noqa: E402
from pipeline.series import load_series_dir  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TRAINER = Path(sys.executable).parent / "trainer"
PATIENTS = [("PID-SECRET-0001", "Doe^Jane"), ("PID-SECRET-0002", "Roe^Richard"),
            ("PID-SECRET-0003", "Poe^Edgar")]
IDENTIFIERS = [text for pair in PATIENTS for text in (*pair, pair[1].replace("^", " "))]
NODULE = (14, 365, 315)


def trainer(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the trainer CLI; its stdout and stderr (the log) are returned."""
    return subprocess.run([str(TRAINER), *args], capture_output=True, text=True,
                          timeout=timeout)


def no_identifiers(text: str) -> None:
    for ident in IDENTIFIERS:
        assert ident.lower() not in text.lower(), "a patient identifier leaked"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_orthanc()
    srv = OrthancServer(tmp_path_factory.mktemp("orthanc-retrain"), stable_age=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def archive(server, tmp_path_factory):
    """The three site series, stored over STOW and processed by lungseg."""
    root = tmp_path_factory.mktemp("site")
    folders = []
    for k, (pid, name) in enumerate(PATIENTS):
        folder = site_copy(DEMO_SERIES, root / f"s{k}", pid, name, f"1.2.826.0.1.3680043.10.7{k}")
        stow(server.url, server.user, server.password,
             [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))])
        folders.append(folder)
    client = server.client()
    for folder in folders:
        uid = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
        series_id = find_series(client, str(uid.SeriesInstanceUID))
        job = wait_for_job(client, series_id, timeout_s=600)
        assert job["state"] == "done", job
    return folders


def changes(server) -> tuple[list, int]:
    """Orthanc's writes (changes other than its own Stable* events) and its instance count:
    equal before and after when nothing was written."""
    client = server.client()
    seen = client.get_json("/changes?limit=10000")["Changes"]
    writes = [(c["ChangeType"], c["ID"]) for c in seen
              if not c["ChangeType"].startswith("Stable")]
    return writes, client.get_json("/statistics")["CountInstances"]


def pull(server, out: Path, *extra: str) -> tuple[dict, str]:
    proc = trainer("pull", "--url", f"{server.url}/dicom-web", "--user", server.user,
                   "--password", server.password, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "manifest.json").read_text()), proc.stdout + proc.stderr


def test_pull_finds_nothing_but_lungseg_own_output(server, archive, tmp_path):
    client = server.client()
    segs = [s for s in client.get_json("/series?expand")
            if s["MainDicomTags"].get("Modality") == "SEG"]
    assert segs, "lungseg stored no SEG of the demo series: nothing to tell apart"
    before = changes(server)
    manifest, log = pull(server, tmp_path / "pull")
    assert manifest["entries"] == [] and manifest["series_list"] is None
    assert not (tmp_path / "pull" / "series-list.json").exists()
    assert changes(server) == before
    no_identifiers(log)


@pytest.fixture(scope="module")
def corrected(server, archive):
    """Readers' SEGs: patient 0 twice (the newer one counts), patient 1 once, patient 2 marked
    "No lesion"; all stored over STOW with the viewer as manufacturer."""
    shape = load_series_dir(archive[0]).hu.shape
    older = reader_seg(archive[0], ball(shape, NODULE, 3))
    older.ContentDate, older.ContentTime = "20240101", "080000"
    newer = reader_seg(archive[0], ball(shape, NODULE, 8))
    newer.ContentDate, newer.ContentTime = "20240102", "080000"
    second = reader_seg(archive[1], ball(shape, NODULE, 8))
    free = reader_seg(archive[2], ball(shape, (3, 50, 50), 2), label="No lesion")
    stow(server.url, server.user, server.password, [older, newer, second, free])
    return {"newer": newer, "older": older, "second": second, "free": free}


def test_pull_takes_the_newest_correction_and_no_lesion(server, archive, corrected, tmp_path):
    from trainer.data.series_list import load_listed, read_series_list

    before = changes(server)
    out = tmp_path / "pull"
    manifest, log = pull(server, out)
    assert changes(server) == before, "a pull wrote to Orthanc"
    entries = manifest["entries"]
    assert len(entries) == 3
    assert {e["seg_sop_uid"] for e in entries} == {
        str(corrected[k].SOPInstanceUID) for k in ("newer", "second", "free")}
    assert sum(e["lesion_free"] for e in entries) == 1
    listed = read_series_list(out / "series-list.json")
    masks = {e.patient: load_listed(e)[1] for e in listed}
    shape = load_series_dir(archive[0]).hu.shape
    for entry in listed:
        if entry.lesions is None:
            assert masks[entry.patient] is None
        else:
            assert (masks[entry.patient] == ball(shape, NODULE, 8)).all()
    assert len({e.patient for e in listed}) == 3
    names = [str(p.relative_to(out)) for p in out.rglob("*")]
    no_identifiers("\n".join(names) + (out / "manifest.json").read_text()
                   + (out / "series-list.json").read_text() + log)
    again, _ = pull(server, out)
    assert [e["patient"] for e in again["entries"]] == [e["patient"] for e in entries]
    since, _ = pull(server, tmp_path / "later", "--since", "2999-01-01")
    assert since["entries"] == []


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A public series list (the demo nodule under three pseudonyms) and a tiny U-Net
    fine-tuned on it: the trainable checkpoint a site's retrain starts from."""
    from tests.trainer.conftest import TINY, write_mask

    root = tmp_path_factory.mktemp("public")
    series = load_series_dir(DEMO_SERIES)
    write_mask(series, ball(series.hu.shape, NODULE, 8), root / "nodule.nii.gz")
    listed = root / "public.json"
    listed.write_text(json.dumps([{"series": str(DEMO_SERIES), "lesions": "nodule.nii.gz",
                                   "patient": f"PUB{k}"} for k in range(3)]))
    assert trainer("crops", "--list", str(listed), "--out", str(root / "vois")).returncode == 0
    sets = ["--config", TINY, "--set", f"vois_dir={root / 'vois'}",
            "--set", f"cache={root / 'cache.npz'}", "--set", f"out_dir={root / 'run'}"]
    for command in ("cache", "finetune"):
        proc = trainer(command, *sets)
        assert proc.returncode == 0, proc.stderr
    return root / "run" / "final.pt", listed


def model_version_of_seg(server, series_id: str) -> str:
    client = server.client()
    job = client.get_json(f"/lungseg/series/{series_id}")
    seg = client.request("GET", f"/instances/{job['result']['seg_instance']}/file")
    import io

    ds = pydicom.dcmread(io.BytesIO(seg))
    return str(ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
               .AlgorithmVersion)


def test_retrain_compare_promote_rollback_without_restart(server, archive, corrected,
                                                          tiny_checkpoint, tmp_path):
    from engines import default_model_path

    registry = server.data_dir / "model-registry"
    checkpoint, public = tiny_checkpoint
    pid = (server.data_dir / "orthanc.pid").read_text().strip()
    site = tmp_path / "site.yaml"
    site.write_text(json.dumps({
        "archive": {"url": f"{server.url}/dicom-web", "user": server.user,
                    "password": server.password, "site": "TEST"},
        "checkpoint": str(checkpoint), "registry": str(registry),
        "work_dir": str(tmp_path / "work"), "heldout_fraction": 0.34, "steps": 2,
        "public_list": str(public), "boot": 200, "threads": 2}))
    proc = trainer("retrain", "--config", str(site), timeout=1200)
    assert proc.returncode == 0, proc.stderr
    no_identifiers(proc.stdout + proc.stderr)
    [run] = (tmp_path / "work").glob("2*")
    report = json.loads((run / "report.json").read_text())
    held, trained = report["split"]["heldout_patients"], report["split"]["train_patients"]
    assert len(held) == 1 and len(trained) == 2 and not set(held) & set(trained)
    crops = {p.name.split("_R_")[0] for p in (run / "crops" / "image").iterdir()}
    assert not crops & set(held), "the new model trained on a held-out patient"
    assert report["baseline"] == "1.3.2" and report["registered"].startswith("1.3.2+site.")
    from trainer.evaluation.compare import ADMITS

    assert report["promoted"] == (report["compare"]["verdict"] in ADMITS)
    expected = report["registered"] if report["promoted"] else "1.3.2"
    model = server.client().get_json("/lungseg/model")
    assert model["active"] == expected
    assert "verdict:" in (run / "report.md").read_text()

    # a copy of the shipped model under a new version: compare says not worse -> promoted
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "m.onnx").write_bytes(default_model_path().read_bytes())
    sidecar = json.loads(default_model_path().with_suffix(".json").read_text())
    (copy / "m.json").write_text(json.dumps({**sidecar, "version": "1.3.2-site.2"}))
    held_list = str(run / "heldout-list.json")
    assert trainer("compare", str(default_model_path()), str(copy / "m.onnx"), "--list",
                   held_list, "--json", str(copy / "r.json"), "--boot", "200").returncode == 0
    assert trainer("register", str(copy / "m.onnx"), "--report", str(copy / "r.json"),
                   "--registry", str(registry)).returncode == 0
    assert trainer("promote", "1.3.2-site.2", "--registry", str(registry)).returncode == 0
    client = server.client()
    series_id = find_series(client, str(pydicom.dcmread(next(archive[0].glob("*.dcm")))
                                        .SeriesInstanceUID))
    client.post_json(f"/lungseg/series/{series_id}/run", {})
    job = wait_for_job(client, series_id, timeout_s=600)
    assert job["state"] == "done" and job["model_version"] == "1.3.2-site.2"
    assert model_version_of_seg(server, series_id) == "1.3.2-site.2"
    assert (server.data_dir / "orthanc.pid").read_text().strip() == pid

    # a worse model (the same network, a threshold that keeps nothing) is refused
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "m.onnx").write_bytes(default_model_path().read_bytes())
    (strict / "m.json").write_text(json.dumps({**sidecar, "version": "1.3.2-strict",
                                               "threshold": 0.99999}))
    assert trainer("compare", str(default_model_path()), str(strict / "m.onnx"), "--list",
                   str(run.parent / "pull" / "series-list.json"), "--json",
                   str(strict / "r.json"), "--boot", "200").returncode == 0
    assert json.loads((strict / "r.json").read_text())["verdict"] == "worse"
    assert trainer("register", str(strict / "m.onnx"), "--report", str(strict / "r.json"),
                   "--registry", str(registry)).returncode == 0
    refused = trainer("promote", "1.3.2-strict", "--registry", str(registry))
    assert refused.returncode == 2 and "worse" in refused.stderr
    assert client.get_json("/lungseg/model")["active"] == "1.3.2-site.2"

    # rollback: back to what was active before
    assert trainer("rollback", "--registry", str(registry)).returncode == 0
    assert client.get_json("/lungseg/model")["active"] == expected
