"""deploy/demo.sh, the README's first command: Orthanc with the plugin, the demo CT sent in,
SEG + SR back, the lesion table printed."""

from __future__ import annotations

import subprocess

import pytest
from e2e_support import require_orthanc

from orthanc_plugin.local_server import REPO, OrthancServer, free_port


@pytest.mark.integration
def test_demo_prints_the_lesion_table_with_a_password_that_starts_with_a_dash(tmp_path):
    require_orthanc()
    server = OrthancServer(tmp_path)
    viewer_port = free_port()
    env = {**server.env, "LUNGSEG_PASSWORD": "-x" + server.password, "LUNGSEG_STABLE_AGE": "1",
           "LUNGSEG_DEMO_TIMEOUT": "240", "LUNGSEG_VIEWER_PORT": str(viewer_port),
           "NPM": str(tmp_path / "no-npm")}  # an OHIF not yet installed is not downloaded here
    try:
        proc = subprocess.run([str(REPO / "deploy" / "demo.sh")], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        subprocess.run([str(REPO / "deploy" / "stop-viewer.sh")], env=env, capture_output=True,
                       timeout=30)
        server.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "sent 32 of 32 instance(s)" in proc.stdout
    assert "job: done" in proc.stdout
    table = proc.stdout.split("volume mm3", 1)[1]
    assert "(no lesion found)" not in table
    assert env["LUNGSEG_PASSWORD"] not in proc.stdout  # given, so not printed
    assert f":{viewer_port}/" in proc.stdout or "OHIF not installed" in proc.stdout
