"""Window helpers shared by the primitive algorithms: padding and strided taps."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._padding import dilate_dim
from jaxconv._typing import ConvParams


def pad_spatial(x, pads, interior, value, lead: int = 1, trail: int = 2):
    """`lax.pad` on the spatial axes only: interior holes first, then (lo, hi) edges.

    x has `lead` axes before and `trail` after the spatial ones. Negative edges crop.
    """
    none = [(0, 0, 0)]
    config = none * lead + [(lo, hi, d - 1) for (lo, hi), d in zip(pads, interior)] + none * trail
    if all(c == (0, 0, 0) for c in config):
        return x
    return lax.pad(x, np.asarray(value, x.dtype), config)


def padded_input(x, p: ConvParams):
    """Input (N, *S, G, Ig) dilated by `lhs_dilation` and padded by `pads`: (N, *Sp, G, Ig)."""
    return pad_spatial(x, p.pads, p.lhs_dilation, 0)


def out_spatial(padded_shape, kernel_shape, p: ConvParams):
    """Output spatial shape from the padded input and the undilated kernel."""
    return tuple(
        max((size - dilate_dim(k, d)) // s + 1, 0)
        for size, k, d, s in zip(padded_shape, kernel_shape, p.rhs_dilation, p.strides)
    )


def taps(kernel_shape):
    """Every kernel tap as an index tuple, in row-major order."""
    return itertools.product(*map(range, kernel_shape))


def padded_tap_window(x, tap, fill, pads, strides, dilation, out):
    """What tap `tap` meets at every output position of the zero-/`fill`-padded `x`,
    without materialising the padded `x`.

    Every argument covers all axes of `x`. The in-bounds part is one strided
    slice; the positions that fall in the padding are restored by a small
    `lax.pad` of that slice, which XLA fuses into elementwise consumers (a
    padded copy of `x` would cost a full pass and its memory).
    """
    start, limit, config = [], [], []
    for t, d, s, (lo, _), o, size in zip(tap, dilation, strides, pads, out, x.shape):
        first = max(0, -(-(lo - t * d) // s))  # first output whose input is in bounds
        last = min(o - 1, (size - 1 + lo - t * d) // s)
        if first > last:  # this tap only ever meets padding
            return jnp.full(out, fill, x.dtype)
        start.append(first * s + t * d - lo)
        limit.append(last * s + t * d - lo + 1)
        config.append((first, o - 1 - last, 0))
    window = lax.slice(x, start, limit, strides)
    if all(c == (0, 0, 0) for c in config):
        return window
    return lax.pad(window, jnp.asarray(fill, x.dtype), config)


def take_rows(x, index, axis: int):
    """x's rows `index` (a traced int vector) along `axis`, zero where they fall outside
    it: padding read in place, with no padded copy of x."""
    inside = (index >= 0) & (index < x.shape[axis])
    rows = jnp.take(x, jnp.clip(index, 0, x.shape[axis] - 1), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    mask = inside.reshape(shape)  # (1, .., L, .., 1): the L rows taken on `axis`
    return jnp.where(mask, rows, jnp.zeros((), x.dtype))


def strided_window(x, tap, dilation, strides, out, lead: int = 1):
    """The input elements that kernel tap `tap` meets at every output position.

    x: (*lead, *Sp, *rest) -> (*lead, *out, *rest), one strided slice.
    """
    start = [0] * x.ndim
    limit = list(x.shape)
    step = [1] * x.ndim
    for i, (t, d, s, o) in enumerate(zip(tap, dilation, strides, out)):
        start[lead + i] = t * d
        limit[lead + i] = t * d + (o - 1) * s + 1
        step[lead + i] = s
    return lax.slice(x, start, limit, step)
