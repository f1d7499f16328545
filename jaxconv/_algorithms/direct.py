"""The "direct" algorithm: one strided slice and one GEMM per kernel tap; the reference path."""

from __future__ import annotations

import math

import jax

from jaxconv._algorithms._base import Algorithm, no_holes
from jaxconv._algorithms._windows import (
    grouped_dot,
    out_spatial,
    padded_input,
    strided_window,
    taps,
)
from jaxconv._spec import ConvParams, Problem


def conv_direct(x, w, p: ConvParams):
    """Convolution as a sum over kernel taps of strided-slice GEMMs.

    out[n, o, g, :] = sum_k x_pad[n, o*s + k*d, g, :] @ w[k, :, g, :]

    Shapes: N batch, S/O input/output spatial, K kernel, G groups, Ig/Og
    per-group channels. x: (N, *S, G, Ig); w: (*K, Ig, G, Og). Returns
    (N, *O, G, Og). Supports every configuration lax does; memory is the padded
    input plus one output per tap (XLA keeps the terms of the sum apart).
    """
    with jax.named_scope("jaxconv.direct"):
        xp = padded_input(x, p)  # (N, *Sp, G, Ig)
        kernel = w.shape[:-3]
        out = out_spatial(xp.shape[1:-2], kernel, p)
        acc = None
        for tap in taps(kernel):
            window = strided_window(xp, tap, p.rhs_dilation, p.strides, out)  # (N, *O, G, Ig)
            term = grouped_dot(window, w[tap], p, p.acc_dtype)  # (N, *O, G, Og)
            acc = term if acc is None else acc + term
        return acc.astype(p.out_dtype)


def direct_workspace(problem: Problem, piece: bool = False) -> int:
    """The padded input; with Ig > 1, one GEMM output per tap."""
    per_tap = problem.out_bytes if problem.x_shape[-1] > 1 else 0
    return problem.padded_bytes + math.prod(problem.kernel) * per_tap


ALGORITHM = Algorithm(
    name="direct",
    fn=conv_direct,
    summary="one strided slice and GEMM per tap: the reference path, any configuration",
    workspace=direct_workspace,
    exact_nonfinite=no_holes,
    backends=("cpu",),
)
