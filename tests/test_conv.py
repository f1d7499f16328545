"""conv_general_dilated parity with lax (and a NumPy loop), transforms, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jaxconv
from tests import reference
from tests.util import FULL, assert_close, random

NHWC = ("NHWC", "HWIO", "NHWC")
NDHWC = ("NDHWC", "DHWIO", "NDHWC")
CONCRETE = [a for a in jaxconv.ALGORITHMS if a != "auto"]


def supported(algorithm, *args, **kwargs):
    """Whether `algorithm` accepts the problem (chosen_algorithm raises otherwise)."""
    try:
        jaxconv.chosen_algorithm(*args, algorithm=algorithm, **kwargs)
    except ValueError as e:
        if "cannot run this problem" in str(e):
            return False
        raise
    return True


def both(algorithm, lhs, rhs, *args, **kwargs):
    """(jaxconv, lax at HIGHEST) on the same arguments."""
    got = jaxconv.conv_general_dilated(lhs, rhs, *args, algorithm=algorithm, **kwargs)
    kwargs.setdefault("precision", lax.Precision.HIGHEST)
    want = lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
    return got, want


# ---------------------------------------------------------------- parity grid

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
        assert algorithm not in ("auto", "direct", "im2col", "xla")
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


@pytest.mark.parametrize(
    "precision",
    [
        None,
        "highest",
        lax.Precision.HIGH,
        ("default", "highest"),
        (lax.Precision.HIGHEST, lax.Precision.HIGHEST),
    ],
)
def test_precision_forms(precision):
    x, w = random((1, 5, 5, 2), seed=13), random((3, 3, 2, 2), seed=14)
    for algorithm in CONCRETE:
        if supported(algorithm, x, w, (1, 1), "SAME", None, None, NHWC):
            got = jaxconv.conv_general_dilated(
                x, w, (1, 1), "SAME", None, None, NHWC, precision=precision, algorithm=algorithm
            )
            want = lax.conv_general_dilated(
                x, w, (1, 1), "SAME", None, None, NHWC, precision="highest"
            )
            assert_close(got, want, scale=4)


def test_conv_and_conv_with_general_padding():
    x, w = random((2, 3, 9, 8), seed=15), random((4, 3, 3, 3), seed=16)
    assert_close(
        jaxconv.conv(x, w, (2, 1), "SAME", algorithm="direct"),
        lax.conv(x, w, (2, 1), "SAME", precision="highest"),
        scale=4,
    )
    pads = ((1, 0), (2, -1))
    assert_close(
        jaxconv.conv_with_general_padding(x, w, (1, 2), pads, (2, 1), (1, 2), algorithm="im2col"),
        lax.conv_with_general_padding(x, w, (1, 2), pads, (2, 1), (1, 2), precision="highest"),
        scale=4,
    )


# ------------------------------------------------------------- hypothesis sweep


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


# ------------------------------------------------------------------ gradients

GRAD_CASES = [
    ((1, 6, 7, 2), (3, 2, 2, 3), (2, 1), ((1, 0), (0, 2)), (1, 1), (1, 2), 1),
    ((1, 5, 5, 4), (3, 3, 1, 4), (1, 1), "SAME", (1, 1), (1, 1), 4),
    ((2, 5, 6, 4), (1, 1, 4, 3), (1, 1), "VALID", (1, 1), (1, 1), 1),
    ((1, 4, 4, 2), (2, 2, 1, 2), (1, 1), ((1, 1), (0, 1)), (2, 1), (1, 1), 2),
]


@pytest.mark.parametrize("algorithm", CONCRETE)
@pytest.mark.parametrize("case", GRAD_CASES, ids=range(len(GRAD_CASES)))
def test_gradients(algorithm, case):
    xs, ws, strides, padding, lhs_dil, rhs_dil, groups = case
    x, w = random(xs, "float64", seed=19), random(ws, "float64", seed=20)
    args = (strides, padding, lhs_dil, rhs_dil, NHWC, groups)
    if not supported(algorithm, x, w, *args):
        return

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    got = jax.grad(loss(f), argnums=(0, 1))(x, w)
    want = jax.grad(loss(lambda x, w: lax.conv_general_dilated(x, w, *args)), argnums=(0, 1))(x, w)
    for g, h in zip(got, want):
        assert_close(g, h)


# ----------------------------------------------------------------- transforms


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


def test_second_call_does_not_recompile():
    from jaxconv._conv import _run

    x, w = random((1, 8, 8, 3), seed=23), random((3, 3, 3, 5), seed=24)
    jaxconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC, algorithm="direct")
    before = _run._cache_size()
    for seed_ in range(3):
        x = random((1, 8, 8, 3), seed=seed_)
        jaxconv.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, algorithm="direct"
        )
    assert _run._cache_size() == before
    jaxconv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC, algorithm="direct")
    assert _run._cache_size() == before + 1  # a new configuration does compile


def test_out_sharding_is_applied():
    mesh = jax.make_mesh((1,), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    x, w = random((2, 5, 5, 3), seed=25), random((3, 3, 3, 2), seed=26)
    out = jax.jit(
        lambda x, w: jaxconv.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, out_sharding=sharding
        )
    )(x, w)
    assert out.sharding.is_equivalent_to(sharding, out.ndim)


def test_flax_nnx_hook():
    from flax import nnx

    x = random((2, 9, 9, 3), seed=27)
    ours = nnx.Conv(
        3, 4, (3, 3), rngs=nnx.Rngs(0), conv_general_dilated=jaxconv.conv_general_dilated
    )
    theirs = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), precision="highest")
    assert_close(ours(x), theirs(x), scale=4)


# --------------------------------------------------------------------- errors

X, W = jnp.ones((1, 3, 8, 8), jnp.float32), jnp.ones((4, 3, 3, 3), jnp.float32)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(
                lhs=jnp.ones((1, 3, 8), jnp.float32),
            ),
            ValueError,
            r"same rank .*lhs.shape=\(1, 3, 8\)",
        ),
        (
            dict(
                rhs=jnp.ones((4, 2, 3, 3), jnp.float32),
            ),
            ValueError,
            r"must equal the rhs input features \(=2\)",
        ),
        (
            dict(feature_group_count=2),
            ValueError,
            r"`feature_group_count` \(=2\) must divide the lhs features \(=3\)",
        ),
        (
            dict(feature_group_count=0),
            ValueError,
            r"`feature_group_count` \(=\(0,\)\) must be >= 1",
        ),
        (
            dict(batch_group_count=3),
            ValueError,
            r"`batch_group_count` \(=3\) must divide the rhs output",
        ),
        (dict(window_strides=(0, 1)), ValueError, r"`window_strides` \(=\(0, 1\)\) must be >= 1"),
        (
            dict(window_strides=(1,)),
            ValueError,
            r"`window_strides` \(=\(1,\)\) must have 2 entries",
        ),
        (dict(window_strides=(1.5, 1)), TypeError, r"`window_strides` must hold integers, got 1.5"),
        (dict(rhs_dilation=(1, -1)), ValueError, r"`rhs_dilation` \(=\(1, -1\)\) must be >= 1"),
        (dict(lhs_dilation=(0, 1)), ValueError, r"`lhs_dilation` \(=\(0, 1\)\) must be >= 1"),
        (dict(padding="FULL"), ValueError, r"`padding` \(='FULL'\) must be one of"),
        (
            dict(padding=((1, 1),)),
            ValueError,
            r"`padding` \(=\(\(1, 1\),\)\) must be 2 \(low, high\) pairs",
        ),
        (dict(padding=((-9, 0), (0, 0))), ValueError, r"`padding` .* crops more than the input"),
        (dict(padding=3), TypeError, r"`padding` must be a string or a sequence"),
        (dict(dimension_numbers=("NCHW", "OIHW")), TypeError, r"`dimension_numbers` must be None"),
        (
            dict(dimension_numbers=("NCH", "OIHW", "NCHW")),
            ValueError,
            r"lhs spec 'NCH' must have 4 letters",
        ),
        (
            dict(dimension_numbers=("NCHH", "OIHW", "NCHW")),
            ValueError,
            r"lhs spec 'NCHH' repeats a letter",
        ),
        (
            dict(dimension_numbers=("NCHW", "OXHW", "NCHW")),
            ValueError,
            r"rhs spec 'OXHW' must contain 'I'",
        ),
        (dict(dimension_numbers=("NCHW", "OIHX", "NCHW")), ValueError, r"same spatial letters"),
        (dict(algorithm="winograd2"), ValueError, r"`algorithm` \(='winograd2'\) must be one of"),
        (
            dict(rhs=jnp.ones((4, 3, 3, 3), jnp.float16)),
            TypeError,
            r"same dtype, got float32 and float16",
        ),
        (dict(precision="best"), ValueError, r"`precision` \(='best'\) must be None"),
        (
            dict(preferred_element_type=jnp.int32),
            TypeError,
            r"`preferred_element_type` \(=int32\) is incompatible",
        ),
        (dict(preferred_element_type=jnp.float16), TypeError, r"must not be narrower than float32"),
        (
            dict(lhs=jnp.ones((1, 3, 8, 8), bool), rhs=jnp.ones((4, 3, 3, 3), bool)),
            TypeError,
            r"`lhs` must have a numeric dtype, got bool",
        ),
    ],
)
def test_bad_input(kwargs, error, match):
    call = dict(lhs=X, rhs=W, window_strides=(1, 1), padding="SAME") | kwargs
    with pytest.raises(error, match=match):
        jaxconv.conv_general_dilated(**call)


def test_forced_algorithm_that_cannot_run():
    # Every algorithm other than direct/im2col/xla refuses some problem; auto never does.
    x, w = jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    for name in CONCRETE:
        if name in ("direct", "im2col", "xla"):
            continue
        if not supported(name, x, w, (2, 2), "SAME", None, None):
            with pytest.raises(ValueError, match=rf"`algorithm` \(='{name}'\) cannot run"):
                jaxconv.conv_general_dilated(x, w, (2, 2), "SAME", algorithm=name)
    assert supported("auto", x, w, (2, 2), "SAME", None, None)


# ------------------------------------------------------ fft overlap-save segments


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
    from jaxconv._algorithms.fft import segments

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


# ------------------------------------------- depthwise at stride 1: border bands


@pytest.mark.parametrize(
    "xs, ws, padding, rhs_dil",
    [
        ((2, 12, 11, 4), (3, 3, 1, 4), "SAME", None),  # bands padded per tap
        ((1, 24, 22, 3), (5, 5, 1, 6), "SAME", None),  # bands copied; multiplier 2
        ((1, 12, 12, 2), (3, 3, 1, 2), ((5, 0), (-1, 2)), None),  # pad > K-1, cropping
        ((1, 40, 29, 2), (5, 5, 1, 2), ((1, 3), (4, 4)), (2, 1)),  # dilated, asymmetric
        ((1, 9, 10, 2), (1, 5, 1, 2), ((2, 1), (2, 2)), None),  # 1-tap axis, padded
        ((2, 40, 3), (9, 1, 3), "SAME", None),  # 1-D
        ((1, 6, 7, 8, 2), (3, 1, 3, 1, 2), "SAME", None),  # 3-D
        ((1, 5, 12, 2), (7, 3, 1, 2), "SAME", None),  # an axis shorter than its window
    ],
)
def test_depthwise_split_matches_lax(xs, ws, padding, rhs_dil):
    from jaxconv._algorithms.depthwise import split_band_elements
    from jaxconv._conv import _plan

    n = len(xs) - 2
    lhs_t = "N" + "DHW"[-n:] + "C"
    dn = (lhs_t, lhs_t[1:-1] + "IO", lhs_t)
    groups = xs[-1]
    args = ((1,) * n, padding, None, rhs_dil, dn, groups)
    _, problem = _plan(
        jax.ShapeDtypeStruct(xs, jnp.float32),
        jax.ShapeDtypeStruct(ws, jnp.float32),
        *args,
        1,
        None,
        None,
        "depthwise",
        "t",
    )
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
    order = 2 if math.prod(ws[:-2]) <= 9 else 1  # second order through 25+ taps: slow
    check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))


def test_depthwise_split_band_elements():
    """Hand-counted bands: 56x56, 7x7 SAME: two bands of 6+3 rows x 62 padded columns,
    then two of 56 rows x 6+3 columns."""
    from jaxconv._algorithms.depthwise import split_band_elements
    from jaxconv._typing import ConvParams

    def params(pads, strides=(1, 1)):
        return ConvParams(strides, pads, (1, 1), (1, 1), None, None, np.dtype("float32"))

    same = ((3, 3), (3, 3))
    assert split_band_elements((56, 56), (7, 7), params(same)) == 2 * 9 * 62 + 2 * 56 * 9
    assert split_band_elements((56, 56), (3, 3), params(((1, 1), (1, 1)))) == 0  # per tap
    assert split_band_elements((14, 14), (7, 7), params(same)) is None  # bands > a copy
    assert split_band_elements((56, 56), (7, 7), params(same, (2, 2))) is None  # strided
    assert split_band_elements((56, 56), (7, 7), params(((0, 0), (0, 0)))) == 0


# ------------------------------------------- depthwise kernel gradient in blocks


def _equations(fn, *args, primitive: str):
    """The equations of `primitive` in fn's jaxpr, nested ones included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == primitive:
                found.append(eqn)
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr
                    if hasattr(sub, "eqns"):
                        walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def _scan_lengths(fn, *args):
    """The lengths of the scans (lax.map) in fn's jaxpr, nested ones included."""
    return [eqn.params["length"] for eqn in _equations(fn, *args, primitive="scan")]


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


