"""Every algorithm in the registry against lax (and a NumPy loop): values over a grid
of layouts, ranks, groups, dtypes and padding; gradients; jit, vmap, jvp and grad of grad.
"""

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms import REGISTRY
from tests import reference
from tests.util import FULL, assert_close, both, equations, grad_order, random, supported

NHWC = ("NHWC", "HWIO", "NHWC")
NDHWC = ("NDHWC", "DHWIO", "NDHWC")
CONCRETE = list(REGISTRY)


def test_registry_is_the_public_list():
    assert ("auto", *REGISTRY) == jaxconv.ALGORITHMS
    for name, algorithm in REGISTRY.items():
        assert algorithm.name == name
        assert algorithm.composite == ("/" in name)
        if algorithm.composite:
            assert name == f"{algorithm.forward.name}/{algorithm.tangents.name}"


GRID = [
    # (lhs shape NHWC, rhs shape HWIO, strides, padding, lhs_dil, rhs_dil, groups)
    ((2, 11, 13, 6), (3, 2, 6, 4), (2, 1), "VALID", None, None, 1),
    ((2, 11, 13, 6), (3, 2, 6, 4), (2, 1), "SAME", None, None, 1),
    ((2, 11, 13, 6), (3, 3, 6, 4), (1, 2), "SAME_LOWER", None, (2, 1), 1),
    ((2, 11, 13, 6), (3, 2, 6, 4), (2, 1), ((1, 2), (-1, 3)), (1, 2), None, 1),
    ((2, 9, 9, 6), (3, 3, 2, 6), (1, 1), "SAME", None, None, 3),
    ((2, 9, 9, 6), (3, 3, 1, 12), (2, 2), "SAME", None, (2, 2), 6),  # depthwise, multiplier 2
    ((2, 9, 9, 6), (1, 1, 6, 5), (1, 1), "VALID", None, None, 1),  # pointwise
    ((2, 9, 9, 6), (1, 1, 6, 5), (2, 2), ((0, 1), (1, 0)), None, None, 1),
    ((2, 12, 9, 6), (4, 3, 6, 5), (4, 3), "VALID", None, None, 1),  # patch embedding
    ((2, 13, 10, 6), (2, 2, 6, 5), (3, 2), ((1, 0), (0, 2)), None, None, 1),  # gaps, pads
    ((2, 11, 11, 6), (2, 2, 2, 6), (4, 4), "SAME", None, (2, 3), 3),  # dilated, grouped
    ((1, 5, 4, 3), (5, 5, 3, 2), (1, 1), ((2, 2), (2, 2)), (2, 2), None, 1),  # transposed-like
    ((2, 4, 4, 2), (5, 5, 2, 3), (1, 1), "VALID", None, None, 1),  # window larger: empty out
]


