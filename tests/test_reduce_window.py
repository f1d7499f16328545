"""reduce_window: parity with lax, gradients (ties included), dtypes and non-finite values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jaxconv
from tests import reference
from tests.util import FULL, assert_close, distinct, random, ties

ALGOS = ["direct", "xla", "auto"]


MONOIDS = [
    (lax.max, -np.inf),
    (jnp.maximum, -np.inf),
    (lax.min, np.inf),
    (lax.add, 0.0),
    (jnp.add, 0.0),
    (lax.mul, 1.0),
]


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
    ((2, 4, 6, 3), (1, 3, 2, 1), (1, 2, 2, 1), "VALID", None, None),  # one window on H
]
SELECT_WINDOWS = WINDOWS[:5] + WINDOWS[6:]


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
@pytest.mark.parametrize("case", SELECT_WINDOWS, ids=range(len(SELECT_WINDOWS)))
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


# --------------------------------------------------------------- drop-in edges


def test_a_computation_written_for_scalars_gives_lax_result():
    x = random((2, 6, 7), seed=50)

    def keep_larger(a, b):  # means something else on whole arrays
        return jnp.where(jnp.all(a > b), a, b)

    args = (np.float32(-np.inf), keep_larger, (1, 2, 3), (1, 1, 2), "SAME")
    assert_close(jaxconv.reduce_window(x, *args), lax.reduce_window(x, *args))


def test_bad_init_values_and_computations_are_refused():
    x = jnp.ones((4, 4))
    with pytest.raises(TypeError, match=r"`init_value` must be scalars, got shape \(3,\)"):
        jaxconv.reduce_window(x, jnp.zeros(3), lax.add, (2, 2))
    with pytest.raises(TypeError, match=r"`computation` must be a binary callable"):
        jaxconv.reduce_window(x, 0.0, None, (2, 2))
    for window, strides in [((0, 2), (1, 1)), ((2, 2), (0, 1))]:
        for error in (TypeError, ValueError):  # lax raises TypeError; ValueError code stays
            with pytest.raises(error, match=r"must be >= 1"):
                jaxconv.reduce_window(x, 0.0, lax.add, window, strides)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize(
    "computation, init", [(lax.add, np.complex64(0)), (lax.mul, np.complex64(1))]
)
def test_complex_inputs(algorithm, computation, init):
    x = random((2, 5, 6), "complex64", seed=51)
    args = (init, computation, (1, 2, 3), (1, 1, 2), "SAME")
    assert_close(jaxconv.reduce_window(x, *args, algorithm=algorithm), lax.reduce_window(x, *args))


@pytest.mark.parametrize("algorithm", ALGOS)
def test_variadic_operands(algorithm):
    """Several operands reduced together: a max that carries its position (argmax)."""
    x = distinct((2, 6, 7), seed_=52)
    pos = jnp.broadcast_to(jnp.arange(42.0).reshape(6, 7), x.shape)

    def argmax(a, b):
        (va, ia), (vb, ib) = a, b
        take = vb > va
        return jnp.where(take, vb, va), jnp.where(take, ib, ia)

    args = ((-jnp.inf, -1.0), argmax, (1, 3, 2), (1, 2, 2), "SAME")
    got = jaxconv.reduce_window((x, pos), *args, algorithm=algorithm)
    want = lax.reduce_window((x, pos), *args)
    assert len(got) == 2
    for a, b in zip(got, want):
        assert_close(a, b)
    grad = jax.grad(lambda x: jaxconv.reduce_window((x, pos), *args, algorithm="direct")[0].sum())
    assert grad(x).sum() == got[0].size  # one element per window gets its gradient
    with pytest.raises(TypeError, match=r"one scalar per operand \(2\)"):
        jaxconv.reduce_window((x, pos), 0.0, argmax, (1, 2, 2))
    with pytest.raises(TypeError, match=r"the operands must have one shape"):
        jaxconv.reduce_window((x, pos[0]), (0.0, 0.0), argmax, (1, 2, 2))