@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 20], ids=["1B", "3KB", "1MiB"])
@pytest.mark.parametrize(
    "xs, ws, strides, padding, lhs_dil, rhs_dil",
    [
        ((3, 13, 11, 4), (3, 3, 1, 4), (1, 1), "SAME", None, None),
        ((2, 15, 12, 3), (3, 3, 1, 6), (2, 2), ((1, 2), (0, 1)), None, None),  # multiplier 2
        ((2, 15, 13, 2), (5, 5, 1, 2), (2, 2), "SAME", None, None),  # strided: up to 49 taps
        ((2, 9, 10, 2), (3, 3, 1, 2), (1, 1), ((3, -1), (2, 2)), (2, 1), (1, 2)),  # crop
        ((4, 90, 3), (5, 1, 3), (3,), "SAME", None, None),  # 1-D
        ((2, 5, 6, 7, 2), (3, 1, 3, 1, 2), (1, 2, 1), "SAME", None, None),  # 3-D
    ],
)
def test_depthwise_blocked_kernel_gradient(
    monkeypatch, block_bytes, xs, ws, strides, padding, lhs_dil, rhs_dil
):
    """The kernel gradient from `blocked_fold` equals lax's, whether the blocks are
    single rows (1 byte), a few rows or images (3 KB), or the whole batch (1 MiB)."""
    from jaxconv._algorithms import depthwise

    monkeypatch.setattr(depthwise, "BLOCK_BYTES", block_bytes)
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
        check_grads(f, (x64, w64), order=2, modes=("fwd", "rev"))
    jax.clear_caches()


