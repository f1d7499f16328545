"""The "xla2d" algorithm: an N-D conv (N >= 3) as 2-D XLA convs over its last two axes.

XLA's CPU backend runs 2-D convolutions well (50-90% of the matmul peak here)
but 3-D ones at half that or less. The leading spatial axes (depth, time) are
therefore unrolled over their kernel taps, and each tap becomes a 2-D conv over
(H, W) with the leading output positions folded into the batch:

    out[n, d, :, :] = sum_t conv2d(x_pad[n, d*s + t*dil], w[t])

With few input channels (a video stem's 3), the taps go into the channels
instead: one 2-D conv over T*Ig channels, since XLA's 2-D conv is weak on very
few channels. Autodiff gives XLA's 2-D backward convs, so the backward pass
gains too (bench/results: 3-D ResNet-18/C3D layers 1.2-3.7x forward, 2.9-15x
with the backward). It is the plain decomposition of an N-D convolution into a
sum of (N-1)-D ones over the leading kernel taps, applied until 2-D remains.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxconv._algorithms import _common
from jaxconv._algorithms.xla import conv_xla
from jaxconv._typing import ConvParams

FOLD_MAX_CHANNELS = 32
"""Input channels per group below which the leading taps go into the channels
(C3D conv1, 3 channels: 3.1x lax folded, 1.5x unrolled; 64+ channels: unrolled
is as fast or faster)."""


def xla2d_unsupported(problem) -> str | None:
    if len(problem.kernel) < 3:
        return f"it needs 3 or more spatial dimensions, got {len(problem.kernel)}."
    return None


def conv_xla2d(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) with len(K) >= 3 -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.xla2d"):
        n_lead = w.ndim - 3 - 2
        lead = slice(0, n_lead)
        # The leading axes are padded here; the last two are left to XLA's 2-D conv.
        xp = _common.pad_spatial(
            x, p.pads[lead], p.lhs_dilation[lead], 0, lead=1, trail=4
        )  # (N, *Lp, H, W, G, Ig)
        lead_p = dataclasses.replace(p, strides=p.strides[lead], rhs_dilation=p.rhs_dilation[lead])
        out_lead = _common.out_spatial(xp.shape[1 : 1 + n_lead], w.shape[lead], lead_p)
        plane = dataclasses.replace(
            p,
            strides=p.strides[n_lead:],
            pads=p.pads[n_lead:],
            lhs_dilation=p.lhs_dilation[n_lead:],
            rhs_dilation=p.rhs_dilation[n_lead:],
            preferred_element_type=p.acc_dtype,
            out_dtype=p.acc_dtype,
        )
        taps = list(_common.taps(w.shape[lead]))
        windows = (
            _common.strided_window(xp, tap, lead_p.rhs_dilation, lead_p.strides, out_lead)
            for tap in taps
        )  # each (N, *Ol, H, W, G, Ig)
        batch = x.shape[0] * math.prod(out_lead)
        if x.shape[-1] < FOLD_MAX_CHANNELS:
            stacked = jnp.concatenate(list(windows), axis=-1)  # (N, *Ol, H, W, G, T*Ig)
            planes = stacked.reshape(batch, *stacked.shape[1 + n_lead :])  # (B, H, W, G, T*Ig)
            wt = w.reshape(len(taps), *w.shape[n_lead:])  # (T, kh, kw, Ig, G, Og)
            wt = jnp.moveaxis(wt, 0, 2)  # (kh, kw, T, Ig, G, Og)
            wt = wt.reshape(*wt.shape[:2], -1, *wt.shape[-2:])  # (kh, kw, T*Ig, G, Og)
            acc = conv_xla(planes, wt, plane)  # (B, Ho, Wo, G, Og)
        else:
            acc = None
            for tap, window in zip(taps, windows):
                planes = window.reshape(batch, *window.shape[1 + n_lead :])  # (B, H, W, G, Ig)
                term = conv_xla(planes, w[tap], plane)  # (B, Ho, Wo, G, Og)
                acc = term if acc is None else acc + term
        out = acc.reshape(x.shape[0], *out_lead, *acc.shape[1:])  # (N, *Ol, Ho, Wo, G, Og)
        return out.astype(p.out_dtype)
