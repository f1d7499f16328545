"""The "xla2d" algorithm: 3-D and up as one 2-D conv, the leading taps in the channels."""

import re

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import jaxconv
from tests.util import assert_close, both, random


@pytest.mark.parametrize("algorithm", ["xla2d", "xla/xla2d"])
@pytest.mark.parametrize(
    "xs, ws, strides, padding, lhs_dil, rhs_dil, groups",
    [
        ((2, 5, 6, 7, 4), (3, 3, 2, 4, 6), (1, 1, 1), "SAME", None, None, 1),
        (
            (1, 6, 5, 5, 4),
            (2, 3, 3, 2, 4),
            (2, 1, 2),
            ((1, -1), (0, 2), (1, 1)),
            (2, 1, 1),
            (2, 1, 1),
            2,
        ),
        ((1, 3, 4, 5, 4, 2), (2, 2, 2, 2, 2, 3), (1, 2, 1, 1), "VALID", None, None, 1),  # 4-D
    ],
)
def test_xla2d_matches_lax_with_gradients(
    algorithm, xs, ws, strides, padding, lhs_dil, rhs_dil, groups
):
    """xla2d, and xla/xla2d whose gradients are xla2d's transposes."""
    x, w = random(xs, "float64", seed=44), random(ws, "float64", seed=45)
    args = (strides, padding, lhs_dil, rhs_dil, None, groups)
    x = jnp.moveaxis(x, -1, 1)  # NC... (lax's default layout)
    w = jnp.moveaxis(jnp.moveaxis(w, -1, 0), -1, 1)  # OI...
    got, want = both(algorithm, x, w, *args)
    assert_close(got, want, scale=4)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    check_grads(f, (x, w), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize(
    "xs, ws, strides",
    [
        ((2, 4, 6, 6, 40), (3, 3, 3, 40, 8), (1, 1, 1)),
        ((1, 5, 6, 6, 3), (3, 2, 2, 3, 4), (2, 1, 1)),
    ],
)
def test_xla2d_is_one_2d_conv_in_each_pass(xs, ws, strides):
    """The forward pass, the input gradient and the kernel gradient are each one 2-D conv
    (one kernel to compile, whatever the leading kernel size), with no loop; the
    gradients match lax's."""
    x, w = random(xs, "float32", seed=46), random(ws, "float32", seed=47)
    dn = ("NDHWC", "DHWIO", "NDHWC")

    def loss(algorithm):
        def f(x, w):
            y = jaxconv.conv_general_dilated(
                x, w, strides, "SAME", dimension_numbers=dn, algorithm=algorithm
            )
            return jnp.sum(jnp.sin(y))

        return jax.grad(f, (0, 1))

    compiled = jax.jit(loss("xla2d")).lower(x, w).compile().as_text()
    convs = [line for line in compiled.splitlines() if " convolution(" in line]
    windows = [re.search(r"window=\{size=(\S+)", line).group(1) for line in convs]
    assert len(convs) == 3 and all(len(size.split("x")) == 2 for size in windows), windows
    assert " while(" not in compiled
    for got, want in zip(loss("xla2d")(x, w), loss("xla")(x, w)):
        assert_close(got, want, scale=4)
