"""What linen and nnx share: the same numbers from both front ends, pooling modules with
real signatures, ConvHook, and constructor errors."""

import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxconv
from jaxconv import linen as jl
from jaxconv import nnx as jn
from tests.util import assert_close, random, same_tree

KEY = jax.random.key(0)


def test_linen_params_drive_nnx():
    """The same numbers from both front ends: copy linen parameters into nnx."""
    x = random((2, 9, 8, 3), seed=8)
    lin = jl.Conv(4, (3, 3), strides=2, padding_mode="reflect")
    p = lin.init(KEY, x)
    mod = jn.Conv(3, 4, (3, 3), strides=2, padding_mode="reflect", rngs=nnx.Rngs(1))
    mod.kernel[...] = p["params"]["kernel"]
    mod.bias[...] = p["params"]["bias"]
    assert_close(mod(x), lin.apply(p, x))
    lt = jl.ConvTranspose(4, (3, 3), strides=(2, 2), output_padding=(1, 0))
    pt = lt.init(KEY, x)
    mt = jn.ConvTranspose(3, 4, (3, 3), strides=(2, 2), output_padding=(1, 0), rngs=nnx.Rngs(1))
    mt.kernel[...] = pt["params"]["kernel"]
    mt.bias[...] = pt["params"]["bias"]
    assert_close(mt(x), lt.apply(pt, x))


def test_conv_transpose_groups_and_output_padding():
    x = random((2, 5, 6, 4), seed=10)
    layer = jl.ConvTranspose(
        6,
        (3, 3),
        strides=(2, 2),
        feature_group_count=2,
        output_padding=(1, 1),
        padding_mode="zeros",
    )
    p = layer.init(KEY, x)
    assert p["params"]["kernel"].shape == (3, 3, 2, 6)
    want = jaxconv.conv_transpose(
        x, p["params"]["kernel"], (2, 2), "SAME", output_padding=(1, 1), feature_group_count=2
    )
    assert_close(layer.apply(p, x), want + p["params"]["bias"].reshape(1, 1, 1, 6))
    mod = jn.ConvTranspose(
        4, 6, (3, 3), strides=(2, 2), feature_group_count=2, output_padding=(1, 1), rngs=nnx.Rngs(0)
    )
    assert mod.kernel.shape == (3, 3, 2, 6)
    mod.kernel[...] = p["params"]["kernel"]
    assert_close(mod(x), layer.apply(p, x))


def test_depthwise_and_separable():
    x = random((2, 9, 8, 3), seed=11)
    dw = jl.DepthwiseConv((3, 3), depth_multiplier=2, strides=2)
    p = dw.init(KEY, x)
    ref = nn.Conv(6, (3, 3), strides=2, feature_group_count=3)
    same_tree(p, ref.init(KEY, x))
    assert_close(dw.apply(p, x), ref.apply(p, x), scale=4)
    sep = jl.SeparableConv(5, (3, 3))
    ps = sep.init(KEY, x)
    y = jl.Conv(3, (3, 3), feature_group_count=3, use_bias=False).apply(
        {"params": ps["params"]["depthwise"]}, x
    )
    y = jl.Conv(5, (1, 1)).apply({"params": ps["params"]["pointwise"]}, y)
    assert_close(sep.apply(ps, x), y)
    ndw = jn.DepthwiseConv(3, (3, 3), 2, depth_multiplier=2, rngs=nnx.Rngs(0))
    ndw.kernel[...] = p["params"]["kernel"]
    assert_close(ndw(x), dw.apply(p, x))
    nsep = jn.SeparableConv(3, 5, (3, 3), rngs=nnx.Rngs(0))
    assert nsep(x).shape == (2, 9, 8, 5)


POOL_MODULES = [
    (
        "MaxPool",
        ((3, 3),),
        dict(strides=(2, 2), padding="SAME", ceil_mode=True),
        lambda x: jaxconv.max_pool(x, (3, 3), (2, 2), "SAME", ceil_mode=True),
    ),
    ("MinPool", ((2, 2),), {}, lambda x: jaxconv.min_pool(x, (2, 2))),
    (
        "AvgPool",
        ((3, 3),),
        dict(strides=(1, 2), count_include_pad=False, padding="SAME"),
        lambda x: jaxconv.avg_pool(x, (3, 3), (1, 2), "SAME", count_include_pad=False),
    ),
    ("SumPool", ((2, 3),), {}, lambda x: jaxconv.sum_pool(x, (2, 3))),
    ("LPPool", ((2, 2),), dict(p=2), lambda x: jaxconv.lp_pool(x, (2, 2), p=2)),
    ("AdaptiveAvgPool", ((3, 2),), {}, lambda x: jaxconv.adaptive_avg_pool(x, (3, 2))),
    ("AdaptiveMaxPool", ((3, 2),), {}, lambda x: jaxconv.adaptive_max_pool(x, (3, 2))),
    ("GlobalAvgPool", (), dict(keepdims=True), lambda x: jaxconv.global_avg_pool(x, True)),
    ("GlobalMaxPool", (), {}, jaxconv.global_max_pool),
]


@pytest.mark.parametrize("name, args, kwargs, fn", POOL_MODULES, ids=[p[0] for p in POOL_MODULES])
def test_pool_modules(name, args, kwargs, fn):
    x = random((2, 9, 8, 3), seed=12, low=0.1, high=1.0)
    want = fn(x)
    linen_mod = getattr(jl, name)(*args, **kwargs)
    assert_close(linen_mod.apply({}, x), want)
    assert_close(getattr(jn, name)(*args, **kwargs)(x), want)


