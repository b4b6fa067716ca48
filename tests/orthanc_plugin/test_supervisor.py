import subprocess
import sys
import time

from orthanc_plugin.config import from_section
from orthanc_plugin.supervisor import (
    REPO_ROOT,
    WorkerSupervisor,
    worker_command,
    worker_environment,
)

READ_THEN = "import sys; data = sys.stdin.read(); assert 'WorkerPassword' in data; "


def make_cfg(tmp_path, delay=0.1):
    return from_section({"WorkerPython": sys.executable, "DataDir": str(tmp_path),
                         "Url": "http://127.0.0.1:1", "WorkerUser": "w",
                         "WorkerPassword": "p", "WorkerRestartDelaySeconds": delay})


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
