"""Patch sampling from the cache (numpy only, so training runs where SimpleITK is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.config import LUNG_CANVASES, TRAIN_CANVASES

SUBSOLID = ("part-solid", "non-solid")
PARENCHYMA_MAX_HU = -500.0
"""A lesion pasted into lung is centred on a pixel at most this dense."""
PASTE_GROW_PX, PASTE_FEATHER_PX = 3, 3
"""A lesion pasted into lung keeps this margin (pixels, 2.3 mm at 0.78 mm) of its crop around
it, then fades into the lung over twice the feather, so no crop border shows."""


class PatchCache:
    """Crops and negative slices from :func:`trainer.data.cache.build_cache`.

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
        self._lung_centres: dict[float, np.ndarray] = {}
        self._scene_centres: dict[tuple[int, int], np.ndarray] = {}
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

    def lung_centres(self, max_hu: float = PARENCHYMA_MAX_HU) -> np.ndarray:
        """Return the rows of :meth:`negative_centres` on aerated lung of a ``negative_series``.

        A row is kept when its entry is a series' lung and its pixel (middle channel) is at
        most ``max_hu``, which leaves out the wall and hilum that the lung gate also allows.
        Computed once per ``max_hu`` and shared by every sampler drawing from the cache.
        """
        if max_hu in self._lung_centres:
            return self._lung_centres[max_hu]
        rows = self.negative_centres()
        lo, hi = self.cache_config["hu_window"]
        level = (max_hu - lo) / (hi - lo) * 255.0
        keep = np.zeros(len(rows), bool)
        for i in np.unique(rows[:, 0]):
            if not self.meta[i].get("lung", False):
                continue
            sel = np.flatnonzero(rows[:, 0] == i)
            img = self.images[i]
            _, z, y, x = rows[sel].T
            keep[sel] = img[z, img.shape[1] // 2, y, x] <= level
        self._lung_centres[max_hu] = rows[keep]
        return self._lung_centres[max_hu]

    def patients(self) -> list[str]:
        """Return the sorted patients of the crops."""
        return sorted({self.meta[i]["patient"] for i in self.entries()})

    def entries(self, patients: list[str] | None = None, negative: bool = False) -> list[int]:
        """Return the indices of the crops of ``patients`` (all when None) or of negatives."""
        keep = set(patients) if patients is not None else None
        return [
            i for i, m in enumerate(self.meta)
            if m["negative"] == negative and not m.get("scene", False)
            and (negative or keep is None or m["patient"] in keep)
        ]

    def scene_entries(self) -> list[int]:
        """Return the indices of the whole-series scenes (:mod:`trainer.data.scenes`)."""
        return [i for i, m in enumerate(self.meta) if m.get("scene", False)]

    def scene_centres(self, entry: int, value: int) -> np.ndarray:
        """Return ``(n, 3)`` rows ``(z, y, x)`` of scene ``entry`` whose label is ``value``.

        Every pixel for lesions (``value`` 2), every 11th for the rest of the field (1);
        computed once per entry and value.
        """
        key = (entry, value)
        if key not in self._scene_centres:
            rows = np.argwhere(self.labels[entry] == value)
            self._scene_centres[key] = rows if value == 2 else rows[::11]
        return self._scene_centres[key]


def _paste(canvas: np.ndarray, src: np.ndarray, oy: int, ox: int) -> None:
    h, w = src.shape[-2:]
    ph, pw = canvas.shape[-2:]
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(ph, oy + h), min(pw, ox + w)
    if y1 > y0 and x1 > x0:
        canvas[..., y0:y1, x0:x1] = src[..., y0 - oy : y1 - oy, x0 - ox : x1 - ox]


def _window_reduce(a: np.ndarray, r: int, reduce=np.mean) -> np.ndarray:
    """Reduce ``a`` (2D) over the ``(2r+1)^2`` window around each pixel (zero beyond).

    Row then column: max and mean over a square are separable, so each pixel costs
    ``2 (2r+1)`` values instead of ``(2r+1)^2``.
    """
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        view = np.lib.stride_tricks.sliding_window_view(np.pad(a, pad), 2 * r + 1, axis=axis)
        a = reduce(view, axis=-1)
    return a


def lesion_weight(footprint: np.ndarray, grow: int, feather: int) -> np.ndarray:
    """Return the weight of a pasted lesion over the background it is pasted into.

    1 within ``grow`` pixels of ``footprint``, falling linearly to 0 over the next
    ``2 * feather`` pixels (Chebyshev distance).

    Parameters
    ----------
    footprint : ndarray
        ``(p, p)`` boolean: the lesion on any slice of its crop.
    grow, feather : int
        Margin kept whole, and half the width of the fade, in pixels.
    """
    region = _window_reduce(footprint.astype(np.float32), grow + feather, np.max)
    return _window_reduce(region, feather).astype(np.float32)


class PatchSampler:
    """Draw fixed-size training patches (image ``(c, p, p)`` in [0, 1], label ``(p, p)``).

    Crop patches place the crop at a random offset in a canvas, sometimes partly outside, so
    the model also sees the crop's periphery. With ``canvas='air'`` the canvas is zero (air).
    With ``'air+lung'``, half the crop patches (drawn at random) have their lesion (its
    footprint over the crop's slices and a small margin of its crop, :func:`lesion_weight`)
    blended into a lesion-free lung window of a ``negative_series`` instead, the lesion's
    centre on a lung pixel. Negative patches are windows labelled 0, centred on the pixels
    each negative entry of the cache allows (the body of unlabelled whole slices; the
    unmarked lung of ``negative_series``). ``subsolid_weight`` draws part-solid and
    non-solid crops that many times more often than solid ones.
    """

    def __init__(self, cache: PatchCache, crops: list[int], patch: int, seed: int,
                 subsolid_weight: float = 1.0, canvas: str = "air",
                 scene_fraction: float = 0.0) -> None:
        if not crops:
            raise ValueError("PatchSampler needs at least one crop entry")
        if canvas not in TRAIN_CANVASES:
            raise ValueError(f"canvas must be one of {TRAIN_CANVASES}, got {canvas!r}")
        self.cache, self.crops, self.patch, self.canvas = cache, crops, patch, canvas
        self.rng = np.random.default_rng(seed)
        weights = np.array([subsolid_weight if cache.meta[e]["texture"] in SUBSOLID else 1.0
                            for e in crops])
        self.crop_p = weights / weights.sum()
        self.negatives = cache.negative_centres()
        self.scenes = cache.scene_entries() if scene_fraction > 0 else []
        if scene_fraction > 0 and not self.scenes:
            raise ValueError("scene_fraction > 0 needs scenes: build the cache with scene_list")
        self.scene_fraction = scene_fraction
        uses_lung = canvas in LUNG_CANVASES
        self.lung = cache.lung_centres() if uses_lung else np.zeros((0, 4), np.int64)
        if uses_lung and not len(self.lung):
            raise ValueError(f"crop_canvas {canvas!r} needs lesion-free lung windows: build the "
                             "cache with negative_series or negative_list")

    def _offset(self, h: int, w: int) -> tuple[int, int]:
        """Draw where an ``h x w`` crop goes in the patch (sometimes partly outside)."""
        p = self.patch
        oy = int(self.rng.integers(min(0, p - h) - h // 4, max(0, p - h) + h // 4 + 1))
        ox = int(self.rng.integers(min(0, p - w) - w // 4, max(0, p - w) + w // 4 + 1))
        return oy, ox

    def _crop_patch(self, entry: int) -> tuple[np.ndarray, np.ndarray]:
        img, lab = self.cache.images[entry], self.cache.labels[entry]
        k = int(self.rng.integers(img.shape[0]))
        p, (h, w) = self.patch, img.shape[2:]
        oy, ox = self._offset(h, w)
        ci = np.zeros((img.shape[1], p, p), np.float32)
        cl = np.zeros((p, p), np.float32)
        _paste(ci, img[k].astype(np.float32), oy, ox)
        _paste(cl, lab[k].astype(np.float32), oy, ox)
        if self.canvas == "air+lung" and self.rng.random() < 0.5:
            ci = self._into_lung(ci, lab.max(axis=0) > 0, oy, ox)
        return ci, cl

    def _into_lung(self, ci: np.ndarray, footprint: np.ndarray, oy: int, ox: int) -> np.ndarray:
        """Blend the lesion of crop patch ``ci`` (footprint pasted at ``(oy, ox)``) into lung."""
        p, m = self.patch, PASTE_GROW_PX + 2 * PASTE_FEATHER_PX  # the lesion may reach past p
        big = np.zeros((p + 2 * m, p + 2 * m), bool)
        _paste(big, footprint, oy + m, ox + m)
        if not big.any():
            return ci
        weight = lesion_weight(big, PASTE_GROW_PX, PASTE_FEATHER_PX)[m:-m, m:-m]
        at = np.argwhere(big).mean(axis=0).round().astype(int) - m
        return ci * weight + self._window(self.lung, at) * (1.0 - weight)

    def _draw_crop(self) -> int:
        if np.ptp(self.crop_p) == 0:
            return self.crops[int(self.rng.integers(len(self.crops)))]
        return self.crops[int(self.rng.choice(len(self.crops), p=self.crop_p))]

    def _window(self, centres: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Return a ``(c, p, p)`` window (air beyond the slice) around a drawn centre.

        The centre, a row of ``centres``, lands on pixel ``at`` (default: the middle).
        """
        i, z, y, x = (int(v) for v in centres[int(self.rng.integers(len(centres)))])
        img, p = self.cache.images[i], self.patch
        ay, ax = (p // 2, p // 2) if at is None else (int(at[0]), int(at[1]))
        ci = np.zeros((img.shape[1], p, p), np.float32)
        _paste(ci, img[z].astype(np.float32), ay - y, ax - x)
        return ci

    def _scene_patch(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw a scene window labelled with its lesions.

        Centred on a lesion pixel (moved up to a quarter patch) or elsewhere in the lung
        field, half and half.
        """
        entry = self.scenes[int(self.rng.integers(len(self.scenes)))]
        lesion = self.cache.scene_centres(entry, 2)
        positive = len(lesion) > 0 and self.rng.random() < 0.5
        rows = lesion if positive else self.cache.scene_centres(entry, 1)
        if not len(rows):
            rows = self.cache.scene_centres(entry, 2)
        z, y, x = (int(v) for v in rows[int(self.rng.integers(len(rows)))])
        p = self.patch
        jitter = self.rng.integers(-(p // 4), p // 4 + 1, size=2) if positive else (0, 0)
        oy, ox = p // 2 + int(jitter[0]) - y, p // 2 + int(jitter[1]) - x
        img, lab = self.cache.images[entry], self.cache.labels[entry]
        ci = np.zeros((img.shape[1], p, p), np.float32)
        cl = np.zeros((p, p), np.float32)
        _paste(ci, img[z].astype(np.float32), oy, ox)
        _paste(cl, (lab[z] == 2).astype(np.float32), oy, ox)
        return ci, cl

    def _negative_patch(self) -> tuple[np.ndarray, np.ndarray]:
        return self._window(self.negatives), np.zeros((self.patch, self.patch), np.float32)

    def sample(
        self, n: int, negative_fraction: float = 0.0, entries: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``n`` patches ``(n, c, p, p)`` float32 and labels ``(n, 1, p, p)``.

        ``entries`` picks the crops (one per row); otherwise they are drawn at random.
        """
        imgs, labs = [], []
        scene_share = self.scene_fraction / max(1.0 - negative_fraction, 1e-9)
        for j in range(n):
            if len(self.negatives) and self.rng.random() < negative_fraction:
                ci, cl = self._negative_patch()
            elif self.scenes and entries is None and self.rng.random() < scene_share:
                ci, cl = self._scene_patch()
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
