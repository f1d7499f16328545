"""The Winograd algorithms: N-D transforms, exact gradients."""

import pytest
from jax.test_util import check_grads

import jaxconv
from tests.util import assert_close, both, random

NDHWC = ("NDHWC", "DHWIO", "NDHWC")


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
def test_winograd_3d_and_its_exact_gradients(algorithm):
    x, w = random((1, 5, 6, 7, 4), "float64", seed=46), random((3, 3, 3, 4, 5), "float64", seed=47)
    args = ((1, 1, 1), ((1, 1), (0, 2), (1, 0)), None, None, NDHWC)
    got, want = both(algorithm, x, w, *args)
    assert_close(got, want, scale=100)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
