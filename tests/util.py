"""Shared test helpers: data, tolerances and comparisons."""

import os

import jax
import numpy as np

FULL = os.environ.get("JAXCONV_FULL") == "1"

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
