"""Shared test helpers: data, tolerances and comparisons."""

import os

import jax
import numpy as np

FULL = os.environ.get("JAXCONV_FULL") == "1"


def grad_order(case, cases, eligible=lambda case: True) -> int:
    """The `check_grads` order for `case`, one of `cases`: 2 (several times the cost of
    1) on the first eligible case and, in `make test-full`, on every eligible one."""
    if not eligible(case):
        return 1
    return 2 if FULL or case == next(c for c in cases if eligible(c)) else 1


# Tolerances for comparing against lax at precision="highest", per input dtype.
TOL = {
    np.dtype("float16"): dict(rtol=2e-2, atol=2e-2),
    np.dtype(jax.numpy.bfloat16): dict(rtol=6e-2, atol=6e-2),
    np.dtype("float32"): dict(rtol=2e-5, atol=2e-5),
    np.dtype("float64"): dict(rtol=1e-12, atol=1e-12),
    np.dtype("complex64"): dict(rtol=2e-5, atol=2e-5),
    np.dtype("int32"): dict(rtol=0, atol=0),
    np.dtype("int8"): dict(rtol=0, atol=0),
}


def tol(dtype, scale=1.0):
    """Tolerance dict for `dtype`, widened by `scale` (e.g. for long reductions)."""
    t = TOL[np.dtype(dtype)]
    return {k: v * scale for k, v in t.items()}


def random(shape, dtype="float32", seed=0, low=-1.0, high=1.0):
    """Reproducible test data; integer dtypes get small integers."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return jax.numpy.asarray(rng.integers(-3, 4, size=shape), dtype)
    if dtype.kind == "c":
        data = rng.uniform(low, high, size=shape) + 1j * rng.uniform(low, high, size=shape)
        return jax.numpy.asarray(data, dtype)
    return jax.numpy.asarray(rng.uniform(low, high, size=shape), dtype)


def assert_close(got, want, dtype=None, scale=1.0):
    """assert_allclose in float64 with the tolerance of `dtype` (default: got's)."""
    dtype = np.dtype(dtype or want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(
        np.asarray(got.astype(np.complex128 if dtype.kind == "c" else np.float64)),
        np.asarray(want.astype(np.complex128 if dtype.kind == "c" else np.float64)),
        **tol(dtype, scale),
    )


LAYOUT = {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC"), 5: ("NDHWC", "DHWIO", "NDHWC")}
"""Channels-last dimension numbers by rank."""


def sds(shape, dtype="float32"):
    return jax.ShapeDtypeStruct(
        shape, np.dtype(dtype) if dtype != "bfloat16" else jax.numpy.bfloat16
    )


def conv_spec_of(
    xs, ws, strides, groups=1, padding="SAME", lhs_dil=None, rhs_dil=None, dn=None, dtype="float32"
):
    """The checked `ConvSpec` of a conv on shapes xs, ws (channels-last unless `dn`)."""
    from jaxconv._spec import conv_spec

    dn = dn or LAYOUT[len(xs)]
    return conv_spec(
        sds(xs, dtype),
        sds(ws, dtype),
        strides,
        padding,
        lhs_dil,
        rhs_dil,
        dn,
        groups,
        1,
        None,
        None,
        "test",
    )


def problem_of(*args, **kwargs):
    """The canonical `Problem` of `conv_spec_of(*args, **kwargs)`."""
    return conv_spec_of(*args, **kwargs).problem


def compiled_memory(fn, *args):
    """(temp, peak) bytes of the compiled `fn`, as `make bench` reports them."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    temp = stats.temp_size_in_bytes
    peak = temp + stats.argument_size_in_bytes + stats.output_size_in_bytes
    return temp, peak - stats.alias_size_in_bytes


def equations(fn, *args, primitive: str):
    """The equations of `primitive` in fn's jaxpr, nested ones included."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == primitive:
                found.append(eqn)
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr
                    if hasattr(sub, "eqns"):
                        walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def distinct(shape, seed_=0):
    """Values at least 1/size apart: no near-ties for finite-difference checks."""
    rng = np.random.default_rng(seed_)
    size = int(np.prod(shape))
    return jax.numpy.asarray(rng.permutation(size).reshape(shape) / size + 0.5, jax.numpy.float64)


def ties(shape, seed_=0):
    """Integer-valued floats after a ReLU: many ties, many zeros."""
    rng = np.random.default_rng(seed_)
    return jax.numpy.asarray(np.maximum(rng.integers(-3, 4, size=shape), 0), jax.numpy.float64)


def supported(algorithm, *args, **kwargs):
    """Whether `algorithm` accepts the conv (chosen_algorithm raises otherwise)."""
    import jaxconv

    try:
        jaxconv.chosen_algorithm(*args, algorithm=algorithm, **kwargs)
    except ValueError as e:
        if "cannot run this problem" in str(e):
            return False
        raise
    return True


def both(algorithm, lhs, rhs, *args, **kwargs):
    """(jaxconv with `algorithm`, lax at HIGHEST) on the same arguments."""
    import jaxconv

    got = jaxconv.conv_general_dilated(lhs, rhs, *args, algorithm=algorithm, **kwargs)
    kwargs.setdefault("precision", jax.lax.Precision.HIGHEST)
    want = jax.lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
    return got, want


def same_tree(a, b):
    """Two pytrees with the same structure, shapes, dtypes and values."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
