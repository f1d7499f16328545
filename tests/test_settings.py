"""Process-wide settings: the memory budget and the non-finite switch."""

import numpy as np
import pytest

import jaxconv


@pytest.mark.parametrize("ratio", [0.5, "2", True, float("nan"), float("inf"), None])
def test_set_memory_budget_rejects(ratio):
    with pytest.raises(ValueError, match=r"`ratio` \(=.*\) must be a finite number >= 1"):
        jaxconv.set_memory_budget(ratio)
    assert jaxconv.memory_budget() == 1.5


@pytest.mark.parametrize("ratio", [2, 2.5, np.float32(3.0), np.int64(4)])
def test_set_memory_budget_takes_numpy_scalars(ratio):
    try:
        jaxconv.set_memory_budget(ratio)
        assert jaxconv.memory_budget() == float(ratio)
        assert type(jaxconv.memory_budget()) is float
    finally:
        jaxconv.set_memory_budget()


def test_exact_nonfinite_switches():
    from jaxconv._settings import exact_nonfinite_active

    assert not exact_nonfinite_active()
    with jaxconv.exact_nonfinite():
        assert exact_nonfinite_active()
        with jaxconv.exact_nonfinite(False):
            assert not exact_nonfinite_active()
        assert exact_nonfinite_active()
    assert not exact_nonfinite_active()
    jaxconv.set_exact_nonfinite(True)
    try:
        assert exact_nonfinite_active()
    finally:
        jaxconv.set_exact_nonfinite(False)
    with pytest.raises(TypeError, match=r"`flag` must be a bool, got 1"):
        jaxconv.set_exact_nonfinite(1)
    with (
        pytest.raises(TypeError, match=r"`flag` must be a bool, got 'yes'"),
        jaxconv.exact_nonfinite("yes"),
    ):
        pass
