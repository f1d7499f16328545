"""Flax modules: same constructor, parameter tree and outputs as flax (linen and nnx),
jaxconv's extras, errors, and models that train identically."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxconv
from jaxconv import linen as jl
from jaxconv import nnx as jn
from tests.util import assert_close, random

KEY = jax.random.key(0)


def same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


CONV_GRID = [
    dict(features=4, kernel_size=(3, 3)),
    dict(features=4, kernel_size=(3, 2), strides=2, padding="VALID"),
    dict(features=4, kernel_size=(3, 3), strides=(1, 2), padding=((1, 0), (2, 1))),
    dict(features=4, kernel_size=(3, 3), padding=1),
    dict(features=4, kernel_size=(3, 3), padding="CIRCULAR"),
    dict(features=4, kernel_size=(3, 3), padding="REFLECT", kernel_dilation=2),
    dict(features=6, kernel_size=(3, 3), input_dilation=2, padding=((1, 1), (0, 2))),
    dict(features=6, kernel_size=(3, 3), feature_group_count=3),
    dict(features=4, kernel_size=(2, 2), use_bias=False),
    dict(features=4, kernel_size=(3, 3), dtype=jnp.float64, param_dtype=jnp.float64),
    dict(features=4, kernel_size=(3, 3), param_dtype=jnp.bfloat16),
    dict(features=4, kernel_size=(3, 3), mask=jnp.tril(jnp.ones((3, 3, 3, 4)))),
]


@pytest.mark.parametrize("kwargs", CONV_GRID, ids=range(len(CONV_GRID)))
@pytest.mark.parametrize("batch", [(2,), (), (2, 3)], ids=["batched", "unbatched", "2batch"])
def test_linen_conv_matches_flax(kwargs, batch):
    x = random((*batch, 9, 8, 3), seed=1)
    ours, theirs = jl.Conv(**kwargs), nn.Conv(**kwargs)
    p_ours, p_theirs = ours.init(KEY, x), theirs.init(KEY, x)
    same_tree(p_ours, p_theirs)
    scale = 40 if kwargs.get("param_dtype") == jnp.bfloat16 else 4
    assert_close(ours.apply(p_theirs, x), theirs.apply(p_theirs, x), scale=scale)


def test_linen_conv_1d_3d_and_causal():
    x1 = random((2, 11, 3), seed=2)
    for kwargs in [
        dict(features=4, kernel_size=3, padding="CAUSAL"),
        dict(features=4, kernel_size=(4,), strides=2, kernel_dilation=2),
    ]:
        ours, theirs = jl.Conv(**kwargs), nn.Conv(**kwargs)
        p = theirs.init(KEY, x1)
        same_tree(ours.init(KEY, x1), p)
        assert_close(ours.apply(p, x1), theirs.apply(p, x1), scale=4)
    x3 = random((1, 5, 6, 7, 2), seed=3)
    ours, theirs = (
        jl.Conv(3, (2, 3, 2), strides=(1, 2, 1)),
        nn.Conv(3, (2, 3, 2), strides=(1, 2, 1)),
    )
    p = theirs.init(KEY, x3)
    assert_close(ours.apply(p, x3), theirs.apply(p, x3), scale=4)


TRANSPOSE_GRID = [
    dict(features=4, kernel_size=(3, 3), strides=(2, 2)),
    dict(features=4, kernel_size=(4, 4), strides=(2, 2), padding="VALID"),
    dict(features=4, kernel_size=(3, 3), strides=(2, 1), padding=((1, 2), (0, 1))),
    dict(features=4, kernel_size=(3, 3), strides=(2, 2), transpose_kernel=True),
    dict(features=4, kernel_size=(3, 3), strides=(2, 2), kernel_dilation=(2, 1)),
    dict(features=4, kernel_size=(6, 6), strides=(2, 2), padding="CIRCULAR", transpose_kernel=True),
    dict(features=4, kernel_size=(3, 3), strides=(2, 2), padding="CIRCULAR"),
    dict(features=4, kernel_size=(3, 3), use_bias=False, mask=jnp.triu(jnp.ones((3, 3, 3, 4)))),
]


@pytest.mark.parametrize("kwargs", TRANSPOSE_GRID, ids=range(len(TRANSPOSE_GRID)))
@pytest.mark.parametrize("batch", [(2,), (), (2, 3)], ids=["batched", "unbatched", "2batch"])
def test_linen_conv_transpose_matches_flax(kwargs, batch):
    x = random((*batch, 5, 6, 3), seed=4)
    ours, theirs = jl.ConvTranspose(**kwargs), nn.ConvTranspose(**kwargs)
    p = theirs.init(KEY, x)
    same_tree(ours.init(KEY, x), p)
    assert_close(ours.apply(p, x), theirs.apply(p, x), scale=4)


def test_linen_conv_local_matches_flax():
    x = random((2, 9, 8, 3), seed=5)
    for kwargs in [
        dict(features=4, kernel_size=(3, 3), strides=2),
        dict(features=2, kernel_size=(2, 3), padding="VALID", kernel_dilation=2),
    ]:
        ours, theirs = jl.ConvLocal(**kwargs), nn.ConvLocal(**kwargs)
        p = theirs.init(KEY, x)
        same_tree(ours.init(KEY, x), p)
        assert_close(ours.apply(p, x), theirs.apply(p, x), scale=4)


NNX_GRID = [
    dict(),
    dict(strides=2, padding="VALID"),
    dict(padding=((1, 0), (2, 1)), kernel_dilation=(1, 2)),
    dict(padding="CIRCULAR"),
    dict(input_dilation=2, padding=1),
    dict(feature_group_count=3, out_features=6),
    dict(use_bias=False, dtype=jnp.float64, param_dtype=jnp.float64),
    dict(mask=jnp.tril(jnp.ones((3, 3, 3, 4)))),
    dict(preferred_element_type=jnp.float64),
]


@pytest.mark.parametrize("kwargs", NNX_GRID, ids=range(len(NNX_GRID)))
@pytest.mark.parametrize("batch", [(2,), ()], ids=["batched", "unbatched"])
def test_nnx_conv_matches_flax(kwargs, batch):
    kwargs = dict(in_features=3, out_features=4, kernel_size=(3, 3)) | kwargs
    x = random((*batch, 9, 8, 3), seed=6)
    ours, theirs = jn.Conv(**kwargs, rngs=nnx.Rngs(0)), nnx.Conv(**kwargs, rngs=nnx.Rngs(0))
    same_tree(nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param))
    assert_close(ours(x), theirs(x), scale=4)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strides=(2, 2)),
        dict(strides=(2, 1), padding="VALID"),
        dict(strides=(2, 2), transpose_kernel=True),
        dict(strides=(2, 2), padding="CIRCULAR"),
    ],
)
def test_nnx_conv_transpose_matches_flax(kwargs):
    kwargs = dict(in_features=3, out_features=4, kernel_size=(3, 3)) | kwargs
    x = random((2, 5, 6, 3), seed=7)
    ours = jn.ConvTranspose(**kwargs, rngs=nnx.Rngs(0))
    theirs = nnx.ConvTranspose(**kwargs, rngs=nnx.Rngs(0))
    same_tree(nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param))
    assert_close(ours(x), theirs(x), scale=4)


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


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode(mode):
    x = random((2, 7, 8, 3), seed=9)
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    conv = jl.Conv(4, (3, 3), strides=(2, 1), padding="SAME", padding_mode=mode)
    p = conv.init(KEY, x)
    pads = jax.lax.padtype_to_pads((7, 8), (3, 3), (2, 1), "SAME")
    want = nn.Conv(4, (3, 3), strides=(2, 1), padding="VALID").apply(
        p, jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=np_mode)
    )
    assert_close(conv.apply(p, x), want, scale=4)
    # ConvTranspose: the input is extended by ceil((k-1)/s) in the mode, the output cropped.
    ct = jl.ConvTranspose(4, (3, 3), strides=(2, 2), padding_mode=mode)
    pt = ct.init(KEY, x)
    ext = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=np_mode)
    full = nn.ConvTranspose(4, (3, 3), strides=(2, 2)).apply(pt, ext)
    assert_close(ct.apply(pt, x), full[:, 2:-2, 2:-2], scale=4)
    zeros = jl.ConvTranspose(4, (3, 3), strides=(2, 2)).apply(pt, x)
    assert ct.apply(pt, x).shape == zeros.shape


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
    ("LPPool", ((2, 2), 2), {}, lambda x: jaxconv.lp_pool(x, (2, 2), p=2)),
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
            r"`mask` shape \(2, 2, 3, 4\) must equal the kernel shape \(3, 3, 3, 4\)",
        ),
        (
            lambda: jl.Conv(4, (0, 3)).init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"`kernel_size` \(=\(0, 3\)\) must be >= 1",
        ),
        (
            lambda: jl.Conv(4, (3, 3), padding="CAUSAL").init(KEY, jnp.ones((1, 5, 5, 3))),
            ValueError,
            r"'CAUSAL' needs a 1-D convolution",
        ),
        (lambda: jn.MaxPool((2, 2), bogus=1), TypeError, r"unknown argument `bogus`"),
    ],
)
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------------------ model-level proof


def linen_models(L, pool):
    """A ResNet block model and a small U-Net from a layer namespace `L`."""

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(L.Conv(8, (3, 3))(x))
            y = nn.relu(L.Conv(8, (3, 3))(x))
            y = L.Conv(8, (3, 3))(y)
            x = nn.relu(x + y)
            x = pool(x, (2, 2), (2, 2))
            return L.Conv(10, (1, 1))(x).mean(axis=(1, 2))

    class UNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            e1 = nn.relu(L.Conv(6, (3, 3))(x))
            e2 = nn.relu(L.Conv(12, (3, 3))(pool(e1, (2, 2), (2, 2))))
            d1 = L.ConvTranspose(6, (3, 3), strides=(2, 2))(e2)
            y = nn.relu(L.Conv(6, (3, 3))(jnp.concatenate([d1, e1], axis=-1)))
            return L.Conv(1, (1, 1))(y)

    return ResNet(), UNet()


def _train_linen(model, params, x, y, steps=4):
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((model.apply(p, x) - y) ** 2))(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return np.array(losses)


def test_linen_models_train_like_flax():
    x = random((4, 8, 8, 3), seed=14)
    ours = linen_models(jl, jaxconv.max_pool)
    theirs = linen_models(nn, nn.max_pool)
    targets = [random((4, 10), seed=15), random((4, 8, 8, 1), seed=16)]
    for a, b, y in zip(ours, theirs, targets):
        params = b.init(KEY, x)
        same_tree(a.init(KEY, x), params)
        la, lb = _train_linen(a, params, x, y), _train_linen(b, params, x, y)
        assert la[-1] < la[0]  # it learns
        np.testing.assert_allclose(la, lb, rtol=1e-4)


class NnxUNet(nnx.Module):
    def __init__(self, L, pool, rngs):
        self.pool = pool
        self.e1 = L.Conv(3, 6, (3, 3), rngs=rngs)
        self.e2 = L.Conv(6, 12, (3, 3), rngs=rngs)
        self.up = L.ConvTranspose(12, 6, (3, 3), strides=(2, 2), rngs=rngs)
        self.d1 = L.Conv(12, 6, (3, 3), rngs=rngs)
        self.out = L.Conv(6, 1, (1, 1), rngs=rngs)

    def __call__(self, x):
        e1 = nnx.relu(self.e1(x))
        e2 = nnx.relu(self.e2(self.pool(e1, (2, 2), (2, 2))))
        y = nnx.relu(self.d1(jnp.concatenate([self.up(e2), e1], axis=-1)))
        return self.out(y)


class NnxResNet(nnx.Module):
    def __init__(self, L, pool, rngs):
        self.pool = pool
        self.c1 = L.Conv(3, 8, (3, 3), rngs=rngs)
        self.c2 = L.Conv(8, 8, (3, 3), rngs=rngs)
        self.c3 = L.Conv(8, 8, (3, 3), rngs=rngs)
        self.head = L.Conv(8, 10, (1, 1), rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.c1(x))
        x = nnx.relu(x + self.c3(nnx.relu(self.c2(x))))
        return self.head(self.pool(x, (2, 2), (2, 2))).mean(axis=(1, 2))


def _train_nnx(model, x, y, steps=4):
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    return np.array([float(step(model, opt)) for _ in range(steps)])


@pytest.mark.parametrize("cls, target", [(NnxResNet, (4, 10)), (NnxUNet, (4, 8, 8, 1))])
def test_nnx_models_train_like_flax(cls, target):
    x, y = random((4, 8, 8, 3), seed=17), random(target, seed=18)
    ours = cls(jn, jaxconv.max_pool, nnx.Rngs(0))
    theirs = cls(nnx, nn.max_pool, nnx.Rngs(0))
    same_tree(nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param))
    la, lb = _train_nnx(ours, x, y), _train_nnx(theirs, x, y)
    assert la[-1] < la[0]
    np.testing.assert_allclose(la, lb, rtol=1e-4)
