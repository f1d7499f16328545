"""conv_transpose: parity with lax.conv_transpose, the adjoint of conv (groups and
output_padding, PyTorch's rule), transforms and errors."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv import _transpose
from jaxconv._spec import transpose_spec
from tests.util import assert_close, random

ALGOS = list(jaxconv.TRANSPOSE_ALGORITHMS)

CASES = [
    # (lhs NHWC, rhs HWIO, strides, padding, rhs_dilation, transpose_kernel)
    ((2, 5, 6, 3), (3, 3, 3, 4), (2, 2), "SAME", None, False),
    ((2, 5, 6, 3), (4, 4, 3, 4), (2, 2), "SAME", None, False),
    ((2, 5, 6, 3), (3, 4, 3, 4), (2, 3), "VALID", (1, 2), False),
    ((2, 5, 6, 3), (3, 3, 4, 3), (2, 1), ((1, 2), (0, 1)), None, True),
    ((2, 5, 6, 3), (2, 2, 3, 5), (2, 2), "VALID", None, False),
    ((2, 5, 6, 3), (3, 3, 2, 3), (1, 1), "SAME", None, True),  # forward kernel: O = 3
    ((2, 5, 6, 3), (5, 3, 3, 2), (3, 2), ((-1, 2), (2, 3)), (2, 1), False),
]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_matches_lax(algorithm, case):
    xs, ws, strides, padding, dil, tk = case
    x, w = random(xs, "float64", seed=1), random(ws, "float64", seed=2)
    got = jaxconv.conv_transpose(
        x, w, strides, padding, dil, transpose_kernel=tk, algorithm=algorithm
    )
    want = lax.conv_transpose(x, w, strides, padding, dil, transpose_kernel=tk, precision="highest")
    assert_close(got, want)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_layouts_ranks_and_consistent_padding(algorithm):
    x, w = random((2, 3, 7), "float64", seed=3), random((3, 4, 3), "float64", seed=4)  # NCH, IOH
    dn = ("NCH", "IOH", "NCH")
    for padding, consistent in [("SAME", False), (((1, 1),), True), (((0, 2),), False)]:
        got = jaxconv.conv_transpose(
            x,
            w,
            (2,),
            padding,
            dimension_numbers=dn,
            use_consistent_padding=consistent,
            algorithm=algorithm,
        )
        want = lax.conv_transpose(
            x,
            w,
            (2,),
            padding,
            dimension_numbers=dn,
            use_consistent_padding=consistent,
            precision="highest",
        )
        assert_close(got, want)
    x3, w3 = random((1, 3, 4, 3, 2), "float64", seed=5), random((2, 3, 2, 2, 3), "float64", seed=6)
    got = jaxconv.conv_transpose(x3, w3, (2, 1, 2), "SAME", algorithm=algorithm)
    assert_close(got, lax.conv_transpose(x3, w3, (2, 1, 2), "SAME", precision="highest"))


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize(
    "groups, length, kernel, stride, pad",
    [
        (1, 9, 3, 2, 1),
        (2, 10, 3, 2, 1),
        (3, 11, 4, 3, 0),
        (2, 8, 2, 2, 0),
    ],
)
def test_is_the_adjoint_of_conv_with_groups_and_output_padding(
    algorithm, groups, length, kernel, stride, pad
):
    """PyTorch's ConvTranspose(groups, output_padding) is the input-gradient of Conv."""
    cin, cout = 2 * groups, 3 * groups
    x = random((2, length, cin), "float64", seed=7)
    w = random((kernel, cin // groups, cout), "float64", seed=8)  # forward kernel (K, I/G, O)

    def forward(x):
        return lax.conv_general_dilated(
            x,
            w,
            (stride,),
            ((pad, pad),),
            dimension_numbers=("NHC", "HIO", "NHC"),
            feature_group_count=groups,
            precision="highest",
        )

    y, vjp = jax.vjp(forward, x)
    ct = random(y.shape, "float64", seed=9)
    (want,) = vjp(ct)
    # Output size of the transposed conv before output_padding; PyTorch pads the rest.
    natural = (y.shape[1] - 1) * stride - 2 * pad + kernel
    output_padding = length - natural
    got = jaxconv.conv_transpose(
        ct,
        w,
        (stride,),
        ((pad, pad),),
        dimension_numbers=("NHC", "HIO", "NHC"),
        transpose_kernel=True,
        use_consistent_padding=True,
        output_padding=(output_padding,),
        feature_group_count=groups,
        algorithm=algorithm,
    )
    assert_close(got, want)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_gradients_and_transforms(algorithm):
    x, w = random((2, 4, 5, 2), "float64", seed=10), random((3, 3, 2, 3), "float64", seed=11)

    def f(x, w):
        return jaxconv.conv_transpose(
            x, w, (2, 2), "SAME", output_padding=(1, 0), algorithm=algorithm
        )

    def g(x, w):  # SAME is pads (2, 1) for k=3, s=2; output_padding adds 1 to the high side
        return lax.conv_transpose(x, w, (2, 2), ((2, 2), (2, 1)), precision="highest")

    assert_close(f(x, w), g(x, w))
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
    assert_close(jax.jit(f)(x, w), g(x, w))
    assert_close(jax.vmap(f, (0, None))(x[:, None], w)[:, 0], g(x, w))
    gx = jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), (0, 1))(x, w)
    hx = jax.grad(lambda x, w: jnp.sum(jnp.sin(g(x, w))), (0, 1))(x, w)
    for a, b in zip(gx, hx):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_dtypes(dtype):
    x, w = random((1, 4, 4, 3), dtype, seed=12), random((3, 3, 3, 2), dtype, seed=13)
    want = lax.conv_transpose(x, w, (2, 2), "SAME", precision="highest")
    for algorithm in ALGOS:
        assert_close(
            jaxconv.conv_transpose(x, w, (2, 2), "SAME", algorithm=algorithm), want, scale=4
        )


