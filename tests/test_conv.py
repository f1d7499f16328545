"""The public conv functions: argument forms, errors, compilation, sharding, and the
queries (`conv_plan`, `chosen_algorithm`, `candidate_algorithms`, `record_choices`)."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxconv
from jaxconv._algorithms import REGISTRY
from jaxconv._conv import execute
from tests.util import assert_close, random, sds, supported

NHWC = ("NHWC", "HWIO", "NHWC")
CONCRETE = list(REGISTRY)


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
        jaxconv.conv_with_general_padding(x, w, (1, 2), pads, (2, 1), (1, 2), algorithm="fft"),
        lax.conv_with_general_padding(x, w, (1, 2), pads, (2, 1), (1, 2), precision="highest"),
        scale=4,
    )


def test_second_call_does_not_recompile():
    x, w = random((1, 8, 8, 3), seed=23), random((3, 3, 3, 5), seed=24)
    jaxconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC, algorithm="direct")
    before = execute._cache_size()
    for seed_ in range(3):
        x = random((1, 8, 8, 3), seed=seed_)
        jaxconv.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, algorithm="direct"
        )
    assert execute._cache_size() == before
    jaxconv.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC, algorithm="direct")
    assert execute._cache_size() == before + 1  # a new configuration does compile


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
        (
            dict(padding="SAME", lhs_dilation=(2, 1)),
            ValueError,
            r"string `padding` \(='SAME'\) is not allowed with `lhs_dilation`",
        ),
        (dict(algorithm=3), TypeError, r"`algorithm` must be a string, got 3"),
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
            dict(
                lhs=jnp.ones((1, 3, 8, 8), bool),
                rhs=jnp.ones((4, 3, 3, 3), bool),
                algorithm="direct",
            ),
            ValueError,
            r"`algorithm` \(='direct'\) cannot run this problem: it takes integer or floating",
        ),
        (dict(lhs="abc"), TypeError, r"`lhs` must be an array, got str"),
    ],
)
def test_bad_input(kwargs, error, match):
    call = dict(lhs=X, rhs=W, window_strides=(1, 1), padding="SAME") | kwargs
    with pytest.raises(error, match=match):
        jaxconv.conv_general_dilated(**call)


def test_conv_plan_and_queries_compute_nothing():
    x, w = sds((8, 56, 56, 64)), sds((3, 3, 64, 64))
    plan = jaxconv.conv_plan(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    assert plan.algorithm == "winograd4" and plan.pieces.count > 1
    assert 0 < plan.workspace_bytes <= 0.5 * plan.io_bytes  # within the 1.5x budget
    assert not plan.exact_nonfinite
    assert jaxconv.chosen_algorithm(x, w, (1, 1), "SAME", dimension_numbers=NHWC) == "winograd4"
    named = jaxconv.conv_plan(x, w, (1, 1), "SAME", dimension_numbers=NHWC, algorithm="xla")
    assert named == jaxconv.ConvPlan("xla", jaxconv.Pieces("batch", 1), 0, plan.io_bytes, True)
    names = jaxconv.candidate_algorithms(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    assert names[0] == "winograd4" and "xla" in names and "depthwise" not in names


def test_record_choices_one_entry_per_call():
    x, w = sds((2, 16, 16, 8)), sds((3, 3, 1, 8))
    with jaxconv.record_choices() as log:
        jax.eval_shape(
            lambda x, w: jaxconv.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=8
            ),
            x,
            w,
        )
        jaxconv.chosen_algorithm(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=8
        )
    (entry,) = log  # queries are not recorded
    assert entry == jaxconv.Record(
        "conv_general_dilated",
        "depthwise",
        jaxconv.Pieces("batch", 1),
        (2, 16, 16, 8, 1),
        (3, 3, 1, 8, 1),
    )


def test_bool_operands_as_lax():
    x = jax.random.bernoulli(jax.random.key(0), 0.3, (2, 7, 7, 3))
    w = jax.random.bernoulli(jax.random.key(1), 0.3, (3, 3, 3, 2))
    want = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    got = jaxconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    assert got.dtype == want.dtype == jnp.bool_
    assert (got == want).all()
