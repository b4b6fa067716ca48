"""OHIF shows our SEG and SR: LIDC-IDRI-0001 sent to Orthanc by C-STORE, processed by the
plugin, opened in OHIF v3 (headless Chromium) and checked on screenshots."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from ohif_support import (
    CONTROL_ROW_COL,
    NODULE_INSTANCE,
    NODULE_ROW_COL,
    REPO,
    run_ohif_check,
)
from PIL import Image

from pipeline.colour import dicom_lab_to_srgb

pytestmark = pytest.mark.browser


def pixel_to_world(ds: pydicom.Dataset, row: float, col: float) -> list[float]:
    """Patient coordinates (LPS, mm) of pixel (row, column) of a CT image."""
    ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return [float(v) for v in ipp + iop[:3] * dc * col + iop[3:] * dr * row]


def patch(png: Path, x: float, y: float, radius: int = 1) -> np.ndarray:
    """Mean RGB of the (2 radius + 1)^2 screen pixels around (x, y)."""
    img = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    xi, yi = int(round(x)), int(round(y))
    return img[yi - radius:yi + radius + 1, xi - radius:xi + radius + 1].reshape(-1, 3).mean(0)


def chroma(rgb: np.ndarray) -> float:
    return float(np.max(rgb) - np.min(rgb))


def probe(page: dict, name: str) -> tuple[float, float]:
    hit = next(p for p in page["probes"] if p["name"] == name)
    return hit["x"], hit["y"]


def planar_groups(sr: pydicom.Dataset) -> list:
    return hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_planar_roi_measurement_groups()


def nodule_group(sr: pydicom.Dataset, ct_by_sop: dict[str, pydicom.Dataset], nodule: list[float]):
    """The SR's planar group whose outline centre is nearest the nodule; with its outline (mm)."""
    best = None
    for group in planar_groups(sr):
        ref = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        # SCOORD (column, row) has (0, 0) at the top-left corner of the first pixel.
        pts = [pixel_to_world(ct_by_sop[ref], r - 0.5, c - 0.5) for c, r in group.roi.value]
        dist = float(np.linalg.norm(np.mean(pts, axis=0) - np.asarray(nodule)))
        if best is None or dist < best[0]:
            best = (dist, group, pts)
    assert best is not None, "the SR has no planar measurement group"
    return best


