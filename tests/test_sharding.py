"""conv, conv_transpose and pooling on sharded inputs: same values, expected shardings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxconv
from tests.util import assert_close, random

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() >= 4, "conftest forces 4 host devices"
    return jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def spec_of(x):
    return tuple(x.sharding.spec) + (None,) * (x.ndim - len(x.sharding.spec))


CASES = {
    "conv_dense": lambda x, w: jaxconv.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=NHWC
    ),
    "conv_direct": lambda x, w: jaxconv.conv_general_dilated(
        x, w, (2, 1), "SAME", dimension_numbers=NHWC, algorithm="direct"
    ),
    "conv_transpose": lambda x, w: jaxconv.conv_transpose(x, w, (2, 2), "SAME"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_batch_sharded(mesh, name):
    f = CASES[name]
    x, w = random((8, 9, 10, 3), seed=1), random((3, 3, 3, 8), seed=2)
    want = f(x, w)
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    got = jax.jit(f)(xs, w)
    assert_close(got, want)
    assert spec_of(got)[0] == "data"


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_sharded_on_output_features(mesh, name):
    f = CASES[name]
    x, w = random((2, 9, 10, 3), seed=3), random((3, 3, 3, 8), seed=4)
    want = f(x, w)
    ws = jax.device_put(w, NamedSharding(mesh, P(None, None, None, "data")))
    got = jax.jit(f)(x, ws)
    assert_close(got, want)
    assert spec_of(got)[-1] == "data"


def test_depthwise_and_pooling_batch_sharded(mesh):
    x = random((8, 12, 12, 4), seed=5)
    w = random((3, 3, 1, 4), seed=6)
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    fns = [
        lambda x: jaxconv.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=4
        ),
        lambda x: jaxconv.max_pool(x, (3, 3), (2, 2), "SAME"),
        lambda x: jaxconv.avg_pool(x, (2, 2), (2, 2), ceil_mode=True),
        lambda x: jaxconv.adaptive_avg_pool(x, (3, 3)),
    ]
    for f in fns:
        got = jax.jit(f)(xs)
        assert_close(got, f(x))
        assert spec_of(got)[0] == "data"
        # gradients flow through sharded inputs too
        g = jax.jit(jax.grad(lambda x, f=f: jnp.sum(f(x) ** 2)))(xs)
        np.testing.assert_allclose(
            np.asarray(g),
            np.asarray(jax.grad(lambda x, f=f: jnp.sum(f(x) ** 2))(x)),
            rtol=1e-5,
            atol=1e-6,
        )
