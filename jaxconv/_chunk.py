"""Running an algorithm in sequential pieces, so its workspace fits the memory budget.

An algorithm with a large workspace (Winograd's transformed tiles, FFT spectra,
a padded copy of the input) holds it for the whole problem at once. Cut the output
into `count` equal pieces along one axis, run the algorithm on one piece at a time
in a `fori_loop`, and write each result into the output in place
(`dynamic_update_slice`; on CPU each piece is computed apart from that update, so it
runs on all cores: `_own_fusion`): the workspace shrinks about `count`-fold, and
neither the inputs nor the output are copied whole. The pieces are
  - "rows": rows of the output's first spatial axis, each reading its window of
    input rows (the padding zero-filled in the window, so no padded copy);
  - "groups": whole groups (channel slices of the input, kernel and output);
  - "batch": images.
Which axis, and how many pieces, `_memory.fit_chunks` decides.

Only the primal runs in pieces. The tangents (and so, by transposition, the
gradients) are the algorithm's own JVP on the whole arrays, so the backward pass
runs as fast as without chunking; autodiff through the loop measured 10-40x slower.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms._common import take_rows
from jaxconv._typing import ConvParams


class Chunks(NamedTuple):
    """Run in `count` sequential slices of `axis`: "batch", "groups" or "rows" (the
    first spatial axis of the output, each slice reading its window of input rows)."""

    axis: str
    count: int


def slice_taker(axis: int, count: int):
    """Piece i of `count` equal slices along `axis`."""

    def take(a, i):
        size = a.shape[axis] // count
        return lax.dynamic_slice_in_dim(a, i * size, size, axis=axis)

    return take


def row_taker(axis: int, rows: int, stride: int, span: int, pad_lo: int):
    """The input rows output rows [i*rows, (i+1)*rows) read along `axis`: a window of
    (rows - 1) * stride + span rows from i*rows*stride - pad_lo, zero outside the
    input. Padding that way leaves no padded copy of the whole input."""
    length = (rows - 1) * stride + span

    def take(a, i):
        return take_rows(a, i * rows * stride - pad_lo + jnp.arange(length), axis)

    return take


def chunked(f, count: int, take_x, take_w, out_axis: int, whole):
    """`f(x, w) -> out` run on `count` pieces in sequence: `f(take_x(x, i), take_w(w, i))`
    (take_w None: w whole) is piece i of the output along `out_axis`.

    `whole(x, w)` computes the same on whole arrays; forward and reverse mode use its
    JVP (a custom_jvp, so jvp keeps working).
    """

    @jax.custom_jvp
    def run(x, w):
        return _loop(f, x, w, count, take_x, take_w, out_axis)

    @functools.partial(run.defjvp, symbolic_zeros=True)
    def _jvp(primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        out = run(x, w)
        zero_x = type(dx) is jax.custom_derivatives.SymbolicZero
        zero_w = type(dw) is jax.custom_derivatives.SymbolicZero
        if zero_x and zero_w:
            return out, jnp.zeros_like(out)
        if zero_x:
            _, tan = jax.jvp(lambda w: whole(x, w), (w,), (dw,))
        elif zero_w:
            _, tan = jax.jvp(lambda x: whole(x, w), (x,), (dx,))
        else:
            _, tan = jax.jvp(whole, (x, w), (dx, dw))
        return out, tan

    return run


def _loop(f, x, w, count: int, take_x, take_w, out_axis: int):
    def pieces(i):
        return take_x(x, i), (w if take_w is None else take_w(w, i))

    # Pieces of the caller's arrays, not of reshaped views: XLA copies a reshaped
    # parameter before a loop, which would cost a whole input of memory.
    first = jax.eval_shape(f, *pieces(0))
    shape = list(first.shape)
    shape[out_axis] *= count
    out = jnp.zeros(shape, first.dtype)

    def piece(i):
        return f(*pieces(i))

    if jax.default_backend() == "cpu":
        piece = _own_fusion(piece, first)

    def body(i, out):
        res = piece(i)
        return lax.dynamic_update_slice_in_dim(out, res, i * res.shape[out_axis], axis=out_axis)

    return lax.fori_loop(0, count, body, out)


def _own_fusion(piece, result):
    """`piece(i)` computed inside a conditional whose predicate (i >= 0) always holds.

    XLA:CPU fuses a piece's computation into the in-place `dynamic_update_slice` that
    writes it, and never splits an in-place update across threads
    (`parallel_task_assignment.cc`), so each piece ran on one core. Behind the
    conditional the piece stays a fusion of its own that XLA partitions across cores,
    and the update only copies it: depthwise 5x5/7x7 layers in pieces ran 1.4-1.7x
    faster on 2 cores (the piece's result, held before the copy, is in `_memory`'s
    estimate). The predicate is not constant, so XLA keeps the conditional.
    """

    def never(i):
        return jnp.zeros(result.shape, result.dtype)

    return lambda i: lax.cond(i >= 0, piece, never, i)


def row_params(p: ConvParams) -> ConvParams:
    """The params of a "rows" piece: its window already holds the first axis's padding."""
    return dataclasses.replace(p, pads=((0, 0), *p.pads[1:]))


def piece_plan(chunks: Chunks, x, w, p: ConvParams, x_axes, w_axes, out_axes):
    """(take_x, take_w, output axis, params of a piece) for running in `chunks`.

    x_axes and out_axes give the (batch, channel, first spatial) axes of x and of the
    output, w_axes the (first spatial, output feature) axes of w, in whatever layout
    the arrays are in. Group pieces are channel slices of x, w's output features and
    the output (whole groups, as channels are group-major).
    """
    count = chunks.count
    if chunks.axis == "batch":
        return slice_taker(x_axes[0], count), None, out_axes[0], p
    if chunks.axis == "groups":
        take_w = slice_taker(w_axes[1], count)
        return slice_taker(x_axes[1], count), take_w, out_axes[1], p
    geometry = row_geometry(x.shape[x_axes[2]], w.shape[w_axes[0]], p, count)
    return row_taker(x_axes[2], *geometry), None, out_axes[2], row_params(p)


def chunked_algorithm(info, chunks: Chunks):
    """The algorithm of `info` (an `AlgorithmInfo`: canonical x (N, *S, G, Ig),
    w (*K, Ig, G, Og) -> (N, *O, G, Og)) run in `chunks`, with the same signature."""
    fn = info.fn
    if chunks.count == 1:
        return fn

    def run(x, w, p):
        g = x.ndim - 2  # the group axis of x and of the output; w's is w.ndim - 2
        take_x, take_w, axis, piece_p = piece_plan(
            chunks, x, w, p, (0, g, 1), (0, w.ndim - 2), (0, g, 1)
        )
        return chunked(
            lambda x, w: info.in_pieces(x, w, piece_p),
            chunks.count,
            take_x,
            take_w,
            axis,
            lambda x, w: fn(x, w, p),
        )(x, w)

    return run


def row_geometry(size: int, kernel: int, p: ConvParams, count: int):
    """(rows per piece, stride, span, pad_lo) of "rows" chunks on the first spatial
    axis: `size` input rows, a `kernel`-tap kernel."""
    (lo, hi), stride, dilation = p.pads[0], p.strides[0], p.rhs_dilation[0]
    span = (kernel - 1) * dilation + 1
    out_rows = (size + lo + hi - span) // stride + 1
    assert out_rows % count == 0, (out_rows, count)  # fit_chunks picks divisors
    return out_rows // count, stride, span, lo
