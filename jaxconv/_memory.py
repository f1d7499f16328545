"""The memory budget: each algorithm's forward workspace, and the chunks that fit it.

"auto" keeps a convolution's forward peak, its arguments and output plus the
scratch its algorithm holds, within MEMORY_BUDGET times lax's, whose CPU conv
holds no scratch XLA can see (`Compiled.memory_analysis()`). The estimates below
are pure shape arithmetic; tests/test_memory.py checks them against
`memory_analysis()`. An algorithm over budget runs in sequential pieces of the
output rows, the groups or the batch (`_chunk`), each holding its share of the
workspace; where no piece size fits, "auto" takes another algorithm.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from jaxconv._algorithms import Problem
from jaxconv._chunk import Chunks, row_geometry, row_params
from jaxconv._padding import dilate_dim

MEMORY_BUDGET = 1.5
"""Default forward peak memory of "auto" relative to lax's on the same layer."""

_BUDGET = [MEMORY_BUDGET]


def memory_budget() -> float:
    """The forward peak memory "auto" allows itself, as a multiple of lax's."""
    return _BUDGET[0]


def set_memory_budget(ratio: float = MEMORY_BUDGET) -> None:
    """Let "auto" use up to `ratio` times lax's forward peak memory (default 1.5).

    The peak counts the arguments, the output and the algorithm's workspace. A larger
    ratio runs fast algorithms whole or in fewer chunks (Winograd on more ResNet
    layers); 1.0 allows no workspace at all. It applies to convolutions traced after
    the call: a function jitted before keeps its choice.

    Example:
      >>> jaxconv.set_memory_budget(3.0)
      >>> jaxconv.set_memory_budget()  # back to 1.5
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1:
        raise ValueError(f"set_memory_budget: `ratio` (={ratio!r}) must be a number >= 1.")
    _BUDGET[0] = float(ratio)


def io_bytes(problem: Problem) -> int:
    """Bytes of the arguments and output: lax's whole forward peak."""
    n, groups, og = problem.x_shape[0], problem.groups, problem.w_shape[-1]
    out = n * math.prod(problem.out_spatial) * groups * og
    elements = math.prod(problem.x_shape) + math.prod(problem.w_shape) + out
    return elements * np.dtype(problem.dtype).itemsize


def compute_itemsize(problem: Problem) -> int:
    """Bytes per element of computed workspaces: 16-bit inputs are computed in float32."""
    return max(np.dtype(problem.dtype).itemsize, 4)


def padded_bytes(problem: Problem) -> int:
    """Bytes of the padded (and lhs-dilated) input copy; 0 when nothing is padded."""
    p = problem.params
    if all(lo == hi == 0 for lo, hi in p.pads) and all(d == 1 for d in p.lhs_dilation):
        return 0
    spatial = [
        dilate_dim(s, d) + lo + hi
        for s, d, (lo, hi) in zip(problem.x_shape[1:-2], p.lhs_dilation, p.pads)
    ]
    return (
        problem.x_shape[0]
        * math.prod(spatial)
        * math.prod(problem.x_shape[-2:])
        * np.dtype(problem.dtype).itemsize
    )


def fft_shapes(problem: Problem):
    """(x_shape, dilated w_shape, padded spatial) as the FFT algorithm sees them."""
    padded = [
        s * d + lo + hi
        for s, d, (lo, hi) in zip(
            problem.x_shape[1:-2], problem.params.lhs_dilation, problem.params.pads
        )
    ]
    dilated = tuple(dilate_dim(k, d) for k, d in zip(problem.kernel, problem.params.rhs_dilation))
    return problem.x_shape, dilated + problem.w_shape[-3:], padded  # w: (*Kd, Ig, G, Og)


WINOGRAD_TILE = {"winograd4": 4, "winograd": 2}
"""Output tile size m of each Winograd algorithm, F(m, 3)."""