@pytest.mark.parametrize("algorithm", jaxconv.ALGORITHMS)
@pytest.mark.parametrize("case", GRID, ids=range(len(GRID)))
def test_grid_matches_lax_and_numpy(algorithm, case):
    xs, ws, strides, padding, lhs_dil, rhs_dil, groups = case
    x, w = random(xs, seed=1), random(ws, seed=2)
    args = (x, w, strides, padding, lhs_dil, rhs_dil, NHWC, groups)
    if not supported(algorithm, *args):
        assert algorithm not in ("auto", "direct", "xla")
        return
    got, want = both(algorithm, *args)
    assert_close(got, want, scale=4)
    if not isinstance(padding, str):
        n = len(strides)
        ref = reference.conv(
            np.asarray(x, np.float64),
            np.asarray(w, np.float64),
            strides,
            padding,
            lhs_dil or (1,) * n,
            rhs_dil or (1,) * n,
            groups,
        )
        np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize(
    "xs, ws, strides, padding, dil",
    [
        ((2, 3, 17), (4, 3, 5), (3,), "SAME", (2,)),  # 1-D, lax default NCW layout
        ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), (1, 2, 1), ((1, 0), (0, 1), (-1, 1)), (1, 1, 2)),  # 3-D
        ((1, 2, 3, 3, 3, 4), (2, 2, 2, 1, 2, 2), (1, 1, 1, 2), "VALID", None),  # 4-D
        ((3, 4), (5, 4), (), "VALID", None),  # no spatial dimension: a matmul
    ],
)
def test_any_rank_default_layout(algorithm, xs, ws, strides, padding, dil):
    x, w = random(xs, seed=3), random(ws, seed=4)
    if not supported(algorithm, x, w, strides, padding, None, dil):
        return
    got, want = both(algorithm, x, w, strides, padding, None, dil)
    assert_close(got, want, scale=4)


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize(
    "dn",
    [
        None,
        ("NCHW", "OIHW", "NCHW"),
        ("NHWC", "HWIO", "NCHW"),
        ("HNWC", "WOHI", "CWHN"),
        lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)),
    ],
)
def test_dimension_numbers(algorithm, dn):
    x = random((2, 3, 7, 8), seed=5)
    w = random((4, 3, 3, 2), seed=6)
    if dn is not None and not isinstance(dn, lax.ConvDimensionNumbers):
        # Build the operands in the named layouts from NCHW / OIHW data.
        x = x.transpose(["NCHW".index(c) for c in dn[0]])
        w = w.transpose(["OIHW".index(c) for c in dn[1]])
    elif isinstance(dn, lax.ConvDimensionNumbers):
        x = random((2, 7, 8, 3), seed=5)
        w = random((3, 2, 3, 4), seed=6)
    if not supported(algorithm, x, w, (1, 2), "SAME", None, None, dn):
        return
    got, want = both(algorithm, x, w, (1, 2), "SAME", None, None, dn)
    assert_close(got, want, scale=4)


@pytest.mark.parametrize("algorithm", CONCRETE)
def test_batch_groups(algorithm):
    x, w = random((6, 3, 10), seed=7), random((4, 3, 3), seed=8)
    if not supported(algorithm, x, w, (1,), "SAME", batch_group_count=2):
        return
    got, want = both(algorithm, x, w, (1,), "SAME", batch_group_count=2)
    assert_close(got, want, scale=4)
    ref = reference.conv(
        np.asarray(x.transpose(0, 2, 1), np.float64),
        np.asarray(w.transpose(2, 1, 0), np.float64),
        (1,),
        ((1, 1),),
        (1,),
        (1,),
        batch_groups=2,
    )
    np.testing.assert_allclose(np.asarray(got.transpose(0, 2, 1), np.float64), ref, atol=1e-5)


DTYPES = ["float16", "bfloat16", "float32", "float64", "complex64"]


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes(algorithm, dtype):
    x, w = random((2, 8, 8, 4), dtype, seed=9), random((3, 3, 4, 5), dtype, seed=10)
    if not supported(algorithm, x, w, (1, 1), "SAME", None, None, NHWC):
        return
    got, want = both(algorithm, x, w, (1, 1), "SAME", None, None, NHWC)
    assert_close(got, want, scale=4)


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize(
    "dtype, preferred",
    [
        ("int32", None),
        ("int8", "int32"),
        ("int8", "float32"),
        ("bfloat16", "float32"),
        ("float16", "float32"),
        ("float32", "float64"),
    ],
)
def test_preferred_element_type(algorithm, dtype, preferred):
    x, w = random((2, 6, 6, 3), dtype, seed=11), random((2, 2, 3, 4), dtype, seed=12)
    args = (x, w, (1, 1), "VALID", None, None, NHWC)
    if not supported(algorithm, *args, preferred_element_type=preferred):
        return
    got, want = both(algorithm, *args, preferred_element_type=preferred)
    assert got.dtype == want.dtype
    # 16-bit inputs with a wide accumulator: only the inputs were rounded.
    assert_close(got, want, dtype=preferred if dtype in ("int8", "int32") else "float32", scale=4)


