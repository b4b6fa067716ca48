import sqlite3
import subprocess
import sys
import time

import pytest

from orthanc_plugin.jobstore import JobStore, RetryPolicy


@pytest.fixture()
def store(tmp_path):
    return JobStore(tmp_path / "jobs.sqlite")


def test_lifecycle_and_durability(store, tmp_path):
    job = store.enqueue("s1", 133, "stable")
    assert (job.state, job.instance_count, job.trigger) == ("queued", 133, "stable")
    claimed = store.claim_next()
    assert claimed.series_id == "s1" and claimed.state == "running" and claimed.attempts == 1
    assert store.claim_next() is None
    done = store.finish("s1", "done", timings={"inference": 1.5}, result={"sr_series": "x"},
                        model_version="v1")
    assert done.state == "done" and done.timings == {"inference": 1.5}
    again = JobStore(tmp_path / "jobs.sqlite").get("s1")
    assert again == done


def test_enqueue_while_running_reruns_after_finish(store):
    store.enqueue("s1", 10)
    store.claim_next()
    assert store.enqueue("s1", 12, "stable").rerun is True
    after = store.finish("s1", "done")
    assert after.state == "queued" and not after.rerun
    assert store.claim_next().series_id == "s1"


def test_reject_and_requeue_running(store):
    rejected = store.reject("mr", "Modality is 'MR', not 'CT'", 5, "stable")
    assert rejected.state == "rejected" and "MR" in rejected.reason
    store.enqueue("a")
    store.claim_next()
    assert store.requeue_running() == 1
    assert store.get("a").state == "queued"


def test_oldest_first_and_listing(store):
    for name in ("a", "b", "c"):
        store.enqueue(name)
    assert [store.claim_next().series_id for _ in range(3)] == ["a", "b", "c"]
    assert [j.series_id for j in store.list()] == ["c", "b", "a"]
    assert len(store.list(limit=2)) == 2


@pytest.mark.parametrize("call", [
    lambda s: s.enqueue(""), lambda s: s.enqueue("a", -1), lambda s: s.reject("a", ""),
    lambda s: s.finish("a", "running"), lambda s: s.finish("nojob", "done"),
    lambda s: s.list(0), lambda s: s.get(None),
])
def test_bad_arguments(store, call):
    with pytest.raises(ValueError):
        call(store)


CLAIM = ("import sys; from orthanc_plugin.jobstore import JobStore; "
         "j = JobStore(sys.argv[1]).claim_next(); print(j.series_id if j else 'none')")


def test_two_processes_never_claim_the_same_job(tmp_path):
    path = tmp_path / "jobs.sqlite"
    JobStore(path).enqueue("only")
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(path)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["none", "only"]


def test_broken_attempts_back_off_then_fail_with_the_reason(store):
    policy = RetryPolicy(max_attempts=3, delay_s=0.2)
    store.enqueue("s", 10)
    store.claim_next()
    first = store.retry("s", "the worker process died (killed by signal 9)", policy)
    assert first.state == "queued" and first.broken == 1
    assert "attempt 1 of 3; retry in 0.2 s" in first.reason and "signal 9" in first.reason
    assert store.claim_next() is None  # not due yet
    time.sleep(0.25)
    store.claim_next()
    second = store.requeue_running("worker died", policy)
    assert second == 1 and store.get("s").not_before - time.time() > 0.3  # 0.4 s: doubled
    time.sleep(0.45)
    assert store.claim_next().attempts == 3
    failed = store.retry("s", "worker died", policy)
    assert failed.state == "failed" and "attempt 3 of 3; given up" in failed.reason
    assert store.enqueue("s", 10, "rest").broken == 0  # a new request starts afresh


def test_retry_of_a_grown_series_is_a_new_request(store):
    store.enqueue("s", 10)
    store.claim_next()
    store.enqueue("s", 20, "stable")  # grew while running
    job = store.retry("s", "worker died", RetryPolicy(max_attempts=1))
    assert job.state == "queued" and job.broken == 0 and not job.rerun
    with pytest.raises(ValueError, match="no running job"):
        store.retry("s", "again", RetryPolicy())


def test_release_does_not_count_the_attempt(store):
    store.enqueue("s")
    store.claim_next()
    job = store.release("s")
    assert job.state == "queued" and job.attempts == 0
    assert store.release("s") is None


def test_worker_state_and_counts(store):
    assert store.worker() is None
    store.set_worker(123, "failed", "model file not found: /x")
    assert store.worker()["pid"] == 123 and store.worker()["reason"].endswith("/x")
    store.set_worker(124, "ready")
    assert (store.worker()["pid"], store.worker()["state"]) == (124, "ready")
    with pytest.raises(ValueError):
        store.set_worker(1, "dead")
    store.enqueue("a")
    store.reject("b", "Modality is 'MR', not 'CT'")
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "rejected": 1, "failed": 0}


def test_older_job_file_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (series_id TEXT PRIMARY KEY, state TEXT NOT NULL, "
               "reason TEXT NOT NULL DEFAULT '', trigger TEXT NOT NULL DEFAULT '', "
               "instance_count INTEGER NOT NULL DEFAULT 0, model_version TEXT NOT NULL "
               "DEFAULT '', timings TEXT NOT NULL DEFAULT '{}', result TEXT NOT NULL DEFAULT "
               "'{}', attempts INTEGER NOT NULL DEFAULT 0, rerun INTEGER NOT NULL DEFAULT 0, "
               "queued_at REAL NOT NULL, started_at REAL, finished_at REAL)")
    db.execute("INSERT INTO jobs (series_id, state, queued_at) VALUES ('old', 'queued', 1)")
    db.commit()
    db.close()
    store = JobStore(path)
    assert store.claim_next().series_id == "old" and store.get("old").broken == 0
