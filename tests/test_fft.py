"""The "fft" algorithm: overlap-save segments along long axes, and their gradients."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms.fft import segments
from tests.util import assert_close, both, random


@pytest.mark.parametrize(
    "xs, ws, strides, padding, rhs_dil, groups, dtype",
    [
        ((2, 300, 8), (9, 8, 8), (1,), "SAME", None, 1, "float32"),
        ((2, 300, 8), (9, 8, 8), (3,), ((4, -2),), (2,), 1, "float32"),
        ((1, 260, 3, 8), (5, 3, 8, 6), (1, 1), "SAME", None, 1, "complex64"),  # one long axis
        ((2, 200, 16), (7, 8, 12), (2,), "VALID", None, 2, "float32"),  # grouped
    ],
)
def test_fft_overlap_save_matches_lax(xs, ws, strides, padding, rhs_dil, groups, dtype):
    lhs_t = "NWC" if len(xs) == 3 else "NHWC"
    dn = (lhs_t, lhs_t[1:-1] + "IO", lhs_t)
    # The case must really be cut into segments along its first spatial axis.
    kd = (ws[0] - 1) * (rhs_dil or (1,))[0] + 1
    canon_x = (xs[0], *xs[1:-1], groups, xs[-1] // groups)
    canon_w = (kd, *ws[1:-2], ws[-2], groups, ws[-1] // groups)
    assert segments(canon_x, canon_w, [xs[1] + 8, *xs[2:-1]])[0][0] > 1
    x, w = random(xs, dtype, seed=40), random(ws, dtype, seed=41)
    args = (strides, padding, None, rhs_dil, dn, groups)
    got, want = both("fft", x, w, *args)
    assert_close(got, want, scale=20)


def test_fft_overlap_save_gradients():
    x, w = random((1, 140, 4), "float64", seed=42), random((3, 4, 5), "float64", seed=43)
    args = ((1,), "SAME", None, None, ("NWC", "WIO", "NWC"))

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm="fft")

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
    got = jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(x, w)
    want = jax.grad(
        lambda x, w: jnp.sum(jnp.sin(lax.conv_general_dilated(x, w, *args))), argnums=(0, 1)
    )(x, w)
    for g, h in zip(got, want):
        assert_close(g, h, scale=100)