@st.composite
def conv_configs(draw):
    n = draw(st.integers(1, 3))
    groups_kind = draw(st.sampled_from(["none", "feature", "batch"]))
    groups = 1 if groups_kind == "none" else draw(st.integers(1, 3))
    ig, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2)) * (groups if groups_kind == "batch" else 1)
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(n))
    lhs_dil = tuple(draw(st.integers(1, 2)) for _ in range(n))
    rhs_dil = tuple(draw(st.integers(1, 2)) for _ in range(n))
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(n))
    if draw(st.booleans()) and lhs_dil == (1,) * n:
        padding = draw(st.sampled_from(["VALID", "SAME", "SAME_LOWER"]))
    else:
        padding = tuple((draw(st.integers(-1, 3)), draw(st.integers(-1, 3))) for _ in range(n))
    cin = ig * (groups if groups_kind == "feature" else 1)
    return dict(
        xs=(batch, cin, *spatial),
        ws=(og * groups, ig, *kernel),
        strides=strides,
        padding=padding,
        lhs_dil=lhs_dil,
        rhs_dil=rhs_dil,
        fgc=groups if groups_kind == "feature" else 1,
        bgc=groups if groups_kind == "batch" else 1,
    )


@seed(20261127)
@settings(max_examples=200 if FULL else 40, deadline=None, derandomize=True)
@given(cfg=conv_configs(), algorithm=st.sampled_from(jaxconv.ALGORITHMS))
def test_hypothesis_matches_lax(cfg, algorithm):
    x, w = random(cfg["xs"], "float64", seed=17), random(cfg["ws"], "float64", seed=18)
    args = (
        x,
        w,
        cfg["strides"],
        cfg["padding"],
        cfg["lhs_dil"],
        cfg["rhs_dil"],
        None,
        cfg["fgc"],
        cfg["bgc"],
    )
    try:
        want = lax.conv_general_dilated(*args, precision="highest")
    except (ValueError, TypeError) as lax_error:
        with pytest.raises((ValueError, TypeError)):
            jaxconv.conv_general_dilated(*args, algorithm=algorithm)
        assert "Negative padding" in str(lax_error)
        return
    if not supported(algorithm, *args):
        return
    got = jaxconv.conv_general_dilated(*args, algorithm=algorithm)
    assert_close(got, want)


GRAD_CASES = [
    ((1, 6, 7, 2), (3, 2, 2, 3), (2, 1), ((1, 0), (0, 2)), (1, 1), (1, 2), 1),
    ((1, 5, 5, 4), (3, 3, 1, 4), (1, 1), "SAME", (1, 1), (1, 1), 4),
    ((2, 5, 6, 4), (1, 1, 4, 3), (1, 1), "VALID", (1, 1), (1, 1), 1),
    ((1, 4, 4, 2), (2, 2, 1, 2), (1, 1), ((1, 1), (0, 1)), (2, 1), (1, 1), 2),
]


def grad_operands(case):
    """(x, w, strides, padding, lhs_dil, rhs_dil, NHWC, groups) of a GRAD_CASES row."""
    xs, ws, strides, padding, lhs_dil, rhs_dil, groups = case
    x, w = random(xs, "float64", seed=19), random(ws, "float64", seed=20)
    return x, w, strides, padding, lhs_dil, rhs_dil, NHWC, groups


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize("case", GRAD_CASES, ids=range(len(GRAD_CASES)))
def test_gradients(algorithm, case):
    x, w, *args = grad_operands(case)
    if not supported(algorithm, x, w, *args):
        return

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    # Second order on the first case each algorithm runs (test_transforms checks grad of
    # grad against lax for every algorithm).
    order = grad_order(case, GRAD_CASES, lambda c: supported(algorithm, *grad_operands(c)))
    check_grads(f, (x, w), order=order, modes=("fwd", "rev"))

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    got = jax.grad(loss(f), argnums=(0, 1))(x, w)
    want = jax.grad(loss(lambda x, w: lax.conv_general_dilated(x, w, *args)), argnums=(0, 1))(x, w)
    for g, h in zip(got, want):
        assert_close(g, h)


IM2COL_CASES = [  # (x, w, strides, padding, rhs_dilation, layout, groups)
    ((2, 9, 4), (3, 4, 3), (2,), "SAME", (1,), ("NWC", "WIO", "NWC"), 1),
    ((1, 7, 8, 4), (3, 2, 2, 6), (2, 1), ((1, 0), (2, 1)), (1, 2), NHWC, 2),
    ((1, 4, 5, 5, 2), (2, 3, 2, 2, 3), (1, 2, 1), "VALID", (2, 1, 1), NDHWC, 1),
]


