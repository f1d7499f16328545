"""The "depthwise" algorithm: per-tap broadcast multiply-adds that XLA fuses.

For feature_group_count == input channels (Ig == 1, any channel multiplier M):

    out[n, o, c, m] = sum_k x_pad[n, o*s + k*d, c] * w[k, c, m]

XLA's grouped convolution runs this as C tiny convolutions on CPU; as an
elementwise fold it becomes one fused loop over the output, 40-100x faster on
MobileNet/EfficientNet/ConvNeXt layers (bench/results). Its autodiff is again
a fold of pads and multiplies, so the backward pass stays depthwise.
"""

from __future__ import annotations

import jax

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
    """Depthwise convolution as a sum over taps of window * kernel-tap products.

    x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    with jax.named_scope("jaxconv.depthwise"):
        xp = _common.padded_input(x, p)  # (N, *Sp, C, 1)
        kernel = w.shape[:-3]
        out = _common.out_spatial(xp.shape[1:-2], kernel, p)
        lead = (1,) * (1 + len(kernel))
        acc = None
        for tap in _common.taps(kernel):
            window = _common.strided_window(
                xp, tap, p.rhs_dilation, p.strides, out
            )  # (N, *O, C, 1)
            tap_w = w[tap].reshape(*lead, *w.shape[-2:])  # (1, *1, C, M)
            term = window.astype(p.acc_dtype) * tap_w.astype(p.acc_dtype)  # (N, *O, C, M)
            acc = term if acc is None else acc + term
        return acc.astype(p.out_dtype)
