import numpy as np
import pytest

from tests.trainer.conftest import REFERENCE, SERIES_0001
from trainer.data.lidc import consensus_mask, parse_lidc_xml, reader_masks


def test_parse_rejects_non_lidc(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<a><b/></a>")
    with pytest.raises(ValueError, match="readingSession"):
        parse_lidc_xml(bad)
    with pytest.raises(FileNotFoundError):
        parse_lidc_xml(tmp_path / "missing.xml")


def test_reader_masks_match_reference_0001():
    xmls = sorted(SERIES_0001.glob("*/*/*.xml"))
    if not xmls or not (REFERENCE / "LIDC-IDRI-0001_reader_count.nii.gz").is_file():
        pytest.skip(f"LIDC-IDRI-0001 series or reference masks not available under {SERIES_0001}")
    from pipeline.series import load_series_dir
    from trainer.evaluation.evaluate import read_reference_mask

    series = load_series_dir(xmls[0].parent)
    reads = parse_lidc_xml(xmls[0])
    assert len(reads) == 4
    masks = reader_masks(reads, series.sop_instance_uids, series.z_positions_mm, series.hu.shape)
    assert [int(m.sum()) for m in masks] == [6844, 5348, 5733, 6408]
    ref = read_reference_mask(REFERENCE / "LIDC-IDRI-0001_consensus50.nii.gz",
                              series.z_positions_mm, series.hu.shape)
    assert np.array_equal(consensus_mask(masks, 2), ref)
