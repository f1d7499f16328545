"""The "fft" algorithm: convolution as a pointwise product of spectra (Mathieu et al. 2013).

    out = crop_stride( irfftn( rfftn(x_pad) * rfftn(flip(dilate(w))) ) )

summed over input channels in the frequency domain (one small complex GEMM per
frequency, or a product for depthwise). Cost O(L log L) per channel pair
instead of O(L * K): it wins for large kernels (13x13 and up, 1-D kernels of
64 and more), where direct methods pay for every tap. Strides are applied by
subsampling the stride-1 result, so it is chosen for stride 1 in practice.
Long axes of dense convs are cut into overlap-save segments (`segments`), so
the Ig*Og kernel spectra stay a few kernel lengths long instead of the signal's.
16-bit inputs are computed in float32. Autodiff through the FFTs gives the
backward pass as FFT correlations, and forward mode works unchanged.

Every output mixes every input of its transform, so one NaN or inf in x or w
spreads over the whole segment: not exact for non-finite values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms import _windows
from jaxconv._algorithms._base import INEXACT, INEXACT_NONFINITE, Algorithm
from jaxconv._shapes import definitely, dilate_dim, is_symbolic
from jaxconv._spec import ConvParams, Problem


def fft_unsupported(problem: Problem) -> str | None:
    if not problem.kernel:
        return "it needs at least one spatial dimension."
    if is_symbolic(problem.x_shape[1:]):
        return "it needs concrete spatial sizes to size its transforms."
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


MIN_SEGMENT = 64
BLOCK_FACTOR = 8
"""Overlap-save segments are about BLOCK_FACTOR kernel extents long, and at least
MIN_SEGMENT samples."""


def _segments(padded: int, kd: int, block: bool) -> tuple[int, int, int]:
    """(count, FFT length, outputs per segment) along one axis of `padded` samples."""
    full = max(padded - kd + 1, 0)
    length = _fast_len(max(BLOCK_FACTOR * (kd - 1), MIN_SEGMENT))
    if block and kd > 1 and padded >= 2 * length:
        per = length - kd + 1
        return -(-full // per), length, per
    return 1, _fast_len(padded), full


def _sizes(split, n, groups, ig, og) -> tuple[int, int]:
    """(elements of the input+output spectra, of the kernel spectra) for `split`."""
    signal = math.prod(count * length for count, length, _ in split)
    kernel = math.prod(length for _, length, _ in split)
    return groups * signal * n * (ig + og), groups * kernel * ig * og


def segments(x_shape, w_shape, padded_spatial) -> list[tuple[int, int, int]]:
    """Per spatial axis: (segment count, FFT length, outputs per segment).

    Long axes are cut into overlap-save segments (Oppenheim & Schafer,
    "Discrete-Time Signal Processing", 8.7; cuDNN's FFT_TILING) when the kernel
    spectra would outnumber the signal spectra, as in dense convs (Ig*Og spectra
    against N*(Ig+Og)): segment j covers samples [j*B, j*B + L) and yields the B
    full-overlap outputs that start there, so the kernel spectra shrink to L bins.
    Depthwise convs keep one segment: their overlap costs more than their cheap
    kernel spectra save.
    """
    n, ig, og = x_shape[0], x_shape[-1], w_shape[-1]
    block = definitely(lambda: ig * og > n * (ig + og))  # undecided (symbolic N): no
    return [_segments(s, k, block) for s, k in zip(padded_spatial, w_shape[:-3])]


def kernel_spectra_dominate(x_shape, w_shape, padded_spatial) -> bool:
    """Whether the kernel spectra outnumber the input and output spectra even after
    segmenting: then transforming the kernel costs more than the product saves, and
    the FFT forward loses to a direct conv (wav2vec2's pos_conv)."""
    split = segments(x_shape, w_shape, padded_spatial)
    signal, kernel = _sizes(split, x_shape[0], x_shape[-2], x_shape[-1], w_shape[-1])
    return kernel > signal


def _split(x, axis: int, count: int, length: int, per: int):
    """Axis `axis` of x -> (count, length) overlapping segments with hop `per`;
    a single segment is the whole axis (the FFT pads it to `length`)."""
    size = x.shape[axis]
    if count == 1:
        return jnp.expand_dims(x, axis)  # (..., 1, size, ...)
    x = lax.pad(
        x,
        jnp.zeros((), x.dtype),
        [(0, 0, 0)] * axis + [(0, (count + 1) * per - size, 0)] + [(0, 0, 0)] * (x.ndim - axis - 1),
    )
    blocks = x.reshape(*x.shape[:axis], count + 1, per, *x.shape[axis + 1 :])  # (.., C+1, B, ..)
    head = lax.slice_in_dim(blocks, 0, count, axis=axis)  # (..., C, B, ...)
    tail = lax.slice_in_dim(
        lax.slice_in_dim(blocks, 1, count + 1, axis=axis), 0, length - per, axis=axis + 1
    )  # (..., C, L-B, ...): the overlap, taken from the next block
    return jnp.concatenate([head, tail], axis=axis + 1)  # (..., C, L, ...)


def conv_fft(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.fft"):
        compute = p.acc_dtype
        if not (jnp.issubdtype(compute, jnp.complexfloating) or compute == jnp.float64):
            compute = jnp.float32
        xp = _windows.padded_input(x.astype(compute), p)  # (N, *Sp, G, Ig)
        n_sp = w.ndim - 3
        wd = _windows.pad_spatial(
            w.astype(compute), ((0, 0),) * n_sp, p.rhs_dilation, 0, lead=0, trail=3
        )  # (*Kd, Ig, G, Og)
        wd = jnp.flip(wd, tuple(range(n_sp)))
        spatial, kd = xp.shape[1 : 1 + n_sp], wd.shape[:n_sp]
        split = segments(xp.shape, wd.shape, spatial)
        lengths = tuple(length for _, length, _ in split)
        xs = xp
        for d in reversed(range(n_sp)):  # last axis first, so earlier axes keep their index
            count, length, per = split[d]
            xs = _split(xs, 1 + d, count, length, per)
        # xs: (N, C0, L0, C1, L1, ..., G, Ig); spectra over the L axes.
        axes_x = tuple(2 + 2 * d for d in range(n_sp))
        complex_in = jnp.issubdtype(compute, jnp.complexfloating)
        fft, ifft = (jnp.fft.fftn, jnp.fft.ifftn) if complex_in else (jnp.fft.rfftn, jnp.fft.irfftn)
        xf = fft(xs, s=lengths, axes=axes_x)  # (N, C0, F0, ..., G, Ig)
        wf = fft(wd, s=lengths, axes=tuple(range(n_sp)))  # (*F, Ig, G, Og)
        if xp.shape[-1] == 1:  # depthwise: a product per frequency
            wb = wf[..., 0, :, :]  # (*F, G, Og)
            wb = wb.reshape(1, *[v for f in wb.shape[:n_sp] for v in (1, f)], *wb.shape[n_sp:])
            yf = xf * wb  # (N, C0, F0, ..., G, 1) * (1, 1, F0, ..., G, Og)
        else:
            letters = "abcdefhjklmpqrstuvwxyz"  # all but n, g, i, o
            cs, fs = letters[:n_sp], letters[n_sp : 2 * n_sp]
            xi = "n" + "".join(c + f for c, f in zip(cs, fs))
            yf = jnp.einsum(
                f"{xi}gi,{fs}igo->{xi}go", xf, wf, precision=lax.Precision.HIGHEST
            )  # (N, C0, F0, ..., G, Og)
        y = ifft(yf, s=lengths, axes=axes_x)  # (N, C0, L0, ..., G, Og)
        # Keep each segment's full-overlap outputs, merge the segments, then stride.
        out = _windows.out_spatial(spatial, w.shape[:n_sp], p)
        start, limit = [0] * y.ndim, list(y.shape)
        for d, (k, (_, _, per)) in enumerate(zip(kd, split)):
            first = min(k - 1, y.shape[2 + 2 * d])  # an empty output may start past the end
            start[2 + 2 * d], limit[2 + 2 * d] = first, first + per
        y = lax.slice(y, start, limit)  # (N, C0, B0, ..., G, Og)
        merged = [c * b for c, _, b in split]
        y = y.reshape(y.shape[0], *merged, *y.shape[-2:])  # (N, C0*B0, ..., G, Og)
        limit = [y.shape[0]] + [max((o - 1) * s + 1, 0) for o, s in zip(out, p.strides)]
        y = lax.slice(
            y, [0] * y.ndim, limit + list(y.shape[-2:]), [1, *p.strides, 1, 1]
        )  # (N, *O, G, Og)
        return y.astype(p.out_dtype)


def fft_shapes(problem: Problem):
    """(x_shape, dilated w_shape, padded spatial) as `conv_fft` sees them."""
    p = problem.params
    padded = [
        dilate_dim(s, d) + lo + hi
        for s, d, (lo, hi) in zip(problem.x_shape[1:-2], p.lhs_dilation, p.pads)
    ]
    dilated = tuple(dilate_dim(k, d) for k, d in zip(problem.kernel, p.rhs_dilation))
    return problem.x_shape, dilated + problem.w_shape[-3:], padded  # w: (*Kd, Ig, G, Og)


def fft_workspace(problem: Problem, piece: bool = False) -> int:
    """Complex spectra of input, kernel and output: complex (2 * itemsize) on half the
    bins of the last axis (rfft), so one compute itemsize per sample. Several groups of
    several channels hold the signal spectra twice: XLA lays them out again for the
    contraction's batch of frequencies and groups."""
    x_shape, w_shape, padded = fft_shapes(problem)
    split = segments(x_shape, w_shape, padded)
    signal, kernel = _sizes(split, x_shape[0], x_shape[-2], x_shape[-1], w_shape[-1])
    relaid = signal if x_shape[-2] > 1 and x_shape[-1] > 1 else 0
    return problem.compute_itemsize * (signal + relaid + kernel)


MIN_PIECE_OUTPUTS = 8192
"""A dense piece of rows or images keeps at least this many output positions."""


def fft_piece_ok(piece: Problem, axis: str, count: int) -> bool:
    """A piece of rows or images of a dense FFT transforms the whole kernel again, which
    small pieces cannot repay (docs/design.md, "Pieces")."""
    if piece.x_shape[-1] > 1 and axis != "groups":
        return piece.x_shape[0] * math.prod(piece.out_spatial) >= MIN_PIECE_OUTPUTS
    return True


ALGORITHM = Algorithm(
    name="fft",
    fn=conv_fft,
    summary="rfftn spectra, a channel contraction per frequency (Mathieu et al. 2013)",
    supports=fft_unsupported,
    dtypes=INEXACT,
    workspace=fft_workspace,
    piece_axes=("groups", "rows", "batch"),
    piece_ok=fft_piece_ok,
    exact_nonfinite=INEXACT_NONFINITE,
    backends=("cpu", "gpu"),
)
