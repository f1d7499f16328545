"""The "im2col" algorithm: every window gathered into a patch matrix, then one GEMM
(Chellapilla et al. 2006).

    patches[n, o, g, (k, i)] = x_pad[n, o*s + k*d, g, i]
    out[n, o, g, :] = patches[n, o, g, :] @ w[(k, i), g, :]

The patch matrix holds each input element once per tap that reads it, so it is K
times the input (K taps). Where the kernel outweighs it (few output positions, many
channels: the last stages of a ResNet), that copy is cheap, and the gradients are two
GEMMs as well: the kernel gradient patches^T @ cotangent, the input gradient
cotangent @ w^T scattered back over the taps. XLA's own gradients of such layers run
far below the matmul peak on CPU (docs/design.md, "The auto rule").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxconv._algorithms._base import Algorithm, no_holes
from jaxconv._algorithms._windows import (
    grouped_dot,
    out_spatial,
    padded_input,
    strided_window,
    taps,
)
from jaxconv._spec import ConvParams, Problem


def conv_im2col(x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.im2col"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        out = out_spatial(xp.shape[1:-2], kernel, p)
        windows = [strided_window(xp, tap, p.rhs_dilation, p.strides, out) for tap in taps(kernel)]
        patches = jnp.concatenate(windows, axis=-1)  # (N, *O, G, T*Ig), tap-major
        wm = w.reshape(-1, *w.shape[-2:])  # (T*Ig, G, Og), tap-major
        return grouped_dot(patches, wm, p, p.acc_dtype).astype(p.out_dtype)


def patch_bytes(problem: Problem) -> int:
    """Bytes of the patch matrix: every output position's window of every tap."""
    positions = problem.x_shape[0] * math.prod(problem.out_spatial)
    row = math.prod(problem.kernel) * math.prod(problem.x_shape[-2:])
    return positions * row * problem.itemsize


def im2col_workspace(problem: Problem, piece: bool = False) -> int:
    """The padded input and the patch matrix twice: XLA:CPU writes each tap's window
    out before concatenating them."""
    return problem.padded_bytes + 2 * patch_bytes(problem)


ALGORITHM = Algorithm(
    name="im2col",
    fn=conv_im2col,
    summary="windows gathered into a patch matrix, one GEMM (Chellapilla et al. 2006)",
    workspace=im2col_workspace,
    piece_axes=("batch", "rows"),
    exact_nonfinite=no_holes,
    backends=("cpu",),
)
