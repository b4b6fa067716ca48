import json
import runpy
import sys
from pathlib import Path

import pytest
from stub_orthanc import StubOrthanc

from orthanc_plugin import rest

ENTRY = Path(__file__).resolve().parents[2] / "orthanc_plugin" / "entry.py"


class ConfiguredOrthanc(StubOrthanc):
    def __init__(self, configuration):
        super().__init__()
        self.configuration = json.dumps(configuration)

    def GetConfiguration(self):  # noqa: N802
        return self.configuration


@pytest.fixture()
def load_entry(monkeypatch):
    def load(configuration):
        api = ConfiguredOrthanc(configuration)
        monkeypatch.setitem(sys.modules, "orthanc", api)
        monkeypatch.setattr(sys, "path", [str(ENTRY.parent), *sys.path])
        return api, runpy.run_path(str(ENTRY))
    return load


def test_entry_registers_and_drops_its_folder_from_sys_path(load_entry, tmp_path):
    section = {"WorkerPython": sys.executable, "DataDir": str(tmp_path), "SitePackages": [],
               "Url": "http://127.0.0.1:1", "WorkerUser": "w", "WorkerPassword": "p"}
    api, namespace = load_entry({"LungSeg": section})
    assert namespace["STATE"].cfg.data_dir == str(tmp_path)
    assert set(api.rest_callbacks) == {rest.STATUS_ROUTE, rest.JOBS_ROUTE, rest.SERIES_ROUTE,
                                      rest.RUN_ROUTE, rest.MODEL_ROUTE}
    assert str(ENTRY.parent) not in sys.path


def test_entry_without_section_fails_clearly(load_entry):
    with pytest.raises(RuntimeError, match="no 'LungSeg' section"):
        load_entry({})


def test_entry_reports_bad_settings_before_raising(load_entry, tmp_path):
    section = {"WorkerPython": sys.executable, "DataDir": str(tmp_path), "MinSlices": "x",
               "Url": "http://127.0.0.1:1", "WorkerUser": "w", "WorkerPassword": "p"}
    with pytest.raises(Exception, match="LungSeg.MinSlices"):
        load_entry({"LungSeg": section})
