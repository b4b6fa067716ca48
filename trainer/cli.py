"""``trainer`` command line.

Commands: crops, cache, pretrain-vae, pretrain-contrastive, finetune, evaluate, export,
shape-limits, study, and the retraining loop (docs/retraining.md): pull, compare, register,
promote, rollback, models, retrain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines.onnx_engine import PRECISIONS
from pipeline.errors import LungSegError


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON recipe (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override one config key (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of every error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("cache", "preprocess the crop folder into the patch cache"),
                       ("pretrain-vae", "VAE pretraining on unlabelled patches"),
                       ("pretrain-contrastive", "SimCLR pretraining (init= a VAE to chain)"),
                       ("finetune", "U-Net fine-tuning (init= a pretraining checkpoint)")):
        _add_config(sub.add_parser(name, help=text))
    cr = sub.add_parser("crops", help="cut the lesions of whole series (a series list, "
                        "trainer/data/series_list.py) into the crop layout")
    cr.add_argument("--list", required=True, help="series list (JSON)")
    cr.add_argument("--out", required=True, help="new crop folder (image/, nodule_mask/, "
                    "nodules.csv)")
    ev = sub.add_parser("evaluate", help="evaluate an exported model (or a baseline)")
    ev.add_argument("--model", help="exported .onnx (default models/lungseg-unet.onnx)")
    ev.add_argument("--baseline", choices=("threshold", "kmeans"),
                    help="evaluate a baseline instead of the model")
    ev.add_argument("--vois", help="crop folder (image/, nodule_mask/, nodules.csv)")
    ev.add_argument("--patients", help="JSON list or comma list restricting the crops")
    ev.add_argument("--series", help="DICOM series folder")
    ev.add_argument("--list", dest="series_list",
                    help="series list (JSON, trainer/data/series_list.py): every series, pooled")
    ev.add_argument("--mask", help="reference mask (NIfTI) on the series grid")
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="onnx engine precision (auto: the int8 model beside MODEL when it was "
                    "quantised from it, as lungseg runs it)")
    ev.add_argument("--components", metavar="DIR",
                    help="with --series: save a PNG view of every kept component here")
    ev.add_argument("--json", required=True, help="output JSON")
    ex = sub.add_parser("export", help="export a fine-tuned checkpoint to ONNX + .pt2 + sidecar")
    ex.add_argument("--checkpoint", required=True, action="append",
                    help="fine-tuned checkpoint; repeat it to export an ensemble whose output "
                    "is the mean of the members' probabilities")
    ex.add_argument("--out", default="models/lungseg-unet.onnx")
    ex.add_argument("--metrics", help="JSON file merged into the sidecar's extra")
    ex.add_argument("--no-pt2", action="store_true")
    ex.add_argument("--model-version", help="sidecar version (enters the output UIDs); "
                    "default: the checkpoint's model_version")
    sl = sub.add_parser("shape-limits", help="derive the shape gate from the model's "
                        "predictions on the training crops; write it into the sidecar(s)")
    _add_config(sl)
    sl.add_argument("--model", default="models/lungseg-unet.onnx", help="exported .onnx")
    sl.add_argument("--vois", required=True, help="crop folder (image/, nodule_mask/, ...)")
    sl.add_argument("--percent", type=float, default=0.5,
                    help="percent of training nodules left outside each limit (default 0.5)")
    sl.add_argument("--threads", type=int, default=2)
    sl.add_argument("--model-version", help="new sidecar version (it enters output UIDs)")
    sl.add_argument("--dry-run", action="store_true", help="print the limits, write nothing")
    st = sub.add_parser("study", help="label-efficiency study -> docs/results.md")
    _add_config(st)
    st.add_argument("--stage", choices=("train", "report", "all"), default="all")
    st.add_argument("--root", default="runs/study")
    st.add_argument("--fractions", default="0.05,0.1,0.25,1.0")
    st.add_argument("--pretrain-steps", type=int, default=1500)
    st.add_argument("--finetune-steps", type=int, default=3000)
    st.add_argument("--jobs", type=int, default=1, help="parallel training processes")
    st.add_argument("--deadline-s", type=float, default=3600.0,
                    help="start no new job after this many seconds")
    st.add_argument("--results", default="docs/results.md")
    from trainer.retrain.commands import add_commands

    add_commands(sub)
    return parser


def _config(args):
    from trainer.config import load_config

    return load_config(args.config, args.overrides)


def _patients(text: str | None) -> list[str] | None:
    if not text:
        return None
    path = Path(text)
    if path.is_file():
        return list(json.loads(path.read_text()))
    return [p.strip() for p in text.split(",") if p.strip()]


def _evaluate(args) -> dict:
    from trainer.evaluation import evaluate as ev

    if sum(map(bool, (args.vois, args.series, args.series_list))) != 1:
        raise ValueError("evaluate needs exactly one of --vois, --series (with --mask) or --list")
    if (args.mask or args.components) and not args.series:
        raise ValueError("--mask and --components need --series")
    if args.series_list:
        from trainer.data.series_list import read_series_list
        from trainer.evaluation.evaluate_list import evaluate_series_list

        return evaluate_series_list(read_series_list(args.series_list),
                                    args.baseline or "model", args.model, args.threads,
                                    args.precision)
    if args.series:
        if not args.mask:
            raise ValueError("--series needs --mask")
        kind = args.baseline or "model"
        return ev.evaluate_series(args.series, args.mask, kind, args.model, args.threads,
                                  args.precision, args.components)
    records = ev.select_records(args.vois, _patients(args.patients))
    if args.baseline:
        return ev.evaluate_crops(ev.crop_baseline_segmenter(args.baseline), records, True)
    from engines import create_engine

    with create_engine("onnx", args.model, threads=args.threads,
                       precision=args.precision) as engine:
        segmenter = ev.crop_model_segmenter(engine)
        result = ev.evaluate_crops(segmenter, records, True, engine.spec.shape_limits)
        return {"engine": engine.describe(), "canvas": "air", **result}


def _shape_limits(args) -> None:
    from trainer.evaluation import shape_limits as sl

    if not Path(args.model).is_file():
        raise FileNotFoundError(f"model {args.model} does not exist")
    limits, provenance = sl.derive_shape_limits(args.model, args.vois, _config(args),
                                                args.percent, args.threads)
    written = [] if args.dry_run else sl.write_shape_limits(args.model, limits, provenance,
                                                            args.model_version)
    print(sl.summary(limits, provenance, written))


def _study(args) -> None:
    from trainer.evaluation import study

    cfg = _config(args)
    root = Path(args.root)
    fractions = [float(f) for f in args.fractions.split(",")]
    if args.stage in ("train", "all"):
        study.train_stage(args.config, args.overrides, root, fractions, args.pretrain_steps,
                          args.finetune_steps, args.jobs, args.deadline_s)
    if args.stage in ("report", "all"):
        from trainer.evaluation.report import write_report

        write_report(cfg, root, fractions, Path(args.results), args.config)


def run(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    from trainer.train import loop as train

    commands = {"pretrain-vae": train.pretrain_vae, "finetune": train.finetune,
                "pretrain-contrastive": train.pretrain_contrastive}
    if args.command == "crops":
        from trainer.data.crops import write_crops
        from trainer.data.series_list import read_series_list

        print(json.dumps(write_crops(read_series_list(args.list), args.out)))
    elif args.command == "cache":
        from trainer.data.cache import build_cache

        print(build_cache(_config(args)))
    elif args.command in commands:
        print(commands[args.command](_config(args)))
    elif args.command == "evaluate":
        result = _evaluate(args)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        summary = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
        print(json.dumps({**summary, **result.get("pooled", {})}))
    elif args.command == "shape-limits":
        _shape_limits(args)
    elif args.command in RETRAIN_COMMANDS:
        from trainer.retrain.commands import run_command

        return run_command(args)
    elif args.command == "export":
        from trainer.export.exporter import export_checkpoint

        extra = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
        spec, parity = export_checkpoint(args.checkpoint, args.out, extra, not args.no_pt2,
                                         args.model_version)
        print(f"exported {args.out} (max |onnx - torch| = {parity:.2e})")
    else:
        _study(args)
    return 0


RETRAIN_COMMANDS = ("pull", "compare", "register", "promote", "rollback", "models",
                    "retrain")
"""Commands of :mod:`trainer.retrain.commands`."""

USER_ERRORS = (LungSegError, ValueError, FileNotFoundError)
"""What bad input raises (config, arguments, missing files): one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: a one-line error for bad input, the traceback of anything else.

    With ``--debug`` (before the command) every error shows its traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except USER_ERRORS as exc:
        if "--debug" in argv:
            raise
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
