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

The forward pass and the kernel tangent build the patch matrix as one gather: it is
the backward pass's saved residual, so the two share it, and XLA:CPU compiles it as
one kernel where one strided slice per tap is a kernel each (docs/design.md,
"Compile time"). The input tangent keeps the slices: its transpose (each tap's slice
of the cotangent padded back into place) is one fusion, where a gather's would be a
scatter-add.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._algorithms._base import Algorithm, no_holes, with_tangents
from jaxconv._algorithms._windows import grouped_dot, out_spatial, padded_input, sliced_patches
from jaxconv._shapes import is_symbolic
from jaxconv._spec import ConvParams, Problem


def gathered_patches(xp, kernel, p: ConvParams, out):
    """`sliced_patches` as one gather: xp (N, *Sp, G, Ig) -> (N, *O, G, T*Ig).

    Spatial axis i is indexed by o * stride + k * dilation, an (O_i, K_i) table
    broadcast to (*O, *K); a symbolic size leaves the slices.
    """
    if is_symbolic(out, xp.shape[1:-2]):
        return sliced_patches(xp, kernel, p, out)
    nd = len(kernel)
    index = []
    for i, (o, k, s, d) in enumerate(zip(out, kernel, p.strides, p.rhs_dilation)):
        shape = [1] * (2 * nd)
        shape[i], shape[nd + i] = o, k
        table = np.arange(o)[:, None] * s + np.arange(k)[None, :] * d  # (O_i, K_i)
        index.append(table.reshape(shape))
    patches = xp[(slice(None), *index)]  # (N, *O, *K, G, Ig)
    patches = jnp.moveaxis(patches, -2, 1 + nd)  # (N, *O, G, *K, Ig)
    return patches.reshape(*patches.shape[: 2 + nd], -1)  # (N, *O, G, T*Ig)


def _patch_gemm(patch_fn, x, w, p: ConvParams):
    """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) -> (N, *O, G, Og), patches by `patch_fn`."""
    with jax.named_scope("jaxconv.im2col"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        patches = patch_fn(xp, kernel, p, out_spatial(xp.shape[1:-2], kernel, p))
        wm = w.reshape(-1, *w.shape[-2:])  # (T*Ig, G, Og), tap-major
        return grouped_dot(patches, wm, p, p.acc_dtype).astype(p.out_dtype)


def im2col_terms(x, w, p: ConvParams):
    """The patch GEMM with sliced patches, free of custom rules: the input tangent
    (dx, w), whose transpose pads each tap's slice back."""
    return _patch_gemm(sliced_patches, x, w, p)


def im2col_gathered(x, w, p: ConvParams):
    """The patch GEMM over gathered patches: the forward pass, and the kernel tangent
    (x, dw), whose transpose is patches^T @ cotangent over the forward's patches."""
    return _patch_gemm(gathered_patches, x, w, p)


conv_im2col = with_tangents(im2col_gathered, im2col_terms, "conv_im2col", im2col_gathered)
conv_im2col.__doc__ = """x: (N, *S, G, Ig), w: (*K, Ig, G, Og) -> (N, *O, G, Og): the patch GEMM
over gathered patches, with `im2col_terms` as its input tangent (a custom_jvp:
forward mode works)."""


def patch_bytes(problem: Problem) -> int:
    """Bytes of the patch matrix: every output position's window of every tap."""
    positions = problem.x_shape[0] * math.prod(problem.out_spatial)
    row = math.prod(problem.kernel) * math.prod(problem.x_shape[-2:])
    return positions * row * problem.itemsize


def im2col_workspace(problem: Problem, piece: bool = False) -> int:
    """The padded input and the gathered patch matrix."""
    return problem.padded_bytes + patch_bytes(problem)


ALGORITHM = Algorithm(
    name="im2col",
    fn=conv_im2col,
    summary="windows gathered into a patch matrix, one GEMM (Chellapilla et al. 2006)",
    tangent_fn=im2col_terms,
    kernel_tangent_fn=im2col_gathered,
    workspace=im2col_workspace,
    piece_axes=("batch", "rows"),
    exact_nonfinite=no_holes,
    backends=("cpu",),
)
