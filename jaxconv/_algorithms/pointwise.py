"""The "pointwise" algorithm: a 1x1 convolution is one GEMM over channels.

    out[n, o, g, :] = x_pad[n, o*s, g, :] @ w[0, g]

Strides become one strided slice and padding one `lax.pad`; there is no
window to gather, so it beats XLA's convolution emitter on CPU (bench/results).
"""

from __future__ import annotations

import math

import jax

from jaxconv._algorithms import _common
from jaxconv._algorithms.direct import grouped_dot
from jaxconv._typing import ConvParams


def pointwise_unsupported(problem) -> str | None:
    if math.prod(problem.kernel) != 1:
        return f"it needs a 1x1 kernel, got kernel shape {problem.kernel}."
    return None


def conv_pointwise(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*1, Ig, G, Og) -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.pointwise"):
        xp = _common.padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        out = _common.out_spatial(xp.shape[1:-2], kernel, p)
        tap = (0,) * len(kernel)
        window = _common.strided_window(xp, tap, p.rhs_dilation, p.strides, out)  # (N, *O, G, Ig)
        return grouped_dot(window, w[tap], p, p.acc_dtype).astype(p.out_dtype)
