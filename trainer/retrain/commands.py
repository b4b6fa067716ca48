"""Command-line parsers and handlers of the retraining loop (``trainer pull`` ...)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the retraining commands to the ``trainer`` sub-parsers."""
    pl = sub.add_parser("pull", help="download readers' corrected SEGs and their CT series "
                        "(read-only DICOMweb) into a series list")
    pl.add_argument("--url", required=True, help="DICOMweb root, e.g. http://host:8042/dicom-web")
    pl.add_argument("--user", help="HTTP user")
    pl.add_argument("--password", help="HTTP password (or env LUNGSEG_PULL_PASSWORD)")
    pl.add_argument("--out", required=True, help="pull folder (new, or of an earlier pull)")
    pl.add_argument("--since", help="only corrections made on or after YYYY-MM-DD")
    pl.add_argument("--site", default="SITE", help="pseudonym prefix (default SITE)")
    cp = sub.add_parser("compare", help="two exported models side by side on a series list, "
                        "bootstrap intervals over patients, and which is better")
    cp.add_argument("old", help="exported .onnx of the current model")
    cp.add_argument("new", help="exported .onnx of the candidate")
    cp.add_argument("--list", dest="series_list", required=True,
                    help="held-out series list (JSON, trainer/data/series_list.py)")
    cp.add_argument("--json", help="write the full report here (promote reads it)")
    cp.add_argument("--boot", type=int, default=2000, help="bootstrap draws (default 2000)")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--threads", type=int, default=2)
    rg = sub.add_parser("register", help="copy an exported model (and the compare report that "
                        "admits it) into the model registry")
    rg.add_argument("model", help="exported .onnx (its sidecar version names the entry)")
    rg.add_argument("--report", help="compare report (JSON from trainer compare --json)")
    rg.add_argument("--notes", default="", help="text for the model card's Training section")
    pr = sub.add_parser("promote", help="make a registered version active (only if its "
                        "compare report says not worse, or --force with --reason)")
    pr.add_argument("version")
    pr.add_argument("--force", action="store_true")
    pr.add_argument("--reason", default="", help="recorded in the registry history")
    rb = sub.add_parser("rollback", help="re-activate the version active before the current")
    rb.add_argument("--reason", default="", help="recorded in the registry history")
    rt = sub.add_parser("retrain", help="pull -> fine-tune -> compare -> promote if not worse "
                        "(docs/retraining.md)")
    rt.add_argument("--config", required=True, help="site.yaml (trainer/retrain/run.py)")
    ls = sub.add_parser("models", help="list the registry: versions, active, history")
    for p in (rg, pr, rb, ls):
        p.add_argument("--registry", help="model registry folder (default $LUNGSEG_REGISTRY, "
                       "else <$LUNGSEG_DATA_DIR or var/orthanc>/model-registry)")


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s trainer %(levelname)s %(message)s")


def _pull(args: argparse.Namespace) -> int:
    from trainer.retrain.pull import connect, pull

    password = args.password or os.environ.get("LUNGSEG_PULL_PASSWORD")
    client = connect(args.url, args.user, password if args.user else None)
    manifest = pull(client, args.out, args.url, args.since, args.site)
    print(json.dumps({"series": len(manifest["entries"]),
                      "lesion_free": sum(e["lesion_free"] for e in manifest["entries"]),
                      "skipped": len(manifest["skipped"]),
                      "series_list": manifest["series_list"],
                      "manifest": str(Path(args.out) / "manifest.json")}))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from trainer.data.series_list import read_series_list
    from trainer.evaluation.compare import compare_models, table

    if args.boot < 100:
        raise ValueError(f"--boot must be at least 100, got {args.boot}")
    report = compare_models(args.old, args.new, read_series_list(args.series_list),
                            args.threads, args.boot, args.seed)
    report["series_list"] = str(Path(args.series_list).resolve())
    if args.json:
        write_json(Path(args.json), report)
    print(table(report))
    return 0


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _registry(args: argparse.Namespace) -> Path:
    from pipeline.registry import registry_dir

    return Path(args.registry) if args.registry else registry_dir()


def _register(args: argparse.Namespace) -> int:
    from trainer.retrain.registry_ops import register

    version = register(args.model, _registry(args), args.report, args.notes)
    print(f"registered {version} in {_registry(args)}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from trainer.retrain.registry_ops import promote

    event = promote(_registry(args), args.version, args.force, args.reason)
    print(f"active: {event['version']} (was {event['previous']}; {event['action']})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from trainer.retrain.registry_ops import rollback

    event = rollback(_registry(args), args.reason)
    print(f"active: {event['version']} (rolled back from {event['previous']})")
    return 0


def _models(args: argparse.Namespace) -> int:
    from pipeline import registry as reg

    root = _registry(args)
    print(json.dumps({"registry": str(root), "active": reg.active_version(root),
                      "versions": reg.versions(root), "history": reg.history(root)}, indent=1))
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from trainer.retrain.run import retrain

    report = retrain(args.config)
    print(json.dumps({k: report.get(k) for k in ("run", "status", "registered", "promoted")}))
    return 0


HANDLERS = {"retrain": _retrain, "pull": _pull, "compare": _compare, "register": _register,
            "promote": _promote, "rollback": _rollback, "models": _models}


def run_command(args: argparse.Namespace) -> int:
    """Run one retraining command; returns the exit status."""
    _log_to_stderr()
    return HANDLERS[args.command](args)
