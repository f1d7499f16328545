"""The "xla2d" algorithm: an N-D conv (N >= 3) as 2-D XLA convs over its last two axes.

XLA's CPU backend runs 2-D convolutions near the matmul peak but 3-D ones at half
that or less. The leading spatial axes (depth, time) are
therefore unrolled over their kernel taps, and each tap becomes a 2-D conv over
(H, W) with the leading output positions folded into the batch:

    out[n, d, :, :] = sum_t conv2d(x_pad[n, d*s + t*dil], w[t])

The forward adds the terms one tap at a time in a loop (`_tap_loop`), so that only
one tap's window, kernel slice and 2-D output are held at once: written out, XLA
computed every tap's window and kernel slice up front (the whole kernel copied
again). The tangents, and so the gradients, take the written-out sum
(`conv_xla2d_terms`), whose transpose is XLA's 2-D backward convs.

With few input channels (a video stem's 3), the taps go into the channels
instead: one 2-D conv over T*Ig channels, since XLA's 2-D conv is weak on very
few channels. It is the plain decomposition of an N-D convolution into a sum of
(N-1)-D ones over the leading kernel taps, applied until 2-D remains.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms import _windows
from jaxconv._algorithms._base import Algorithm, with_tangents
from jaxconv._algorithms.xla import conv_xla
from jaxconv._shapes import dilate_dim
from jaxconv._spec import ConvParams, Problem

FOLD_MAX_CHANNELS = 32
"""Input channels per group below which the leading taps go into the channels."""


def xla2d_unsupported(problem: Problem) -> str | None:
    if len(problem.kernel) < 3:
        return f"it needs 3 or more spatial dimensions, got {len(problem.kernel)}."
    return None


def conv_xla2d(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) with len(K) >= 3 -> (N, *O, G, Og).

    The forward: taps in the channels, or one tap at a time."""
    with jax.named_scope("jaxconv.xla2d"):
        if x.shape[-1] < FOLD_MAX_CHANNELS:
            return _folded(x, w, p)
        return _tap_loop(x, w, p)


def conv_xla2d_terms(x, w, p: ConvParams):
    """As `conv_xla2d`, the sum over the leading taps written out: what the tangents
    (and by transposition the gradients) of "xla2d" run."""
    with jax.named_scope("jaxconv.xla2d"):
        if x.shape[-1] < FOLD_MAX_CHANNELS:
            return _folded(x, w, p)
        return _unrolled(x, w, p)


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


def _lead_windows(x, w, p: ConvParams):
    """(every leading tap, its window of x (N, *Ol, H, W, G, Ig), *Ol, 2-D conv params),
    the windows as a generator over a copy of x padded on the leading axes (XLA pads
    the last two)."""
    n_lead = w.ndim - 5
    lead = slice(0, n_lead)
    xp = _windows.pad_spatial(
        x, p.pads[lead], p.lhs_dilation[lead], 0, lead=1, trail=4
    )  # (N, *Lp, H, W, G, Ig)
    lead_p, plane = _split(p, n_lead)
    out_lead = _windows.out_spatial(xp.shape[1 : 1 + n_lead], w.shape[lead], lead_p)
    taps = list(_windows.taps(w.shape[lead]))
    windows = (
        _windows.strided_window(xp, tap, lead_p.rhs_dilation, lead_p.strides, out_lead)
        for tap in taps
    )  # each (N, *Ol, H, W, G, Ig)
    return taps, windows, out_lead, plane


def _unfold(acc, n: int, out_lead, p: ConvParams):
    """The 2-D convs' output, its batch unfolded into images and leading positions:
    (N * prod(Ol), Ho, Wo, G, Og) -> (N, *Ol, Ho, Wo, G, Og), in the output dtype."""
    out = acc.reshape(n, *out_lead, *acc.shape[1:])  # (N, *Ol, Ho, Wo, G, Og)
    return out.astype(p.out_dtype)


def _folded(x, w, p: ConvParams):
    """Every leading tap's window in the channels: one 2-D conv over T*Ig channels."""
    n_lead = w.ndim - 5
    taps, windows, out_lead, plane = _lead_windows(x, w, p)
    stacked = jnp.concatenate(list(windows), axis=-1)  # (N, *Ol, H, W, G, T*Ig)
    planes = stacked.reshape(-1, *stacked.shape[1 + n_lead :])  # (B, H, W, G, T*Ig)
    wt = w.reshape(len(taps), *w.shape[n_lead:])  # (T, kh, kw, Ig, G, Og)
    wt = jnp.moveaxis(wt, 0, 2)  # (kh, kw, T, Ig, G, Og)
    wt = wt.reshape(*wt.shape[:2], -1, *wt.shape[-2:])  # (kh, kw, T*Ig, G, Og)
    acc = conv_xla(planes, wt, plane)  # (B, Ho, Wo, G, Og)
    return _unfold(acc, x.shape[0], out_lead, p)