def test_max_unpool_modules():
    x = random((2, 8, 8, 3), seed=13)
    v, i = jl.MaxPool((2, 2), (2, 2), return_indices=True).apply({}, x)
    want = jaxconv.max_unpool(v, i, (8, 8))
    assert_close(jl.MaxUnpool((8, 8)).apply({}, v, i), want)
    assert_close(jn.MaxUnpool((8, 8))(v, i), want)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: jn.Conv(3, 4, (3, 3), padding_mode="mirror", rngs=nnx.Rngs(0)),
            ValueError,
            r"`padding_mode` \(='mirror'\) must be one of",
        ),
        (
            lambda: jn.Conv(3, 4, (3, 3), feature_group_count=2, rngs=nnx.Rngs(0)),
            ValueError,
            r"`feature_group_count` \(=2\) must divide the input features \(=3\)",
        ),
        (
            lambda: jn.ConvTranspose(4, 6, (3, 3), strides=2, output_padding=2, rngs=nnx.Rngs(0))(
                jnp.ones((1, 4, 4, 4))
            ),
            ValueError,
            r"`output_padding` \(=\(2, 2\)\) must be smaller",
        ),
        (
            lambda: jl.Conv(4, (3, 3), padding_mode="mirror").init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`padding_mode` \(='mirror'\)",
        ),
        (
            lambda: jl.Conv(4, (3, 3), feature_group_count=2).init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`feature_group_count` \(=2\) must divide",
        ),
        (
            lambda: jl.Conv(4, (3, 3), algorithm="magic").init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`algorithm` \(='magic'\) must be one of",
        ),
        (
            lambda: jl.Conv(4, (3, 3), padding="FULL").init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`padding` \(='FULL'\)",
        ),
        (
            lambda: jl.Conv(4, (3, 3), padding=((1, 1),)).init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`padding` \(=\(\(1, 1\),\)\) must be a string, an int, or 2",
        ),
        (
            lambda: jl.Conv(4, (3, 3), mask=jnp.ones((2, 2, 3, 4))).init(
                KEY, jnp.ones((1, 5, 5, 3))
            ),
            ValueError,
            r"Mask needs to have the same shape as weights.*\(2, 2, 3, 4\), \(3, 3, 3, 4\)",
        ),
        (
            lambda: jl.Conv(4, (0, 3)).init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`kernel_size` \(=\(0, 3\)\) must be >= 1",
        ),
        (
            lambda: jl.Conv(4, (3, 3), padding="CAUSAL").init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"Causal padding is only implemented for 1D",
        ),
        (lambda: jn.MaxPool((2, 2), bogus=1), TypeError, r"unexpected keyword argument 'bogus'"),
        (lambda: jn.MaxPool((2, 2), (2, 2), strides=(1, 1)), TypeError, r"multiple values"),
        (lambda: jl.MaxPool((2, 2), (2, 2), strides=(1, 1)), TypeError, r"multiple values"),
        (lambda: jn.LPPool((2, 2), (2, 2), "VALID", 2), TypeError, r"positional arguments"),
        (lambda: jn.LPPool((2, 2), (2, 2)), TypeError, r"missing 1 required keyword-only .*'p'"),
    ],
)
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("name", jn.__all__)
def test_modules_have_real_signatures(name):
    """Every module shows its arguments (no *args/**kwargs), and the pooling modules take
    their function's arguments in its order."""
    for module in (getattr(jn, name), getattr(jl, name, None)):
        if module is None or name == "swap":
            continue
        params = inspect.signature(module).parameters
        assert (
            params
            and all(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params.values())
            or name in ("Conv", "ConvTranspose", "DepthwiseConv")
        ), (name, params)
    fn = {"MaxPool": jaxconv.max_pool, "AvgPool": jaxconv.avg_pool, "LPPool": jaxconv.lp_pool}
    if name in fn:
        want = list(inspect.signature(fn[name]).parameters)[1:]
        assert list(inspect.signature(getattr(jn, name)).parameters) == want
        linen_fields = inspect.signature(getattr(jl, name)).parameters
        positional = [p for p in want if linen_fields[p].kind != inspect.Parameter.KEYWORD_ONLY]
        assert list(linen_fields)[: len(positional)] == positional and set(want) <= set(
            linen_fields
        )


def test_lp_pool_module_keeps_its_stride():
    x = random((1, 8, 8, 2), seed=30, low=0.1)
    want = jaxconv.lp_pool(x, (2, 2), (2, 2), p=2)
    assert jn.LPPool((2, 2), (2, 2), p=2)(x).shape == want.shape == (1, 4, 4, 2)
    assert_close(jl.LPPool((2, 2), (2, 2), p=2).apply({}, x), want)


def test_conv_hook_in_flax_modules():
    """ConvHook plugs jaxconv into flax's own Conv, padding modes included."""
    x = random((2, 9, 9, 3), seed=27)
    ours = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), conv_general_dilated=jaxconv.ConvHook())
    theirs = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0), precision="highest")
    assert_close(ours(x), theirs(x), scale=4)
    hook = jaxconv.ConvHook("direct", "replicate")
    layer = nn.Conv(4, (3, 3), conv_general_dilated=hook)
    p = layer.init(KEY, x)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    assert_close(layer.apply(p, x), nn.Conv(4, (3, 3), padding="VALID").apply(p, padded), scale=4)
    assert hash(hook) == hash(jaxconv.ConvHook("direct", "replicate"))
    with pytest.raises(ValueError, match=r"`algorithm` \(='magic'\) must be one of"):
        jaxconv.ConvHook("magic")
