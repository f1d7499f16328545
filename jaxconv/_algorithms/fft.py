"""The "fft" algorithm: convolution as a pointwise product of spectra (Mathieu et al. 2013).

    out = crop_stride( irfftn( rfftn(x_pad) * rfftn(flip(dilate(w))) ) )

summed over input channels in the frequency domain (one small complex GEMM per
frequency, or a product for depthwise). Cost O(L log L) per channel pair
instead of O(L * K): it wins for large kernels (13x13 and up, 1-D kernels of
64 and more), where direct methods pay for every tap. Strides are applied by
subsampling the stride-1 result, so it is chosen for stride 1 in practice.
16-bit inputs are computed in float32. Autodiff through the FFTs gives the
backward pass as FFT correlations, and forward mode works unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms import _common
from jaxconv._typing import ConvParams


def fft_unsupported(problem) -> str | None:
    if not (
        jnp.issubdtype(problem.dtype, jnp.floating)
        or jnp.issubdtype(problem.dtype, jnp.complexfloating)
    ):
        return f"it needs floating or complex inputs, got {problem.dtype}."
    if not problem.kernel:
        return "it needs at least one spatial dimension."
    return None


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: sizes the FFT libraries handle fastest."""
    best = 1 << max(n - 1, 0).bit_length()
    for five in (1, 5, 25, 125):
        for three in (1, 3, 9, 27, 81):
            base = five * three
            if base >= n:
                best = min(best, base)
                continue
            size = base << math.ceil(math.log2(n / base))
            best = min(best, size)
    return best


def fft_workspace_bytes(x_shape, w_shape, padded_spatial, itemsize: int) -> int:
    """Complex spectra of input, kernel and output that the FFT path holds."""
    n, groups, ig = x_shape[0], x_shape[-2], x_shape[-1]
    og = w_shape[-1]
    freq = math.prod(_fast_len(s) for s in padded_spatial)
    return 2 * itemsize * freq * groups * (n * ig + ig * og + n * og)


def conv_fft(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.fft"):
        compute = p.acc_dtype
        if not (jnp.issubdtype(compute, jnp.complexfloating) or compute == jnp.float64):
            compute = jnp.float32
        xp = _common.padded_input(x.astype(compute), p)  # (N, *Sp, G, Ig)
        n_sp = w.ndim - 3
        axes_x = tuple(range(1, 1 + n_sp))
        axes_w = tuple(range(n_sp))
        wd = _common.pad_spatial(
            w.astype(compute), ((0, 0),) * n_sp, p.rhs_dilation, 0, lead=0, trail=3
        )  # (*Kd, Ig, G, Og)
        wd = jnp.flip(wd, axes_w)
        spatial, kd = xp.shape[1 : 1 + n_sp], wd.shape[:n_sp]
        lengths = tuple(_fast_len(s) for s in spatial)
        complex_in = jnp.issubdtype(compute, jnp.complexfloating)
        fft, ifft = (jnp.fft.fftn, jnp.fft.ifftn) if complex_in else (jnp.fft.rfftn, jnp.fft.irfftn)
        xf = fft(xp, s=lengths, axes=axes_x)  # (N, *F, G, Ig)
        wf = fft(wd, s=lengths, axes=axes_w)  # (*F, Ig, G, Og)
        if xp.shape[-1] == 1:  # depthwise: a product per frequency
            yf = xf * wf[..., 0, :, :][None]  # (N, *F, G, 1) * (1, *F, G, Og)
        else:
            yf = jnp.einsum(
                "n...gi,...igo->n...go", xf, wf, precision=lax.Precision.HIGHEST
            )  # (N, *F, G, Og)
        y = ifft(yf, s=lengths, axes=axes_x)  # (N, *L, G, Og)
        out = _common.out_spatial(spatial, w.shape[:n_sp], p)
        start = [0] + [k - 1 for k in kd] + [0, 0]
        limit = [y.shape[0]] + [k - 1 + (o - 1) * s + 1 for k, o, s in zip(kd, out, p.strides)]
        y = lax.slice(y, start, limit + list(y.shape[-2:]), [1, *p.strides, 1, 1])  # (N, *O, G, Og)
        return y.astype(p.out_dtype)
