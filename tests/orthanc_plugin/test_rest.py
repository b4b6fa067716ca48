import pytest
from stub_orthanc import StubOrthanc, StubOutput, series_info

from orthanc_plugin import rest
from orthanc_plugin.jobstore import JobStore


@pytest.fixture()
def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite")
    s.enqueue("aa11", 133, "stable")
    s.claim_next()
    s.finish("aa11", "done", timings={"inference": 2.0, "export": 0.5}, model_version="v")
    return s


def test_jobs_lists_everything(store):
    out = StubOutput()
    rest.get_jobs(store, out, rest.JOBS_ROUTE, method="GET", get={})
    assert out.status == 200 and out.mime == "application/json"
    [job] = out.json()["jobs"]
    assert job["series"] == "aa11" and job["state"] == "done"


@pytest.mark.parametrize("limit", ["x", "0", "-3"])
def test_jobs_bad_limit(store, limit):
    out = StubOutput()
    rest.get_jobs(store, out, rest.JOBS_ROUTE, method="GET", get={"limit": limit})
    assert out.status == 400 and "limit" in out.json()["error"]


def test_series_state_reason_timings(store):
    out = StubOutput()
    rest.get_series(store, out, "/lungseg/series/aa11", method="GET", groups=["aa11"])
    body = out.json()
    assert body["state"] == "done" and body["timings"] == {"inference": 2.0, "export": 0.5}
    assert body["reason"] == "" and body["model_version"] == "v"


def test_series_without_job_is_404(store):
    out = StubOutput()
    rest.get_series(store, out, "/lungseg/series/ff", method="GET", groups=["ff"])
    assert out.status == 404


def test_wrong_methods(store):
    out = StubOutput()
    rest.get_jobs(store, out, rest.JOBS_ROUTE, method="POST")
    assert out.status == 405
    out = StubOutput()
    rest.post_run(StubOrthanc(), store, out, "/x", method="GET", groups=["aa11"])
    assert out.status == 405


def test_run_forces_a_processed_series(store):
    api = StubOrthanc(get={"/series/aa11": series_info("CT", 133)})
    out = StubOutput()
    rest.post_run(api, store, out, "/lungseg/series/aa11/run", method="POST", groups=["aa11"])
    assert out.status == 200 and out.json()["state"] == "queued"
    assert out.json()["trigger"] == "rest"


def test_run_unknown_or_derived_series(store):
    api = StubOrthanc(get={"/series/5e9": series_info("SEG", 1)})
    out = StubOutput()
    rest.post_run(api, store, out, "/x", method="POST", groups=["dead"])
    assert out.status == 404
    out = StubOutput()
    rest.post_run(api, store, out, "/x", method="POST", groups=["5e9"])
    assert out.status == 400


def test_routes_match_orthanc_ids():
    import re

    sid = "1b2c3d4e-5f6a7b8c-9d0e1f2a-3b4c5d6e-7f8a9b0c"
    assert re.fullmatch(rest.SERIES_ROUTE, f"/lungseg/series/{sid}").group(1) == sid
    assert re.fullmatch(rest.RUN_ROUTE, f"/lungseg/series/{sid}/run").group(1) == sid
    assert re.fullmatch(rest.SERIES_ROUTE, f"/lungseg/series/{sid}/run") is None


def test_an_unusable_job_store_answers_503(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    (tmp_path / "jobs.sqlite").write_bytes(b"not a database" * 512)
    out = StubOutput()
    rest.get_series(store, out, "/lungseg/series/aa", method="GET", groups=["aa"])
    assert out.status == 503 and "job store cannot be used" in out.json()["error"]


def test_model_route_shows_the_active_version(tmp_path):
    registry = tmp_path / "registry"
    out = StubOutput()
    rest.get_model(registry, out, rest.MODEL_ROUTE, method="GET")
    assert out.status == 200 and out.json()["active"] is None
    (registry / "v7").mkdir(parents=True)
    (registry / "v7" / "lungseg-unet.onnx").write_bytes(b"x")
    (registry / "active").write_text("v7\n")
    out = StubOutput()
    rest.get_model(registry, out, rest.MODEL_ROUTE, method="GET")
    assert out.json()["active"] == "v7"
    (registry / "active").write_text("gone\n")
    out = StubOutput()
    rest.get_model(registry, out, rest.MODEL_ROUTE, method="GET")
    assert out.status == 500 and "gone" in out.json()["error"]