def test_depthwise_fold_blocks():
    """Hand-counted blocks of `blocked_fold` (1 MiB: f32 padded-x rows plus output rows)."""
    from jaxconv._algorithms.depthwise import BLOCK_BYTES, fold_blocks

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


@pytest.mark.parametrize(
    "xs, ws, padding, rhs_dil",
    [
        ((3, 13, 11, 4), (5, 5, 1, 4), "SAME", None),
        ((2, 12, 14, 3), (3, 5, 1, 3), ((0, 3), (4, -1)), (2, 1)),  # asymmetric, crop
        ((2, 9, 8, 2), (3, 5, 1, 2), ((3, 0), (-2, 5)), None),  # complements < 0: crops
        ((4, 90, 3), (11, 1, 3), "SAME", (3,)),  # 1-D
        ((2, 5, 6, 7, 2), (3, 3, 3, 1, 2), "SAME", None),  # 3-D
    ],
)
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
        pads = _equations(fn, *args, primitive="pad")
        return sum(any(max(c) > 0 for c in eqn.params["padding_config"]) for eqn in pads)

    # The grad's jaxpr also holds the forward's pads: hence twice the forward's.
    assert fills(input_grad, x) <= 2 * fills(f, x, w) < math.prod(ws[:-2])
    x64, w64 = x.astype("float64"), w.astype("float64")
    order = 2 if math.prod(ws[:-2]) <= 15 else 1  # second order through 25+ taps: slow
    check_grads(f, (x64, w64), order=order, modes=("fwd", "rev"))


# ------------------------------------------------------------ xla2d (3-D and up)


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
    from jaxconv._algorithms import xla2d

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


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
def test_winograd_3d_and_its_exact_gradients(algorithm):
    x, w = random((1, 5, 6, 7, 4), "float64", seed=46), random((3, 3, 3, 4, 5), "float64", seed=47)
    args = ((1, 1, 1), ((1, 1), (0, 2), (1, 0)), None, None, NDHWC)
    got, want = both(algorithm, x, w, *args)
    assert_close(got, want, scale=100)

    def f(x, w):
        return jaxconv.conv_general_dilated(x, w, *args, algorithm=algorithm)

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
