"""The "winograd" algorithms: F(2,3) and F(4,3) minimal filtering (Lavin & Gray 2015).

Per spatial dim, a tile of a = m + 2 inputs gives m outputs of a 3-tap filter:

    y = A^T [ (G g) * (B^T d) ]        (N-D: the same transform on every dim)

so the channel contraction runs once per transformed tile position (a^n
batched GEMMs) instead of once per tap: 2.25x (F(2x2,3x3)) or 4x (F(4x4,3x3))
fewer multiplications than direct for 3x3 stride-1 convs. The price is
rounding: the transforms add and subtract, so the error against "direct" grows
with m and the number of dims (docs/design.md, "Winograd"), and one NaN or inf
reaches every output of its tile. 16-bit inputs are computed in float32.

Its speed is in the forward pass alone, so it runs only where the call is not
differentiated: under jvp or grad the whole convolution, primal and tangents, is the
exact one (`conv_exact`, `Algorithm.differentiated`). Winograd's forward with exact
gradients trained no faster than XLA's conv and compiled longer (docs/design.md,
"Winograd").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._algorithms import _windows
from jaxconv._algorithms._base import INEXACT_NONFINITE, Algorithm
from jaxconv._algorithms.xla import conv_xla
from jaxconv._algorithms.xla2d import conv_xla2d
from jaxconv._spec import ConvParams, Problem

# (B^T, G, A^T) for F(m, 3), from Lavin & Gray (2015), "Fast Algorithms for CNNs".
_MATRICES = {
    2: (
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    ),
    4: (
        np.array(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            np.float64,
        ),
        np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ],
            np.float64,
        ),
        np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
            np.float64,
        ),
    ),
}


def winograd_unsupported(problem: Problem) -> str | None:
    p = problem.params
    if not problem.kernel or any(k != 3 for k in problem.kernel):
        return f"it needs a 3-tap kernel in every spatial dim, got {problem.kernel}."
    if any(s != 1 for s in p.strides) or any(d != 1 for d in p.rhs_dilation):
        return "it needs stride 1 and no kernel dilation."
    return None


def _combine(terms, coeffs):
    """sum_i coeffs[i] * terms[i] over the nonzero coefficients (fused by XLA)."""
    acc = None
    for c, t in zip(coeffs, terms):
        if c == 0:
            continue
        term = t if c == 1 else -t if c == -1 else t * jnp.asarray(c, t.dtype)
        acc = term if acc is None else acc + term
    return acc


def _conv_winograd(x, w, p: ConvParams, m: int):
    """x: (N, *S, G, Ig), w: (3.., Ig, G, Og) -> (N, *O, G, Og) by F(m, 3) tiles.

    Every transform is a linear combination of strided slices (elementwise, fused
    by XLA), and the transformed tiles are laid out tile-position-major, so the
    a^n GEMMs are one `dot_general` batched over leading axes with no transposes.
    """
    bt, gm, at = _MATRICES[m]
    a = m + 2
    compute = jnp.float64 if p.acc_dtype == jnp.float64 else jnp.float32
    xp = _windows.padded_input(x.astype(compute), p)  # (N, *Sp, G, Ig)
    n_sp = w.ndim - 3
    out = _windows.out_spatial(xp.shape[1 : 1 + n_sp], (3,) * n_sp, p)
    tiles = [-(-o // m) for o in out]
    # Pad so every tile has a full a-wide input window: length (T-1)*m + a.
    config = (
        [(0, 0, 0)]
        + [(0, (t - 1) * m + a - s, 0) for t, s in zip(tiles, xp.shape[1 : 1 + n_sp])]
        + [(0, 0, 0)] * 2
    )
    v = lax.pad(xp, jnp.zeros((), compute), config)
    # Input transform B^T d, one dim at a time; each adds a leading tile-position axis.
    for d in range(n_sp):
        axis = d + 1 + d  # d position axes lead, then N, then the spatial axes
        windows = [
            lax.slice_in_dim(v, i, i + (tiles[d] - 1) * m + 1, m, axis=axis) for i in range(a)
        ]  # each (*xi, N, .., T_d, .., G, Ig)
        v = jnp.stack([_combine(windows, row) for row in bt])  # (xi_d, *xi, N, .., G, Ig)
    # v: (xi_n.., xi_1, N, *T, G, Ig). Kernel transform G g, positions leading the same way.
    u = w.astype(compute)
    for d in range(n_sp):
        u = jnp.tensordot(jnp.asarray(gm, compute), u, axes=((1,), (d,)))
        # (xi_d, .., xi_0, K_d+1.., Ig, G, Og): tensordot puts the new axis first
    groups = x.shape[-2]
    xi = tuple(range(n_sp))
    if groups == 1:
        prod = lax.dot_general(
            v[..., 0, :],
            u[..., 0, :],
            (((v.ndim - 2,), (n_sp,)), (xi, xi)),
            precision=lax.Precision.HIGHEST,
        )  # (*xi, N, *T, Og)
        prod = prod[..., None, :]  # (*xi, N, *T, 1, Og)
    else:
        prod = lax.dot_general(
            v,
            u,
            (((v.ndim - 1,), (n_sp,)), ((*xi, v.ndim - 2), (*xi, n_sp + 1))),
            precision=lax.Precision.HIGHEST,
        )  # (*xi, G, N, *T, Og)
        prod = jnp.moveaxis(prod, n_sp, -2)  # (*xi, N, *T, G, Og)
    # Output transform A^T, last position axis first (it leads), inserting m after T_d.
    y = prod
    for d in reversed(range(n_sp)):
        parts = [y[i] for i in range(a)]  # each (*xi_<d, N, *T(m), G, Og)
        rows = [_combine(parts, row) for row in at]
        t_axis = d + 1 + d  # remaining d position axes, N, then T_0 m_0 .. T_d
        y = jnp.stack(rows, axis=t_axis + 1)  # (*xi_<d, N, .., T_d, m_d, .., G, Og)
    y = y.reshape(y.shape[0], *[t * m for t in tiles], *y.shape[-2:])  # (N, *Tm, G, Og)
    y = y[(slice(None), *(slice(0, o) for o in out))]  # (N, *O, G, Og)
    return y.astype(p.out_dtype)


def conv_winograd(x, w, p: ConvParams):
    """F(2x2, 3x3) (N-D): x (N, *S, G, Ig), w (3.., Ig, G, Og) -> (N, *O, G, Og)."""
    with jax.named_scope("jaxconv.winograd"):
        return _conv_winograd(x, w, p, 2)


def conv_winograd4(x, w, p: ConvParams):
    """F(4x4, 3x3) (N-D): fewer multiplications than F(2, 3), larger rounding error."""
    with jax.named_scope("jaxconv.winograd4"):
        return _conv_winograd(x, w, p, 4)


def conv_exact(x, w, p: ConvParams):
    """The exact convolution that runs where Winograd's is differentiated: XLA's, or for
    3-D and up `xla2d`'s 2-D conv (whose backward beats XLA's 3-D one)."""
    return conv_xla2d(x, w, p) if w.ndim - 3 >= 3 else conv_xla(x, w, p)


def winograd_tiles(problem: Problem, m: int):
    """Output tiles of m^n across the batch: the rows of each of Winograd's GEMMs."""
    return problem.x_shape[0] * math.prod(-(-o // m) for o in problem.out_spatial)


def _workspace(m: int):
    def workspace(problem: Problem, piece: bool = False) -> int:
        """The transformed tiles of input and output, and the transformed kernel, at
        each of the (m + 2)^n tile positions."""
        positions = (m + 2) ** len(problem.kernel)
        groups, ig, og = problem.groups, problem.x_shape[-1], problem.w_shape[-1]
        tiles = winograd_tiles(problem, m)
        return problem.compute_itemsize * positions * groups * (tiles * (ig + og) + ig * og)

    return workspace


MIN_PIECE_TILES = 64
"""A piece keeps at least max(this, output channels) tiles per GEMM."""


def _piece_ok(m: int):
    def piece_ok(piece: Problem, axis: str, count: int) -> bool:
        """Fewer tiles than output channels make the transformed kernel outweigh them."""
        tiles = winograd_tiles(piece, m)
        return tiles >= max(MIN_PIECE_TILES, piece.w_shape[-1])

    return piece_ok


def _algorithm(name: str, m: int, fn) -> Algorithm:
    return Algorithm(
        name=name,
        fn=fn,
        summary=f"F({m}, 3) minimal filtering, N-D (Lavin & Gray 2015); differentiated, exact",
        supports=winograd_unsupported,
        dtypes=("floating",),
        workspace=_workspace(m),
        piece_ok=_piece_ok(m),
        differentiated=conv_exact,
        exact_nonfinite=INEXACT_NONFINITE,
        backends=("cpu",),
    )


WINOGRAD = _algorithm("winograd", 2, conv_winograd)
WINOGRAD4 = _algorithm("winograd4", 4, conv_winograd4)
TILE = {"winograd4": 4, "winograd": 2}
"""Output tile size m of each Winograd algorithm, F(m, 3), larger tiles first."""
