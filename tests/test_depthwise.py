"""The "depthwise" algorithm: border bands at stride 1, the kernel gradient as one
variadic reduction, and the input gradient as a fold."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms import depthwise
from jaxconv._algorithms.depthwise import split_band_elements
from jaxconv._spec import ConvParams
from tests.util import assert_close, both, equations, grad_order, problem_of, random

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


def test_depthwise_differentiated_output_from_the_padded_copy():
    """Undifferentiated, the stride-1 fold splits off its border bands (and concatenates
    the parts); differentiated, its output comes from one padded copy, with no split,
    and equals lax's."""
    xs, ws, padding, _ = SPLIT_CASES[1]
    f, g = _depthwise_and_lax(xs, (1, 1), padding, None, None)
    x, w = random(xs, seed=52), random(ws, seed=53)
    assert equations(f, x, w, primitive="concatenate")
    out, tangent = jax.linearize(f, x, w)
    assert not equations(lambda x, w: jax.linearize(f, x, w)[0], x, w, primitive="concatenate")
    assert_close(out, g(x, w))
    assert_close(tangent(x, w), jax.jvp(g, (x, w), (x, w))[1])


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


REDUCED_CASES = [
    ((3, 13, 11, 4), (3, 3, 1, 4), (1, 1), "SAME", None, None),
    ((2, 15, 12, 3), (3, 3, 1, 6), (2, 2), ((1, 2), (0, 1)), None, None),  # multiplier 2
    ((2, 15, 13, 2), (5, 5, 1, 2), (2, 2), "SAME", None, None),  # strided: up to 49 taps
    ((2, 14, 12, 3), (5, 5, 1, 3), (1, 1), ((2, 1), (3, 2)), None, None),  # 25 taps
    ((2, 9, 10, 2), (3, 3, 1, 2), (1, 1), ((3, -1), (2, 2)), (2, 1), (1, 2)),  # crop
    ((4, 90, 3), (5, 1, 3), (3,), "SAME", None, None),  # 1-D
    ((2, 5, 6, 7, 2), (3, 1, 3, 1, 2), (1, 2, 1), "SAME", None, None),  # 3-D
    ((0, 7, 6, 2), (3, 3, 1, 2), (1, 1), "SAME", None, None),  # no images
]


@pytest.mark.parametrize("xs, ws, strides, padding, lhs_dil, rhs_dil", REDUCED_CASES)
def test_depthwise_kernel_gradient_is_one_reduction(xs, ws, strides, padding, lhs_dil, rhs_dil):
    """The kernel gradient is one variadic reduction over the taps, with no loop: equal
    to lax's, in forward and reverse mode, to second order."""
    f, g = _depthwise_and_lax(xs, strides, padding, lhs_dil, rhs_dil)
    x, w = random(xs, seed=63), random(ws, seed=64)
    ct = random(g(x, w).shape, seed=65)
    grad = jax.grad(lambda w, x, ct: jnp.vdot(f(x, w), ct))
    assert grad(w, x, ct).shape == w.shape
    assert_close(grad(w, x, ct), jax.grad(lambda w: jnp.vdot(g(x, w), ct))(w))
    if xs[0]:  # (zero-size convs never reach an algorithm)
        assert len(equations(grad, w, x, ct, primitive="jaxconv_depthwise_kernel_gradient")) == 1
        taps = math.prod(ws[:-2])
        hlo = jax.jit(grad).lower(w, x, ct).compile().as_text()  # x, ct: not constants
        assert " while(" not in hlo
        tuples = re.findall(r"ROOT %\S+ = \(([^)]*)\) reduce\(", hlo)
        assert any(t.count("[") == taps for t in tuples), tuples  # one output per tap
        x64, w64 = x.astype("float64"), w.astype("float64")
        order = grad_order((xs, ws, strides, padding, lhs_dil, rhs_dil), REDUCED_CASES)
        check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))


def test_depthwise_kernel_gradient_rule():
    """Stride-1 kernels of up to 25 taps and strided ones of up to 49 take the
    reduction; larger ones the FFT correlation, with no reduction primitive."""

    def params(strides):
        return ConvParams(strides, ((3, 3), (3, 3)), (1, 1), (1, 1), None, None, np.dtype("f4"))

    assert depthwise.reduces_kernel_gradient((5, 5), params((1, 1)))
    assert not depthwise.reduces_kernel_gradient((7, 7), params((1, 1)))
    assert depthwise.reduces_kernel_gradient((7, 7), params((2, 2)))
    assert not depthwise.reduces_kernel_gradient((7, 8), params((2, 2)))
    xs = (2, 12, 12, 3)
    x = random(xs, seed=69)
    for ws, strides, reduced in (((7, 7, 1, 3), (1, 1), False), ((7, 7, 1, 3), (2, 2), True)):
        f, g = _depthwise_and_lax(xs, strides, "SAME", None, None)
        w = random(ws, seed=70)
        grad = jax.grad(lambda w, x, f=f: jnp.sum(f(x, w) ** 2))
        found = equations(grad, w, x, primitive="jaxconv_depthwise_kernel_gradient")
        assert bool(found) == reduced
        want = jax.grad(lambda w, x, g=g: jnp.sum(g(x, w) ** 2))(w, x)
        assert_close(grad(w, x), want, scale=4)


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)])
@pytest.mark.parametrize("case", [0, 1], ids=["3x3", "strided-multiplier-2"])
def test_depthwise_kernel_gradient_under_vmap(in_axes, case):
    """The reduction's batching rules (mapped axes folded into the batch or the
    channels) give lax's gradients, in reverse and forward mode, whichever operands
    are mapped."""
    xs, ws, *rest = REDUCED_CASES[case]
    f, g = _depthwise_and_lax(xs, *rest)
    x, w = random((2, *xs), seed=66), random((2, *ws), seed=67)
    x, w = (x if in_axes[0] == 0 else x[0]), (w if in_axes[1] == 0 else w[0])

    def loss(conv):
        return lambda x, w: jnp.sum(conv(x, w) ** 2)

    for transform in (
        lambda conv: jax.grad(loss(conv), argnums=(0, 1)),
        lambda conv: lambda x, w: jax.jvp(lambda w: conv(x, w), (w,), (2 * w,))[1],
        lambda conv: lambda x, w: jax.jvp(jax.grad(loss(conv), 1), (x, w), (x, w))[1],
    ):
        got = jax.vmap(transform(f), in_axes)(x, w)
        want = jax.vmap(transform(g), in_axes)(x, w)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert a.shape == b.shape
            assert_close(a, b, scale=4)


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
