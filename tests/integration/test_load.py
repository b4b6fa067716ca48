"""Load against a real Orthanc: 20 series sent at once over parallel associations from two
sender AE titles are each processed exactly once (one attempt, one SEG, one SR).

The series are copies of demo/LIDC-IDRI-0001 (32 slices) with new UIDs; the threshold
segmenter keeps the run short enough for CI (LUNGSEG_TEST_LOAD_SEGMENTER=auto uses the model).
``python -m benchmarks.load`` measures the same run.
"""

from __future__ import annotations

import os
import re

import pytest
from e2e_support import require_orthanc

from benchmarks.load import (
    SENDERS,
    allowed_senders,
    make_copies,
    peak_rss_mb,
    processed_once,
    send_all,
    summary,
    wait_all,
)
from orthanc_plugin.local_server import REPO, OrthancServer

pytestmark = pytest.mark.integration
SERIES = 20


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    require_orthanc()
    server = OrthancServer(tmp_path_factory.mktemp("orthanc-load"), stable_age=2, extra_env={
        "LUNGSEG_SEGMENTER": os.environ.get("LUNGSEG_TEST_LOAD_SEGMENTER", "threshold"),
        "LUNGSEG_SENDERS": allowed_senders()})
    server.start()
    copies = make_copies(REPO / "demo" / "LIDC-IDRI-0001", tmp_path_factory.mktemp("copies"),
                         SERIES)
    started = send_all(copies, server.dicom_port, associations=4)
    wait_all(server.client(), copies, timeout_s=900)
    yield server, copies, started
    server.stop()


def test_every_series_is_processed_exactly_once(loaded):
    server, copies, started = loaded
    client = server.client()
    assert {c.sender for c in copies} == set(SENDERS)
    assert all(c.sent == 32 for c in copies)
    problems = {c.series_uid: processed_once(client, c) for c in copies}
    assert not any(problems.values()), problems
    jobs = client.get_json("/lungseg/jobs")["jobs"]
    assert sorted(j["series"] for j in jobs) == sorted(c.series_id for c in copies)
    log = server.log()
    for copy in copies:
        assert len(re.findall(rf"series {copy.series_id}: done", log)) == 1
    stats = summary(copies, started)
    print(f"\n{SERIES} series: {stats['per_min']:.1f} series/min, queue wait median "
          f"{stats['wait_median']:.1f} s max {stats['wait_max']:.1f} s, worker peak "
          f"{peak_rss_mb(client.get_json('/lungseg/status')['worker']['pid']):.0f} MB")
    assert stats["wait_max"] >= stats["wait_median"] >= 0
