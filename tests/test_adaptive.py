"""Adaptive and global pooling: PyTorch's bins via NumPy loops, ties and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxconv
from tests import reference
from tests.util import assert_close, distinct, random, ties


def test_adaptive_bins_by_hand():
    # PyTorch's bins on arange(5) -> 3: [0, 2), [1, 4), [3, 5).
    got = jaxconv.adaptive_avg_pool(jnp.arange(5.0)[:, None], (3,))[:, 0]
    assert got.tolist() == [0.5, 2.0, 3.5]


@pytest.mark.parametrize("out", [(3, 4), (1, 1), (7, 9), (None, 2), 3])
def test_adaptive_pools_vs_numpy(out):
    x = ties((2, 7, 5, 3), seed_=21) + random((2, 7, 5, 3), "float64", seed=22) * 0.01
    size = tuple(
        s if o is None else o for o, s in zip(out if isinstance(out, tuple) else (out,) * 2, (7, 5))
    )
    avg = jaxconv.adaptive_avg_pool(x, out)
    want, _ = reference.adaptive(np.asarray(x), size, "avg")
    np.testing.assert_allclose(np.asarray(avg), want, rtol=1e-12)
    v, i = jaxconv.adaptive_max_pool(x, out, return_indices=True)
    want_v, want_i = reference.adaptive(np.asarray(x), size, "max")
    np.testing.assert_array_equal(np.asarray(v), want_v)
    np.testing.assert_array_equal(np.asarray(i), want_i)


def test_adaptive_max_pool_ties_and_grad():
    x = ties((1, 6, 6, 2), seed_=23)
    v, i = jaxconv.adaptive_max_pool(x, (4, 3), return_indices=True)
    want_v, want_i = reference.adaptive(np.asarray(x), (4, 3), "max")
    np.testing.assert_array_equal(np.asarray(i), want_i)
    g = jax.grad(lambda x: jaxconv.adaptive_max_pool(x, (4, 3)).sum())(x)
    # Each output sends 1 to its chosen (first-maximum) input.
    want = np.zeros((1, 36, 2))
    for c in range(2):
        np.add.at(want[0, :, c], want_i[0, ..., c].reshape(-1), 1.0)
    np.testing.assert_array_equal(np.asarray(g), want.reshape(1, 6, 6, 2))
    xs = random((1, 5, 7, 2), "float64", seed=24)
    for pool in (jaxconv.adaptive_max_pool, jaxconv.adaptive_avg_pool):
        f = jax.jit(lambda x, pool=pool: pool(x, (2, 3)))
        check_grads(f, (xs,), order=2, modes=("fwd", "rev"))


def test_global_pools():
    x = random((2, 4, 5, 3), "float64", seed=25)
    assert_close(jaxconv.global_avg_pool(x), x.mean((1, 2)))
    assert_close(jaxconv.global_max_pool(x, keepdims=True), x.max((1, 2), keepdims=True))


ADAPTIVE = {
    "adaptive_avg": lambda x: jaxconv.adaptive_avg_pool(x, (3, 2)),
    "adaptive_max": lambda x: jaxconv.adaptive_max_pool(x, (3, 2)),
    "global_avg": jaxconv.global_avg_pool,
    "global_max": jaxconv.global_max_pool,
}


@pytest.mark.parametrize("name", list(ADAPTIVE))
def test_adaptive_transforms(name):
    f = ADAPTIVE[name]
    x = distinct((3, 7, 6, 2), seed_=26)
    eager = f(x)
    assert_close(jax.jit(f)(x), eager)
    assert_close(jax.vmap(f)(x[:, None])[:, 0], eager)
    check_grads(jax.jit(f), (x,), order=2, modes=("fwd", "rev"))


X = jnp.ones((2, 8, 8, 3), jnp.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: jaxconv.adaptive_avg_pool(X, (0, 2)),
            ValueError,
            r"`output_size` \(=\(0, 2\)\) must be >= 1",
        ),
        (
            lambda: jaxconv.adaptive_max_pool(X, 0),
            ValueError,
            r"`output_size` \(=\(0, 0\)\) must be >= 1",
        ),
        (
            lambda: jaxconv.global_avg_pool(jnp.ones((2, 3))),
            ValueError,
            r"`inputs` must be \(N, \*S, C\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
