"""The "winograd" algorithms: F(2,3) and F(4,3) minimal filtering (Lavin & Gray 2015).

Per spatial dim, a tile of a = m + 2 inputs gives m outputs of a 3-tap filter:

    y = A^T [ (G g) * (B^T d) ]        (N-D: the same transform on every dim)

so the channel contraction runs once per transformed tile position (a^n
batched GEMMs) instead of once per tap: 2.25x (F(2x2,3x3)) or 4x (F(4x4,3x3))
fewer multiplications than direct for 3x3 stride-1 convs. The price is
rounding: the transforms add and subtract, so the error against "direct" grows
with m. Measured in float32 on N(0,1) data, 2x9x10x64 -> 32 channels, max error
relative to the largest output (float64 reference): direct 1.6e-7, F(2,3)
3.9e-7, F(4,3) 4.9e-6. 16-bit inputs are computed in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._algorithms import _common
from jaxconv._typing import ConvParams

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


def winograd_unsupported(problem) -> str | None:
    p = problem.params
    if not problem.kernel or any(k != 3 for k in problem.kernel):
        return f"it needs a 3-tap kernel in every spatial dim, got {problem.kernel}."
    if any(s != 1 for s in p.strides) or any(d != 1 for d in p.rhs_dilation):
        return "it needs stride 1 and no kernel dilation."
    if not jnp.issubdtype(problem.dtype, jnp.floating):
        return f"it needs floating inputs, got {problem.dtype}."
    return None


def _conv_winograd(x, w, p: ConvParams, m: int):
    """x: (N, *S, G, Ig), w: (3.., Ig, G, Og) -> (N, *O, G, Og) by F(m, 3) tiles."""
    bt, gm, at = _MATRICES[m]
    a = m + 2
    compute = jnp.float64 if p.acc_dtype == jnp.float64 else jnp.float32
    xp = _common.padded_input(x.astype(compute), p)  # (N, *Sp, G, Ig)
    n_sp = w.ndim - 3
    out = _common.out_spatial(xp.shape[1 : 1 + n_sp], (3,) * n_sp, p)
    tiles = [-(-o // m) for o in out]
    # Pad so every tile has a full a-wide input window: length (T-1)*m + a.
    config = (
        [(0, 0, 0)]
        + [(0, (t - 1) * m + a - s, 0) for t, s in zip(tiles, xp.shape[1 : 1 + n_sp])]
        + [(0, 0, 0)] * 2
    )
    xp = lax.pad(xp, jnp.zeros((), compute), config)
    v = xp
    for d in range(n_sp):  # tile dim d: (.., T_d, ..) plus a trailing window axis of size a
        axis = 1 + d
        windows = []
        for i in range(a):
            start = [0] * v.ndim
            limit = list(v.shape)
            step = [1] * v.ndim
            start[axis], limit[axis], step[axis] = i, i + (tiles[d] - 1) * m + 1, m
            windows.append(lax.slice(v, start, limit, step))
        v = jnp.stack(windows, axis=-1)  # (N, *T.., G, Ig, *xi.., a)
        v = jnp.tensordot(v, jnp.asarray(bt.T, compute), axes=1)  # B^T d: (.., xi_d)
    u = w.astype(compute)
    for _ in range(n_sp):  # each pass takes the leading K axis to a trailing xi axis
        u = jnp.tensordot(u, jnp.asarray(gm.T, compute), axes=((0,), (0,)))  # (.., Ig, G, Og, xi)
    # v: (N, *T, G, Ig, *xi); u: (Ig, G, Og, *xi). Batch over (G, *xi), contract Ig.
    xi_v = tuple(range(3 + n_sp, 3 + 2 * n_sp))
    xi_u = tuple(range(3, 3 + n_sp))
    mprod = lax.dot_general(
        v,
        u,
        (((2 + n_sp,), (0,)), ((1 + n_sp, *xi_v), (1, *xi_u))),
        precision=lax.Precision.HIGHEST,
    )  # (G, *xi, N, *T, Og)
    y = mprod
    for _ in range(n_sp):  # A^T over the leading xi axis -> trailing m axis
        y = jnp.tensordot(y, jnp.asarray(at.T, compute), axes=((1,), (0,)))
    # y: (G, N, *T, Og, *m) -> (N, *T, *m interleaved, G, Og)
    y = jnp.moveaxis(y, 0, 1 + n_sp)  # (N, *T, G, Og, *m)
    for d in range(n_sp):
        y = jnp.moveaxis(y, 3 + n_sp + d, 2 + d * 2)  # put m_d right after T_d
    y = y.reshape(y.shape[0], *[t * m for t in tiles], *y.shape[1 + 2 * n_sp :])  # (N, *Tm, G, Og)
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
