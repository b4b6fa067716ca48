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


HANDLERS = {"pull": _pull}


def run_command(args: argparse.Namespace) -> int:
    """Run one retraining command; returns the exit status."""
    _log_to_stderr()
    return HANDLERS[args.command](args)