@pytest.fixture(scope="module")
def ohif(study, tmp_path_factory):
    ct44 = study.ct_headers[NODULE_INSTANCE]
    nodule = pixel_to_world(ct44, *NODULE_ROW_COL)
    control = pixel_to_world(ct44, *CONTROL_ROW_COL)
    ct_by_sop = {h.SOPInstanceUID: h for h in study.ct_headers.values()}
    dist, group, outline = nodule_group(study.sr, ct_by_sop, nodule)
    step = max(1, len(outline) // 40)
    spec = {
        "baseUrl": study.viewer_url, "username": study.user, "password": study.password,
        "studyUID": study.study_uid, "segSeriesUID": study.seg.SeriesInstanceUID,
        "srSeriesUID": study.sr.SeriesInstanceUID,
        "probes": [{"name": "nodule", "world": nodule}, {"name": "control", "world": control}],
        "srProbes": [{"name": f"outline-{k}", "world": p} for k, p in enumerate(outline[::step])],
    }
    out = tmp_path_factory.mktemp("ohif")
    started = time.monotonic()
    result = run_ohif_check(spec, out)
    pages = {name: page["pageMs"] for name, page in result["pages"].items()}
    print(f"\nOHIF check: {time.monotonic() - started:.1f} s (browser {result['elapsedMs']} ms, "
          f"per page {pages} ms), screenshots in {out}; log {result['log']}")
    return {"result": result, "out": out, "group": group, "group_distance_mm": dist}


def test_every_request_of_the_viewer_succeeded(ohif):
    failed = [line for line in ohif["result"]["log"] if line.startswith(("http ", "pageerror"))]
    assert not failed, f"failed requests or page errors in OHIF: {failed}"


def test_ct_is_drawn(ohif):
    page = ohif["result"]["pages"]["ct"]
    box = page["canvas"]
    img = np.asarray(Image.open(page["screenshot"]).convert("RGB"), dtype=float)
    view = img[int(box["top"]):int(box["top"] + box["height"]),
               int(box["left"]):int(box["left"] + box["width"])]
    lit = (view.max(axis=2) > 40).mean()
    assert lit > 0.25, f"only {lit:.0%} of the viewport is non-black"
    assert view.std() > 25, f"viewport nearly uniform (std {view.std():.1f})"
    assert page["finalImageIndex"] == page["imageIndex"], "the nodule slice was not displayed"
    assert page["sliceDistanceMm"] < 0.01


def test_seg_is_loaded_with_its_colour(ohif, study):
    reps = ohif["result"]["pages"]["seg"]["segmentations"]
    assert len(reps) == 1 and reps[0]["type"] == "Labelmap" and reps[0]["visible"], reps
    ours = study.seg.SegmentSequence
    shown = reps[0]["segments"]
    assert [s["index"] for s in shown] == [int(s.SegmentNumber) for s in ours]
    assert [s["label"] for s in shown] == [s.SegmentLabel for s in ours]
    for seg_item, displayed in zip(ours, shown, strict=True):
        expected = dicom_lab_to_srgb(seg_item.RecommendedDisplayCIELabValue)
        assert np.all(expected >= -0.5) and np.all(expected <= 255.5), (
            f"segment {seg_item.SegmentNumber}: CIELab {seg_item.RecommendedDisplayCIELabValue} "
            f"is outside sRGB (rgb {np.round(expected, 1)}); viewers clip it")
        assert np.allclose(displayed["color"][:3], expected, atol=2), (displayed, expected)


def test_seg_covers_the_documented_nodule_centre(study):
    ct44 = study.ct_headers[NODULE_INSTANCE]
    seg = hd.seg.Segmentation.from_dataset(study.seg)
    frame = seg.get_pixels_by_source_instance(
        [ct44.SOPInstanceUID], assert_missing_frames_are_empty=True)
    row, col = NODULE_ROW_COL
    assert frame[0, row, col].any(), "our SEG does not cover the nodule centre"
    assert not frame[0, CONTROL_ROW_COL[0], CONTROL_ROW_COL[1]].any()


def test_seg_is_drawn_in_its_colour_over_the_nodule(ohif, study):
    pages = ohif["result"]["pages"]
    assert pages["seg"]["imageIndex"] == pages["ct"]["imageIndex"]
    assert probe(pages["seg"], "nodule") == probe(pages["ct"], "nodule")
    x, y = probe(pages["ct"], "nodule")
    ct = patch(Path(pages["ct"]["screenshot"]), x, y)
    shown = patch(Path(pages["seg"]["screenshot"]), x, y)
    colour = np.asarray(pages["seg"]["segmentations"][0]["segments"][0]["color"][:3], float)
    colour = np.clip(colour, 0, 255)
    assert chroma(ct) < 8, f"CT page not grey at the nodule: {ct}"
    moved, towards = shown - ct, colour - ct
    cosine = moved @ towards / (np.linalg.norm(moved) * np.linalg.norm(towards) + 1e-9)
    alpha = moved @ towards / (towards @ towards)
    assert cosine > 0.9 and 0.15 < alpha < 1.05, (
        f"nodule pixel {shown} (CT {ct}) does not show segment colour {colour}: "
        f"cosine {cosine:.2f}, blend {alpha:.2f}")


def test_control_spot_stays_uncoloured(ohif):
    pages = ohif["result"]["pages"]
    x, y = probe(pages["ct"], "control")
    ct = patch(Path(pages["ct"]["screenshot"]), x, y)
    shown = patch(Path(pages["seg"]["screenshot"]), x, y)
    assert chroma(shown) < 8, f"control spot coloured: {shown}"
    assert np.abs(shown - ct).max() < 6, f"control spot changed: CT {ct}, with SEG {shown}"


def test_sr_lesion_measurement_is_shown(ohif, study):
    page = ohif["result"]["pages"]["sr"]
    ours = planar_groups(study.sr)
    assert page["loaded"], "OHIF did not load the SR"
    assert len(page["groups"]) == len(ours), (len(page["groups"]), len(ours))
    group = ohif["group"]
    assert ohif["group_distance_mm"] < 15, "no SR outline near the nodule"
    long_axis = next(m for m in group.get_measurements() if m.name.meaning == "Long Axis")
    text = f"{float(long_axis.value):.2f} mm"
    shown = next(g for g in page["groups"] if g["trackingUid"] == group.tracking_uid)
    assert {"label": "Long Axis", "value": text} in shown["labels"], shown["labels"]
    assert text in page["svgText"], f"{text!r} not drawn: {page['svgText'][:300]!r}"


def test_sr_outline_is_drawn_on_the_lesion(ohif):
    pages = ohif["result"]["pages"]
    sr_png, ct_png = Path(pages["sr"]["screenshot"]), Path(pages["ct"]["screenshot"])
    sr_img = np.asarray(Image.open(sr_png).convert("RGB"), dtype=float)
    hits = 0
    for p in pages["sr"]["probes"]:
        xi, yi = int(round(p["x"])), int(round(p["y"]))
        near = sr_img[yi - 3:yi + 4, xi - 3:xi + 4].reshape(-1, 3)
        coloured = (near.max(axis=1) - near.min(axis=1)) > 60
        hits += bool(coloured.any()) and chroma(patch(ct_png, p["x"], p["y"], 3)) < 8
    assert hits >= 0.6 * len(pages["sr"]["probes"]), (
        f"outline drawn at {hits} of {len(pages['sr']['probes'])} outline points")


def test_start_viewer_prints_the_links_to_the_results(viewer, study):
    env = {**viewer["env"], "LUNGSEG_USER": study.user, "LUNGSEG_PASSWORD": study.password}
    proc = subprocess.run([str(REPO / "deploy" / "start-viewer.sh"), study.study_uid], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    base = f"{study.viewer_url}/viewer?StudyInstanceUIDs={study.study_uid}"
    assert "Viewer already running" in proc.stdout
    assert f"Open study:    {base}\n" in proc.stdout
    for modality, ds in (("SEG", study.seg), ("SR", study.sr)):
        link = f"with its {modality}: {base}&initialSeriesInstanceUID={ds.SeriesInstanceUID}"
        assert link in proc.stdout, proc.stdout
