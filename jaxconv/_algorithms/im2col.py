"""The "im2col" algorithm: gather every patch once, then one GEMM (Chellapilla et al. 2006)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxconv._algorithms._common import out_spatial, padded_input, strided_window, taps
from jaxconv._algorithms.direct import grouped_dot
from jaxconv._typing import ConvParams


def im2col_workspace_bytes(x_shape, w_shape, out_shape, itemsize: int) -> int:
    """Bytes of the patch matrix (N, *O, T*Ig*G) that im2col materialises."""
    n, groups, ig = x_shape[0], x_shape[-2], x_shape[-1]
    return n * math.prod(out_shape) * math.prod(w_shape[:-3]) * groups * ig * itemsize


def conv_im2col(x, w, p: ConvParams):
    """Convolution as one GEMM over gathered patches.

    patches[n, o, g, (k, i)] = x_pad[n, o*s + k*d, g, i];  out = patches @ w.reshape(T*Ig, G, Og)

    Shapes as in `conv_direct`: x (N, *S, G, Ig), w (*K, Ig, G, Og) ->
    (N, *O, G, Og). One large GEMM uses the BLAS well, at the cost of a
    workspace T times the input (T = prod(K) taps).
    """
    with jax.named_scope("jaxconv.im2col"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        out = out_spatial(xp.shape[1:-2], kernel, p)
        windows = [strided_window(xp, tap, p.rhs_dilation, p.strides, out) for tap in taps(kernel)]
        patches = jnp.stack(windows, axis=-1)  # (N, *O, G, Ig, T)
        patches = patches.reshape(*patches.shape[:-2], -1)  # (N, *O, G, Ig*T)
        ig, groups, og = w.shape[-3:]
        wm = jnp.moveaxis(w.reshape(-1, ig, groups, og), 0, 1)  # (Ig, T, G, Og)
        wm = wm.reshape(ig * len(windows), groups, og)  # (Ig*T, G, Og)
        return grouped_dot(patches, wm, p, p.acc_dtype).astype(p.out_dtype)
