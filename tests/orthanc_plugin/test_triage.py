import json

import pytest
from stub_orthanc import StubOrthanc, series_info

from orthanc_plugin.jobstore import JobStore
from orthanc_plugin.triage import MAX_ATTEMPTS, METADATA_NAME, scan_ct_series, triage


@pytest.fixture()
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite")


def test_ct_is_queued(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 133)})
    job = triage(api, store, "s1", "stable")
    assert job.state == "queued" and job.instance_count == 133 and job.trigger == "stable"


@pytest.mark.parametrize("modality", ["SEG", "SR", "seg"])
def test_own_outputs_are_ignored_without_a_job(store, modality):
    api = StubOrthanc(get={"/series/x": series_info(modality, 1)})
    assert triage(api, store, "x", "stable") is None
    assert store.get("x") is None


def test_other_modality_is_rejected_with_reason(store):
    api = StubOrthanc(get={"/series/m": series_info("MR", 30)})
    job = triage(api, store, "m", "stable")
    assert job.state == "rejected" and job.reason == "Modality is 'MR', not 'CT'"


MARKER = f"/series/s1/metadata/{METADATA_NAME}"


def test_processed_series_not_requeued_unless_grown_or_forced(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 40),
                           MARKER: json.dumps({"instances": 40})})
    store.enqueue("s1", 40)
    store.claim_next()
    store.finish("s1", "done")
    assert triage(api, store, "s1", "stable") is None
    assert triage(api, store, "s1", "rest", force=True).state == "queued"
    store.claim_next()
    store.finish("s1", "done")
    api.get["/series/s1"] = series_info("CT", 41)
    grown = triage(api, store, "s1", "stable")
    assert grown.state == "queued" and grown.instance_count == 41


def test_deleted_and_resent_series_is_processed_again(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 40)})  # no marker: it was deleted
    store.enqueue("s1", 40)
    store.claim_next()
    store.finish("s1", "done")
    assert triage(api, store, "s1", "stable").state == "queued"


def test_rejected_series_same_size_not_requeued(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 5)})
    store.reject("s1", "NumberOfSlices 5 is not >= 10", 5)
    assert triage(api, store, "s1", "stable") is None
    api.get["/series/s1"] = series_info("CT", 50)
    assert triage(api, store, "s1", "stable").state == "queued"


def test_marker_without_job_counts_as_processed(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 40),
                           f"/series/s1/metadata/{METADATA_NAME}": json.dumps({"instances": 40})})
    assert triage(api, store, "s1", "startup-scan") is None
    api.get[f"/series/s1/metadata/{METADATA_NAME}"] = json.dumps({"instances": 39})
    assert triage(api, store, "s1", "startup-scan").state == "queued"


def test_unknown_series_raises(store):
    api = StubOrthanc()
    with pytest.raises(api.OrthancException):
        triage(api, store, "nope", "stable")
    with pytest.raises(ValueError, match="series_id"):
        triage(api, store, "", "stable")


def test_startup_scan_queues_unprocessed_ct(store):
    api = StubOrthanc(
        get={"/series/a": series_info("CT", 50), "/series/b": series_info("CT", 20),
             f"/series/b/metadata/{METADATA_NAME}": json.dumps({"instances": 20})},
        post={"/tools/find": ["a", "b", "gone"]})
    store.enqueue("b", 20)
    store.claim_next()
    store.finish("b", "done")
    assert scan_ct_series(api, store) == 1
    assert store.get("a").state == "queued" and store.get("b").state == "done"


def test_failed_job_retried_by_startup_scan_only_up_to_the_limit(store):
    api = StubOrthanc(get={"/series/s1": series_info("CT", 40)})
    store.enqueue("s1", 40)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        store.claim_next()
        store.finish("s1", "failed", "OrthancHttpError: GET ... HTTP 0")
        assert triage(api, store, "s1", "stable") is None
        job = triage(api, store, "s1", "startup-scan")
        if attempt < MAX_ATTEMPTS:
            assert job.state == "queued"
    assert job is None and store.get("s1").attempts == MAX_ATTEMPTS
