"""The "direct" algorithm: one strided slice and one GEMM per kernel tap."""

from __future__ import annotations

import jax
from jax import lax

from jaxconv._algorithms._common import out_spatial, padded_input, strided_window, taps
from jaxconv._typing import ConvParams


def grouped_dot(a, b, p: ConvParams, acc_dtype):
    """Contract a (..., G, Ig) with b (Ig, G, Og) over Ig, batched over G -> (..., G, Og).

    With G == 1 this is a plain GEMM; otherwise a batched one whose batch axis
    dot_general puts first, so the result is moved back next to Og.
    """
    groups = a.shape[-2]
    if groups == 1:
        out = lax.dot_general(
            a[..., 0, :],
            b[:, 0, :],
            (((a.ndim - 2,), (0,)), ((), ())),
            precision=p.precision,
            preferred_element_type=acc_dtype,
        )  # (..., Og)
        return out[..., None, :]  # (..., 1, Og)
    out = lax.dot_general(
        a,
        b,
        (((a.ndim - 1,), (0,)), ((a.ndim - 2,), (1,))),
        precision=p.precision,
        preferred_element_type=acc_dtype,
    )  # (G, ..., Og)
    return jax.numpy.moveaxis(out, 0, -2)  # (..., G, Og)


def conv_direct(x, w, p: ConvParams):
    """Convolution as a sum over kernel taps of strided-slice GEMMs.

    out[n, o, g, :] = sum_k x_pad[n, o*s + k*d, g, :] @ w[k, :, g, :]

    Shapes: N batch, S/O input/output spatial, K kernel, G groups, Ig/Og
    per-group channels. x: (N, *S, G, Ig); w: (*K, Ig, G, Og). Returns
    (N, *O, G, Og). Supports every configuration lax does; memory is one output
    plus one window at a time. Wins for few taps and many channels.
    """
    with jax.named_scope("jaxconv.direct"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        out = out_spatial(xp.shape[1:-2], kernel, p)
        acc = None
        for tap in taps(kernel):
            window = strided_window(xp, tap, p.rhs_dilation, p.strides, out)  # (N, *O, G, Ig)
            term = grouped_dot(window, w[tap], p, p.acc_dtype)  # (N, *O, G, Og)
            acc = term if acc is None else acc + term
        return acc.astype(p.out_dtype)
