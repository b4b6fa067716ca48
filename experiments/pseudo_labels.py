"""Self-training with pseudo-labels: measured, not adopted.

A teacher labels the crops of unlabelled patients.

With ``label_fraction < 1`` fine-tuning uses the masks of a subset of the training patients
only. :func:`write_pseudo_labels` runs a fine-tuned teacher over the cached crops of the other
training patients (their images, not their masks) and stores its thresholded prediction;
``finetune --labels FILE`` then trains on the labelled crops plus these
(:func:`apply_pseudo_labels`), so unlabelled CT adds to the few labels. Run from the
repository root (``trainer`` config keys as ``--set KEY=VALUE``)::

    python -m experiments.pseudo_labels label --config trainer/configs/default.yaml \
        --set label_fraction=0.1 --teacher runs/ft_vae_010/final.pt --out runs/pseudo.npz
    python -m experiments.pseudo_labels finetune --config trainer/configs/default.yaml \
        --set label_fraction=0.1 --set init=runs/vae/final.pt --labels runs/pseudo.npz \
        --set out_dir=runs/ft_selftraining_010
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engines.trt_cache import file_sha256
from trainer.config import TrainConfig, load_config
from trainer.data.datasets import crop_split
from trainer.data.patches import PatchCache
from trainer.train import loop

CANVAS_MARGIN_PX = 8
"""Air kept around a crop on each side when the teacher labels it (6 mm at 0.78 mm)."""


def unlabelled_train_entries(cache: PatchCache, cfg: TrainConfig) -> list[int]:
    """Return the crop entries of training patients outside the labelled subset."""
    split, labelled = crop_split(cache.patients(), cfg.test_fraction, cfg.val_fraction,
                                 cfg.label_fraction)
    others = sorted(set(split["train"]) - set(labelled))
    return cache.entries(others) if others else []


def in_air_canvas(image: np.ndarray, patch: int, multiple: int) -> tuple[np.ndarray, tuple]:
    """Centre a cached crop ``(z, c, h, w)`` (uint8) in an air canvas, as [0, 1] float32.

    The canvas is square, at least ``patch`` and the crop plus :data:`CANVAS_MARGIN_PX` on
    each side, rounded up to ``multiple``. Returns the canvas and the crop's ``(y, x)``
    slices in it.
    """
    h, w = image.shape[-2:]
    side = max(h, w, patch) + 2 * CANVAS_MARGIN_PX
    side += (-side) % multiple
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas = np.zeros((*image.shape[:2], side, side), np.float32)
    canvas[..., y0 : y0 + h, x0 : x0 + w] = image / 255.0
    return canvas, (slice(y0, y0 + h), slice(x0, x0 + w))


def teacher_mask(model: torch.nn.Module, image: np.ndarray, cfg: TrainConfig,
                 threshold: float, batch: int = 32) -> np.ndarray:
    """Return the teacher's ``(z, h, w)`` uint8 mask of one cached crop.

    ``cfg`` is the teacher's config: its ``patch_size`` and ``size_multiple`` shape the canvas.
    """
    canvas, (ys, xs) = in_air_canvas(image, cfg.patch_size, cfg.size_multiple)
    probs = []
    with torch.no_grad():
        for start in range(0, len(canvas), batch):
            x = torch.from_numpy(canvas[start : start + batch])
            probs.append(torch.sigmoid(model(x))[:, 0].numpy())
    return (np.concatenate(probs)[:, ys, xs] > threshold).astype(np.uint8)


def write_pseudo_labels(cfg: TrainConfig, teacher: str | Path, out: str | Path) -> Path:
    """Label the unlabelled training crops of ``cfg`` with ``teacher``; write an ``.npz``.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``cache``, split fractions and ``label_fraction`` say which crops are unlabelled.
    teacher : str or Path
        Fine-tuned U-Net checkpoint; its own threshold binarises the probability.
    out : str or Path
        Output file.

    Raises
    ------
    ValueError
        If ``label_fraction`` leaves no training patient unlabelled, or the teacher is not
        a U-Net checkpoint.
    """
    from trainer.train.checkpoint import model_from_checkpoint

    torch.set_num_threads(cfg.num_threads)
    cache = PatchCache(cfg.cache)
    entries = unlabelled_train_entries(cache, cfg)
    if not entries:
        raise ValueError(f"label_fraction={cfg.label_fraction} leaves no training patient "
                         "unlabelled: nothing to pseudo-label")
    model, teacher_cfg, data = model_from_checkpoint(teacher)
    if data["class_name"] != "UNet":
        raise ValueError(f"{teacher} is a {data['class_name']} checkpoint, not a U-Net")
    masks = [teacher_mask(model, cache.images[e], teacher_cfg, teacher_cfg.threshold)
             for e in tqdm(entries, desc="pseudo-labels", mininterval=10)]
    info = {"teacher": str(teacher), "teacher_sha256": file_sha256(teacher),
            "threshold": teacher_cfg.threshold, "label_fraction": cfg.label_fraction,
            "cache": str(cfg.cache), "names": [cache.meta[e]["name"] for e in entries]}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, labels=np.concatenate([m.ravel() for m in masks]),
                        shapes=np.array([m.shape for m in masks], np.int64),
                        info=np.array(json.dumps(info)))
    return out


def apply_pseudo_labels(cache: PatchCache, path: str | Path, cfg: TrainConfig) -> list[int]:
    """Replace the labels of the crops named in ``path`` by their pseudo-labels.

    Returns
    -------
    list of int
        The cache entries now carrying pseudo-labels.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a named crop is not in the cache, belongs to a labelled, validation or test
        patient, or its pseudo-label does not match the crop's shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo-label file not found: {path} (run `python -m "
                                "experiments.pseudo_labels label` first)")
    with np.load(path) as data:
        labels, shapes = data["labels"], data["shapes"]
        names = json.loads(str(data["info"]))["names"]
    allowed = set(unlabelled_train_entries(cache, cfg))
    by_name = {cache.meta[i]["name"]: i for i in cache.entries()}
    entries, start = [], 0
    for name, shape in zip(names, shapes, strict=True):
        entry = by_name.get(name)
        if entry is None or entry not in allowed:
            where = ("not in the cache" if entry is None
                     else "of a labelled, validation or test patient")
            raise ValueError(f"{path}: pseudo-labelled crop {name} is {where}")
        size = int(np.prod(shape))
        if tuple(shape) != cache.labels[entry].shape:
            raise ValueError(f"{path}: pseudo-label of {name} has shape {tuple(shape)}, the "
                             f"crop {cache.labels[entry].shape}")
        cache.labels[entry] = labels[start : start + size].reshape(shape)
        entries.append(entry)
        start += size
    return entries


