"""The Winograd algorithms: N-D transforms; differentiated, the exact conv."""

import jax
import numpy as np
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


CASES = {  # algorithm, x, w, whether it runs in pieces
    "winograd": ("winograd", (2, 12, 12, 64), (3, 3, 64, 32), False),
    "winograd4": ("winograd4", (2, 12, 12, 64), (3, 3, 64, 32), False),
    "auto, in pieces": ("auto", (8, 28, 28, 64), (3, 3, 64, 64), True),  # ResNet-18 layer1
}


@pytest.mark.parametrize("case", list(CASES))
def test_differentiated_winograd_runs_the_exact_conv(case):
    """Called plainly, the transforms run (their rounding differs from XLA's conv);
    under jvp and vjp, primal and tangents are XLA's exact conv, whole or in pieces."""
    algorithm, x_shape, w_shape, pieces = CASES[case]
    x, w = random(x_shape, "float32", seed=48), random(w_shape, "float32", seed=49)
    dx, dw = random(x.shape, "float32", seed=50), random(w.shape, "float32", seed=51)
    args = ((1, 1), "SAME", None, None, ("NHWC", "HWIO", "NHWC"))
    plan = jaxconv.conv_plan(x, w, *args, algorithm=algorithm)
    assert plan.algorithm.startswith("winograd") and (plan.pieces.count > 1) == pieces, plan

    def conv(algorithm):
        return lambda x, w: jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    ours, exact = conv(algorithm), conv("xla")
    plain = np.asarray(jax.jit(ours)(x, w))
    primal, tangent = jax.jvp(ours, (x, w), (dx, dw))
    want, want_tangent = jax.jvp(exact, (x, w), (dx, dw))
    ct = random(want.shape, "float32", seed=52)
    grads, want_grads = jax.vjp(ours, x, w)[1](ct), jax.vjp(exact, x, w)[1](ct)
    assert not np.array_equal(plain, want)
    assert_close(plain, want, scale=100)
    np.testing.assert_array_equal(primal, want)
    np.testing.assert_array_equal(tangent, want_tangent)
    for got, expected in zip(grads, want_grads):
        np.testing.assert_array_equal(got, expected)
