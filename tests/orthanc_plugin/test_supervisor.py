import json
import shutil
import subprocess
import sys
import time

from orthanc_plugin.config import from_section
from orthanc_plugin.jobstore import JobStore
from orthanc_plugin.supervisor import (
    REPO_ROOT,
    WorkerSupervisor,
    describe_exit,
    worker_command,
    worker_environment,
)

READ_THEN = "import sys; data = sys.stdin.read(); assert 'WorkerPassword' in data; "


def make_cfg(tmp_path, delay=0.1, **extra):
    return from_section({"WorkerPython": sys.executable, "DataDir": str(tmp_path),
                         "Url": "http://127.0.0.1:1", "WorkerUser": "w",
                         "WorkerPassword": "p", "WorkerRestartDelaySeconds": delay, **extra})


# A stand-in worker records its state in the job store, as orthanc_plugin.worker does.
RECORD = ("import json, os; from orthanc_plugin.jobstore import JobStore; "
          "store = JobStore(json.loads(data)['DataDir'] + '/lungseg-jobs.sqlite'); ")


def popen_running(code):
    def popen(cmd, **kwargs):
        assert cmd == worker_command(cfg_holder[0])
        return subprocess.Popen([sys.executable, "-c", READ_THEN + code], **kwargs)
    return popen


cfg_holder = []


def wait_until(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_worker_started_config_on_stdin_and_stopped(tmp_path):
    cfg_holder[:] = [make_cfg(tmp_path)]
    logs = []
    sup = WorkerSupervisor(cfg_holder[0], logs.append, popen_running("import time; time.sleep(60)"))
    sup.start()
    try:
        assert wait_until(lambda: sup.pid is not None)
        pid = sup.pid
    finally:
        sup.stop(timeout_s=5)
    assert sup.pid is None and sup.starts == 1
    assert any(f"pid {pid}" in m for m in logs) and any("stopped" in m for m in logs)


def test_dead_worker_is_restarted(tmp_path):
    cfg_holder[:] = [make_cfg(tmp_path)]
    logs = []
    sup = WorkerSupervisor(cfg_holder[0], logs.append, popen_running("sys.exit(3)"))
    sup.start()
    try:
        assert wait_until(lambda: sup.starts >= 3)
    finally:
        sup.stop(timeout_s=5)
    assert any("code 3" in m for m in logs)


def test_missing_python_is_reported(tmp_path):
    cfg = from_section({"WorkerPython": str(tmp_path / "nope"), "DataDir": str(tmp_path),
                        "Url": "http://127.0.0.1:1", "WorkerUser": "w", "WorkerPassword": "p"})
    logs = []
    sup = WorkerSupervisor(cfg, logs.append)
    sup._spawn()
    assert sup.pid is None and "does not exist" in logs[0]


def test_worker_environment_puts_checkout_first():
    env = worker_environment({"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(":") == [str(REPO_ROOT), "/x"]
    assert env["PYTHONUNBUFFERED"] == "1"


def test_worker_refuses_a_bad_configuration():
    proc = subprocess.run([sys.executable, "-m", "orthanc_plugin.worker"], input='{"Url": 1}',
                          capture_output=True, text=True, timeout=60,
                          env=worker_environment())
    assert proc.returncode == 2 and "LungSeg.WorkerPython" in proc.stderr


def test_a_worker_that_cannot_start_is_given_up_with_its_reason(tmp_path):
    cfg_holder[:] = [make_cfg(tmp_path, delay=0.05, WorkerMaxStarts=3)]
    logs = []
    code = RECORD + "store.set_worker(os.getpid(), 'failed', 'model file not found: /m.onnx'); "
    sup = WorkerSupervisor(cfg_holder[0], logs.append, popen_running(code + "sys.exit(3)"))
    sup.start()
    try:
        assert wait_until(lambda: sup.given_up)
        time.sleep(0.5)
        status = sup.status()
    finally:
        sup.stop(timeout_s=5)
    assert sup.starts == 3 and status["state"] == "stopped" and status["failed_starts"] == 3
    assert "model file not found: /m.onnx" in status["reason"]
    assert "gave up after 3 failed starts" in status["reason"]
    assert any("starting it again in 0.1 s" in m for m in logs)  # doubled from 0.05 s


def test_a_worker_dying_while_serving_is_restarted_and_its_job_retried(tmp_path):
    cfg_holder[:] = [make_cfg(tmp_path, delay=0.05, MaxAttempts=3, RetryDelaySeconds=30)]
    store = JobStore(cfg_holder[0].job_db)
    store.enqueue("s1", 10)
    store.claim_next()
    code = RECORD + ("store.set_worker(os.getpid(), 'ready'); import signal, time; "
                     "time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)")
    logs = []
    sup = WorkerSupervisor(cfg_holder[0], logs.append, popen_running(code))
    sup.start()
    try:
        assert wait_until(lambda: store.get("s1").state == "queued")
        assert wait_until(lambda: sup.starts >= 2)
    finally:
        sup.stop(timeout_s=5)
    job = store.get("s1")
    assert job.broken == 1 and job.not_before > time.time() + 20
    assert "killed by signal 9 (SIGKILL)" in job.reason and "attempt 1 of 3" in job.reason
    assert sup.failed_starts == 0 and not sup.given_up


def test_exit_descriptions():
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(3) == "exit code 3" and describe_exit(None) == "not started"


def _worker(tmp_path, **extra):
    section = {"WorkerPython": sys.executable, "DataDir": str(tmp_path),
               "Url": "http://127.0.0.1:1", "WorkerUser": "w", "WorkerPassword": "p", **extra}
    return subprocess.run([sys.executable, "-m", "orthanc_plugin.worker"],
                          input=json.dumps(section), capture_output=True, text=True,
                          timeout=120, env=worker_environment())


def test_worker_without_its_model_records_why_and_exits_3(tmp_path):
    proc = _worker(tmp_path, Segmenter="auto", ModelPath=str(tmp_path / "missing.onnx"))
    assert proc.returncode == 3, proc.stderr
    recorded = JobStore(tmp_path / "lungseg-jobs.sqlite").worker()
    assert recorded["state"] == "failed"
    assert recorded["reason"] == (f"ConfigError: model file not found: {tmp_path}/missing.onnx "
                                  "(LungSeg.ModelPath)")


def test_worker_with_a_corrupt_model_records_why_and_exits_3(tmp_path):
    import engines

    model = tmp_path / "corrupt.onnx"
    real = engines.default_model_path()
    model.write_bytes(real.read_bytes()[:4096])  # cut short, as by a failed copy
    shutil.copy(real.with_suffix(".json"), model.with_suffix(".json"))
    proc = _worker(tmp_path, ModelPath=str(model))
    assert proc.returncode == 3, proc.stderr
    reason = JobStore(tmp_path / "lungseg-jobs.sqlite").worker()["reason"]
    assert reason.startswith("EngineError: ONNX Runtime could not load") and "Protobuf" in reason
    assert str(model) in reason
