"""``lungseg`` command line: segment a series folder, or send one to a DICOM node."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipeline.errors import LungSegError
from pipeline.run import SEGMENTERS, PipelineConfig, Segmenter, SeriesResult, process_series
from pipeline.series import CTSeries, dicom_files
from pipeline.version import __version__


def parse_option(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``; VALUE ``true``/``false`` becomes a bool, digits an int.

    Raises
    ------
    ValueError
        If ``text`` has no ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"engine option must be KEY=VALUE, got {text!r}")
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    if lowered.lstrip("-").isdigit():
        return key.strip(), int(lowered)
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``lungseg``."""
    parser = argparse.ArgumentParser(
        prog="lungseg", description="Lung lesion segmentation (research use only)."
    )
    parser.add_argument("--version", action="version", version=f"lungseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment one CT series folder")
    seg.add_argument("dicom_dir", type=Path, help="folder with the CT series")
    seg.add_argument("--out", type=Path, required=True, help="output folder")
    seg.add_argument("--segmenter", choices=SEGMENTERS, default="auto")
    seg.add_argument("--engine", default="onnx", help="engine kind (default onnx)")
    seg.add_argument("--model", default=None, help="model file (default: the shipped model)")
    seg.add_argument("--threads", type=int, default=None)
    seg.add_argument("--batch-size", type=int, default=8)
    seg.add_argument("--no-shape-gate", dest="shape_gate", action="store_false",
                     help="keep components of any shape (the model's shape_limits are skipped; "
                     "the output version gains +no-shape-gate)")
    seg.add_argument(
        "--engine-option", action="append", default=[], metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. device=cuda, dtype=fp16 for --engine torch)",
    )
    send = sub.add_parser("send", help="send a series folder with C-STORE")
    send.add_argument("dicom_dir", type=Path)
    send.add_argument("--host", required=True)
    send.add_argument("--port", type=int, required=True)
    send.add_argument("--aet", default="LUNGSEG", help="calling AE title")
    send.add_argument("--called-aet", default="ORTHANC", help="called AE title")
    send.add_argument("--tls-ca", type=Path, metavar="PEM",
                      help="send over DICOM TLS; the receiver's certificate must chain to this")
    send.add_argument("--tls-cert", type=Path, metavar="PEM",
                      help="our certificate, for a receiver that requires one (with --tls-key)")
    send.add_argument("--tls-key", type=Path, metavar="PEM", help="our private key")
    send.add_argument("-v", "--verbose", action="store_true", help="print every instance")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lungseg``; return the exit status (0 ok, 1 failures, 2 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="lungseg: %(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    try:
        if args.command == "segment":
            return _segment(args)
        return _send(args)
    except (LungSegError, OSError, ValueError) as exc:
        print(f"lungseg: error: {exc}", file=sys.stderr)
        return 2


def _segment(args: argparse.Namespace) -> int:
    config = PipelineConfig(
        segmenter=args.segmenter, engine=args.engine, model_path=args.model,
        threads=args.threads, batch_size=args.batch_size,
        engine_options=tuple(parse_option(text) for text in args.engine_option),
        shape_gate=args.shape_gate,
    )
    segmenter = Segmenter.create(config)
    try:
        result = process_series(args.dicom_dir, segmenter, config)
    finally:
        segmenter.close()
    write_outputs(result, args.out)
    _print_table(result)
    return 0


def write_outputs(result: SeriesResult, out: Path) -> None:
    """Write seg.dcm (when a lesion exists), sr.dcm, mask.nii.gz and lesions.json to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    seg_path = out / "seg.dcm"
    if result.seg is not None:
        result.seg.save_as(seg_path, enforce_file_format=True)
    elif seg_path.exists():
        seg_path.unlink()
    result.sr.save_as(out / "sr.dcm", enforce_file_format=True)
    sitk.WriteImage(label_image(result.mask, result.series), str(out / "mask.nii.gz"))
    summary = {
        "series_instance_uid": result.series.series_instance_uid if result.series else None,
        "algorithm": {"name": result.algorithm.name, "version": result.algorithm.version}
        if result.algorithm else None,
        "seg_written": result.seg is not None,
        "lesions": [lesion.to_json() for lesion in result.lesions],
        "timings_s": result.timings,
    }
    (out / "lesions.json").write_text(json.dumps(summary, indent=2) + "\n")


def label_image(mask: np.ndarray, series: CTSeries | None) -> sitk.Image:
    """Return the label map as a SimpleITK image with the series' patient geometry."""
    img = sitk.GetImageFromArray(mask)
    if series is None:
        return img
    iop = np.asarray(series.datasets[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    img.SetSpacing((series.spacing[2], series.spacing[1], series.spacing[0]))
    img.SetOrigin(tuple(float(v) for v in series.datasets[0].ImagePositionPatient))
    img.SetDirection(tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel()))
    return img


def _print_table(result: SeriesResult) -> None:
    print(f"{len(result.lesions)} lesion(s); SEG {'written' if result.seg else 'not written'}")
    if result.lesions:
        print(f"{'#':>3} {'volume mm3':>11} {'long mm':>8} {'short mm':>9} {'mean HU':>8} slice")
    for lesion in result.lesions:
        print(
            f"{lesion.label:>3} {lesion.volume_mm3:>11.1f} {lesion.long_axis_mm:>8.1f} "
            f"{lesion.short_axis_mm:>9.1f} {lesion.mean_hu:>8.1f} {lesion.key_slice}"
        )
    print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))


def _send(args: argparse.Namespace) -> int:
    from pipeline.dimse import send_files, tls_context

    folder = args.dicom_dir
    files = dicom_files(folder)
    if not files:
        raise ValueError(f"the folder {folder} holds no DICOM files")
    if args.tls_ca is None and (args.tls_cert or args.tls_key):
        raise ValueError("--tls-cert and --tls-key need --tls-ca (DICOM TLS)")
    tls = tls_context(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    report = send_files(files, args.host, args.port, args.aet, args.called_aet, tls=tls)
    for item in report.instances:
        tries = f" on attempt {item.attempts}" if item.attempts > 1 else ""
        if not item.ok:
            print(f"FAILED {item.path}{tries}: {item.message}", file=sys.stderr)
        elif args.verbose or tries:
            print(f"stored {item.path}{tries} (status 0x{item.status:04X})")
    print(f"sent {report.sent} of {len(report.instances)} instance(s) to "
          f"{args.called_aet}@{args.host}:{args.port}")
    return 0 if not report.failures else 1
