"""The "depthwise" algorithm: per-tap broadcast multiply-adds that XLA fuses.

For feature_group_count == input channels (Ig == 1, any channel multiplier M):

    out[n, o, c, m] = sum_k x_pad[n, o*s + k*d, c] * w[k, c, m]

XLA's grouped convolution runs this as C tiny convolutions on CPU; as an
elementwise fold it becomes one fused loop over the output. The backward pass stays
depthwise: at stride 1 the input gradient is the fold of the cotangent with the
flipped kernel (`_input_tangent`), elsewhere the fold's own transpose.

At stride 1 there is no padded copy of x (`_split_fold`): the interior of the output
reads x itself and only the border bands see the padding, which leaves the memory
budget to the output. Where the call is differentiated the output comes from one
padded copy instead, which compiles faster.

The kernel gradient is one variadic reduction over every tap (`_depthwise_kernel`),
which reads x and the cotangent once; large stride-1 kernels take it as an FFT
correlation. docs/design.md ("Depthwise") has the measurements behind each constant
here.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms import _windows
from jaxconv._algorithms._base import Algorithm, bilinear_tangent, no_holes
from jaxconv._algorithms._depthwise_kernel import kernel_tangent
from jaxconv._algorithms.fft import conv_fft
from jaxconv._shapes import dilate_dim, is_symbolic
from jaxconv._spec import ConvParams, Problem


def depthwise_unsupported(problem: Problem) -> str | None:
    if problem.x_shape[-1] != 1 or problem.groups == 1:
        return (
            "it needs feature_group_count equal to the input channels "
            f"(got {problem.groups} groups of {problem.x_shape[-1]} channels)."
        )
    if is_symbolic(problem.x_shape[1:-2], *problem.params.pads):
        return "it needs concrete spatial sizes to place its border bands."
    return None


def conv_depthwise(x, w, p: ConvParams):
    """The fused fold forward; the kernel gradient as one variadic reduction for small
    kernels, else as an FFT correlation.

    x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    return _conv_depthwise(x, w, p, True)


def conv_depthwise_padded(x, w, p: ConvParams):
    """`conv_depthwise` from a padded copy of x even at stride 1 (no `_split_fold`): for
    a piece, whose x is already a computed copy. Same signature."""
    return _conv_depthwise(x, w, p, False)


def _conv_depthwise(x, w, p: ConvParams, split: bool):
    return conv_depthwise_grads(x, w, p, split, reduces_kernel_gradient(w.shape[:-3], p))


REDUCE_MAX_TAPS = 25
"""Stride-1 kernels up to this many taps take their kernel gradient from one variadic
reduction (`_depthwise_kernel`), larger ones as an FFT correlation."""

REDUCE_STRIDED_MAX_TAPS = 49
"""The same for strided kernels, whose FFT correlation runs at full resolution."""


def reduces_kernel_gradient(kernel, p: ConvParams) -> bool:
    """Whether the kernel gradient is the variadic reduction (else the FFT). Pure."""
    strided = any(s > 1 for s in p.strides)
    return math.prod(kernel) <= (REDUCE_STRIDED_MAX_TAPS if strided else REDUCE_MAX_TAPS)


PER_TAP_PAD_MAX_TAPS = 9
"""Kernels up to this many taps pad per tap instead of copying: strided ones everywhere,
stride-1 ones in the border bands of `_split_fold`."""


