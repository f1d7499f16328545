"""The "depthwise" algorithm: border bands at stride 1, the kernel gradient in blocks,
and the input gradient as a fold."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms import depthwise
from jaxconv._algorithms.depthwise import BLOCK_BYTES, fold_blocks, split_band_elements
from jaxconv._spec import ConvParams
from tests.util import FULL, assert_close, both, equations, grad_order, problem_of, random

SPLIT_CASES = [
    ((2, 12, 11, 4), (3, 3, 1, 4), "SAME", None),  # bands padded per tap
    ((1, 24, 22, 3), (5, 5, 1, 6), "SAME", None),  # bands copied; multiplier 2
    ((1, 12, 12, 2), (3, 3, 1, 2), ((5, 0), (-1, 2)), None),  # pad > K-1, cropping
    ((1, 40, 29, 2), (5, 5, 1, 2), ((1, 3), (4, 4)), (2, 1)),  # dilated, asymmetric
    ((1, 9, 10, 2), (1, 5, 1, 2), ((2, 1), (2, 2)), None),  # 1-tap axis, padded
    ((2, 40, 3), (9, 1, 3), "SAME", None),  # 1-D
    ((1, 6, 7, 8, 2), (3, 1, 3, 1, 2), "SAME", None),  # 3-D
    ((1, 5, 12, 2), (7, 3, 1, 2), "SAME", None),  # an axis shorter than its window
]


@pytest.mark.parametrize("xs, ws, padding, rhs_dil", SPLIT_CASES)
def test_depthwise_split_matches_lax(xs, ws, padding, rhs_dil):
    n = len(xs) - 2
    lhs_t = "N" + "DHW"[-n:] + "C"
    dn = (lhs_t, lhs_t[1:-1] + "IO", lhs_t)
    groups = xs[-1]
    args = ((1,) * n, padding, None, rhs_dil, dn, groups)
    problem = problem_of(xs, ws, (1,) * n, groups, padding, None, rhs_dil, dn)
    bands = split_band_elements(problem.x_shape[1:-2], problem.kernel, problem.params)
    assert (bands is None) == (xs[1] == 5)  # only the last case falls back to the copy
    x, w = random(xs, seed=50), random(ws, seed=51)
    got, want = both("depthwise", x, w, *args)
    assert_close(got, want)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm="depthwise")

    xs2 = jnp.stack([x, 2 * x])  # vmap over the batch of calls
    assert_close(
        jax.vmap(f, (0, None))(xs2, w),
        jax.vmap(
            lambda x, w: lax.conv_general_dilated(x, w, *args, precision="highest"), (0, None)
        )(xs2, w),
    )
    x64, w64 = x.astype("float64"), w.astype("float64")
    case = (xs, ws, padding, rhs_dil)
    order = grad_order(case, SPLIT_CASES, lambda c: math.prod(c[1][:-2]) <= 9)  # 25+: slow
    check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))


def test_depthwise_split_band_elements():
    """Hand-counted bands: 56x56, 7x7 SAME: two bands of 6+3 rows x 62 padded columns,
    then two of 56 rows x 6+3 columns."""

    def params(pads, strides=(1, 1)):
        return ConvParams(strides, pads, (1, 1), (1, 1), None, None, np.dtype("float32"))

    same = ((3, 3), (3, 3))
    assert split_band_elements((56, 56), (7, 7), params(same)) == 2 * 9 * 62 + 2 * 56 * 9
    assert split_band_elements((56, 56), (3, 3), params(((1, 1), (1, 1)))) == 0  # per tap
    assert split_band_elements((14, 14), (7, 7), params(same)) is None  # bands > a copy
    assert split_band_elements((56, 56), (7, 7), params(same, (2, 2))) is None  # strided
    assert split_band_elements((56, 56), (7, 7), params(((0, 0), (0, 0)))) == 0


def _scan_lengths(fn, *args):
    """The lengths of the scans (lax.map) in fn's jaxpr, nested ones included."""
    return [eqn.params["length"] for eqn in equations(fn, *args, primitive="scan")]


def _depthwise_and_lax(xs, strides, padding, lhs_dil, rhs_dil):
    """(the "depthwise" algorithm, lax at highest precision) on channels-last x of shape xs."""
    n = len(xs) - 2
    lhs_t = "N" + "DHW"[-n:] + "C"
    dn = (lhs_t, lhs_t[1:-1] + "IO", lhs_t)
    args = (strides, padding, lhs_dil, rhs_dil, dn, xs[-1])

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm="depthwise")

    def g(x, w):
        return lax.conv_general_dilated(x, w, *args, precision="highest")

    return f, g


