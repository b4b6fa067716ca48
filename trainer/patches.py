"""Patch sampling from the cache (numpy only, so training runs where SimpleITK is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.config import CANVASES

SUBSOLID = ("part-solid", "non-solid")


class PatchCache:
    """Crops and negative slices from :func:`trainer.cache.build_cache`.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` cache.

    Raises
    ------
    FileNotFoundError
        If the cache does not exist.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"patch cache not found: {path} (run `trainer cache` first)")
        with np.load(path) as data:
            images, labels, shapes = data["images"], data["labels"], data["shapes"]
            self.meta: list[dict] = json.loads(str(data["meta"]))
            self.cache_config: dict = json.loads(str(data["config"]))
        self._negative_centres: np.ndarray | None = None
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        i0 = l0 = 0
        for z, c, h, w in shapes:
            self.images.append(images[i0 : i0 + z * c * h * w].reshape(z, c, h, w))
            self.labels.append(labels[l0 : l0 + z * h * w].reshape(z, h, w))
            i0 += z * c * h * w
            l0 += z * h * w

    def negative_centres(self) -> np.ndarray:
        """Return ``(n, 4)`` rows ``(entry, z, y, x)``: every 7th allowed negative centre.

        Computed once per cache and shared by every sampler drawing from it.
        """
        if self._negative_centres is None:
            centres = [np.column_stack([np.full(len(c), i), c])
                       for i in self.entries(negative=True)
                       for c in [np.argwhere(self.labels[i])[::7]]]
            self._negative_centres = (np.concatenate(centres) if centres
                                      else np.zeros((0, 4), np.int64))
        return self._negative_centres

    def entries(self, patients: list[str] | None = None, negative: bool = False) -> list[int]:
        """Return the indices of the crops of ``patients`` (all when None) or of negatives."""
        keep = set(patients) if patients is not None else None
        return [
            i for i, m in enumerate(self.meta)
            if m["negative"] == negative and (negative or keep is None or m["patient"] in keep)
        ]


def _paste(canvas: np.ndarray, src: np.ndarray, oy: int, ox: int) -> None:
    h, w = src.shape[-2:]
    ph, pw = canvas.shape[-2:]
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(ph, oy + h), min(pw, ox + w)
    if y1 > y0 and x1 > x0:
        canvas[..., y0:y1, x0:x1] = src[..., y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def _reflected_window(src: np.ndarray, oy: int, ox: int, p: int) -> np.ndarray:
    """Return the ``p x p`` window at offset ``(oy, ox)`` of ``src`` mirrored beyond its edges."""
    h, w = src.shape[-2:]
    pad_y, pad_x = p + abs(oy) + h, p + abs(ox) + w
    width = [(0, 0)] * (src.ndim - 2) + [(pad_y, pad_y), (pad_x, pad_x)]
    big = np.pad(src, width, mode="symmetric")
    return big[..., pad_y - oy : pad_y - oy + p, pad_x - ox : pad_x - ox + p]


class PatchSampler:
    """Draw fixed-size training patches (image ``(c, p, p)`` in [0, 1], label ``(p, p)``).

    Crop patches place the crop at a random offset in a canvas, sometimes partly outside, so
    the model also sees the crop's periphery. With ``canvas='air'`` the canvas is zero (air);
    with ``'reflect'`` the crop and its mask are mirrored beyond their edges, so lung texture
    surrounds the crop as it does in a whole series. Negative patches are
    windows labelled 0, centred on the pixels each negative entry of the cache allows (the
    body of unlabelled whole slices; the unmarked lung of ``negative_series``).
    ``subsolid_weight`` draws part-solid and non-solid crops that many times more often than
    solid ones.
    """

    def __init__(self, cache: PatchCache, crops: list[int], patch: int, seed: int,
                 subsolid_weight: float = 1.0, canvas: str = "air") -> None:
        if not crops:
            raise ValueError("PatchSampler needs at least one crop entry")
        if canvas not in CANVASES:
            raise ValueError(f"canvas must be one of {CANVASES}, got {canvas!r}")
        self.cache, self.crops, self.patch, self.canvas = cache, crops, patch, canvas
        self.rng = np.random.default_rng(seed)
        weights = np.array([subsolid_weight if cache.meta[e]["texture"] in SUBSOLID else 1.0
                            for e in crops])
        self.crop_p = weights / weights.sum()
        self.negatives = cache.negative_centres()

    def _crop_patch(self, entry: int) -> tuple[np.ndarray, np.ndarray]:
        img, lab = self.cache.images[entry], self.cache.labels[entry]
        k = int(self.rng.integers(img.shape[0]))
        p, (h, w) = self.patch, img.shape[2:]
        oy = int(self.rng.integers(min(0, p - h) - h // 4, max(0, p - h) + h // 4 + 1))
        ox = int(self.rng.integers(min(0, p - w) - w // 4, max(0, p - w) + w // 4 + 1))
        if self.canvas == "reflect":
            return (_reflected_window(img[k], oy, ox, p).astype(np.float32),
                    _reflected_window(lab[k], oy, ox, p).astype(np.float32))
        ci = np.zeros((img.shape[1], p, p), np.float32)
        cl = np.zeros((p, p), np.float32)
        _paste(ci, img[k].astype(np.float32), oy, ox)
        _paste(cl, lab[k].astype(np.float32), oy, ox)
        return ci, cl

    def _draw_crop(self) -> int:
        if np.ptp(self.crop_p) == 0:
            return self.crops[int(self.rng.integers(len(self.crops)))]
        return self.crops[int(self.rng.choice(len(self.crops), p=self.crop_p))]

    def _negative_patch(self) -> tuple[np.ndarray, np.ndarray]:
        i, z, y, x = (int(v) for v in self.negatives[int(self.rng.integers(len(self.negatives)))])
        img, p = self.cache.images[i], self.patch
        ci = np.zeros((img.shape[1], p, p), np.float32)
        _paste(ci, img[z].astype(np.float32), p // 2 - y, p // 2 - x)
        return ci, np.zeros((p, p), np.float32)

    def sample(
        self, n: int, negative_fraction: float = 0.0, entries: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``n`` patches ``(n, c, p, p)`` float32 and labels ``(n, 1, p, p)``.

        ``entries`` picks the crops (one per row); otherwise they are drawn at random.
        """
        imgs, labs = [], []
        for j in range(n):
            if len(self.negatives) and self.rng.random() < negative_fraction:
                ci, cl = self._negative_patch()
            else:
                e = entries[j] if entries is not None else self._draw_crop()
                ci, cl = self._crop_patch(e)
            imgs.append(ci)
            labs.append(cl)
        x = np.stack(imgs) / 255.0
        x += (self.rng.random(x.shape, dtype=np.float32) - 0.5) / 255.0
        return np.clip(x, 0.0, 1.0).astype(np.float32), np.stack(labs)[:, None]

    def sample_distinct_patients(self, n: int) -> np.ndarray:
        """Return ``n`` crop entries from ``n`` different patients (fewer if not enough)."""
        by_patient: dict[str, list[int]] = {}
        for e in self.crops:
            by_patient.setdefault(self.cache.meta[e]["patient"], []).append(e)
        names = list(by_patient)
        pick = self.rng.permutation(len(names))[:n]
        return np.array([by_patient[names[i]][int(self.rng.integers(len(by_patient[names[i]])))]
                         for i in pick])
