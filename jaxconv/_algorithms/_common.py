"""Window helpers shared by the primitive algorithms: padding and strided taps."""

from __future__ import annotations

import itertools

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