BLOCKED_CASES = [
    ((3, 13, 11, 4), (3, 3, 1, 4), (1, 1), "SAME", None, None),
    ((2, 15, 12, 3), (3, 3, 1, 6), (2, 2), ((1, 2), (0, 1)), None, None),  # multiplier 2
    ((2, 15, 13, 2), (5, 5, 1, 2), (2, 2), "SAME", None, None),  # strided: up to 49 taps
    ((2, 9, 10, 2), (3, 3, 1, 2), (1, 1), ((3, -1), (2, 2)), (2, 1), (1, 2)),  # crop
    ((4, 90, 3), (5, 1, 3), (3,), "SAME", None, None),  # 1-D
    ((2, 5, 6, 7, 2), (3, 1, 3, 1, 2), (1, 2, 1), "SAME", None, None),  # 3-D
]
BLOCK_SIZES = {"1B": 1, "3KB": 3000, "1MiB": 1 << 20}


@pytest.mark.parametrize(
    "block_bytes, xs, ws, strides, padding, lhs_dil, rhs_dil",
    [
        pytest.param(size, *case, id=f"{i}-{name}")
        for i, case in enumerate(BLOCKED_CASES)
        for name, size in BLOCK_SIZES.items()
        if FULL or name == "3KB" or i < 2  # every case in blocks; the extremes on two
    ],
)
def test_depthwise_blocked_kernel_gradient(
    monkeypatch, block_bytes, xs, ws, strides, padding, lhs_dil, rhs_dil
):
    """The kernel gradient from `blocked_fold` equals lax's, whether the blocks are
    single rows (1 byte), a few rows or images (3 KB), or the whole batch (1 MiB)."""
    monkeypatch.setattr(depthwise, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(depthwise, "WHOLE_FOLD_BYTES", 0)  # blocks even for small inputs
    jax.clear_caches()  # no trace from another block size
    f, g = _depthwise_and_lax(xs, strides, padding, lhs_dil, rhs_dil)
    x, w = random(xs, seed=60), random(ws, seed=61)
    ct = random(g(x, w).shape, seed=62)
    got = jax.grad(lambda w: jnp.vdot(f(x, w), ct))(w)
    want = jax.grad(lambda w: jnp.vdot(g(x, w), ct))(w)
    assert_close(got, want)
    blocks = _scan_lengths(jax.grad(lambda w: jnp.vdot(f(x, w), ct)), w)
    assert blocks and (max(blocks) > 1) == (block_bytes < 1 << 20)
    if block_bytes == 3000:  # the rules are the same for any blocks: check them once
        x64, w64 = x.astype("float64"), w.astype("float64")
        order = grad_order((xs, ws, strides, padding, lhs_dil, rhs_dil), BLOCKED_CASES)
        check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))
    jax.clear_caches()


@pytest.mark.parametrize("xs, ws, strides, padding, lhs_dil, rhs_dil", BLOCKED_CASES)
def test_depthwise_whole_kernel_gradient(xs, ws, strides, padding, lhs_dil, rhs_dil):
    """Small inputs take the kernel gradient from `whole_fold`, with no loop: equal to
    lax's, in forward and reverse mode."""
    jax.clear_caches()
    f, g = _depthwise_and_lax(xs, strides, padding, lhs_dil, rhs_dil)
    x, w = random(xs, seed=63), random(ws, seed=64)
    ct = random(g(x, w).shape, seed=65)
    grad = jax.grad(lambda w: jnp.vdot(f(x, w), ct))
    assert_close(grad(w), jax.grad(lambda w: jnp.vdot(g(x, w), ct))(w))
    assert _scan_lengths(grad, w) == []
    x64, w64 = x.astype("float64"), w.astype("float64")
    order = grad_order((xs, ws, strides, padding, lhs_dil, rhs_dil), BLOCKED_CASES)
    check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))
    jax.clear_caches()


