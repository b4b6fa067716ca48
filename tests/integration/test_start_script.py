"""deploy/start-orthanc.sh: generated password, auth on, clear failures."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
from e2e_support import require_orthanc

from orthanc_plugin.local_server import REPO, OrthancServer
from orthanc_plugin.orthanc_http import OrthancClient, OrthancHttpError

START = str(REPO / "deploy" / "start-orthanc.sh")


def run_start(env, timeout=120):
    return subprocess.run([START], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("var, value", [("LUNGSEG_HTTP_PORT", "80a"),
                                        ("LUNGSEG_STABLE_AGE", "-1")])
def test_bad_numbers_fail_with_a_message(tmp_path, var, value):
    env = {**OrthancServer(tmp_path).env, var: value}
    proc = run_start(env)
    assert proc.returncode != 0 and f"{var} must be a whole number" in proc.stderr


def test_missing_venv_fails_with_a_message(tmp_path):
    env = {**OrthancServer(tmp_path).env, "LUNGSEG_VENV": str(tmp_path / "novenv")}
    proc = run_start(env)
    assert proc.returncode != 0 and "deploy/install.sh" in proc.stderr


@pytest.mark.integration
def test_generated_password_printed_once_and_required(tmp_path):
    require_orthanc()
    server = OrthancServer(tmp_path)
    env = {k: v for k, v in server.env.items() if k != "LUNGSEG_PASSWORD"}
    proc = run_start(env)
    try:
        assert proc.returncode == 0, proc.stderr
        [line] = [x for x in proc.stdout.splitlines() if "generated password" in x]
        password = line.rsplit(": ", 1)[1]
        assert len(password) >= 16
        assert OrthancClient(server.url, server.user, password).get_json("/system")["Version"]
        with pytest.raises(OrthancHttpError) as err:
            OrthancClient(server.url, server.user, "").get_json("/system")
        assert err.value.status == 401
        config = json.loads((tmp_path / "orthanc.json").read_text())
        assert config["AuthenticationEnabled"] is True
        assert (tmp_path / "orthanc.json").stat().st_mode & 0o077 == 0
    finally:
        server.stop()


@pytest.mark.integration
def test_port_in_use_fails_with_a_clear_message(tmp_path):
    require_orthanc()
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        server = OrthancServer(tmp_path, dicom_port=busy.getsockname()[1])
        proc = run_start(server.env)
    assert proc.returncode != 0
    assert "Orthanc exited during start-up" in proc.stderr
    assert "already in use" in proc.stderr
    assert not (tmp_path / "orthanc.pid").exists()


@pytest.mark.integration
def test_invalid_plugin_setting_stops_orthanc_naming_the_key(tmp_path):
    require_orthanc()
    server = OrthancServer(tmp_path, extra_env={"LUNGSEG_SEGMENTER": "magic"})
    proc = run_start(server.env)
    assert proc.returncode != 0
    assert "LungSeg.Segmenter must be one of" in proc.stderr


def _render_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_config",
                                                  REPO / "deploy" / "render_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_renders_any_password_as_valid_json():
    render = _render_module().render
    template = (REPO / "deploy" / "orthanc.json.template").read_text()
    tokens = set(re.findall(r"@([A-Z_]+)@", template))
    password = 'p"a\\s s{}@X@'
    env = {f"LUNGSEG_R_{t}": json.dumps("v") for t in tokens}
    env.update({"LUNGSEG_R_HTTP_PORT": "8042", "LUNGSEG_R_DICOM_PORT": "4242",
                "LUNGSEG_R_STABLE_AGE": "2", "LUNGSEG_R_MIN_SLICES": "10",
                "LUNGSEG_R_SITE_PACKAGES": "[]", "LUNGSEG_R_MODEL_PATH": "null",
                "LUNGSEG_R_REGISTERED_USERS": json.dumps({"u": password})})
    config = json.loads(render(template, env))
    assert config["RegisteredUsers"] == {"u": password}
    assert config["AuthenticationEnabled"] is True and config["HttpPort"] == 8042
    del env["LUNGSEG_R_HTTP_PORT"]
    with pytest.raises(SystemExit, match="@HTTP_PORT@"):
        render(template, env)