def _unrolled(x, w, p: ConvParams):
    """One 2-D conv per leading tap, summed, all in one expression."""
    n_lead = w.ndim - 5
    taps, windows, out_lead, plane = _lead_windows(x, w, p)
    acc = None
    for tap, window in zip(taps, windows):
        planes = window.reshape(-1, *window.shape[1 + n_lead :])  # (B, H, W, G, Ig)
        term = conv_xla(planes, w[tap], plane)  # (B, Ho, Wo, G, Og)
        acc = term if acc is None else acc + term
    return _unfold(acc, x.shape[0], out_lead, p)


def _tap_loop(x, w, p: ConvParams):
    """`_unrolled`'s sum in a `fori_loop` over the leading taps: each step takes its
    tap's window of rows (the padding zero-filled as it is read, so no padded copy),
    its kernel slice, and adds its 2-D conv to the carried sum."""
    n_lead = w.ndim - 5
    lead = slice(0, n_lead)
    x = _windows.pad_spatial(x, [(0, 0)] * n_lead, p.lhs_dilation[lead], 0, lead=1, trail=4)
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[1 : 1 + n_lead], p.pads[lead])]
    lead_p, plane = _split(p, n_lead)
    out_lead = _windows.out_spatial(padded, w.shape[lead], lead_p)
    plane_shape, kernel_shape = x.shape[1 + n_lead :], w.shape[n_lead:]
    # The loop's operands flattened, in XLA's default layout: a canonical view with its
    # unit group axis laid out apart was copied whole into the loop.
    xf = x.reshape(*x.shape[: 1 + n_lead], -1)  # (N, *L, H*W*G*Ig)
    wf = w.reshape(-1, math.prod(kernel_shape))  # (T, kh*kw*Ig*G*Og)

    def term(t):
        window = xf
        for axis, k in enumerate(jnp.unravel_index(t, w.shape[lead])):
            (lo, _), s, d = p.pads[axis], lead_p.strides[axis], lead_p.rhs_dilation[axis]
            index = jnp.arange(out_lead[axis]) * s + k * d - lo
            window = _windows.take_rows(window, index, 1 + axis)
        planes = window.reshape(-1, *plane_shape)  # (B, H, W, G, Ig), B = N * prod(Ol)
        kernel = lax.dynamic_index_in_dim(wf, t, keepdims=False).reshape(kernel_shape)
        return conv_xla(planes, kernel, plane)  # (B, Ho, Wo, G, Og)

    acc = lax.fori_loop(1, wf.shape[0], lambda t, acc: acc + term(t), term(0))
    return _unfold(acc, x.shape[0], out_lead, p)


def xla2d_workspace(problem: Problem, piece: bool = False) -> int:
    """Few channels: the padded input, the taps' windows in the channels and the kernel
    laid out for them. Else one tap's window, kernel slice and 2-D output, plus the
    carried sum where it is wider than the output or leaves a piece's conditional as a
    copy. 16-bit inputs: XLA:CPU converts x and w to float32 for its convs, whole."""
    x_shape, w_shape, p = problem.x_shape, problem.w_shape, problem.params
    itemsize, wide = problem.itemsize, problem.compute_itemsize
    converted = 0 if wide == itemsize else (math.prod(x_shape) + math.prod(w_shape)) * wide
    lead = [dilate_dim(s, d) for s, d in zip(x_shape[1:-4], p.lhs_dilation[:-2])]
    planes = math.prod(x_shape[-4:]) * x_shape[0] * wide
    dilated = 0 if tuple(lead) == tuple(x_shape[1:-4]) else math.prod(lead) * planes
    if x_shape[-1] < FOLD_MAX_CHANNELS:
        padded = [s + lo + hi for s, (lo, hi) in zip(lead, p.pads[:-2])]
        copy = 0 if padded == lead else math.prod(padded) * planes
        windows = math.prod(problem.kernel[:-2]) * math.prod(padded) * planes
        kernel = math.prod(w_shape) * wide
        return converted + dilated + copy + windows + kernel
    window = math.prod(problem.out_spatial[:-2]) * planes
    kernel = math.prod(w_shape[-5:]) * wide
    acc = problem.out_bytes * wide // itemsize
    carried = acc if piece or wide > itemsize else 0
    return converted + dilated + window + kernel + acc + carried


ALGORITHM = Algorithm(
    name="xla2d",
    fn=with_tangents(conv_xla2d, conv_xla2d_terms, "conv_xla2d"),
    summary="3-D and up as 2-D XLA convs over the last two axes, a leading tap at a time",
    supports=xla2d_unsupported,
    workspace=xla2d_workspace,
    piece_fn=conv_xla2d,
    tangent_fn=conv_xla2d_terms,
)
