"""jaxconv.linen: same constructor, parameter tree and outputs as flax.linen, jaxconv's
extras, `swap`, and models that train identically."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxconv
from jaxconv import linen as jl
from tests.util import assert_close, random, same_tree

KEY = jax.random.key(0)


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