@pytest.mark.parametrize("algorithm", ["im2col", "xla/im2col"])
@pytest.mark.parametrize("case", IM2COL_CASES, ids=["1d", "2d", "3d"])
def test_im2col_kernel_gradient_gathers_its_patches(algorithm, case):
    """The kernel tangent's patch matrix is one gather (one kernel to compile), shared
    with a named im2col's forward pass; the input tangent's are the per-tap slices (no
    scatter in its transpose); both gradients match lax's, in 1-D, 2-D and 3-D, with
    strides, dilation and groups."""
    xs, ws, strides, padding, dil, dn, groups = case
    x, w = random(xs, "float64", seed=23), random(ws, "float64", seed=24)
    args = (strides, padding, None, dil, dn, groups)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    def g(x, w):
        return lax.conv_general_dilated(x, w, *args, precision="highest")

    want = jax.grad(loss(g), (0, 1))(x, w)
    for argnum in (0, 1):
        grad = jax.grad(loss(f), argnum)
        assert_close(grad(x, w), want[argnum])
        compiled = jax.jit(grad).lower(x, w).compile().as_text()
        gathers = re.findall(r"= \S+ gather\(", compiled)
        # named: the forward's gather, which XLA shares with the kernel tangent's
        assert len(gathers) == (1 if algorithm == "im2col" else argnum), argnum
        # the input gradient pads the slices back: no patch matrix is concatenated
        concatenates = [
            eqn
            for eqn in equations(grad, x, w, primitive="concatenate")
            if eqn.outvars[0].aval.dtype == x.dtype
        ]
        assert not concatenates, argnum
        assert not equations(grad, x, w, primitive="scatter-add")
    check_grads(f, (x, w), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize(
    "algorithm, ws, strides",
    [
        ("pointwise", (1, 1, 16, 32), (1, 1)),
        ("pointwise", (2, 2, 16, 32), (2, 2)),
        ("xla/im2col", (3, 3, 16, 32), (1, 1)),
        ("im2col", (3, 3, 16, 32), (2, 2)),
        ("direct", (3, 3, 16, 32), (1, 1)),
    ],
)
def test_kernel_gradient_reads_the_cotangent_as_laid_out(algorithm, ws, strides):
    """The GEMMs' kernel gradient contracts the cotangent in its own layout: no
    transposed copy of it before the dot (XLA:CPU made one where the GEMM contracted
    the leading axes of both operands), and the gradient matches lax's."""
    x = random((4, 9, 9, 16), "float32", seed=27)
    w = random(ws, "float32", seed=28)

    def conv(x, w, algorithm=algorithm):
        return jaxconv.conv_general_dilated(
            x, w, strides, "VALID", dimension_numbers=NHWC, algorithm=algorithm
        )

    ct = random(conv(x, w).shape, "float32", seed=29)

    def kernel_grad(algorithm):
        return lambda x, w, ct: jax.vjp(lambda w: conv(x, w, algorithm), w)[1](ct)[0]

    compiled = jax.jit(kernel_grad(algorithm)).lower(x, w, ct).compile().as_text()
    sizes = [
        math.prod(int(d) for d in dims.split(",") if d)
        for dims in re.findall(r"= \w+\[([\d,]*)\]\{[^}]*\} (?:transpose|copy)\(", compiled)
    ]
    assert ct.size not in sizes, sizes
    assert_close(kernel_grad(algorithm)(x, w, ct), kernel_grad("xla")(x, w, ct), scale=4)


@pytest.mark.parametrize(
    "algorithm, xs, ws",
    [
        (algorithm, (*xs[:1], *spatial, *xs[1:]), (*kernel, *ws))
        for algorithm, spatial, kernel in [
            ("im2col", (5, 5), (3, 3)),
            ("xla/im2col", (5, 5), (3, 3)),
            ("im2col", (3, 5, 5), (3, 3, 3)),
            ("xla2d", (3, 5, 5), (3, 3, 3)),
            ("xla/xla2d", (3, 5, 5), (3, 3, 3)),
        ]
        for xs, ws in [((0, 3), (3, 4)), ((2, 0), (0, 4)), ((2, 3), (3, 0))]
    ],
)
def test_patch_gradients_of_zero_size(algorithm, xs, ws):
    """The gathered and the sliced patches, and the taps stacked in the channels, with an
    empty batch or channel axis: lax's shapes and gradients."""
    x, w = random(xs, "float64", seed=25), random(ws, "float64", seed=26)
    nd = len(xs) - 2
    dn = NHWC if nd == 2 else ("NDHWC", "DHWIO", "NDHWC")

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (1,) * nd, "SAME", dimension_numbers=dn)))

    f = functools.partial(jaxconv.conv_general_dilated, algorithm=algorithm)
    got = jax.grad(loss(f), (0, 1))(x, w)
    for a, b in zip(got, jax.grad(loss(lax.conv_general_dilated), (0, 1))(x, w)):
        assert a.shape == b.shape
        assert_close(a, b)