class SelfTrainingSetup(loop.Setup):
    """A fine-tuning setup that also trains on the pseudo-labelled crops of ``labels``."""

    def __init__(self, cfg: TrainConfig, labels: str | Path) -> None:
        self.labels_path = labels
        self.pseudo_labelled: list[int] = []
        super().__init__(cfg)

    def train_entries(self) -> list[int]:
        """Return the labelled patients' crops and the pseudo-labelled ones."""
        self.pseudo_labelled = apply_pseudo_labels(self.cache, self.labels_path, self.cfg)
        return super().train_entries() + self.pseudo_labelled

    def split_info(self) -> dict:
        """Split and label subset, with the number of pseudo-labelled crops."""
        return {**super().split_info(), "pseudo_labelled_crops": len(self.pseudo_labelled)}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``label`` (a teacher labels crops) or ``finetune`` (train on them too)."""
    parser = argparse.ArgumentParser(prog="python -m experiments.pseudo_labels",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("label", "finetune"))
    parser.add_argument("--config")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--teacher", help="label: fine-tuned U-Net checkpoint (.pt)")
    parser.add_argument("--out", help="label: output .npz")
    parser.add_argument("--labels", help="finetune: .npz written by label")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.command == "label":
        if not (args.teacher and args.out):
            parser.error("label needs --teacher and --out")
        print(write_pseudo_labels(cfg, args.teacher, args.out))
    else:
        if not args.labels:
            parser.error("finetune needs --labels")
        print(loop.finetune(cfg, setup=SelfTrainingSetup(cfg, args.labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