X, W = jnp.ones((1, 4, 4, 3), jnp.float32), jnp.ones((3, 3, 3, 2), jnp.float32)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(output_padding=(2, 0)),
            ValueError,
            r"`output_padding` \(=\(2, 0\)\) must be smaller",
        ),
        (dict(output_padding=(-1, 0)), ValueError, r"`output_padding` \(=\(-1, 0\)\) must be >= 0"),
        (
            dict(padding="SAME_LOWER"),
            ValueError,
            r"`padding` \(='SAME_LOWER'\) must be 'SAME', 'VALID'",
        ),
        (dict(padding=((1, 1),)), ValueError, r"must be 2 \(low, high\) pairs"),
        (dict(algorithm="fft"), ValueError, r"`algorithm` \(='fft'\) must be one of"),
        (dict(feature_group_count=2), ValueError, r"feature_group_count"),
        (dict(strides=(0, 2)), ValueError, r"`strides` \(=\(0, 2\)\) must be >= 1"),
        (dict(lhs=jnp.ones((1, 4, 4), jnp.float32)), ValueError, r"same rank"),
        (dict(padding=((1.0, 1), (1, 1))), TypeError, r"`padding` must hold integers, got 1.0"),
        (dict(transpose_kernel=1), TypeError, r"`transpose_kernel` must be a bool, got 1"),
        (dict(algorithm=None), TypeError, r"`algorithm` must be a string, got None"),
    ],
)
def test_bad_input(kwargs, error, match):
    call = dict(lhs=X, rhs=W, strides=(2, 2), padding="SAME") | kwargs
    with pytest.raises(error, match=match):
        jaxconv.conv_transpose(**call)


def test_xla_subpixel_forward_is_lax_and_backward_skips_the_zeros():
    x, w = random((2, 6, 6, 4), seed=12), random((3, 3, 4, 5), seed=13)

    def f(x, w):
        return jaxconv.conv_transpose(x, w, (2, 2), "SAME", algorithm="xla/subpixel")

    fwd = str(jax.make_jaxpr(f)(x, w))
    assert "lhs_dilation=(2, 2)" in fwd  # XLA's own lhs-dilated conv
    assert fwd.count("lhs_dilation=(2, 2)") == 1
    bwd = str(jax.make_jaxpr(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1)))(x, w))
    # Only the forward dilates its input by the stride; the gradients are the phases'.
    assert bwd.count("lhs_dilation=(2, 2)") == 1
    assert bwd.count("conv_general_dilated") > 4
    got = jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1))(x, w)
    want = jax.grad(
        lambda x, w: jnp.sum(lax.conv_transpose(x, w, (2, 2), "SAME", precision="highest") ** 2),
        (0, 1),
    )(x, w)
    for a, b in zip(got, want):
        assert_close(a, b, scale=10)


def test_no_spatial_dimension_is_a_matmul():
    x, w = random((2, 3), seed=14), random((3, 4), seed=15)
    dn = ("NC", "IO", "NC")
    want = lax.conv_transpose(x, w, (), "VALID", dimension_numbers=dn, precision="highest")
    for algorithm in ALGOS:
        got = jaxconv.conv_transpose(x, w, (), "VALID", dimension_numbers=dn, algorithm=algorithm)
        assert got.shape == (2, 4)
        assert_close(got, want)


def test_one_record_per_call_with_its_phases():
    x, w = (
        jax.ShapeDtypeStruct((2, 8, 8, 8), "float32"),
        jax.ShapeDtypeStruct((3, 3, 8, 4), "float32"),
    )
    with jaxconv.record_choices() as log:
        jax.eval_shape(
            lambda x, w: jaxconv.conv_transpose(x, w, (2, 2), "SAME", algorithm="subpixel"), x, w
        )
    (entry,) = log
    assert entry.op == "conv_transpose" and entry.algorithm == "subpixel"
    assert len(entry.parts) == 4 and {name for name, _ in entry.parts} <= set(jaxconv.ALGORITHMS)


