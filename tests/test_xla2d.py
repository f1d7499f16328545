"""The "xla2d" algorithm: 3-D and up as 2-D convs, taps in the channels or one at a time."""

import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms import xla2d
from tests.util import assert_close, both, random


@pytest.mark.parametrize("algorithm", ["xla2d", "xla/xla2d"])
@pytest.mark.parametrize("fold", [True, False], ids=["taps-in-channels", "unrolled"])
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
    monkeypatch, algorithm, fold, xs, ws, strides, padding, lhs_dil, rhs_dil, groups
):
    """xla2d, and xla/xla2d whose gradients are xla2d's transposes."""
    monkeypatch.setattr(xla2d, "FOLD_MAX_CHANNELS", 10**9 if fold else 0)
    x, w = random(xs, "float64", seed=44), random(ws, "float64", seed=45)
    args = (strides, padding, lhs_dil, rhs_dil, None, groups)
    x = jnp.moveaxis(x, -1, 1)  # NC... (lax's default layout)
    w = jnp.moveaxis(jnp.moveaxis(w, -1, 0), -1, 1)  # OI...
    got, want = both(algorithm, x, w, *args)
    assert_close(got, want, scale=4)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    check_grads(f, (x, w), order=1, modes=("fwd", "rev"))
