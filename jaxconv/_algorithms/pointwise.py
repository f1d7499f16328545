"""The "pointwise" algorithm: a conv whose windows do not overlap is one GEMM.

A 1x1 kernel, or any kernel no longer than its stride (the patch embeddings of
ViT, 16x16/16, and ConvNeXt, 4x4/4; wav2vec2's k2/2 layers), reads each input
element at most once. After a space-to-depth reshape, output o owns the block
x_pad[o*s : o*s + s], and the kernel meets the block's phases 0, d, ..., (k-1)*d:

    out[n, o, g, :] = sum_{k, i} x_pad[n, o*s + k*d, g, i] * w[k, i, g, :]

That is a single `dot_general` contracting (taps, Ig); there is no window to
gather, so it beats XLA's convolution emitter on CPU. Its transposes are the same
reshapes and one GEMM each, so the backward pass gains as well.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms._base import Algorithm
from jaxconv._algorithms._windows import grouped_dot, out_spatial, padded_input
from jaxconv._shapes import dilate_dim
from jaxconv._spec import ConvParams, Problem


def pointwise_unsupported(problem: Problem) -> str | None:
    p = problem.params
    extents = [dilate_dim(k, d) for k, d in zip(problem.kernel, p.rhs_dilation)]
    if any(e > s for e, s in zip(extents, p.strides)):
        return (
            "it needs windows that do not overlap (a 1x1 kernel, or a dilated kernel no "
            f"longer than the stride); got kernel shape {problem.kernel}, rhs_dilation "
            f"{p.rhs_dilation} and strides {p.strides}."
        )
    return None


def conv_pointwise(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) with (K-1)*d + 1 <= s -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.pointwise"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        n_sp = len(kernel)
        out = out_spatial(xp.shape[1:-2], kernel, p)
        # Pad or crop each spatial axis to O*s: the last block's unread tail may lie
        # past the padded input (never read), or the input may run past it (cropped).
        config = [(0, 0, 0)] + [(0, o * s - n, 0) for o, s, n in zip(out, p.strides, xp.shape[1:])]
        blocks = lax.pad(xp, jnp.zeros((), xp.dtype), config + [(0, 0, 0)] * 2)  # (N, *O*s, G, Ig)
        split = [v for o, s in zip(out, p.strides) for v in (o, s)]
        blocks = blocks.reshape(xp.shape[0], *split, *xp.shape[-2:])  # (N, O0, s0, ..., G, Ig)
        # Keep the phases the kernel taps meet: 0, d, ..., (k-1)*d of every block.
        limit, step = [xp.shape[0]], [1]
        for o, k, d in zip(out, kernel, p.rhs_dilation):
            limit += [o, dilate_dim(k, d)]
            step += [1, d]
        blocks = lax.slice(
            blocks, [0] * blocks.ndim, limit + list(xp.shape[-2:]), step + [1, 1]
        )  # (N, O0, K0, ..., G, Ig)
        # Gather each window's (taps, Ig) next to each other, so the GEMM contracts one
        # contiguous axis (measured faster than dot_general over scattered axes).
        perm = (0, *range(1, 2 * n_sp, 2), 2 * n_sp + 1, *range(2, 2 * n_sp + 1, 2), 2 * n_sp + 2)
        patches = blocks.transpose(perm)  # (N, *O, G, *K, Ig)
        patches = patches.reshape(xp.shape[0], *out, x.shape[-2], -1)  # (N, *O, G, T*Ig)
        wm = w.reshape(-1, *w.shape[-2:])  # (T*Ig, G, Og)
        y = grouped_dot(patches, wm, p, p.acc_dtype)  # (N, *O, G, Og)
        return y.astype(p.out_dtype)


def pointwise_workspace(problem: Problem, piece: bool = False) -> int:
    """1x1 stride 1 is a plain GEMM; otherwise the padded input and the gathered windows."""
    p = problem.params
    if all(k == 1 for k in problem.kernel) and all(s == 1 for s in p.strides):
        return 0
    windows = problem.x_shape[0] * math.prod(problem.out_spatial) * math.prod(problem.kernel)
    return problem.padded_bytes + windows * math.prod(problem.x_shape[-2:]) * problem.itemsize


ALGORITHM = Algorithm(
    name="pointwise",
    fn=conv_pointwise,
    summary="windows that do not overlap (1x1, patch embeddings) as one reshape and GEMM",
    supports=pointwise_unsupported,
    workspace=pointwise_workspace,
)
