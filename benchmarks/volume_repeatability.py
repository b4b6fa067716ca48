"""How much does a lesion's volume move when the same scan is cut to other slice ranges?

A reader who re-sends part of a series, or a follow-up scan with another coverage, gives the
pipeline the same voxels around a lesion but a different volume to crop to the lungs. The
lung box decides the in-plane crop, hence the resampling grid (phase and, by rounding,
spacing) and the network's context. This benchmark runs the product path
(:func:`pipeline.run.process_series`) on the whole series and on windows of slices around
its largest lesion, and prints the volume, axes and mean HU of the lesion overlapping the
whole-series one in each window, with its change against the whole series.

A second table isolates the crop: the whole series again, with the start of the in-plane
crop (the dilated lung box of :func:`pipeline.inference.segment_with_predictor`) moved by
0..``--shifts``-1 source pixels down and right, as a different lung edge would move it. The
box is moved by wrapping ``pipeline.inference.dilated_box`` for the run; nothing else changes.

Usage::

    python -m benchmarks.volume_repeatability --series <LIDC-IDRI-0001 folder> \\
        [--precision fp32] [--margins 10,15,20,30,50] [--shifts 18]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from benchmarks.common import series_dir, table


def windows(first: int, last: int, n_slices: int, margins: list[int]) -> list[tuple[int, int]]:
    """Slice windows around ``first..last`` (inclusive): symmetric margins, then one-sided
    (margin below only, above only), clipped to the series and without repeats.

    Raises
    ------
    ValueError
        If ``first..last`` is not inside the series.
    """
    if not 0 <= first <= last < n_slices:
        raise ValueError(f"lesion slices {first}..{last} outside a {n_slices}-slice series")
    out = [(0, n_slices)]
    for m in margins:
        for lo, hi in ((first - m, last + 1 + m), (first - m, last + 1 + 3 * m),
                       (first - 3 * m, last + 1 + m)):
            window = (max(lo, 0), min(hi, n_slices))
            if window not in out:
                out.append(window)
    return out


def subset(series, lo: int, hi: int):
    """The series cut to slices ``lo:hi`` (a new :class:`pipeline.series.CTSeries`)."""
    return dataclasses.replace(series, hu=series.hu[lo:hi],
                               z_positions_mm=series.z_positions_mm[lo:hi],
                               datasets=series.datasets[lo:hi])


def lesion_row(result, reference: np.ndarray, lo: int) -> dict | None:
    """Measurements of the lesion of ``result`` overlapping ``reference`` (whole-series
    slice indices; ``lo`` is the window's first slice), or None if none does."""
    window_ref = reference[lo:lo + result.mask.shape[0]]
    labels = np.setdiff1d(np.unique(result.mask[window_ref]), [0])
    if not labels.size:
        return None
    lesion = result.lesions[int(labels[0]) - 1]
    return {"volume_mm3": round(lesion.volume_mm3, 1), "long_mm": round(lesion.long_axis_mm, 2),
            "short_mm": round(lesion.short_axis_mm, 2), "mean_hu": round(lesion.mean_hu, 1)}


def shifted_box(dilated_box, k: int):
    """Wrap ``dilated_box`` so that the box's in-plane start moves by ``k`` pixels."""
    def box(lungs, spacing, mm):
        b = dilated_box(lungs, spacing, mm)
        return (b[0], slice(min(b[1].start + k, b[1].stop - 1), b[1].stop),
                slice(min(b[2].start + k, b[2].stop - 1), b[2].stop))
    return box


def _row(result, reference, lo, base) -> dict:
    row = lesion_row(result, reference, lo) or {"volume_mm3": float("nan")}
    return {**row, "change_%": round(100.0 * (row["volume_mm3"] / base - 1.0), 1)}


def shift_rows(series, segmenter, config, reference, base, n_shifts: int) -> list[dict]:
    """Volumes of the reference lesion with the crop start moved by 0..n_shifts-1 pixels."""
    import pipeline.inference as inference
    from pipeline.run import process_series

    original = inference.dilated_box
    rows = []
    try:
        for k in range(n_shifts):
            inference.dilated_box = shifted_box(original, k)
            rows.append({"shift_px": k,
                         **_row(process_series(series, segmenter, config), reference, 0, base)})
    finally:
        inference.dilated_box = original
    return rows


def main() -> None:
    """Print the table described in the module docstring."""
    from pipeline.run import PipelineConfig, Segmenter, process_series
    from pipeline.series import load_series_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", required=True, help="series folder or .tar.xz")
    parser.add_argument("--precision", default="auto", choices=("fp32", "int8", "auto"))
    parser.add_argument("--margins", default="10,15,20,30,50",
                        help="slices kept beyond the lesion (comma list)")
    parser.add_argument("--shifts", type=int, default=18,
                        help="crop-start shifts 0..N-1 source pixels (0: no shift table)")
    args = parser.parse_args()
    series = load_series_dir(series_dir(args.series))
    config = PipelineConfig(segmenter="model", engine_options=(("precision", args.precision),))
    segmenter = Segmenter.create(config)
    try:
        whole = process_series(series, segmenter, config)
        if not whole.lesions:
            raise SystemExit("no lesion found in the whole series")
        reference = whole.mask == 1  # the largest lesion
        zs = np.nonzero(reference.any(axis=(1, 2)))[0]
        base = whole.lesions[0].volume_mm3
        rows = []
        for lo, hi in windows(int(zs[0]), int(zs[-1]), series.hu.shape[0],
                              [int(m) for m in args.margins.split(",")]):
            result = process_series(subset(series, lo, hi), segmenter, config)
            rows.append({"slices": f"{lo}:{hi}", "n": hi - lo,
                         **_row(result, reference, lo, base)})
        shifts = shift_rows(series, segmenter, config, reference, base, args.shifts)
    finally:
        segmenter.close()
    columns = ["volume_mm3", "change_%", "long_mm", "short_mm", "mean_hu"]
    print(f"largest lesion of the whole series: slices {zs[0]}..{zs[-1]}, "
          f"{base:.1f} mm3 ({segmenter.algorithm.name} {segmenter.algorithm.version})")
    print(table(rows, ["slices", "n", *columns]))
    if shifts:
        volumes = np.array([r["volume_mm3"] for r in shifts])
        cv = 100 * np.nanstd(volumes) / np.nanmean(volumes)
        print(f"\ncrop start moved: volume {np.nanmin(volumes):.1f}-{np.nanmax(volumes):.1f} "
              f"mm3, coefficient of variation {cv:.1f} %")
        print(table(shifts, ["shift_px", *columns]))


if __name__ == "__main__":
    main()
