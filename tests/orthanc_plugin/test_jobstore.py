import subprocess
import sys

import pytest

from orthanc_plugin.jobstore import JobStore


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
