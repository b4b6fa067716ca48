import numpy as np
import pytest

from trainer.evaluation.metrics import lesion_detection, overlap_metrics, roc_auc, voxel_metrics


def test_overlap_known_masks():
    ref = np.zeros((1, 4, 4), bool)
    ref[0, :2, :2] = True  # 4 voxels
    pred = np.zeros_like(ref)
    pred[0, :2, :3] = True  # 6 voxels, 4 overlap
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(8 / 10)
    assert m["iou"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(1.0)
    assert overlap_metrics(np.zeros_like(ref), np.zeros_like(ref))["dice"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        overlap_metrics(pred, ref[:, :2])


def test_auc_and_voxel_metrics():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        roc_auc(np.array([0.1]), np.array([1]))
    ref = np.array([[[1, 1, 0, 0]]], bool)
    pred = np.array([[[1, 0, 0, 1]]], bool)
    v = voxel_metrics(pred.astype(float), pred, ref)
    assert v["voxel_sensitivity"] == 0.5 and v["voxel_specificity"] == 0.5


def test_lesion_detection_counts():
    ref = np.zeros((5, 10, 10), bool)
    ref[1:3, 1:3, 1:3] = True
    ref[1:3, 6:8, 6:8] = True
    pred = np.zeros_like(ref)
    pred[2, 2, 2] = True  # hits lesion 1
    pred[4, 0:2, 8:10] = True  # false positive
    d = lesion_detection(pred, ref)
    assert d["n_reference_lesions"] == 2 and d["n_detected_lesions"] == 1
    assert d["lesion_sensitivity"] == 0.5 and d["false_positives"] == 1


def test_per_lesion_dice_scores_each_reference_lesion():
    from trainer.evaluation.metrics import per_lesion_dice

    ref = np.zeros((1, 10, 20), bool)
    ref[0, 2:6, 2:6] = True  # 16 voxels, predicted half
    ref[0, 2:6, 12:16] = True  # missed
    pred = np.zeros_like(ref)
    pred[0, 2:4, 2:6] = True
    pred[0, 8:10, 8:10] = True  # a false positive does not enter any lesion's Dice
    assert per_lesion_dice(pred, ref) == [pytest.approx(2 * 8 / 24), 0.0]
    assert per_lesion_dice(pred, np.zeros_like(ref)) == []
