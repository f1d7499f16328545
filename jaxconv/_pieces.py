"""The memory budget, and running an algorithm in sequential pieces so it fits.

"auto" keeps a convolution's forward peak (arguments, output and the scratch its
algorithm holds) within `memory_budget()` times lax's, whose CPU conv holds no scratch
XLA can see (`Compiled.memory_analysis()`). Each algorithm estimates its scratch from
the shapes (`Algorithm.workspace`). One over budget can run in `count` equal pieces
along one axis, one after the other in a `fori_loop`, each written into the output in
place, so its workspace shrinks about `count`-fold and neither input nor output is
copied whole. The pieces are
  - "rows": rows of the output's first spatial axis, each reading its window of input
    rows (the padding zero-filled in the window, so there is no padded copy);
  - "groups": whole groups (channel slices of the input, kernel and output);
  - "batch": images.
The algorithm says which axes it accepts, in order of preference, and which pieces
still run well; nothing here names an algorithm.

Only the forward pass runs in pieces. The tangents (and so, by transposition, the
gradients) are the algorithm's own JVP on the whole arrays, so the backward pass
runs as fast as without pieces; autodiff through the loop would be far slower.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms._base import Algorithm, bilinear_tangent
from jaxconv._algorithms._windows import take_rows
from jaxconv._shapes import definitely, dilate_dim, is_symbolic, output_size
from jaxconv._spec import ConvParams, Problem


class Pieces(NamedTuple):
    """Run in `count` sequential slices of `axis`: "batch", "groups" or "rows" (the
    first spatial axis of the output, each slice reading its window of input rows)."""

    axis: str
    count: int


WHOLE = Pieces("batch", 1)


# ---------------------------------------------------------------- the budget


def within_budget(workspace, io, budget: float) -> bool:
    """Whether `workspace` bytes fit next to `io` bytes of arguments and output:
    workspace <= (budget - 1) * io, for every value of any symbolic size."""
    ratio = Fraction(budget - 1).limit_denominator(1000)
    return definitely(lambda: ratio.denominator * workspace <= ratio.numerator * io)


def row_geometry(size, kernel: int, p: ConvParams, count: int):
    """(rows per piece, stride, span, pad_lo) of "rows" pieces on the first spatial
    axis: `size` input rows, a `kernel`-tap kernel, `count` pieces."""
    (lo, hi), stride = p.pads[0], p.strides[0]
    span = dilate_dim(kernel, p.rhs_dilation[0])
    return output_size(size, span, stride, lo, hi) // count, stride, span, lo


def row_params(p: ConvParams) -> ConvParams:
    """The params of a "rows" piece: its window already holds the first axis's padding."""
    return dataclasses.replace(p, pads=((0, 0), *p.pads[1:]))


def sliced(problem: Problem, axis: str, count: int) -> Problem:
    """The problem that one of `count` pieces along `axis` poses."""
    x, w, out = list(problem.x_shape), list(problem.w_shape), list(problem.out_spatial)
    params = problem.params
    if axis == "batch":
        x[0] //= count
    elif axis == "groups":
        x[-2] //= count
        w[-2] //= count
    else:
        rows, stride, span, _ = row_geometry(x[1], w[0], params, count)
        x[1], out[0] = (rows - 1) * stride + span, rows
        params = row_params(params)
    return dataclasses.replace(
        problem, x_shape=tuple(x), w_shape=tuple(w), out_spatial=tuple(out), params=params
    )


def extents(problem: Problem, algorithm: Algorithm) -> list[tuple[str, int]]:
    """(axis, length) that `algorithm` may cut, in its order of preference. Rows of an
    lhs-dilated axis, and axes of symbolic length, are never cut."""
    rows = problem.out_spatial[0] if problem.params.lhs_dilation[0] == 1 else 1
    lengths = {"rows": rows, "groups": problem.groups, "batch": problem.x_shape[0]}
    return [
        (axis, lengths[axis]) for axis in algorithm.piece_axes if not is_symbolic([lengths[axis]])
    ]


