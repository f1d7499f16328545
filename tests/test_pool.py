"""reduce_window and pooling: parity with lax/flax, PyTorch formulas via NumPy loops,
gradients (ties included), transforms, dtypes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jaxconv
from tests import reference
from tests.util import FULL, assert_close, random

ALGOS = ["direct", "xla", "auto"]
MONOIDS = [
    (lax.max, -np.inf),
    (jnp.maximum, -np.inf),
    (lax.min, np.inf),
    (lax.add, 0.0),
    (jnp.add, 0.0),
    (lax.mul, 1.0),
]


def distinct(shape, seed_=0):
    """Values at least 1/size apart: no near-ties for finite-difference checks."""
    rng = np.random.default_rng(seed_)
    size = int(np.prod(shape))
    return jnp.asarray(rng.permutation(size).reshape(shape) / size + 0.5, jnp.float64)


def ties(shape, seed_=0):
    """Integer-valued floats after a ReLU: many ties, many zeros."""
    rng = np.random.default_rng(seed_)
    return jnp.asarray(np.maximum(rng.integers(-3, 4, size=shape), 0), jnp.float64)


# --------------------------------------------------------------- reduce_window

WINDOWS = [
    # (shape, window, strides, padding, base_dilation, window_dilation)
    ((2, 9, 8, 3), (1, 3, 3, 1), (1, 2, 2, 1), "SAME", None, None),
    ((2, 9, 8, 3), (1, 3, 2, 1), (1, 1, 2, 1), "VALID", None, None),
    ((2, 9, 8, 3), (1, 2, 2, 1), (1, 2, 2, 1), "SAME_LOWER", None, (1, 2, 1, 1)),
    ((2, 9, 8, 3), (1, 3, 3, 1), (1, 2, 1, 1), ((0, 0), (1, 2), (-1, 1), (0, 0)), None, None),
    (
        (2, 5, 6, 3),
        (1, 3, 3, 1),
        (1, 2, 2, 1),
        ((0, 0), (1, 1), (0, 2), (0, 0)),
        (1, 2, 1, 1),
        None,
    ),
    ((11,), (4,), (3,), "SAME", None, (2,)),
    ((2, 4, 5, 6, 3), (2, 2, 3, 1, 1), (1, 1, 2, 2, 1), "SAME", None, None),
    ((1, 8, 8, 2), (1, 7, 7, 1), (1, 1, 1, 1), "SAME", None, None),  # > fold limit: separable
    ((2, 7, 7, 3), (1, 7, 7, 1), (1, 1, 1, 1), "VALID", None, None),  # whole plane: a reduce
]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("computation, init", MONOIDS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("case", WINDOWS, ids=range(len(WINDOWS)))
def test_reduce_window_matches_lax(algorithm, computation, init, case):
    shape, window, strides, padding, base, wdil = case
    x = random(shape, "float64", seed=1, low=0.5, high=1.5)
    got = jaxconv.reduce_window(
        x, init, computation, window, strides, padding, base, wdil, algorithm=algorithm
    )
    lax_comp = {jnp.maximum: lax.max, jnp.add: lax.add}.get(computation, computation)
    want = lax.reduce_window(x, init, lax_comp, window, strides, padding, base, wdil)
    assert_close(got, want)


@pytest.mark.parametrize("algorithm", ["direct", "xla"])
def test_reduce_window_generic_callable_and_init(algorithm):
    x = random((2, 7, 6, 2), "float64", seed=2)
    args = ((1, 3, 2, 1), (1, 2, 1, 1), "SAME")
    # Callables lax does not recognise, with inits that are not identities: padding is
    # skipped, not folded (XLA's rule), which matters exactly here.
    for fn, init in [
        (lambda a, b: a + b, 0.25),
        (jnp.logaddexp, 0.5),
        (lax.max, 0.3),
        (lax.add, 2.0),
    ]:
        got = jaxconv.reduce_window(x, init, fn, *args, algorithm=algorithm)
        assert_close(got, lax.reduce_window(x, init, fn, *args))

    def soft(a, b):  # not associative: XLA folds row-major from init (order unspecified
        return 0.5 * a + b  # by its spec; this pins the order jaxconv uses)

    got = jaxconv.reduce_window(
        x, 0.25, soft, (1, 3, 2, 1), (1, 2, 1, 1), "VALID", algorithm=algorithm
    )
    assert_close(got, lax.reduce_window(x, 0.25, soft, (1, 3, 2, 1), (1, 2, 1, 1), "VALID"))


def test_reduce_window_generic_is_differentiable():
    x = random((1, 6, 5, 2), "float64", seed=3)

    def f(x):
        return jaxconv.reduce_window(
            x,
            0.0,
            lambda a, b: a + jnp.sin(b),
            (1, 2, 2, 1),
            (1, 1, 1, 1),
            "SAME",
            None,
            (1, 2, 1, 1),
        )

    check_grads(jax.jit(f), (x,), order=2, modes=("fwd", "rev"))
    # The same sum written as a monoid over sin(x) gives the same gradient.
    g = jax.grad(lambda x: f(x).sum())(x)
    h = jax.grad(
        lambda x: lax.reduce_window(
            jnp.sin(x), 0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "SAME", None, (1, 2, 1, 1)
        ).sum()
    )(x)
    assert_close(g, h)


@pytest.mark.parametrize("computation, init", [(lax.max, -np.inf), (lax.min, np.inf)])
@pytest.mark.parametrize("case", WINDOWS[:5] + WINDOWS[6:], ids=range(8))
def test_select_gradient_matches_lax_with_ties(computation, init, case):
    shape, window, strides, padding, base, wdil = case
    if wdil is not None and any(d > 1 for d in wdil):
        return  # lax has no VJP with window dilation: see the NumPy test below
    x = ties(shape, seed_=4)
    ct = random(
        lax.reduce_window(x, init, computation, window, strides, padding, base).shape,
        "float64",
        seed=5,
    )

    def loss(f):
        return lambda x: jnp.vdot(f(x), ct)

    got = jax.grad(
        loss(
            lambda x: jaxconv.reduce_window(
                x, init, computation, window, strides, padding, base, wdil
            )
        )
    )(x)
    if not isinstance(padding, str) and min(map(min, padding)) < 0:
        # lax's max-pool VJP fails on negative padding: use the NumPy rule instead.
        sign = 1 if computation is lax.max else -1
        want = sign * reference.max_pool_grad(
            sign * np.asarray(x),
            window[1:-1],
            strides[1:-1],
            padding[1:-1],
            (1, 1),
            sign * np.asarray(ct),
        )
        want = jnp.asarray(want)
    else:
        want = jax.grad(
            loss(
                lambda x: lax.reduce_window(
                    x, init, computation, window, strides, padding, base, wdil
                )
            )
        )(x)
    assert_close(got, want)
    # Forward mode is the same linear map: <jvp(t), ct> == <t, grad>. (lax's own JVP
    # breaks ties by XLA's reduction order, which need not agree with its VJP.)
    t = random(shape, "float64", seed=6)
    _, tan = jax.jvp(
        lambda x: jaxconv.reduce_window(x, init, computation, window, strides, padding, base, wdil),
        (x,),
        (t,),
    )
    np.testing.assert_allclose(float(jnp.vdot(tan, ct)), float(jnp.vdot(t, got)), rtol=1e-12)
    # Without ties it equals lax's JVP.
    xd = distinct(shape, seed_=6)
    _, tan = jax.jvp(
        lambda x: jaxconv.reduce_window(x, init, computation, window, strides, padding, base, wdil),
        (xd,),
        (t,),
    )
    _, tan_ref = jax.jvp(
        lambda x: lax.reduce_window(x, init, computation, window, strides, padding, base, wdil),
        (xd,),
        (t,),
    )
    assert_close(tan, tan_ref)


@pytest.mark.parametrize("dilation", [(1, 1), (2, 1), (2, 2)])
def test_dilated_max_pool_gradient_vs_numpy(dilation):
    x = ties((2, 9, 8, 3), seed_=7)
    ct = random(
        jaxconv.max_pool(x, (3, 2), (2, 1), "SAME", dilation=dilation).shape, "float64", seed=8
    )
    got = jax.grad(
        lambda x: jnp.vdot(jaxconv.max_pool(x, (3, 2), (2, 1), "SAME", dilation=dilation), ct)
    )(x)
    eff = [d * (k - 1) + 1 for k, d in zip((3, 2), dilation)]
    pads = lax.padtype_to_pads((9, 8), eff, (2, 1), "SAME")
    want = reference.max_pool_grad(np.asarray(x), (3, 2), (2, 1), pads, dilation, np.asarray(ct))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)


@pytest.mark.parametrize("computation, init", [(lax.max, -np.inf), (lax.add, 0.0), (lax.mul, 1.0)])
def test_reduce_window_check_grads(computation, init):
    x = distinct((1, 6, 7, 2), seed_=9)

    def f(x):
        return jaxconv.reduce_window(
            x,
            init,
            computation,
            (1, 3, 2, 1),
            (1, 2, 1, 1),
            ((0, 0), (1, 1), (0, 1), (0, 0)),
            None,
            (1, 1, 2, 1),
        )

    check_grads(jax.jit(f), (x,), order=2, modes=("fwd", "rev"))


@seed(20261127)
@settings(max_examples=150 if FULL else 30, deadline=None, derandomize=True)
@given(data=st.data())
def test_hypothesis_reduce_window(data):
    n = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.integers(1, 6)) for _ in range(n))
    window = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    strides = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    base = tuple(data.draw(st.integers(1, 2)) for _ in range(n))
    wdil = tuple(data.draw(st.integers(1, 2)) for _ in range(n))
    padding = data.draw(
        st.one_of(
            st.sampled_from(["VALID", "SAME"]),
            st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2)) for _ in range(n)]),
        )
    )
    computation, init = data.draw(
        st.sampled_from([(lax.max, -np.inf), (lax.add, 0.0), (lax.min, np.inf)])
    )
    x = random(shape, "float64", seed=10)
    want = lax.reduce_window(x, init, computation, window, strides, padding, base, wdil)
    got = jaxconv.reduce_window(x, init, computation, window, strides, padding, base, wdil)
    assert_close(got, want)


@pytest.mark.parametrize("dtype", ["int32", "int8", "float16", "bfloat16", "float32"])
@pytest.mark.parametrize(
    "computation, kind", [(lax.max, "max"), (lax.min, "min"), (lax.add, "add")]
)
def test_reduce_window_dtypes(dtype, computation, kind):
    from jaxconv._reduce_window import identity

    x = random((2, 7, 7, 3), dtype, seed=11)
    init = identity(kind, x.dtype)
    args = ((1, 3, 3, 1), (1, 2, 2, 1), "SAME")
    got = jaxconv.reduce_window(x, init, computation, *args)
    want = lax.reduce_window(x, init, computation, *args)
    assert got.dtype == want.dtype
    # Sums of 16-bit floats may round differently by order; others are exact.
    assert_close(got, want, scale=1 if kind != "add" else 2)


def test_nan_and_inf_propagate():
    x = jnp.asarray([[1.0, np.nan, 3.0, -np.inf, np.inf, 2.0, 0.0]])[..., None]
    for name, init, fn in [
        ("max", -jnp.inf, lax.max),
        ("min", jnp.inf, lax.min),
        ("sum", 0.0, lax.add),
    ]:
        ours = getattr(jaxconv, f"{name}_pool")(x, (2,), (1,), "SAME")
        theirs = lax.reduce_window(x, init, fn, (1, 2, 1), (1, 1, 1), "SAME")
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


# ------------------------------------------------------------- flax drop-ins

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
    ours = jaxconv.avg_pool(x, window, strides, padding, count_include_pad=False)
    theirs = linen.avg_pool(x, window, strides, padding, count_include_pad=False)
    assert_close(ours, theirs, scale=2)


def test_pool_matches_flax_pool():
    x = random((2, 8, 8, 3), "float32", seed=14)
    ours = jaxconv.pool(x, 0.0, lax.add, (2, 2), (2, 2), "SAME")
    assert_close(ours, linen.pool(x, 0.0, lax.add, (2, 2), (2, 2), "SAME"), scale=2)


# ------------------------------------------------ PyTorch semantics (NumPy loops)

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


# ----------------------------------------------------------- adaptive / global


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


# ------------------------------------------------------------------ transforms

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
    "adaptive_avg": lambda x: jaxconv.adaptive_avg_pool(x, (3, 2)),
    "adaptive_max": lambda x: jaxconv.adaptive_max_pool(x, (3, 2)),
    "global_avg": jaxconv.global_avg_pool,
    "global_max": jaxconv.global_max_pool,
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


# ---------------------------------------------------------------------- errors

X = jnp.ones((2, 8, 8, 3), jnp.float32)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: jaxconv.max_pool(X, (2, 2, 2, 2)),
            ValueError,
            r"fewer dimensions than the 4 window",
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
            lambda: jaxconv.global_avg_pool(jnp.ones((2, 3))),
            ValueError,
            r"`inputs` must be \(N, \*S, C\)",
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