# A kernel shape and group count that each algorithm runs: (HWIO, groups) for 3 channels.
KERNEL_FOR = {
    "pointwise": ((1, 2, 3, 4), 1),
    "xla/pointwise": ((1, 2, 3, 4), 1),
    "depthwise": ((3, 3, 1, 6), 3),
}


@pytest.mark.parametrize("algorithm", CONCRETE)
def test_transforms(algorithm):
    ws, groups = KERNEL_FOR.get(algorithm, ((3, 3, 3, 4), 1))
    xs, dn = (3, 2, 6, 5, 3), NHWC
    strides = (1, 1) if algorithm.startswith("winograd") else (1, 2)  # winograd: stride 1
    if algorithm in ("xla2d", "xla/xla2d"):  # 3-D only
        xs, ws, dn, strides = (3, 2, 3, 6, 5, 3), (2, 3, 3, 3, 4), NDHWC, (1, 1, 2)
    x, w = random(xs, "float64", seed=21), random(ws, "float64", seed=22)
    args = (strides, "SAME", None, None, dn, groups)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    def g(x, w):
        return lax.conv_general_dilated(x, w, *args, precision="highest")

    assert_close(jax.jit(f)(x[0], w), g(x[0], w))
    # vmap over lhs, over rhs, over both (an extra leading axis each time).
    assert_close(jax.vmap(f, (0, None))(x, w), jax.vmap(g, (0, None))(x, w))
    ws = jnp.stack([w, 2 * w])
    assert_close(jax.vmap(f, (None, 0))(x[0], ws), jax.vmap(g, (None, 0))(x[0], ws))
    assert_close(jax.vmap(f)(x[:2], ws), jax.vmap(g)(x[:2], ws))
    # forward mode
    xt, wt = jnp.ones_like(x[0]), jnp.ones_like(w)
    out, tan = jax.jvp(f, (x[0], w), (xt, wt))
    out_ref, tan_ref = jax.jvp(g, (x[0], w), (xt, wt))
    assert_close(out, out_ref)
    assert_close(tan, tan_ref)
    small = x[0, :1, :3, :3]
    assert_close(jax.jacfwd(f)(small, w), jax.jacfwd(g)(small, w))
    out, lin = jax.linearize(f, x[0], w)
    assert_close(lin(xt, wt), tan_ref)
    # grad of grad
    hess = jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(f(x, w) ** 2))(x[0]) ** 2))
    hess_ref = jax.grad(lambda w: jnp.sum(jax.grad(lambda x: jnp.sum(g(x, w) ** 2))(x[0]) ** 2))
    assert_close(hess(w), hess_ref(w), scale=10)


def test_forced_algorithm_that_cannot_run():
    # Every algorithm other than direct and xla refuses some problem; auto never does.
    x, w = jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    for name in CONCRETE:
        if name in ("direct", "xla"):
            continue
        if not supported(name, x, w, (2, 2), "SAME", None, None):
            with pytest.raises(ValueError, match=rf"`algorithm` \(='{name}'\) cannot run"):
                jaxconv.conv_general_dilated(x, w, (2, 2), "SAME", algorithm=name)
    assert supported("auto", x, w, (2, 2), "SAME", None, None)