STACKED_CASES = [
    # (lhs, rhs, strides, padding, rhs_dilation, layout, stacked)
    ((2, 4, 5, 3), (2, 2, 3, 4), (2, 2), "SAME", None, None, True),  # U-Net's 2x2/2
    ((1, 4, 5, 3), (4, 2, 3, 4), (2, 2), "VALID", None, None, True),  # 2 taps a phase
    ((2, 3, 4, 2, 3), (2, 2, 2, 3, 2), (2, 2, 2), "SAME", None, None, True),  # 3-D
    ((2, 7, 3), (6, 3, 4), (3,), "VALID", None, ("NWC", "WIO", "NWC"), True),
    ((2, 7, 3), (4, 3, 4), (2,), ((1, 1),), None, ("NWC", "WIO", "NWC"), True),
    ((2, 7, 3), (4, 3, 4), (2,), ((2, 1),), None, ("NWC", "WIO", "NWC"), False),  # offsets
    ((2, 7, 3), (3, 3, 4), (2,), "SAME", None, ("NWC", "WIO", "NWC"), False),  # 2 and 1 taps
    ((2, 7, 3), (4, 3, 4), (2,), "VALID", (3,), ("NWC", "WIO", "NWC"), False),  # dilation
]


@pytest.mark.parametrize("algorithm", ["subpixel", "xla/subpixel"])
@pytest.mark.parametrize("case", STACKED_CASES, ids=range(len(STACKED_CASES)))
def test_phases_of_one_shape_run_as_one_conv(algorithm, case):
    """Phases that differ only by their sub-kernel run as one conv over the stacked
    sub-kernels (one part, stacked with no gather or scatter); others one conv each.
    Values and gradients are lax's either way."""
    xs, ws, strides, padding, dil, dn, stacked = case
    x, w = random(xs, "float64", seed=31), random(ws, "float64", seed=32)
    args = (strides, padding, dil, dn)

    def f(x, w):
        return jaxconv.conv_transpose(x, w, *args, algorithm=algorithm)

    def g(x, w):
        return lax.conv_transpose(x, w, *args, precision="highest")

    with jaxconv.record_choices() as log:
        assert_close(f(x, w), g(x, w))
    phases = math.prod(strides)
    assert len(log[0].parts) == (1 if stacked else phases), log[0].parts

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    grad = jax.grad(loss(f), (0, 1))
    for a, b in zip(grad(x, w), jax.grad(loss(g), (0, 1))(x, w)):
        assert_close(a, b)
    jaxpr = str(jax.make_jaxpr(grad)(x, w))
    assert "gather" not in jaxpr and "scatter" not in jaxpr
    check_grads(f, (x, w), order=1, modes=("fwd", "rev"))


def test_phases_stack_exactly_where_the_planned_phases_are_one_conv():
    """`TransposeSpec.phases_stack` (`_shapes.phases_stack`, pure integers) against the
    planner over a grid of 1-D transposed convs: true exactly where every planned phase exists and is the same
    conv problem, with one group."""
    seen = set()
    grid = itertools.product(
        range(1, 6), range(1, 7), (2, 3), (1, 2), range(5), range(3), (0, 1), (1, 2)
    )
    for size, k, s, d, lo, hi, out_pad, groups in grid:
        lhs = jax.ShapeDtypeStruct((1, size, 2 * groups), "float32")
        rhs = jax.ShapeDtypeStruct((k, 2, 3 * groups), "float32")
        try:
            spec = transpose_spec(
                lhs, rhs, (s,), ((lo, hi),), (d,), ("NWC", "WIO", "NWC"), False,
                None, None, False, (out_pad,), groups, "conv_transpose",
            )  # fmt: skip
        except ValueError:  # an empty output
            continue
        if spec.problem.out_spatial[0] <= 0:
            continue
        phases, _ = _transpose._phases(spec)
        one = all(p is not None for p in phases) and len({p.spec.problem for p in phases}) == 1
        want = one and groups == 1
        assert spec.phases_stack == want, (size, k, s, d, lo, hi, out_pad, groups)
        seen.add(want)
    assert seen == {True, False}


@pytest.mark.parametrize("algorithm", ["subpixel", "xla/subpixel", "auto"])
@pytest.mark.parametrize(
    "xs, ws",
    [((0, 4, 4, 3), (2, 2, 3, 4)), ((2, 4, 4, 0), (2, 2, 0, 4)), ((2, 4, 4, 3), (2, 2, 3, 0))],
)
def test_stacked_phases_of_zero_size(algorithm, xs, ws):
    """Stacked phases with an empty batch or channel axis: lax's shapes and gradients."""
    x, w = random(xs, "float64", seed=33), random(ws, "float64", seed=34)

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, (2, 2), "SAME")))

    f = functools.partial(jaxconv.conv_transpose, algorithm=algorithm)
    assert_close(f(x, w, (2, 2), "SAME"), lax.conv_transpose(x, w, (2, 2), "SAME"))
    got = jax.grad(loss(f), (0, 1))(x, w)
    for a, b in zip(got, jax.grad(loss(lax.conv_transpose), (0, 1))(x, w)):
        assert_close(a, b)