def winograd_tiles(problem: Problem, m: int) -> int:
    """Output tiles of m^n across the batch: the rows of each of Winograd's GEMMs."""
    return problem.x_shape[0] * math.prod(-(-o // m) for o in problem.out_spatial)


def workspace_bytes(problem: Problem, name: str, piece: bool = False) -> int:
    """Scratch bytes the forward of algorithm `name` holds at once (an estimate); with
    `piece`, as it runs on a piece of chunked execution (`AlgorithmInfo.in_pieces`)."""
    from jaxconv._algorithms.fft import fft_workspace_bytes
    from jaxconv._algorithms.im2col import im2col_workspace_bytes
    from jaxconv._algorithms.xla2d import FOLD_MAX_CHANNELS

    name = name.split("/")[0]  # a composite's forward is its first algorithm
    p, x_shape, w_shape = problem.params, problem.x_shape, problem.w_shape
    itemsize = np.dtype(problem.dtype).itemsize
    out_bytes = x_shape[0] * math.prod(problem.out_spatial) * x_shape[-2] * w_shape[-1] * itemsize
    if name == "xla":
        return 0
    if name == "direct":  # padded input; with Ig > 1, one GEMM output per tap
        taps = math.prod(problem.kernel)
        return padded_bytes(problem) + (taps * out_bytes if x_shape[-1] > 1 else 0)
    if name == "depthwise":  # stride 1: border bands, else padded input, except strided
        # kernels of up to 9 taps
        from jaxconv._algorithms.depthwise import pads_per_tap, split_band_elements

        bands = None if piece else split_band_elements(x_shape[1:-2], problem.kernel, p)
        if bands is not None:
            return bands * x_shape[0] * math.prod(x_shape[-2:]) * itemsize
        return 0 if pads_per_tap(problem.kernel, p) else padded_bytes(problem)
    if name == "im2col":  # padded input; the patches, gathered then laid out for the GEMM
        patches = im2col_workspace_bytes(x_shape, w_shape, problem.out_spatial, itemsize)
        return padded_bytes(problem) + 2 * patches
    if name == "pointwise":  # 1x1 stride 1 is a plain GEMM; else the gathered windows
        if all(k == 1 for k in problem.kernel) and all(s == 1 for s in p.strides):
            return 0
        windows = x_shape[0] * math.prod(problem.out_spatial) * math.prod(problem.kernel)
        return padded_bytes(problem) + windows * math.prod(x_shape[-2:]) * itemsize
    if name == "fft":
        return fft_workspace_bytes(*fft_shapes(problem), compute_itemsize(problem))
    if name in WINOGRAD_TILE:
        m = WINOGRAD_TILE[name]
        positions = (m + 2) ** len(problem.kernel)
        groups, ig, og = problem.groups, x_shape[-1], w_shape[-1]
        tiles = winograd_tiles(problem, m)
        return compute_itemsize(problem) * positions * groups * (tiles * (ig + og) + ig * og)
    if name == "xla2d":
        # 16-bit inputs: XLA:CPU converts x and w to float32 for its convs, whole.
        wide = compute_itemsize(problem)
        converted = 0 if wide == itemsize else (math.prod(x_shape) + math.prod(w_shape)) * wide
        lead = [dilate_dim(s, d) for s, d in zip(x_shape[1:-4], p.lhs_dilation[:-2])]
        planes = math.prod(x_shape[-4:]) * x_shape[0] * wide
        dilated = 0 if tuple(lead) == x_shape[1:-4] else math.prod(lead) * planes
        if x_shape[-1] < FOLD_MAX_CHANNELS:  # the padded input, then the taps' windows
            # in the channels (XLA pads the last two axes); the kernel laid out for it
            padded = [s + lo + hi for s, (lo, hi) in zip(lead, p.pads[:-2])]
            copy = 0 if padded == lead else math.prod(padded) * planes
            windows = math.prod(problem.kernel[:-2]) * math.prod(padded) * planes
            kernel = math.prod(w_shape) * wide
            return converted + dilated + copy + windows + kernel
        # One tap at a time: its window, its kernel slice and its 2-D output. The sum is
        # carried in the output unless it is wider, or the loop runs in a piece (its
        # sum leaves the piece's conditional as a copy, `_chunk._own_fusion`).
        window = math.prod(problem.out_spatial[:-2]) * planes
        kernel = math.prod(w_shape[-5:]) * wide
        acc = out_bytes * wide // itemsize
        carried = acc if piece or wide > itemsize else 0
        return converted + dilated + window + kernel + acc + carried
    raise ValueError(f"no workspace estimate for algorithm {name!r}")


BACKWARD_WORKSPACE_FACTOR = 4
BACKWARD_WORKSPACE_BYTES = 256 * 2**20
"""Gradients run whole: FFT gradients (as in "xla/fft") may hold spectra of up to this
many times the input plus output, or this many bytes, whichever is larger."""


def backward_fft_fits(problem: Problem) -> bool:
    """Whether FFT gradients fit the backward workspace allowance."""
    kernel = math.prod(problem.w_shape) * np.dtype(problem.dtype).itemsize
    signals = io_bytes(problem) - kernel
    allowed = max(BACKWARD_WORKSPACE_FACTOR * signals, BACKWARD_WORKSPACE_BYTES)
    return workspace_bytes(problem, "fft") <= allowed


def subpixel_fits(x_shape, w_shape, out_spatial, itemsize: int) -> bool:
    """Whether a transposed conv's subpixel phases fit the memory budget: x (N, *S, I),
    w (*K, I, O); the phase outputs and their interleaving hold about two outputs."""
    out = x_shape[0] * math.prod(out_spatial) * w_shape[-1] * itemsize
    io = (math.prod(x_shape) + math.prod(w_shape)) * itemsize + out
    return 2 * out <= (memory_budget() - 1) * io


def sliced(problem: Problem, axis: str, count: int) -> Problem:
    """The problem one of `count` pieces of the batch, the groups or the output rows
    (the first spatial axis, each piece reading its window of input rows) poses."""
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


def chunk_extents(problem: Problem, name: str) -> list[tuple[str, int]]:
    """(axis, length) that chunks of algorithm `name` may cut, in order of preference.

    Output rows come first: they leave a batch-sharded input whole, where cutting
    the batch in a loop would gather it on every device. The FFT cuts whole groups
    first (its transforms are per channel anyway); the depthwise fold cuts them last
    (narrow channel slices measured 2-5x slower than rows or batch pieces, though
    still far ahead of XLA's grouped conv), except where a batch piece would hold a
    single image and the groups' pieces 64+ channels (`_piece_ok`).
    """
    p = problem.params
    rows = ("rows", problem.out_spatial[0] if p.lhs_dilation[0] == 1 else 1)
    groups, batch = ("groups", problem.groups), ("batch", problem.x_shape[0])
    name = name.split("/")[0]
    if name == "fft":
        return [groups, rows, batch]
    if name == "depthwise":
        return [rows, batch, groups]
    return [rows, groups, batch]


def fit_chunks(problem: Problem, name: str, budget: float | None = None) -> Chunks | None:
    """The fewest sequential chunks in which `name`'s workspace fits `budget`, or None.

    The budget allows workspace up to (budget - 1) times lax's peak (arguments and
    output). Chunks cut one axis of `chunk_extents` into equal pieces, so their
    count divides its length. Cached: "auto" asks once in its rule and again for the
    algorithm it chose.
    """
    return _fit_chunks(problem, name, budget or memory_budget())


@functools.lru_cache(maxsize=4096)
def _fit_chunks(problem: Problem, name: str, budget: float) -> Chunks | None:
    allowed = (budget - 1) * io_bytes(problem)
    if workspace_bytes(problem, name) <= allowed:
        return Chunks("batch", 1)
    for axis, extent in chunk_extents(problem, name):
        for k in range(2, extent + 1):
            if extent % k or not _piece_ok(sliced(problem, axis, k), name, axis, k):
                continue
            if _chunk_bytes(problem, name, axis, k) <= allowed:
                return Chunks(axis, k)
    return None


WINOGRAD_MIN_PIECE_TILES = 64
DEPTHWISE_MAX_ROW_READS = 2
DEPTHWISE_MIN_GROUP_PIECE = 64
FFT_MIN_PIECE_OUTPUTS = 8192


def _piece_ok(piece: Problem, name: str, axis: str, count: int) -> bool:
    """Whether a piece (one of `count`) is still large enough to run well:
    - Winograd needs at least max(64, Og) tiles per GEMM (VGG conv3_3 in pieces of 56
      2x2 tiles: 0.9x lax);
    - a depthwise piece of output rows may read at most twice its share of input
      rows: its window overlaps the next one's by the kernel's extent less the
      stride. EfficientNet's 5x5 14x14x672 in 14 pieces of one row (each reading 5)
      ran 19-21x lax forward, in 4 pieces of the batch 31-32x;
    - a depthwise piece of one image gives way to as many pieces of groups where those
      keep 64+ channels. Forward against lax, round-robin, one image per piece against
      groups: ConvNeXt 7x7 7x7x768 in 8 pieces 13.6x / 22.2x, 4x14x14x384 in 4
      14.1x / 21.5x, EfficientNet 5x5 7x7x1152 in 8 23.6x / 31.2x, 7x7 4x7x7x256
      in 4 (64 channels) 8.6x / 13.8x; 8x14x14x96 in 8 (12 channels) 16.6x / 14.3x;
    - a dense FFT piece of rows or images (more than one input channel per group)
      must keep 8192 output positions: each piece transforms the whole kernel again. 1-D
      k64 16->16 on 4x4096 ran 0.8-1.0x lax in pieces of 1024-4096 positions, against
      1.9x whole; k64 32->32 on 8x16000 ran 1.1x in pieces of 8000, 1.5-2.0x in pieces
      of 16000-64000.
    """
    name = name.split("/")[0]
    if name in WINOGRAD_TILE:
        tiles = winograd_tiles(piece, WINOGRAD_TILE[name])
        return tiles >= max(WINOGRAD_MIN_PIECE_TILES, piece.w_shape[-1])
    if name == "depthwise" and axis == "rows":
        share = piece.out_spatial[0] * piece.params.strides[0]
        return piece.x_shape[1] <= DEPTHWISE_MAX_ROW_READS * share
    if name == "depthwise" and axis == "batch" and piece.x_shape[0] == 1:
        return piece.groups // count < DEPTHWISE_MIN_GROUP_PIECE
    if name == "fft" and piece.x_shape[-1] > 1 and axis != "groups":
        return piece.x_shape[0] * math.prod(piece.out_spatial) >= FFT_MIN_PIECE_OUTPUTS
    return True


def _chunk_bytes(problem: Problem, name: str, axis: str, k: int) -> int:
    """Workspace of one of k chunks, plus its result before it is written in place and,
    but for batch chunks, its input (a strided slice or a window of rows is copied)."""
    piece = sliced(problem, axis, k)
    copies = io_bytes(piece) - math.prod(piece.w_shape) * np.dtype(problem.dtype).itemsize
    if axis == "batch":
        copies -= math.prod(piece.x_shape) * np.dtype(problem.dtype).itemsize
    return workspace_bytes(piece, name, piece=True) + copies
