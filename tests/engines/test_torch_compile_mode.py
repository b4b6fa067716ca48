"""The torch engine's ``compile`` option (pure logic; compilation itself runs in the GPU check)."""

from __future__ import annotations

import pytest

from engines.torch_engine import COMPILE_MODES, compile_mode


@pytest.mark.parametrize(("value", "expected"), [
    (False, None), (None, None), (True, "default"), ("max-autotune", "max-autotune"),
])
def test_compile_mode_accepts_bools_and_modes(value, expected):
    assert compile_mode(value) == expected


def test_every_listed_mode_is_accepted():
    assert [compile_mode(m) for m in COMPILE_MODES] == list(COMPILE_MODES)


@pytest.mark.parametrize("value", ["fast", 1, "true"])
def test_compile_mode_names_the_bad_value(value):
    with pytest.raises(ValueError, match="compile must be"):
        compile_mode(value)