def depthwise_fold(x, w, p: ConvParams, split: bool = True):
    """Depthwise convolution as a sum over taps of window * kernel-tap products.

    Stride 1 with `split`: `_split_fold`, which copies at most small border bands of x,
    where it applies. Otherwise one padded copy of x, then plain or strided slices,
    except for small strided kernels, padded per tap inside the fused loop. The padded
    copy's transpose is the faster input gradient, so tangents use it.

    x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    with jax.named_scope("jaxconv.depthwise"):
        kernel = w.shape[:-3]
        if split and split_band_elements(x.shape[1:-2], kernel, p) is not None:
            small = math.prod(kernel) <= PER_TAP_PAD_MAX_TAPS  # bands padded per tap
            crop = [(min(lo, 0), min(hi, 0)) for lo, hi in p.pads]  # negative padding
            x = _windows.pad_spatial(x, crop, p.lhs_dilation, 0)  # (N, *S', C, 1)
            pads = tuple((max(lo, 0), max(hi, 0)) for lo, hi in p.pads)
            return _split_fold(x, w, p, pads, small).astype(p.out_dtype)
        return _fold(x, w, p, p.pads, pads_per_tap(kernel, p)).astype(p.out_dtype)


def pads_per_tap(kernel, p: ConvParams) -> bool:
    """Whether the fold without a split pads per tap (small strided kernels, no lhs
    dilation) rather than from one padded copy of x. Pure: the workspace estimate uses it."""
    return (
        any(s > 1 for s in p.strides)
        and all(d == 1 for d in p.lhs_dilation)
        and math.prod(kernel) <= PER_TAP_PAD_MAX_TAPS
    )


def _fold(x, w, p: ConvParams, pads, per_tap: bool):
    """The fold over x padded by `pads`: per tap (fused, no copy) or from one padded copy.
    x: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M) in the accumulation dtype. From
    the padded copy, a multiplier of 1 may be squeezed out: x (N, *S, C), w (*K, 1, C)."""
    n_sp = len(pads)
    kernel = w.shape[:n_sp]
    if per_tap:
        out = _windows.out_spatial(
            [s + lo + hi for s, (lo, hi) in zip(x.shape[1:-2], pads)], kernel, p
        )
        none = ((0, 0),)

        def window(tap):
            return _windows.tap_window(
                x,
                (0, *tap, 0, 0),
                0,
                none + tuple(pads) + none * 2,
                (1, *p.strides, 1, 1),
                (1, *p.rhs_dilation, 1, 1),
                (x.shape[0], *out, *x.shape[-2:]),
            )
    else:
        trail = x.ndim - 1 - n_sp  # channel axes after the spatial ones
        xp = _windows.pad_spatial(x, pads, p.lhs_dilation, 0, trail=trail)  # (N, *Sp, C[, 1])
        out = _windows.out_spatial(xp.shape[1 : 1 + n_sp], kernel, p)

        def window(tap):
            return _windows.strided_window(xp, tap, p.rhs_dilation, p.strides, out)

    return _windows.tap_sum(window, w, kernel, p.acc_dtype)  # (N, *O, C[, M])


def split_band_elements(spatial, kernel, p: ConvParams) -> int | None:
    """Elements per image and channel that `_split_fold` copies: its padded border bands,
    or none for small kernels (padded per tap). None where the split does not apply:
    strides or lhs dilation, a padded axis shorter than its window, or bands no smaller
    than one padded copy of x. Pure ints: the workspace estimate uses it.

    Along axis a, the bands span x's own extent on the axes before a (their interior)
    and the padded extent on the axes after it.
    """
    if any(s > 1 for s in p.strides) or any(d > 1 for d in p.lhs_dilation):
        return None
    spatial = [s + min(lo, 0) + min(hi, 0) for s, (lo, hi) in zip(spatial, p.pads)]
    pads = [(max(lo, 0), max(hi, 0)) for lo, hi in p.pads]
    padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
    total = 0
    for a, ((lo, hi), size, k, d) in enumerate(zip(pads, spatial, kernel, p.rhs_dilation)):
        if lo == hi == 0:
            continue
        extent = dilate_dim(k, d)
        if size < extent:
            return None
        across = math.prod(spatial[:a]) * math.prod(padded[a + 1 :])
        total += sum(extent - 1 + edge for edge in (lo, hi) if edge) * across
    if math.prod(kernel) <= PER_TAP_PAD_MAX_TAPS:
        return 0
    return total if total < math.prod(padded) else None


def _split_fold(x, w, p: ConvParams, pads, per_tap: bool, axis: int = 0):
    """The stride-1 fold with no padded copy of x: along each padded axis, the outputs
    whose windows lie inside x (the interior) read x itself; the `lo` and `hi` outputs at
    the ends read x's K-1 edge rows (a band), padded per tap or as a small copy. XLA
    fuses the parts and their concatenation into one loop.

    x: (N, *S, C, 1), pads >= 0, `split_band_elements` not None -> (N, *O, C, M).
    """
    if axis == len(pads):
        return _fold(x, w, p, pads, per_tap)  # nothing padded is left
    lo, hi = pads[axis]
    if lo == hi == 0:
        return _split_fold(x, w, p, pads, per_tap, axis + 1)
    extent = dilate_dim(w.shape[axis], p.rhs_dilation[axis])
    size = x.shape[1 + axis]

    def band(start, edge):  # x's K-1 rows from `start` on this axis, padded by `edge`
        rows = lax.slice_in_dim(x, start, start + extent - 1, axis=1 + axis)
        # rows: (N, .., K-1, .., C, 1), K-1 along this axis
        return _fold(rows, w, p, ((0, 0),) * axis + (edge,) + tuple(pads[axis + 1 :]), per_tap)

    interior = ((0, 0),) * (axis + 1) + tuple(pads[axis + 1 :])
    parts = [band(0, (lo, 0))] if lo else []
    parts.append(_split_fold(x, w, p, interior, per_tap, axis + 1))  # (N, .., S-K+1, .., C, M)
    if hi:
        parts.append(band(size - extent + 1, (0, hi)))
    return jnp.concatenate(parts, axis=1 + axis)  # (N, .., lo + S-K+1 + hi, .., C, M)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def conv_depthwise_grads(x, w, p: ConvParams, split: bool = True, reduced: bool = True):
    """`depthwise_fold` with its own tangents, and its output from the padded copy
    wherever it is differentiated (whatever `split` says). In the kernel: if
    `reduced`, the `_depthwise_kernel.kernel_tangent` primitive, whose transpose (the
    kernel gradient reverse mode runs) is one variadic reduction over the taps; if
    not, the FFT algorithm's. In x: written so that its transpose, the input gradient,
    is a fold too (`_input_tangent`). Forward mode works: this is a custom_jvp.
    """
    return depthwise_fold(x, w, p, split)


@functools.partial(conv_depthwise_grads.defjvp, symbolic_zeros=True)
def _depthwise_jvp(p, split, reduced, primals, tangents):
    (x, w), (dx, dw) = primals, tangents
    # Differentiated, the output comes from one padded copy of x. In a training step
    # that transient copy leaves the peak as it was (the activations kept for the
    # backward pass outweigh it), and the split's border bands would cost compile
    # time for no speed (docs/design.md, "Depthwise").
    out = conv_depthwise_grads(x, w, p, False, reduced)

    def along_w(dw):
        return kernel_tangent(x, dw, p) if reduced else conv_fft(x, dw, p)

    return out, bilinear_tangent(out, dx, dw, lambda dx: _input_tangent(dx, w, p), along_w)


FLIPPED_FOLD_MIN_TAPS = 10
"""Stride-1 kernels from this many taps take their input gradient as `flipped_fold`;
smaller ones gain little from it and would pay in forward mode and compile time."""


def _input_tangent(dx, w, p: ConvParams):
    """The fold of the tangent dx, written so that its transpose, the input gradient
    that reverse mode runs, is again a fast fold.

    The fold's own transpose is a sum of per-tap pads, which XLA evaluates with a
    bounds check per tap and element. At stride 1 (no lhs dilation, multiplier 1) the
    input gradient is the fold of the cotangent with the flipped kernel, each padding
    edge becoming its complement (`flipped_fold`). Written as that fold's
    `linear_transpose`, the tangent transposes back to it. Forward mode pays instead:
    its tangent is the sum of pads, slower to run and to compile. Kernels of fewer than
    `FLIPPED_FOLD_MIN_TAPS` keep the fold as their tangent, as do strided ones (the fold
    from a padded copy, whose transpose is the cheaper one).

    dx: (N, *S, C, 1), w: (*K, 1, C, M) -> (N, *O, C, M).
    """
    small = math.prod(w.shape[:-3]) < FLIPPED_FOLD_MIN_TAPS
    dilated = any(d > 1 for d in p.lhs_dilation)
    if small or dilated or any(s > 1 for s in p.strides) or w.shape[-1] > 1:
        return depthwise_fold(dx, w, p, split=False)
    padded = [s + lo + hi for s, (lo, hi) in zip(dx.shape[1:-2], p.pads)]
    out_shape = (dx.shape[0], *_windows.out_spatial(padded, w.shape[:-3], p), *w.shape[-2:])
    out = jax.ShapeDtypeStruct(out_shape, p.out_dtype)  # (N, *O, C, M)
    (tangent,) = jax.linear_transpose(lambda ct: flipped_fold(ct, w, p, dx.dtype), out)(dx)
    return tangent


def flipped_fold(ct, w, p: ConvParams, dtype):
    """The input gradient of the stride-1 fold: ct (N, *O, C, 1) folded with the flipped
    kernel w (*K, 1, C, 1), padded by each edge's complement (extent - 1 - pad; negative
    crops) -> (N, *S, C, 1) in `dtype`. From one padded copy of ct, not `_split_fold`:
    for these large kernels the copy runs as fast and compiles faster (docs/design.md,
    "Compile time")."""
    n_sp = len(p.pads)
    extents = [dilate_dim(k, d) for k, d in zip(w.shape[:n_sp], p.rhs_dilation)]
    pads = tuple((e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(extents, p.pads))
    flipped = w[(slice(None, None, -1),) * n_sp]  # (*K, 1, C, 1), taps reversed
    return depthwise_fold(ct, flipped, dataclasses.replace(p, pads=pads), split=False).astype(dtype)


def depthwise_workspace(problem: Problem, piece: bool = False) -> int:
    """Stride 1: the border bands `_split_fold` copies (none for small kernels); else
    the padded copy of x, except for strided kernels padded per tap. A piece always
    pads a copy (`conv_depthwise_padded`): its input is a copy already."""
    x_shape, p = problem.x_shape, problem.params
    bands = None if piece else split_band_elements(x_shape[1:-2], problem.kernel, p)
    if bands is not None:
        return bands * x_shape[0] * math.prod(x_shape[-2:]) * problem.itemsize
    return 0 if pads_per_tap(problem.kernel, p) else problem.padded_bytes


MAX_ROW_READS = 2
"""A piece of output rows may read at most this many times its share of input rows:
its window overlaps the next piece's by the kernel's extent less the stride."""

MIN_GROUP_PIECE = 64
"""A piece of a single image gives way to as many pieces of groups where those keep
this many channels."""


def depthwise_piece_ok(piece: Problem, axis: str, count: int) -> bool:
    """Rows that re-read most of their window, and single images where pieces of groups
    would stay wide, run slower than the alternatives (docs/design.md, "Pieces")."""
    if axis == "rows":
        share = piece.out_spatial[0] * piece.params.strides[0]
        return piece.x_shape[1] <= MAX_ROW_READS * share
    if axis == "batch" and piece.x_shape[0] == 1:
        return piece.groups // count < MIN_GROUP_PIECE
    return True


def depthwise_exact(problem: Problem) -> bool:
    """Exact without holes, where the kernel gradient is the reduction (not the FFT)."""
    return no_holes(problem) and reduces_kernel_gradient(problem.kernel, problem.params)


ALGORITHM = Algorithm(
    name="depthwise",
    fn=conv_depthwise,
    summary="depthwise convs as fused per-tap multiply-adds, gradients as folds",
    supports=depthwise_unsupported,
    workspace=depthwise_workspace,
    piece_axes=("rows", "batch", "groups"),
    piece_ok=depthwise_piece_ok,
    piece_fn=conv_depthwise_padded,
    exact_nonfinite=depthwise_exact,
    backends=("cpu", "gpu"),
)
