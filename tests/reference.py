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


_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pool(
    x,
    kind,
    window,
    strides,
    pads,
    dilation,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    padding_mode="constant",
):
    """PyTorch's pooling formulas as plain loops. x (N, *S, C) -> (values, indices).

    kind: "max" (indices are PyTorch's flat h*W+w, first maximum, NaN wins),
    "avg" or "sum". Constant padding never wins a max; for avg it counts in the
    divisor when count_include_pad. The ceil_mode overhang never counts.
    """
    n = x.ndim - 2
    plane = np.arange(int(np.prod(x.shape[1:-1]))).reshape(x.shape[1:-1])
    if padding_mode in _NP_MODES:
        width = [(0, 0)] + list(pads) + [(0, 0)]
        x = np.pad(x, width, mode=_NP_MODES[padding_mode])
        plane = np.pad(plane, pads, mode=_NP_MODES[padding_mode])
        pads = [(0, 0)] * n
    size = x.shape[1:-1]
    outs = []
    for s, (lo, hi), k, st, d in zip(size, pads, window, strides, dilation):
        eff = d * (k - 1) + 1
        span = s + lo + hi - eff
        o = (-(-span // st) if ceil_mode else span // st) + 1
        if ceil_mode and (o - 1) * st >= s + lo:
            o -= 1
        outs.append(max(o, 0))
    values = np.zeros((x.shape[0], *outs, x.shape[-1]))
    indices = np.zeros((x.shape[0], *outs, x.shape[-1]), np.int64)
    for pos in itertools.product(*map(range, outs)):
        taps_in, count_pad = [], 1
        for tap in itertools.product(*map(range, window)):
            p = [
                o * st - lo + t * d
                for o, st, (lo, _), t, d in zip(pos, strides, pads, tap, dilation)
            ]
            if all(0 <= q < s for q, s in zip(p, size)):
                taps_in.append(tuple(p))
        for o, st, (lo, hi), k, d, s in zip(pos, strides, pads, window, dilation, size):
            q = o * st - lo + np.arange(k) * d
            count_pad *= int(((q >= -lo) & (q < s + hi)).sum())
        for nb in range(x.shape[0]):
            for c in range(x.shape[-1]):
                vals = [x[(nb, *p, c)] for p in taps_in]
                if kind == "max":
                    best, arg = -np.inf, plane[taps_in[0]] if taps_in else 0
                    for v, p in zip(vals, taps_in):
                        if v > best or np.isnan(v):  # PyTorch's update rule
                            best, arg = v, plane[p]
                    values[(nb, *pos, c)], indices[(nb, *pos, c)] = best, arg
                else:
                    total = float(np.sum(vals)) if vals else 0.0
                    if kind == "sum":
                        div = 1
                    elif divisor_override:
                        div = divisor_override
                    elif padding_mode in _NP_MODES or count_include_pad:
                        div = count_pad
                    else:
                        div = len(taps_in)
                    values[(nb, *pos, c)] = total / div
    return values, indices


def max_pool_grad(x, window, strides, pads, dilation, cotangent):
    """Gradient of max pooling that gives each window's cotangent to its first maximum.

    x (N, *S, C); padding never wins; this is select_and_scatter's rule.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    _, idx = pool(x, "max", window, strides, pads, dilation)
    size = x.shape[1:-1]
    for nb in range(x.shape[0]):
        for c in range(x.shape[-1]):
            for pos in itertools.product(*map(range, idx.shape[1:-1])):
                flat = idx[(nb, *pos, c)]
                grad[(nb, *np.unravel_index(flat, size), c)] += cotangent[(nb, *pos, c)]
    return grad


def adaptive(x, out_size, kind):
    """PyTorch's adaptive pooling bins as loops. x (N, *S, C) -> (values, flat indices)."""
    size = x.shape[1:-1]
    bins = [
        [(i * s // o, -(-((i + 1) * s) // o)) for i in range(o)] for s, o in zip(size, out_size)
    ]
    values = np.zeros((x.shape[0], *out_size, x.shape[-1]))
    indices = np.zeros(values.shape, np.int64)
    for pos in itertools.product(*map(range, out_size)):
        ranges = [range(*bins[d][i]) for d, i in enumerate(pos)]
        cells = list(itertools.product(*ranges))
        for nb in range(x.shape[0]):
            for c in range(x.shape[-1]):
                vals = [x[(nb, *p, c)] for p in cells]
                if kind == "avg":
                    values[(nb, *pos, c)] = np.mean(vals)
                else:
                    k = int(np.argmax(vals))  # first maximum
                    values[(nb, *pos, c)] = vals[k]
                    indices[(nb, *pos, c)] = np.ravel_multi_index(cells[k], size)
    return values, indices
