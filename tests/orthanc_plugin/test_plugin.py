import json
import sys
import time

import pytest
from stub_orthanc import ChangeType, StubOrthanc, StubOutput, series_info

from orthanc_plugin import plugin, rest
from pipeline.errors import ConfigError


def configuration(tmp_path, **extra):
    section = {"WorkerPython": sys.executable, "DataDir": str(tmp_path), "ScanOnStart": False,
               "Url": "http://127.0.0.1:1", "WorkerUser": "w", "WorkerPassword": "p", **extra}
    return json.dumps({"LungSeg": section})


def test_register_installs_callbacks_and_routes(tmp_path):
    api = StubOrthanc(get={"/series/s": series_info("CT", 20)})
    state = plugin.register(api, configuration(tmp_path))
    assert set(api.rest_callbacks) == {rest.STATUS_ROUTE, rest.JOBS_ROUTE, rest.SERIES_ROUTE,
                                      rest.RUN_ROUTE, rest.MODEL_ROUTE}
    [on_change] = api.change_callbacks
    start = time.perf_counter()
    on_change(ChangeType.STABLE_SERIES, 3, "s")
    assert time.perf_counter() - start < 1.0
    assert state.store.get("s").state == "queued"
    out = StubOutput()
    api.rest_callbacks[rest.SERIES_ROUTE](out, "/lungseg/series/s", method="GET", groups=["s"])
    assert out.json()["state"] == "queued"
    out = StubOutput()
    api.rest_callbacks[rest.JOBS_ROUTE](out, rest.JOBS_ROUTE, method="GET", get={})
    assert out.json()["worker"] == {"state": "not started", "pid": None, "running": False,
                                     "starts": 0, "failed_starts": 0, "reason": ""}
    out = StubOutput()
    api.rest_callbacks[rest.STATUS_ROUTE](out, rest.STATUS_ROUTE, method="GET")
    assert out.json()["worker"]["state"] == "not started"
    assert out.json()["jobs"]["queued"] == 1 and out.json()["jobs"]["done"] == 0


def test_callback_errors_are_logged_not_raised(tmp_path):
    api = StubOrthanc()
    plugin.register(api, configuration(tmp_path))
    api.change_callbacks[0](ChangeType.STABLE_SERIES, 3, "missing")
    assert any("could not queue series missing" in m for m in api.logs)


def test_other_changes_touch_nothing(tmp_path):
    api = StubOrthanc()
    plugin.register(api, configuration(tmp_path))
    api.change_callbacks[0](ChangeType.NEW_INSTANCE, 4, "x")
    assert api.calls == []


def test_bad_configuration_fails_fast(tmp_path):
    with pytest.raises(ConfigError, match="LungSeg.MinSlices"):
        plugin.register(StubOrthanc(), configuration(tmp_path, MinSlices="ten"))
