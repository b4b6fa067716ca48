"""Segmentation metrics on binary masks (any shape) and lesion-level detection figures."""

from __future__ import annotations

import numpy as np

from engines.quantize import dice


def _check(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred shape {pred.shape} != ref shape {ref.shape}")
    return pred.astype(bool), ref.astype(bool)


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision, recall and F1 of two binary masks.

    Empty-vs-empty counts as perfect (1.0); a ratio with a zero denominator otherwise is 0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    pred, ref = _check(pred, ref)
    tp = float(np.logical_and(pred, ref).sum())
    fp = float(np.logical_and(pred, ~ref).sum())
    fn = float(np.logical_and(~pred, ref).sum())
    if tp + fp + fn == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    overlap = dice(pred, ref)
    return {"dice": overlap, "iou": tp / (tp + fp + fn), "precision": precision,
            "recall": recall, "f1": overlap}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half).

    Raises
    ------
    ValueError
        If the shapes differ or one class is absent.
    """
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, np.float64)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def voxel_metrics(prob: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Voxel sensitivity, specificity and AUC (``prob`` scores vs ``ref``), plus Dice."""
    pred, ref = _check(pred, ref)
    tp = float((pred & ref).sum())
    tn = float((~pred & ~ref).sum())
    sens = tp / float(ref.sum()) if ref.any() else float("nan")
    spec = tn / float((~ref).sum()) if (~ref).any() else float("nan")
    try:
        auc = roc_auc(prob, ref)
    except ValueError:
        auc = float("nan")
    return {"voxel_sensitivity": sens, "voxel_specificity": spec, "voxel_auc": auc,
            "voxel_dice": overlap_metrics(pred, ref)["dice"]}


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 3D connected components (26-connectivity) with SimpleITK; returns (labels, count)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(mask).astype(np.uint8))
    lab = sitk.ConnectedComponent(img, True)
    arr = sitk.GetArrayFromImage(lab)
    return arr, int(arr.max())


def lesion_detection(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Lesion-level sensitivity and false positives.

    A reference component is found when a predicted component overlaps it; a predicted
    component that overlaps no reference component is a false positive.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    return _detection(*_labelled(pred, ref))


def per_lesion_dice(pred: np.ndarray, ref: np.ndarray) -> list[float]:
    """Dice of every reference lesion with the predicted components that touch it.

    A reference component is compared with the union of the predicted components that
    overlap it; a missed lesion scores 0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    return _lesion_dice(*_labelled(pred, ref))


def lesion_scores(pred: np.ndarray, ref: np.ndarray) -> dict:
    """:func:`lesion_detection`'s figures and ``lesion_dice`` (:func:`per_lesion_dice`).

    Both from one labelling of the two masks.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    labelled = _labelled(pred, ref)
    return {**_detection(*labelled), "lesion_dice": _lesion_dice(*labelled)}


Labelled = tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, int]


def _labelled(pred: np.ndarray, ref: np.ndarray) -> Labelled:
    """``(pred, ref, ref labels, reference count, pred labels, predicted count)``."""
    pred, ref = _check(pred, ref)
    ref_lab, n_ref = label_components(ref)
    pred_lab, n_pred = label_components(pred)
    return pred, ref, ref_lab, n_ref, pred_lab, n_pred


def _detection(pred, ref, ref_lab, n_ref, pred_lab, n_pred) -> dict[str, float]:
    found = len(set(np.unique(ref_lab[pred & ref])) - {0})
    hits = set(np.unique(pred_lab[pred & ref])) - {0}
    return {"n_reference_lesions": n_ref, "n_detected_lesions": found,
            "lesion_sensitivity": found / n_ref if n_ref else float("nan"),
            "n_predicted_components": n_pred, "false_positives": n_pred - len(hits)}


def _lesion_dice(pred, ref, ref_lab, n_ref, pred_lab, n_pred) -> list[float]:
    scores = []
    for k in range(1, n_ref + 1):
        lesion = ref_lab == k
        touching = set(np.unique(pred_lab[lesion])) - {0}
        hit = np.isin(pred_lab, list(touching)) if touching else np.zeros_like(lesion)
        scores.append(2.0 * float((hit & lesion).sum()) / float(hit.sum() + lesion.sum()))
    return scores
