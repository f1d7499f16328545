"""jaxconv.nnx: same constructor, parameter tree and outputs as flax.nnx, jaxconv's
extras, `swap`, and models that train identically."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxconv
from jaxconv import nnx as jn
from tests.util import assert_close, random, same_tree

KEY = jax.random.key(0)


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
