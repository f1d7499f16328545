"""NaN and ±inf: every algorithm that says it propagates them exactly puts them where lax
does, in the values and in both gradients; those that say they do not, do not; and
under `exact_nonfinite` "auto" picks only exact ones.

The reference is lax in float32 on CPU. (In float64, XLA's grouped convs spread a NaN
to every group of its image: lax itself is not exact there.)
"""

import jax
import numpy as np
import pytest
from jax import lax

import jaxconv
from jaxconv._algorithms import REGISTRY
from jaxconv._algorithms._base import INEXACT_NONFINITE
from tests.util import FULL, LAYOUT, problem_of

CASES = {
    # name: (x shape, w shape, strides, padding, groups)
    "dense 3x3": ((2, 9, 9, 4), (3, 3, 4, 5), (1, 1), "SAME", 1),
    "dense 3x3/2": ((2, 9, 9, 4), (3, 3, 4, 5), (2, 2), "SAME", 1),
    "depthwise 3x3": ((2, 9, 9, 4), (3, 3, 1, 4), (1, 1), "SAME", 4),
    "depthwise 5x5/2": ((2, 11, 11, 4), (5, 5, 1, 4), (2, 2), "SAME", 4),
    "depthwise 5x5": ((2, 11, 11, 4), (5, 5, 1, 4), (1, 1), "SAME", 4),
    "depthwise 13x13": ((1, 20, 20, 2), (13, 13, 1, 2), (1, 1), "SAME", 2),
    "1x1": ((2, 9, 9, 4), (1, 1, 4, 5), (1, 1), "VALID", 1),
    "patches 2x2/2": ((2, 8, 8, 3), (2, 2, 3, 5), (2, 2), "VALID", 1),
    "1-channel k10/5": ((2, 30, 1), (10, 1, 4), (5,), "VALID", 1),
    "3-D 3x3x3": ((1, 5, 6, 6, 4), (3, 3, 3, 4, 5), (1, 1, 1), "SAME", 1),
}
VALUES = [np.nan, np.inf, -np.inf]
# Algorithms that run each tap alike at any kernel size: the quick suite runs them on
# every case but the 13x13 one (169 taps, the longest compile here); test-full runs it.
PER_TAP = {"direct", "direct/xla", "im2col", "xla/im2col"}


def pattern(a):
    a = np.asarray(a)
    return np.stack([np.isnan(a), np.isposinf(a), np.isneginf(a)])


def operands(case, operand, value):
    xs, ws, *_ = CASES[case]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    if operand == "x":
        x[(0, *(s // 2 for s in xs[1:-1]), 0)] = value
    else:
        w[(*(k // 2 for k in ws[:-2]), 0, 0)] = value
    return x, w


def conv(case, algorithm):
    xs, ws, strides, padding, groups = CASES[case]
    dn = LAYOUT[len(xs)]

    def f(x, w):
        if algorithm == "lax":
            return lax.conv_general_dilated(
                x, w, strides, padding, dimension_numbers=dn, feature_group_count=groups
            )
        return jaxconv.conv_general_dilated(
            x,
            w,
            strides,
            padding,
            dimension_numbers=dn,
            feature_group_count=groups,
            algorithm=algorithm,
        )

    return f


def matches_lax(case, algorithm, operand, value) -> bool:
    """Whether values, called plainly and under vjp, and both gradients have lax's
    NaN/±inf pattern."""
    x, w = operands(case, operand, value)
    ours, theirs = conv(case, algorithm), conv(case, "lax")
    want, vjp_lax = jax.vjp(theirs, x, w)
    got, vjp = jax.vjp(ours, x, w)
    ct = np.ones(want.shape, np.float32)
    pairs = [(ours(x, w), want), (got, want), *zip(vjp(ct), vjp_lax(ct))]
    return all((pattern(a) == pattern(b)).all() for a, b in pairs)


def runs(case, algorithm) -> bool:
    xs, ws, strides, padding, groups = CASES[case]
    problem = problem_of(xs, ws, strides, groups, padding)
    return REGISTRY[algorithm].why_not(problem) is None


def exact(case, algorithm) -> bool:
    xs, ws, strides, padding, groups = CASES[case]
    return REGISTRY[algorithm].exact_nonfinite(problem_of(xs, ws, strides, groups, padding))


@pytest.mark.parametrize("algorithm", list(REGISTRY))
def test_exact_algorithms_put_nonfinite_values_where_lax_does(algorithm):
    """Every algorithm, every case it runs, NaN and ±inf in either operand. Where it says
    it is exact, everything matches. One that is never exact differs somewhere."""
    never = REGISTRY[algorithm].exact_nonfinite is INEXACT_NONFINITE
    sample = algorithm in PER_TAP and not FULL
    differs = False
    for case in CASES:
        if not runs(case, algorithm) or (case == "depthwise 13x13" and sample):
            continue
        results = [
            matches_lax(case, algorithm, operand, value)
            for operand in ("x", "w")
            for value in VALUES
        ]
        differs = differs or not all(results)
        if exact(case, algorithm):
            assert all(results), (case, results)
    assert differs or not never, f"{algorithm} matched lax everywhere: it may be exact"


@pytest.mark.parametrize("case", list(CASES))
def test_auto_under_the_switch_is_exact(case):
    xs, ws, strides, padding, groups = CASES[case]
    x = jax.ShapeDtypeStruct(xs, "float32")
    w = jax.ShapeDtypeStruct(ws, "float32")
    args = (strides, padding, None, None, LAYOUT[len(xs)], groups)
    with jaxconv.exact_nonfinite():
        plan = jaxconv.conv_plan(x, w, *args)
        assert plan.exact_nonfinite, plan
        for operand in ("x", "w"):
            assert matches_lax(case, "auto", operand, np.nan)


def test_the_default_stays_fast():
    """Large depthwise kernels keep the FFT unless the switch is on."""
    x, w = (
        jax.ShapeDtypeStruct((2, 28, 28, 64), "float32"),
        jax.ShapeDtypeStruct((31, 31, 1, 64), "float32"),
    )
    args = ((1, 1), "SAME", None, None, LAYOUT[4], 64)
    assert jaxconv.chosen_algorithm(x, w, *args) == "fft"
    jaxconv.set_exact_nonfinite(True)
    try:
        assert jaxconv.conv_plan(x, w, *args).exact_nonfinite
    finally:
        jaxconv.set_exact_nonfinite(False)
