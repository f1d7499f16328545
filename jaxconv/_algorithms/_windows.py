"""Window helpers shared by the algorithms and the pools: padding, taps and strided windows.

Convs and pools both read, for each kernel tap, the input elements that tap meets at
every output position: one strided slice of the (padded) input. These are the only
places that build such slices and padding configurations.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._shapes import NUMPY_PAD_MODES, definitely, dilate_dim, output_shape


def taps(kernel_shape):
    """Every kernel tap as an index tuple, in row-major order."""
    return itertools.product(*map(range, kernel_shape))


def pad_spatial(x, pads, interior, value, lead: int = 1, trail: int = 2):
    """`lax.pad` on the spatial axes only: `interior` holes first, then (lo, hi) edges.

    x has `lead` axes before and `trail` after the spatial ones. Negative edges crop.
    """
    none = [(0, 0, 0)]
    config = none * lead + [(lo, hi, d - 1) for (lo, hi), d in zip(pads, interior)] + none * trail
    if all(c == (0, 0, 0) for c in config):
        return x
    return lax.pad(x, np.asarray(value, x.dtype), config)


def padded_input(x, p):
    """Canonical input (N, *S, G, Ig) dilated by `p.lhs_dilation` and padded by
    `p.pads`: (N, *Sp, G, Ig)."""
    return pad_spatial(x, p.pads, p.lhs_dilation, 0)


def pad_mode(x, pads, mode: str):
    """(N, *S, C) padded on its spatial axes with data: `mode` is "reflect",
    "replicate" or "circular" (`_shapes.PADDING_MODES`); pads >= 0."""
    if all(definitely(lambda lo=lo, hi=hi: lo == hi == 0) for lo, hi in pads):
        return x
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=NUMPY_PAD_MODES[mode])


def out_spatial(padded_shape, kernel_shape, p):
    """Output spatial shape from the padded input and the undilated kernel."""
    window = [dilate_dim(k, d) for k, d in zip(kernel_shape, p.rhs_dilation)]
    return output_shape(padded_shape, window, p.strides, [(0, 0)] * len(window))


def strided_window(x, tap, dilation, strides, out, lead: int = 1):
    """The elements of an already padded `x` that kernel tap `tap` meets at every
    output position: x (*lead, *Sp, *rest) -> (*lead, *out, *rest), one strided slice.
    """
    start = [0] * x.ndim
    limit = list(x.shape)
    step = [1] * x.ndim
    for i, (t, d, s, o) in enumerate(zip(tap, dilation, strides, out)):
        start[lead + i] = t * d
        limit[lead + i] = t * d + (o - 1) * s + 1
        step[lead + i] = s
    return lax.slice(x, start, limit, step)


def kernel_tap(w, tap):
    """Tap `tap` of a kernel w (*K, *rest) with its kernel axes kept: (*1, *rest), one
    slice that broadcasts against a (N, *O, ...) window of the same rank."""
    start = (*tap, *(0,) * (w.ndim - len(tap)))
    return lax.slice(w, start, (*(t + 1 for t in tap), *w.shape[len(tap) :]))


def tap_sum(window, w, kernel, dtype):
    """The fold: sum over the taps of `kernel` of `window(tap)` (N, *O, C[, 1]) times
    the kernel's tap (`kernel_tap` of w (*K, 1, C[, M])), in `dtype` -> (N, *O, C[, M]);
    None for a kernel with no taps."""
    acc = None
    for tap in taps(kernel):
        term = window(tap).astype(dtype) * kernel_tap(w, tap).astype(dtype)  # (N, *O, C[, M])
        acc = term if acc is None else acc + term
    return acc


def sliced_patches(xp, kernel, p, out):
    """Every tap's window of an already padded input, one strided slice per tap,
    concatenated along the channels, tap-major: xp (N, *Sp, *rest, G, Ig) ->
    (N, *O, *rest, G, T*Ig), the taps of `kernel` over the first len(kernel) spatial
    axes (all of them: im2col's patch matrix; the leading ones: xla2d's stacked taps).
    """
    windows = [strided_window(xp, tap, p.rhs_dilation, p.strides, out) for tap in taps(kernel)]
    return jnp.concatenate(windows, axis=-1)  # (N, *O, *rest, G, T*Ig)


def tap_window(x, tap, fill, pads, strides, dilation, out, base_dilation=None):
    """What tap `tap` meets at every output position of `x` padded by `pads` with
    `fill` (and dilated by `base_dilation`), without a padded copy of `x`.

    Every argument covers all axes of `x`; only the low pads matter. The in-bounds
    part is one strided slice; the positions that fall in the padding are restored by
    a small `lax.pad` of that slice, which XLA fuses into elementwise consumers (a
    padded copy of `x` would cost a full pass and its memory). With base dilation,
    `x` is padded and dilated first.
    """
    fill = jnp.asarray(fill, x.dtype)
    if base_dilation is not None and any(b > 1 for b in base_dilation):
        config = [(lo, hi, b - 1) for (lo, hi), b in zip(pads, base_dilation)]
        xp = lax.pad(x, fill, config)
        start = [t * d for t, d in zip(tap, dilation)]
        limit = [b + (o - 1) * s + 1 for b, o, s in zip(start, out, strides)]
        return lax.slice(xp, start, limit, strides)
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
    return lax.pad(window, fill, config)


def axis_tap_window(x, t, fill, axis, stride, dilation, lo, out):
    """`tap_window` along one axis: tap `t` of a window over `axis` alone."""
    ones = [1] * x.ndim
    tap, strides, dil = [0] * x.ndim, list(ones), list(ones)
    pads, shape = [(0, 0)] * x.ndim, list(x.shape)
    tap[axis], strides[axis], dil[axis], pads[axis], shape[axis] = t, stride, dilation, (lo, 0), out
    return tap_window(x, tap, fill, pads, strides, dil, shape)


def take_rows(x, index, axis: int):
    """x's rows `index` (a traced int vector) along `axis`, zero where they fall outside
    it: padding read in place, with no padded copy of x."""
    inside = (index >= 0) & (index < x.shape[axis])
    rows = jnp.take(x, jnp.clip(index, 0, x.shape[axis] - 1), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = index.shape[0]
    mask = inside.reshape(shape)  # (1, .., L, .., 1): the L rows taken on `axis`
    return jnp.where(mask, rows, jnp.zeros((), x.dtype))


def grouped_dot(a, b, p, acc_dtype):
    """Contract a (..., G, Ig) with b (Ig, G, Og) over Ig, batched over G -> (..., G, Og).

    With G == 1 this is a plain GEMM of a flattened to one row per position, so that
    its transpose with respect to b (the kernel gradient) contracts one axis of each
    operand: contracting the leading axes of a and of the cotangent, XLA:CPU copies
    the cotangent transposed first. Otherwise a batched GEMM whose batch axis
    dot_general puts first, so the result is moved back next to Og.
    """
    groups = a.shape[-2]
    if groups == 1:
        rows = a.reshape(math.prod(a.shape[:-2]), a.shape[-1])  # (M, Ig)
        out = lax.dot_general(
            rows,
            b.reshape(b.shape[0], b.shape[-1]),  # (Ig, Og)
            (((1,), (0,)), ((), ())),
            precision=p.precision,
            preferred_element_type=acc_dtype,
        )  # (M, Og)
        return out.reshape(*a.shape[:-1], b.shape[-1])  # (..., 1, Og)
    out = lax.dot_general(
        a,
        b,
        (((a.ndim - 1,), (0,)), ((a.ndim - 2,), (1,))),
        precision=p.precision,
        preferred_element_type=acc_dtype,
    )  # (G, ..., Og)
    return jax.numpy.moveaxis(out, 0, -2)  # (..., G, Og)
