"""Pure parts of benchmarks.volume_repeatability: the slice windows and the moved crop box."""

import numpy as np
import pytest

from benchmarks.volume_repeatability import shifted_box, windows


def test_windows_start_with_the_whole_series_and_stay_inside_it():
    got = windows(40, 45, 60, [5, 20])
    assert got[0] == (0, 60)
    assert (35, 51) in got and (35, 60) in got and (25, 51) in got  # margin 5: both, up, down
    assert all(0 <= lo < hi <= 60 and lo <= 40 and hi >= 46 for lo, hi in got)
    assert len(got) == len(set(got))
    with pytest.raises(ValueError, match="outside"):
        windows(50, 70, 60, [5])


def test_shifted_box_moves_only_the_in_plane_start():
    def box(lungs, spacing, mm):
        return (slice(2, 9), slice(10, 40), slice(20, 60))

    moved = shifted_box(box, 3)(np.zeros((1, 1, 1)), (1.0, 1.0, 1.0), 5.0)
    assert moved == (slice(2, 9), slice(13, 40), slice(23, 60))
    assert shifted_box(box, 100)(None, None, None)[1] == slice(39, 40)  # never empty