def piece_bytes(problem: Problem, algorithm: Algorithm, axis: str, count: int):
    """Workspace of one of `count` pieces, plus its result before it is written in
    place and, but for batch pieces, its input (a slice or window of rows is copied)."""
    piece = sliced(problem, axis, count)
    copies = piece.io_bytes - math.prod(piece.w_shape) * problem.itemsize
    if axis == "batch":
        copies -= math.prod(piece.x_shape) * problem.itemsize
    return algorithm.workspace(piece, True) + copies


def fit(problem: Problem, algorithm: Algorithm, budget: float) -> Pieces | None:
    """The fewest pieces in which `algorithm`'s workspace fits `budget`, or None.

    Pieces cut one axis of `extents` into equal parts, so their count divides its
    length, and each must pass the algorithm's `piece_ok`. Where a size is symbolic,
    an estimate that cannot be decided counts as over budget.
    """
    io = problem.io_bytes
    try:
        if within_budget(algorithm.workspace(problem, False), io, budget):
            return WHOLE
        for axis, extent in extents(problem, algorithm):
            for k in range(2, extent + 1):
                if extent % k or not algorithm.piece_ok(sliced(problem, axis, k), axis, k):
                    continue
                if within_budget(piece_bytes(problem, algorithm, axis, k), io, budget):
                    return Pieces(axis, k)
    except (TypeError, jax.errors.InconclusiveDimensionOperation):
        if not problem.symbolic:
            raise
    return None


# ---------------------------------------------------------------- running in pieces


def slice_taker(axis: int, count: int):
    """Piece i of `count` equal slices along `axis`."""

    def take(a, i):
        size = a.shape[axis] // count
        return lax.dynamic_slice_in_dim(a, i * size, size, axis=axis)

    return take


def row_taker(axis: int, rows: int, stride: int, span: int, pad_lo: int):
    """The input rows that output rows [i*rows, (i+1)*rows) read along `axis`: a window
    of (rows - 1) * stride + span rows from i*rows*stride - pad_lo, zero outside the
    input. Padding that way leaves no padded copy of the whole input."""
    length = (rows - 1) * stride + span

    def take(a, i):
        return take_rows(a, i * rows * stride - pad_lo + jnp.arange(length), axis)

    return take


def takers(pieces: Pieces, x, w, p: ConvParams, x_axes, w_axes, out_axes):
    """(take_x, take_w, output axis, params of a piece) for running in `pieces`.

    x_axes and out_axes give the (batch, channel, first spatial) axes of x and of the
    output, w_axes the (first spatial, output feature) axes of w, in whatever layout
    the arrays are in. Group pieces are channel slices of x, w's output features and
    the output (whole groups, as channels are group-major).
    """
    count = pieces.count
    if pieces.axis == "batch":
        return slice_taker(x_axes[0], count), None, out_axes[0], p
    if pieces.axis == "groups":
        take_w = slice_taker(w_axes[1], count)
        return slice_taker(x_axes[1], count), take_w, out_axes[1], p
    geometry = row_geometry(x.shape[x_axes[2]], w.shape[w_axes[0]], p, count)
    return row_taker(x_axes[2], *geometry), None, out_axes[2], row_params(p)


def run_in_pieces(f, count: int, take_x, take_w, out_axis: int, whole):
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

        def along_x(dx):
            return jax.jvp(lambda x: whole(x, w), (x,), (dx,))[1]

        def along_w(dw):
            return jax.jvp(lambda w: whole(x, w), (w,), (dw,))[1]

        return out, bilinear_tangent(out, dx, dw, along_x, along_w)

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
    (`parallel_task_assignment.cc`), so each piece would run on one core. Behind the
    conditional the piece stays a fusion of its own that XLA partitions across cores,
    and the update only copies it (the piece's result, held before the copy, is in
    `piece_bytes`). The predicate is not constant, so XLA keeps the conditional.
    """

    def never(i):
        return jnp.zeros(result.shape, result.dtype)

    return lambda i: lax.cond(i >= 0, piece, never, i)
