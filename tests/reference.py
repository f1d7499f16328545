"""Independent NumPy loops: the second oracle for conv and pooling semantics.

Written for clarity, not speed: explicit dilation, padding/cropping and a loop
over output positions. Nothing here calls jax or jaxconv.
"""

import itertools

import numpy as np


def dilate(x, axes, factors, fill=0):
    """Insert `factor - 1` copies of `fill` between elements along each axis."""
    for axis, d in zip(axes, factors):
        if d == 1 or x.shape[axis] == 0:
            continue
        shape = list(x.shape)
        shape[axis] = 1 + d * (shape[axis] - 1)
        out = np.full(shape, fill, x.dtype)
        index = [slice(None)] * x.ndim
        index[axis] = slice(None, None, d)
        out[tuple(index)] = x
        x = out
    return x


def pad_or_crop(x, axes, pads, fill=0):
    """Pad (positive) or crop (negative) each axis by its (lo, hi) pair."""
    for axis, (lo, hi) in zip(axes, pads):
        width = [(0, 0)] * x.ndim
        width[axis] = (max(lo, 0), max(hi, 0))
        x = np.pad(x, width, constant_values=fill)
        index = [slice(None)] * x.ndim
        index[axis] = slice(max(-lo, 0), x.shape[axis] - max(-hi, 0))
        x = x[tuple(index)]
    return x


def conv(x, w, strides, pads, lhs_dilation, rhs_dilation, feature_groups=1, batch_groups=1):
    """x (N, *S, C), w (*K, I, O) -> (N', *Out, O), in float64/complex128."""
    n = x.ndim - 2
    spatial = list(range(1, n + 1))
    x = pad_or_crop(dilate(x, spatial, lhs_dilation), spatial, pads)
    kernel = w.shape[:n]
    eff = [1 + d * (k - 1) for k, d in zip(kernel, rhs_dilation)]
    out_sp = [max((s - e) // st + 1, 0) for s, e, st in zip(x.shape[1:-1], eff, strides)]
    groups = max(feature_groups, batch_groups)
    cin, cout = w.shape[-2], w.shape[-1]
    og = cout // groups
    nb = x.shape[0] // batch_groups
    out = np.zeros((nb, *out_sp, cout), np.result_type(x, w, np.float64))
    for pos in itertools.product(*map(range, out_sp)):
        for tap in itertools.product(*map(range, kernel)):
            idx = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, rhs_dilation))
            for g in range(groups):
                wk = w[tap][:, g * og : (g + 1) * og]  # (I, Og)
                if batch_groups > 1:
                    xin = x[(slice(g * nb, (g + 1) * nb), *idx)]  # (Nb, I)
                else:
                    xin = x[(slice(None), *idx)][:, g * cin : (g + 1) * cin]  # (N, I)
                out[(slice(None), *pos, slice(g * og, (g + 1) * og))] += xin @ wk
    return out
