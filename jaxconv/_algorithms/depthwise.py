"""The "depthwise" algorithm: per-tap broadcast multiply-adds that XLA fuses.

For feature_group_count == input channels (Ig == 1, any channel multiplier M):

    out[n, o, c, m] = sum_k x_pad[n, o*s + k*d, c] * w[k, c, m]

XLA's grouped convolution runs this as C tiny convolutions on CPU; as an
elementwise fold it becomes one fused loop over the output, 40-100x faster on
MobileNet/EfficientNet/ConvNeXt layers (bench/results). Its autodiff is again
a fold of pads and multiplies, so the backward pass stays depthwise.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxconv._algorithms import _common
from jaxconv._typing import ConvParams


def depthwise_unsupported(problem) -> str | None:
    if problem.x_shape[-1] != 1 or problem.groups == 1:
        return (
            "it needs feature_group_count equal to the input channels "
            f"(got {problem.groups} groups of {problem.x_shape[-1]} channels)."
        )
    return None


def conv_depthwise(x, w, p: ConvParams):
    """The "depthwise" algorithm: the fused fold forward; the kernel gradient runs as an
    FFT correlation at stride 1 or for kernels of 25+ taps (measured faster there),
    else by autodiff of the fold. x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    if all(s == 1 for s in p.strides) or math.prod(w.shape[:-3]) >= 25:
        return conv_depthwise_fftgrad(x, w, p)
    return depthwise_fold(x, w, p)


PER_TAP_PAD_MAX_TAPS = 9
"""Strided kernels up to this many taps pad per tap instead of copying the input
(measured on 3x3/2 and 5x5/2 layers of 28-112 px, 32-240 channels)."""


def depthwise_fold(x, w, p: ConvParams):
    """Depthwise convolution as a sum over taps of window * kernel-tap products.

    x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    with jax.named_scope("jaxconv.depthwise"):
        kernel = w.shape[:-3]
        n_sp = len(kernel)
        # Stride 1, or strided with more than 9 taps: one padded copy, then plain or
        # strided slices (stride 1: 2.5-3x faster; 5x5/2: 2-3.5x faster). Strided 3x3:
        # pad per tap inside the fused loop instead (2-4x faster than the copy).
        if (
            any(d > 1 for d in p.lhs_dilation)
            or all(s == 1 for s in p.strides)
            or math.prod(kernel) > PER_TAP_PAD_MAX_TAPS
        ):
            xp = _common.padded_input(x, p)  # (N, *Sp, C, 1)
            out = _common.out_spatial(xp.shape[1:-2], kernel, p)

            def window(tap):
                return _common.strided_window(xp, tap, p.rhs_dilation, p.strides, out)
        else:
            out = _common.out_spatial(
                [s + lo + hi for s, (lo, hi) in zip(x.shape[1:-2], p.pads)], kernel, p
            )
            none = ((0, 0),)

            def window(tap):
                return _common.padded_tap_window(
                    x,
                    (0, *tap, 0, 0),
                    0,
                    none + p.pads + none * 2,
                    (1, *p.strides, 1, 1),
                    (1, *p.rhs_dilation, 1, 1),
                    (x.shape[0], *out, *x.shape[-2:]),
                )

        lead = (1,) * (1 + n_sp)
        acc = None
        for tap in _common.taps(kernel):
            win = window(tap)  # (N, *O, C, 1)
            tap_w = w[tap].reshape(*lead, *w.shape[-2:])  # (1, *1, C, M)
            term = win.astype(p.acc_dtype) * tap_w.astype(p.acc_dtype)  # (N, *O, C, M)
            acc = term if acc is None else acc + term
        return acc.astype(p.out_dtype)


def _is_zero(t):
    return type(t) is jax.custom_derivatives.SymbolicZero


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def conv_depthwise_fftgrad(x, w, p: ConvParams):
    """`depthwise_fold` whose kernel tangent runs through the FFT algorithm.

    The forward pass is the per-tap fold. The tangent in `w` is linear, so its
    transpose (the kernel gradient) is an FFT correlation instead of one
    full reduction per tap; the tangent in `x` keeps the fold, whose transpose
    is cheap pads. Forward mode works: this is a custom_jvp.
    """
    return depthwise_fold(x, w, p)


@functools.partial(conv_depthwise_fftgrad.defjvp, symbolic_zeros=True)
def _depthwise_jvp(p, primals, tangents):
    from jaxconv._algorithms.fft import conv_fft

    x, w = primals
    dx, dw = tangents
    out = conv_depthwise_fftgrad(x, w, p)
    tangent = jnp.zeros_like(out)
    if not _is_zero(dx):
        tangent = tangent + depthwise_fold(dx, w, p)
    if not _is_zero(dw):
        tangent = tangent + conv_fft(x, dw, p)
    return out, tangent
