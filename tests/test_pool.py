"""Pooling: parity with flax, PyTorch's formulas via NumPy loops, transforms and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen
from jax import lax
from jax.test_util import check_grads

import jaxconv
from tests import reference
from tests.util import assert_close, distinct, random, ties

ALGOS = ["direct", "xla", "auto"]


POOLS = [
    # (input shape, window, strides, padding)
    ((2, 9, 10, 3), (3, 3), (2, 2), "SAME"),
    ((2, 9, 10, 3), (2, 3), None, "VALID"),
    ((2, 9, 10, 3), (3, 2), (2, 1), ((1, 1), (0, 2))),
    ((9, 10, 3), (2, 2), (2, 2), "SAME"),  # unbatched
    ((2, 3, 9, 10, 3), (3, 3), (1, 2), "SAME"),  # two batch dims
    ((2, 17, 3), (4,), (3,), "SAME"),  # 1-D
    ((1, 5, 6, 7, 2), (2, 3, 2), (2, 1, 2), "VALID"),  # 3-D
]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("name", ["max", "min", "avg"])
@pytest.mark.parametrize("case", POOLS, ids=range(len(POOLS)))
def test_pools_match_flax(algorithm, name, case):
    shape, window, strides, padding = case
    x = random(shape, "float32", seed=12)
    ours = getattr(jaxconv, f"{name}_pool")(x, window, strides, padding, algorithm=algorithm)
    if name == "min":  # flax has no min_pool in linen: its generic pool is the reference
        theirs = linen.pool(x, jnp.inf, lax.min, window, strides, padding)
    else:
        theirs = getattr(linen, f"{name}_pool")(x, window, strides, padding)
    assert_close(ours, theirs, scale=2)


@pytest.mark.parametrize("case", POOLS[:4], ids=range(4))
def test_avg_pool_count_include_pad_false_matches_flax(case):
    shape, window, strides, padding = case
    x = random(shape, "float64", seed=13)  # flax's divisor follows the default float type
    theirs = linen.avg_pool(x, window, strides, padding, count_include_pad=False)
    if case == POOLS[2]:  # a last window of padding alone: flax divides 0 by 0
        assert jnp.isnan(theirs).any()
        with pytest.raises(ValueError, match=r"leaves windows of padding alone"):
            jaxconv.avg_pool(x, window, strides, padding, count_include_pad=False)
        return
    ours = jaxconv.avg_pool(x, window, strides, padding, count_include_pad=False)
    assert_close(ours, theirs, scale=2)


def test_pool_matches_flax_pool():
    x = random((2, 8, 8, 3), "float32", seed=14)
    ours = jaxconv.pool(x, 0.0, lax.add, (2, 2), (2, 2), "SAME")
    assert_close(ours, linen.pool(x, 0.0, lax.add, (2, 2), (2, 2), "SAME"), scale=2)


TORCH_CASES = [
    # (shape, window, strides, pads, dilation, ceil_mode)
    ((2, 7, 8, 2), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), True),
    ((2, 6, 6, 2), (3, 3), (2, 2), ((0, 0), (0, 0)), (1, 1), True),
    ((2, 7, 8, 2), (2, 3), (2, 2), ((1, 1), (1, 1)), (2, 1), True),
    ((2, 10, 9, 2), (3, 2), (3, 2), ((1, 1), (0, 1)), (1, 2), False),
    ((1, 11, 2), (4,), (3,), ((2, 2),), (1,), True),
    ((1, 5, 6, 5, 2), (2, 3, 2), (2, 2, 2), ((0, 0), (1, 1), (1, 1)), (1, 1, 1), True),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=range(len(TORCH_CASES)))
def test_max_pool_torch_semantics(case):
    shape, window, strides, pads, dilation, ceil_mode = case
    x = ties(shape, seed_=15)  # ties exercise first-maximum indices
    values, idx = jaxconv.max_pool(
        x, window, strides, pads, dilation=dilation, ceil_mode=ceil_mode, return_indices=True
    )
    want_v, want_i = reference.pool(
        np.asarray(x), "max", window, strides, pads, dilation, ceil_mode
    )
    np.testing.assert_array_equal(np.asarray(values), want_v)
    np.testing.assert_array_equal(np.asarray(idx), want_i)
    assert idx.dtype == jnp.int32


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", TORCH_CASES, ids=range(len(TORCH_CASES)))
def test_avg_pool_torch_semantics(case, count_include_pad):
    shape, window, strides, pads, dilation, ceil_mode = case
    x = random(shape, "float64", seed=16)
    got = jaxconv.avg_pool(
        x, window, strides, pads, count_include_pad, dilation=dilation, ceil_mode=ceil_mode
    )
    want, _ = reference.pool(
        np.asarray(x), "avg", window, strides, pads, dilation, ceil_mode, count_include_pad
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


def test_ceil_mode_by_hand():
    # L=6, k=3, s=2: floor gives 2 windows; ceil gives 3, the last [4, 6) clipped.
    x = jnp.arange(6.0)[None, :, None]
    assert jaxconv.max_pool(x, (3,), (2,), ceil_mode=True)[0, :, 0].tolist() == [2.0, 4.0, 5.0]
    assert jaxconv.avg_pool(x, (3,), (2,), ceil_mode=True)[0, :, 0].tolist() == [1.0, 3.0, 4.5]
    # L=5, k=2, s=2, pad 1: the window that would start in the right padding is dropped.
    x = jnp.arange(5.0)[None, :, None]
    got = jaxconv.max_pool(x, (2,), (2,), ((1, 1),), ceil_mode=True)[0, :, 0]
    assert got.tolist() == [0.0, 2.0, 4.0]


def test_divisor_override_and_sum_pool():
    x = random((2, 6, 6, 3), "float64", seed=17)
    s = jaxconv.sum_pool(x, (2, 2), (2, 2), "SAME")
    assert_close(jaxconv.avg_pool(x, (2, 2), (2, 2), "SAME", divisor_override=3), s / 3)
    want, _ = reference.pool(np.asarray(x), "sum", (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_allclose(np.asarray(s), want, rtol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_padding_modes(mode, kind):
    x = random((2, 7, 6, 2), "float64", seed=18)
    pads = ((2, 1), (1, 2))
    fn = jaxconv.max_pool if kind == "max" else jaxconv.avg_pool
    got = fn(x, (3, 3), (2, 1), pads, padding_mode=mode)
    want, _ = reference.pool(np.asarray(x), kind, (3, 3), (2, 1), pads, (1, 1), padding_mode=mode)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    if kind == "max":  # indices point back into the unpadded input
        values, idx = jaxconv.max_pool(
            x, (3, 3), (2, 1), pads, padding_mode=mode, return_indices=True
        )
        flat = np.asarray(x).reshape(2, -1, 2)
        picked = np.take_along_axis(flat, np.asarray(idx).reshape(2, -1, 2), axis=1)
        np.testing.assert_array_equal(picked.reshape(values.shape), np.asarray(values))


def test_lp_pool():
    x = random((2, 7, 8, 3), "float64", seed=19, low=0.1, high=2.0)
    for p in (1, 2, 3.5):
        got = jaxconv.lp_pool(x, (3, 2), (2, 2), p=p, ceil_mode=True)
        sums, _ = reference.pool(
            np.asarray(x) ** p, "sum", (3, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), ceil_mode=True
        )
        np.testing.assert_allclose(np.asarray(got), sums ** (1 / p), rtol=1e-12)


def test_max_unpool_roundtrip():
    x = random((2, 8, 7, 3), "float64", seed=20)
    v, i = jaxconv.max_pool(x, (2, 2), (2, 2), "SAME", return_indices=True)
    up = jaxconv.max_unpool(v, i, (8, 7))
    want = np.zeros((2, 8 * 7, 3))
    for n in range(2):
        for c in range(3):
            want[n, np.asarray(i)[n, ..., c].reshape(-1), c] = np.asarray(v)[n, ..., c].reshape(-1)
    np.testing.assert_array_equal(np.asarray(up), want.reshape(2, 8, 7, 3))
    # unbatched, and differentiable in the values
    up1 = jaxconv.max_unpool(v[0], i[0], (8, 7))
    np.testing.assert_array_equal(np.asarray(up1), np.asarray(up[0]))
    check_grads(
        jax.jit(lambda v: jaxconv.max_unpool(v, i, (8, 7))), (v,), order=2, modes=("fwd", "rev")
    )


ALL_POOLS = {
    "max": lambda x: jaxconv.max_pool(x, (3, 2), (2, 1), "SAME", dilation=(1, 2)),
    "min": lambda x: jaxconv.min_pool(x, (2, 2), (2, 2), "VALID", ceil_mode=True),
    "avg": lambda x: jaxconv.avg_pool(
        x, (3, 3), (2, 2), "SAME", ceil_mode=True, count_include_pad=False
    ),
    "avg_reflect": lambda x: jaxconv.avg_pool(
        x, (3, 3), (1, 1), ((1, 1), (1, 1)), padding_mode="reflect"
    ),
    "sum": lambda x: jaxconv.sum_pool(x, (2, 3), (1, 2), "SAME"),
    "lp": lambda x: jaxconv.lp_pool(x**2 + 1.0, (2, 2), (2, 2), p=3),
    "max_idx": lambda x: jaxconv.max_pool(x, (2, 2), (2, 2), return_indices=True)[0],
}


@pytest.mark.parametrize("name", list(ALL_POOLS))
def test_pool_transforms(name):
    f = ALL_POOLS[name]
    x = distinct((3, 7, 6, 2), seed_=26)
    eager = f(x)
    assert_close(jax.jit(f)(x), eager)
    assert_close(jax.vmap(f)(x[:, None])[:, 0], eager)
    check_grads(jax.jit(f), (x,), order=2, modes=("fwd", "rev"))
    _, tan = jax.jvp(f, (x,), (jnp.ones_like(x),))
    assert tan.shape == eager.shape


X = jnp.ones((2, 8, 8, 3), jnp.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: jaxconv.max_pool(X, (2, 2, 2, 2)),
            ValueError,
            r"fewer dimensions than the 4 spatial",
        ),
        (
            lambda: jaxconv.max_pool(X, (0, 2)),
            ValueError,
            r"`window_shape` \(=\(0, 2\)\) must be >= 1",
        ),
        (
            lambda: jaxconv.avg_pool(X, (2, 2), (2, -1)),
            ValueError,
            r"`strides` \(=\(2, -1\)\) must be >= 1",
        ),
        (
            lambda: jaxconv.max_pool(X, (2, 2), (2,)),
            ValueError,
            r"`strides` \(=\(2,\)\) must have 2 entries",
        ),
        (
            lambda: jaxconv.max_pool(X, 2),
            TypeError,
            r"`window_shape` must be a tuple of ints, got 2",
        ),
        (lambda: jaxconv.max_pool(X, (2, 2), padding="FULL"), ValueError, r"`padding` \(='FULL'\)"),
        (
            lambda: jaxconv.max_pool(X, (2, 2), padding_mode="mirror"),
            ValueError,
            r"`padding_mode` \(='mirror'\) must be one of",
        ),
        (
            lambda: jaxconv.max_pool(X, (2, 2), padding=((9, 9), (1, 1)), padding_mode="reflect"),
            ValueError,
            r"reflect `padding`",
        ),
        (
            lambda: jaxconv.max_pool(X, (2, 2), algorithm="fast"),
            ValueError,
            r"`algorithm` \(='fast'\) must be one of",
        ),
        (
            lambda: jaxconv.lp_pool(X, (2, 2), p=0),
            ValueError,
            r"`p` \(=0\) must be a positive number",
        ),
        (
            lambda: jaxconv.lp_pool(X, (2, 2), p=-1.5),
            ValueError,
            r"`p` \(=-1.5\) must be a positive number",
        ),
        (
            lambda: jaxconv.max_unpool(X, jnp.zeros((2, 8, 8, 2), jnp.int32), (16, 16)),
            ValueError,
            r"`indices` shape \(2, 8, 8, 2\) must equal `inputs` shape \(2, 8, 8, 3\)",
        ),
        (
            lambda: jaxconv.max_unpool(X, jnp.zeros((2, 8, 8, 3)), (16, 16)),
            TypeError,
            r"`indices` must be integers, got float",
        ),
        (
            lambda: jaxconv.max_unpool(X, jnp.zeros((2, 8, 8, 3), jnp.int32), 16),
            TypeError,
            r"`output_shape` must be a tuple of ints, got 16",
        ),
        (
            lambda: jaxconv.reduce_window(X, 0.0, "add", (1, 2, 2, 1)),
            TypeError,
            r"`computation` must be a binary callable",
        ),
        (
            lambda: jaxconv.reduce_window(X, 0.0, lax.add, (2, 2)),
            ValueError,
            r"`window_dimensions` \(=\(2, 2\)\) must have 4 entries",
        ),
        (
            lambda: jaxconv.avg_pool(X.astype(jnp.int32), (2, 2)),
            TypeError,
            r"`inputs` must have a floating dtype, got int32",
        ),
        (
            lambda: jaxconv.max_pool(X, (2, 2), ceil_mode="yes"),
            TypeError,
            r"`ceil_mode` must be a bool",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ edges


def test_lp_pool_edges():
    x = jnp.zeros((1, 4, 4, 1)).at[0, 0, 0, 0].set(2.0)
    grad = jax.grad(lambda x: jaxconv.lp_pool(x, (2, 2), (2, 2), p=2).sum())(x)
    assert jnp.isfinite(grad).all()  # all-zero windows: gradient 0, as PyTorch
    np.testing.assert_array_equal(grad[0, :, :, 0], np.eye(4)[0:1].T @ np.eye(4)[0:1])
    y = random((2, 7, 6, 3), seed=40)
    for p in (np.inf, np.float32(np.inf)):
        assert_close(jaxconv.lp_pool(y, (3, 2), (2, 1), p=p), jaxconv.max_pool(y, (3, 2), (2, 1)))
    pos = jnp.abs(y) + 0.1
    for p in (np.float64(2.0), np.int32(2), 2):
        assert_close(
            jaxconv.lp_pool(pos, (2, 2), p=p),
            jnp.sqrt(jaxconv.sum_pool(pos**2, (2, 2))),
        )


@pytest.mark.parametrize("p", [0, -1.5, float("nan"), "2", True, None])
def test_lp_pool_refuses_p(p):
    with pytest.raises(ValueError, match=r"lp_pool: `p` \(=.*\) must be a positive number"):
        jaxconv.lp_pool(jnp.ones((1, 4, 4, 1)), (2, 2), p=p)


def test_max_unpool_refuses_indices_outside_the_plane():
    v = jnp.ones((1, 2, 2, 1))
    for bad, shown in [(16, "16"), (-1, "-1")]:
        idx = jnp.zeros((1, 2, 2, 1), jnp.int32).at[0, 1, 1, 0].set(bad)
        with pytest.raises(ValueError, match=rf"`indices` holds {shown}, outside the output"):
            jaxconv.max_unpool(v, idx, (4, 4))
    # Under jit they cannot be checked: they are dropped, never wrapped to the end.
    idx = jnp.array([0, 3, -1, 16], jnp.int32).reshape(1, 2, 2, 1)
    out = jax.jit(lambda v, i: jaxconv.max_unpool(v, i, (4, 4)))(v, idx)
    assert out[0, :, :, 0].reshape(-1).tolist() == [1.0, 0, 0, 1.0] + [0.0] * 12


ZERO_SIZE_POOLS = {
    "max": (
        lambda x: jaxconv.max_pool(x, (2, 2), (2, 2)),
        lambda x: linen.max_pool(x, (2, 2), (2, 2)),
    ),
    "min": (
        lambda x: jaxconv.min_pool(x, (2, 2)),
        lambda x: linen.pool(x, np.inf, lax.min, (2, 2), (1, 1), "VALID"),
    ),
    "avg": (
        lambda x: jaxconv.avg_pool(x, (3, 3), (2, 2), "SAME"),
        lambda x: linen.avg_pool(x, (3, 3), (2, 2), "SAME"),
    ),
    "sum": (
        lambda x: jaxconv.sum_pool(x, (2, 2)),
        lambda x: linen.pool(x, 0.0, lax.add, (2, 2), (1, 1), "VALID"),
    ),
    "lp": (
        lambda x: jaxconv.lp_pool(x, (2, 2), p=2),
        lambda x: linen.pool(x, 0.0, lax.add, (2, 2), (1, 1), "VALID"),
    ),
}


@pytest.mark.parametrize("shape", [(2, 8, 8, 0), (0, 8, 8, 3), (2, 0, 8, 3), (2, 1, 8, 3)])
@pytest.mark.parametrize("name", list(ZERO_SIZE_POOLS))
def test_zero_size_inputs_give_flax_shapes(shape, name):
    ours, theirs = ZERO_SIZE_POOLS[name]
    x = jnp.ones(shape)
    assert ours(x).shape == theirs(x).shape
    v, i = jaxconv.max_pool(x, (2, 2), (2, 2), return_indices=True)
    assert jaxconv.max_unpool(v, i, shape[1:3]).shape == shape


def test_windows_of_padding_alone_are_refused():
    with pytest.raises(ValueError, match=r"leaves windows of padding alone"):
        jaxconv.avg_pool(jnp.ones((1, 4, 4, 1)), (2, 2), (2, 2), ((3, 3), (0, 0)), False)
    # Half a window of padding is fine, and counts only the input.
    y = jaxconv.avg_pool(jnp.ones((1, 4, 4, 1)), (3, 3), (2, 2), 1, count_include_pad=False)
    np.testing.assert_array_equal(y, np.ones((1, 2, 2, 1)))


def test_an_int_padding_pads_every_spatial_axis():
    x = random((2, 9, 8, 3), seed=41)
    assert_close(
        jaxconv.max_pool(x, (3, 3), (2, 2), 1),
        jaxconv.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1))),
    )
    with pytest.raises(TypeError, match=r"`padding` must be a string or a sequence"):
        jaxconv.conv_general_dilated(jnp.ones((1, 1, 4, 4)), jnp.ones((1, 1, 3, 3)), (1, 1), 1)