def test_depthwise_whole_fold_bytes(monkeypatch):
    """Inputs of at most `WHOLE_FOLD_BYTES` bytes fold whole, larger ones in blocks."""
    xs, ws = (2, 12, 10, 4), (3, 3, 1, 4)
    f, _ = _depthwise_and_lax(xs, (1, 1), "SAME", None, None)
    x, w = random(xs, seed=66), random(ws, seed=67)
    ct = random(xs, seed=68)
    grad = jax.grad(lambda w: jnp.vdot(f(x, w), ct))
    assert depthwise.WHOLE_FOLD_BYTES == 4 << 20
    for limit, looped in ((x.nbytes, False), (x.nbytes - 1, True)):
        monkeypatch.setattr(depthwise, "WHOLE_FOLD_BYTES", limit)
        jax.clear_caches()
        assert bool(_scan_lengths(grad, w)) == looped
    jax.clear_caches()


def test_depthwise_fold_blocks():
    """Hand-counted blocks of `blocked_fold` (1 MiB: f32 padded-x rows plus output rows)."""
    assert BLOCK_BYTES == 1 << 20
    # 112x112x32 3x3: 8 images x 3 rows = 8 * (5 * 114 * 32 + 3 * 112 * 32) * 4 = 928 KB;
    # a 4th row would take 1.16 MB.
    assert fold_blocks((8, 114, 114, 32), (112, 112), 3, 1, (32,), 4) == (8, 3)
    # 56x56x144: 8 images of one row take 1.06 MB, so 4 images x 2 rows (793 KB).
    assert fold_blocks((8, 58, 58, 144), (56, 56), 3, 1, (144,), 4) == (4, 2)
    assert fold_blocks((4, 9, 9, 8), (7, 7), 3, 1, (8,), 4) == (4, 7)  # all of it
    assert fold_blocks((2, 10, 100_000, 1), (8, 99_998), 3, 1, (1,), 4) == (1, 1)  # too wide
    # strided 3x3/2, multiplier 2: 6 images x 2 rows = 6 * (5 * 57 * 96 + 2 * 28 * 192) * 4
    # = 915 KB (a window of 3 padded rows, then 2 per output row); 3 rows: 1.31 MB.
    assert fold_blocks((6, 57, 57, 96, 1), (28, 28), 3, 2, (96, 2), 4) == (6, 2)


FLIPPED_CASES = [
    ((3, 13, 11, 4), (5, 5, 1, 4), "SAME", None),
    ((2, 12, 14, 3), (3, 5, 1, 3), ((0, 3), (4, -1)), (2, 1)),  # asymmetric, crop
    ((2, 9, 8, 2), (3, 5, 1, 2), ((3, 0), (-2, 5)), None),  # complements < 0: crops
    ((4, 90, 3), (11, 1, 3), "SAME", (3,)),  # 1-D
    ((2, 5, 6, 7, 2), (3, 3, 3, 1, 2), "SAME", None),  # 3-D
]


@pytest.mark.parametrize("xs, ws, padding, rhs_dil", FLIPPED_CASES)
def test_depthwise_input_gradient_is_a_fold(xs, ws, padding, rhs_dil):
    """At stride 1 the input gradient is the fold of the cotangent with the flipped
    kernel (`_input_tangent`): it equals lax's, and it zero-fills no more often than
    the forward fold does (the fold's own transpose pads once per tap). Pads that only
    crop (negative edges, the transposes' form of a slice) do not count. Kernels of
    over 9 taps only: smaller ones keep the fold's transpose."""
    f, g = _depthwise_and_lax(xs, (1,) * (len(xs) - 2), padding, None, rhs_dil)
    x, w = random(xs, seed=63), random(ws, seed=64)
    ct = random(g(x, w).shape, seed=65)

    def input_grad(x):
        return jax.grad(lambda x: jnp.vdot(f(x, w), ct))(x)

    assert_close(input_grad(x), jax.grad(lambda x: jnp.vdot(g(x, w), ct))(x))

    def fills(fn, *args):
        pads = equations(fn, *args, primitive="pad")
        return sum(any(max(c) > 0 for c in eqn.params["padding_config"]) for eqn in pads)

    # The grad's jaxpr also holds the forward's pads: hence twice the forward's.
    assert fills(input_grad, x) <= 2 * fills(f, x, w) < math.prod(ws[:-2])
    x64, w64 = x.astype("float64"), w.astype("float64")
    case = (xs, ws, padding, rhs_dil)
    order = grad_order(case, FLIPPED_CASES, lambda c: math.prod(c[1][:-2]) <= 15)  # 25+: slow
    check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))
