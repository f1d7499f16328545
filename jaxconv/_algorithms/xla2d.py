"""The "xla2d" algorithm: an N-D conv (N >= 3) as one 2-D XLA conv over its last two axes.

XLA's CPU backend runs 2-D convolutions near the matmul peak but 3-D ones at half
that or less. The leading spatial axes (depth, time) therefore go into the
channels: each leading kernel tap's window of the input is stacked along the input
channels, and one 2-D conv over (H, W) with T*Ig input channels, the leading output
positions folded into the batch, sums every tap at once:

    out[n, d, :, :] = conv2d(concat_t(x_pad[n, d*s + t*dil]), concat_t(w[t]))

It is the plain decomposition of an N-D convolution into (N-1)-D ones over the
leading kernel taps, applied until 2-D remains, with the sum taken by the conv's
contraction. The gradients are JAX's transposes: one 2-D input gradient whose T*Ig
output channels are added back at their taps' offsets, and one 2-D kernel gradient
over the stacked windows. XLA:CPU compiles every fusion as a kernel of its own, so
one conv in place of one per tap (or a loop over the taps) is also what keeps the
compile time near lax's (design.md, "Compile time"). The stacked windows hold T
copies of the input; over the memory budget the forward runs in pieces.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxconv._algorithms import _windows
from jaxconv._algorithms._base import Algorithm
from jaxconv._algorithms.xla import conv_xla
from jaxconv._shapes import dilate_dim
from jaxconv._spec import ConvParams, Problem


def xla2d_unsupported(problem: Problem) -> str | None:
    if len(problem.kernel) < 3:
        return f"it needs 3 or more spatial dimensions, got {len(problem.kernel)}."
    return None


def _split(p: ConvParams, n_lead: int):
    """(params of the leading axes, params of the 2-D convs over the last two)."""
    lead = dataclasses.replace(p, strides=p.strides[:n_lead], rhs_dilation=p.rhs_dilation[:n_lead])
    plane = dataclasses.replace(
        p,
        strides=p.strides[n_lead:],
        pads=p.pads[n_lead:],
        lhs_dilation=p.lhs_dilation[n_lead:],
        rhs_dilation=p.rhs_dilation[n_lead:],
        preferred_element_type=p.acc_dtype,
        out_dtype=p.acc_dtype,
    )
    return lead, plane


def conv_xla2d(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) with len(K) >= 3 -> (N, *O, G, Og).

    Every leading tap's window of x in the channels: one 2-D conv over T*Ig channels."""
    with jax.named_scope("jaxconv.xla2d"):
        n_lead = w.ndim - 5
        lead = slice(0, n_lead)
        # XLA pads the last two axes; the leading ones are padded here.
        xp = _windows.pad_spatial(
            x, p.pads[lead], p.lhs_dilation[lead], 0, lead=1, trail=4
        )  # (N, *Lp, H, W, G, Ig)
        lead_p, plane = _split(p, n_lead)
        out_lead = _windows.out_spatial(xp.shape[1 : 1 + n_lead], w.shape[lead], lead_p)
        stacked = _windows.sliced_patches(
            xp, w.shape[lead], lead_p, out_lead
        )  # (N, *Ol, H, W, G, T*Ig)
        planes = stacked.reshape(-1, *stacked.shape[1 + n_lead :])  # (B, H, W, G, T*Ig)
        wt = w.reshape(math.prod(w.shape[lead]), *w.shape[n_lead:])  # (T, kh, kw, Ig, G, Og)
        wt = jnp.moveaxis(wt, 0, 2)  # (kh, kw, T, Ig, G, Og)
        wt = wt.reshape(*wt.shape[:2], -1, *wt.shape[-2:])  # (kh, kw, T*Ig, G, Og)
        acc = conv_xla(planes, wt, plane)  # (B, Ho, Wo, G, Og)
        out = acc.reshape(x.shape[0], *out_lead, *acc.shape[1:])  # (N, *Ol, Ho, Wo, G, Og)
        return out.astype(p.out_dtype)


def xla2d_workspace(problem: Problem, piece: bool = False) -> int:
    """The padded input, the taps' windows stacked in the channels, the kernel laid out
    for them, and the 2-D conv's output where it is wider than the output. 16-bit
    inputs: XLA:CPU converts x to float32 for its convs, whole (w's conversion is its
    layout's copy)."""
    x_shape, w_shape, p = problem.x_shape, problem.w_shape, problem.params
    itemsize, wide = problem.itemsize, problem.compute_itemsize
    converted = 0 if wide == itemsize else math.prod(x_shape) * wide
    lead = [dilate_dim(s, d) for s, d in zip(x_shape[1:-4], p.lhs_dilation[:-2])]
    planes = math.prod(x_shape[-4:]) * x_shape[0] * wide
    dilated = 0 if tuple(lead) == tuple(x_shape[1:-4]) else math.prod(lead) * planes
    padded = [s + lo + hi for s, (lo, hi) in zip(lead, p.pads[:-2])]
    copy = 0 if padded == lead else math.prod(padded) * planes
    windows = math.prod(problem.kernel[:-2]) * math.prod(problem.out_spatial[:-2]) * planes
    kernel = math.prod(w_shape) * wide
    acc = 0 if wide == itemsize else problem.out_bytes * wide // itemsize
    return converted + dilated + copy + windows + kernel + acc


ALGORITHM = Algorithm(
    name="xla2d",
    fn=conv_xla2d,
    summary="3-D and up as one 2-D XLA conv over the last two axes, the leading taps in the channels",
    supports=xla2d_unsupported,
    workspace=xla2d_workspace,
)
