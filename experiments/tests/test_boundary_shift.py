import numpy as np
import pytest

from experiments.boundary_shift import shifted_dice


def test_one_voxel_shift_of_a_square_matches_hand_computed_dice():
    mask = np.zeros((3, 11, 11), dtype=bool)
    mask[1, 3:8, 3:8] = True  # 5 x 5 on one slice: growing gives 7 x 7, shrinking 3 x 3
    grown, shrunk = shifted_dice(mask)
    assert grown == pytest.approx(2 * 25 / (49 + 25))
    assert shrunk == pytest.approx(2 * 9 / (9 + 25))
