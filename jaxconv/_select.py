"""Choosing how to run a call: one pass from a checked problem to a complete `Choice`.

The "auto" rules for convolutions, transposed convolutions and pools sit here,
together, as plain functions of the static problem and the backend; each returns the
algorithm and the pieces it runs in, decided once while tracing. Every constant's
measurement is in docs/design.md ("The auto rule"). Under `jaxconv.autotune()` a
convolution's candidates are timed instead (`_autotune`), each exactly as "auto"
would run it, and the rule's choice is kept unless another is clearly faster.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

from jax import lax

from jaxconv import _autotune
from jaxconv._algorithms import REGISTRY
from jaxconv._algorithms.fft import fft_shapes, fft_workspace, kernel_spectra_dominate
from jaxconv._algorithms.im2col import patch_bytes
from jaxconv._algorithms.winograd import TILE, winograd_tiles
from jaxconv._pieces import WHOLE, Pieces, fit, within_budget
from jaxconv._settings import exact_nonfinite_active, memory_budget
from jaxconv._shapes import definitely, is_symbolic
from jaxconv._spec import Problem, TransposeSpec

ALGORITHMS = ("auto", *REGISTRY)
"""Names `conv_general_dilated(algorithm=...)` accepts."""

TRANSPOSE_ALGORITHMS = ("auto", "dilated", "subpixel", "xla", "xla/subpixel")
"""Names `conv_transpose(algorithm=...)` accepts: "dilated" is the convolution of the
stride-dilated input, run by whatever `conv_general_dilated`'s "auto" picks for it;
"subpixel" one stride-1 convolution per output phase, with no multiplications by the
inserted zeros; "xla" lax's own; "xla/subpixel" lax's forward, subpixel gradients."""

POOL_ALGORITHMS = ("auto", "direct", "xla")
"""Names `reduce_window` and the pools accept: "direct" folds strided slices;
"xla" is `lax.reduce_window` itself."""


class Choice(NamedTuple):
    """How one convolution runs: an algorithm, whole or in pieces."""

    algorithm: str
    pieces: Pieces = WHOLE


XLA = Choice("xla")


# ------------------------------------------------------------------ recording

_RECORDERS: list[list] = []


class Record(NamedTuple):
    """One entry of `record_choices`.

    Attributes:
      op: the public function ("conv_general_dilated", "conv_transpose", "max_pool", ...).
      algorithm: what it runs.
      pieces: (axis, count) it runs in; count 1 is whole.
      x_shape: the input in canonical form: (N, *S, G, Ig) for convs, (N, *S, C) for
        transposed convs and pools.
      w_shape: the kernel, (*K, Ig, G, Og) or (*K, I, O); the window for pools.
      parts: the convolutions a transposed conv runs, as (algorithm, pieces) pairs.
    """

    op: str
    algorithm: str
    pieces: Pieces
    x_shape: tuple
    w_shape: tuple
    parts: tuple = ()


@contextlib.contextmanager
def record_choices() -> Iterator[list[Record]]:
    """Record what every convolution and pool traced inside the block runs.

    Yields a list that fills with `Record`s, in call order. Tracing is enough: use it
    around `jax.eval_shape` to see what "auto" picks for a model, at no cost.

    Example:
      >>> x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 1, 4))
      >>> with jaxconv.record_choices() as log:
      ...     _ = jax.eval_shape(lambda x, w: jaxconv.conv_general_dilated(
      ...         x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      ...         feature_group_count=4), x, w)
      >>> log[0].op, log[0].algorithm, log[0].pieces.count
      ('conv_general_dilated', 'depthwise', 1)
    """
    log: list = []
    _RECORDERS.append(log)
    try:
        yield log
    finally:
        _RECORDERS.remove(log)


def record(op: str, choice: Choice, x_shape, w_shape, parts=()) -> None:
    for log in _RECORDERS:
        log.append(Record(op, choice.algorithm, choice.pieces, x_shape, w_shape, tuple(parts)))


# ---------------------------------------------------------------- convolutions


def conv_choice(requested: str, problem: Problem, op: str, program=None) -> Choice:
    """Resolve `requested` to a `Choice` for `problem`.

    A named algorithm runs whole, as asked, and raises ValueError if it cannot run the
    problem; "auto" takes the rule's choice, or under `jaxconv.autotune()` the timed
    one. `program(choice)` builds the function a candidate runs (for timing); without
    it (queries) autotuning only reads its cache, and times nothing.
    """
    if not isinstance(requested, str):
        raise TypeError(f"{op}: `algorithm` must be a string, got {requested!r}.")
    if requested != "auto":
        if requested not in REGISTRY:
            raise ValueError(f"{op}: `algorithm` (={requested!r}) must be one of {ALGORITHMS}.")
        reason = REGISTRY[requested].why_not(problem)
        if reason is not None:
            raise ValueError(
                f"{op}: `algorithm` (={requested!r}) cannot run this problem: {reason}"
            )
        return Choice(requested)
    rule = auto_conv(problem)

    def candidates(objective: str) -> list[Choice]:
        return conv_candidates(problem, rule, composites=objective != "forward")

    return _autotune.decide(("conv", problem), rule, candidates, program, problem.symbolic)


def conv_candidates(problem: Problem, rule: Choice, composites: bool = True) -> list[Choice]:
    """The rule's choice, then every other algorithm meant for this backend that can run
    `problem` within the memory budget, in the pieces "auto" would run it in. Without
    `composites`, those that only repeat another's forward pass are left out."""
    choices = [rule]
    for name, algorithm in REGISTRY.items():
        if name == rule.algorithm or problem.backend not in algorithm.backends:
            continue
        if algorithm.composite and not composites:
            continue
        choice = _fit(problem, name)
        if choice is not None:
            choices.append(choice)
    return choices


def _fit(problem: Problem, name: str) -> Choice | None:
    """`name` in the fewest pieces that fit the memory budget; None where it cannot run
    the problem, does not fit, or spreads NaN/inf while `exact_nonfinite` is on."""
    algorithm = REGISTRY[name]
    if algorithm.why_not(problem) is not None:
        return None
    if exact_nonfinite_active() and not algorithm.exact_nonfinite(problem):
        return None
    pieces = fit(problem, algorithm, memory_budget())
    return None if pieces is None else Choice(name, pieces)


FFT_MIN_TAPS = 169  # 13x13
FFT_MIN_TAPS_1D = 64
POINTWISE_MAX_PATCH_LENGTH = 256
WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MAX_INPUT_BYTES = 10 * 2**20
WINOGRAD_MIN_TILES = 256
IM2COL_MAX_PATCHES_PER_KERNEL = 2
IM2COL_MIN_KERNEL_BYTES = 2**19
BACKWARD_WORKSPACE_FACTOR = 4
BACKWARD_WORKSPACE_BYTES = 256 * 2**20
GPU_FFT_MIN_TAPS = 31 * 31


def auto_conv(problem: Problem) -> Choice:
    """The "auto" rule. Each algorithm with a workspace is taken only where it fits the
    memory budget, whole or in pieces.

    On CPU:
      1. dense convs with overlapping windows, kernels of 512 KiB+ and a patch matrix
         at most twice the kernel (few output positions, many channels) ->
         "xla/im2col" (XLA's forward, the patch matrix GEMMs' gradients); in 3-D and
         up "im2col" where it fits whole, for XLA's 3-D forward is the slow one.
      2. stride 1 and a large kernel (13x13+ taps, or 64+ in 1-D) -> "fft", where its
         kernel spectra do not outnumber the signal's; dense ones that cannot -> "xla/fft"
         (XLA's forward, FFT gradients), where those gradients fit. Depthwise ones go on.
      3. depthwise (one input channel per group, several groups) -> "depthwise".
      4. windows that do not overlap -> "pointwise"; patches of 256+ taps x input
         channels -> "xla/pointwise".
      5. 3-D and up -> "xla2d" (the leading taps in the channels of one 2-D conv),
         else "xla/xla2d".
      6. a single input channel (audio stems) -> "direct/xla".
      7. 2-D dense 3x3 stride-1 convs with 64+ input channels per group, inputs up to
         10 MiB, at DEFAULT precision -> "winograd4" while there are 256+ output tiles
         of 4x4 and no fewer than output channels, else "winograd" on the same terms.
      8. anything else -> "xla".
    On GPU, `_gpu_rule`; elsewhere "xla" (nothing measured).
    """
    if problem.backend == "gpu":
        return _gpu_rule(problem)
    if problem.backend != "cpu":
        return XLA
    choice = _im2col_rule(problem)
    if choice is not None:
        return choice
    taps = math.prod(problem.kernel)
    large = taps >= FFT_MIN_TAPS or (len(problem.kernel) == 1 and taps >= FFT_MIN_TAPS_1D)
    depthwise = REGISTRY["depthwise"].why_not(problem) is None
    if large and _stride_one(problem):
        choice = _fft(problem)
        if choice is not None:
            return choice
        if not depthwise and _backward_fft_fits(problem):
            choice = _fit(problem, "xla/fft")
            if choice is not None:
                return choice
    if depthwise:
        return _fit(problem, "depthwise") or XLA
    if REGISTRY["pointwise"].why_not(problem) is None:
        return _pointwise_rule(problem)
    if len(problem.kernel) >= 3:
        return _fit(problem, "xla2d") or _fit(problem, "xla/xla2d") or XLA
    if problem.groups * problem.x_shape[-1] == 1 and taps <= FFT_MIN_TAPS_1D:
        return _fit(problem, "direct/xla") or XLA
    return _winograd_rule(problem) or XLA


def _im2col_rule(problem: Problem) -> Choice | None:
    """For dense convs with overlapping windows and no lhs dilation whose kernel has at
    least IM2COL_MIN_KERNEL_BYTES and whose patch matrix is at most
    IM2COL_MAX_PATCHES_PER_KERNEL times the kernel, where it fits: "xla/im2col", or in
    3-D and up "im2col" (its own forward too) where that fits whole. XLA's 3-D forward
    is the slow one there; in pieces, im2col's forward ran slower than XLA's."""
    kernel_bytes = math.prod(problem.w_shape) * problem.itemsize
    if (
        problem.groups > 1
        or any(d > 1 for d in problem.params.lhs_dilation)
        or REGISTRY["pointwise"].why_not(problem) is None
        or kernel_bytes < IM2COL_MIN_KERNEL_BYTES
        or not definitely(
            lambda: patch_bytes(problem) <= IM2COL_MAX_PATCHES_PER_KERNEL * kernel_bytes
        )
    ):
        return None
    if len(problem.kernel) >= 3:
        choice = _fit(problem, "im2col")
        if choice is not None and choice.pieces == WHOLE:
            return choice
    return _fit(problem, "xla/im2col")


def _pointwise_rule(problem: Problem) -> Choice:
    """Non-overlapping windows: "pointwise" for 1x1 kernels and short patches, where it
    fits, else "xla"; "xla/pointwise" for long patches, whose relayout costs more than
    the GEMM saves."""
    taps = math.prod(problem.kernel)
    if taps > 1 and taps * problem.x_shape[-1] >= POINTWISE_MAX_PATCH_LENGTH:
        return _fit(problem, "xla/pointwise") or XLA
    return _fit(problem, "pointwise") or XLA


def _gpu_rule(problem: Problem) -> Choice:
    """On GPU, XLA hands convolutions to cuDNN, which is fast almost everywhere:
    1. depthwise stride-1 kernels of 31x31 and more -> "fft", where it fits;
    2. windows that do not overlap (1x1, short patches) -> "pointwise";
    3. anything else -> "xla".
    """
    depthwise = REGISTRY["depthwise"].why_not(problem) is None
    large = math.prod(problem.kernel) >= GPU_FFT_MIN_TAPS
    if depthwise and large and _stride_one(problem):
        choice = _fft(problem)
        if choice is not None:
            return choice
    choice = _pointwise_rule(problem) if REGISTRY["pointwise"].why_not(problem) is None else XLA
    return choice if choice.algorithm == "pointwise" else XLA


def _stride_one(problem: Problem) -> bool:
    return all(s == 1 for s in problem.params.strides)


def _fft(problem: Problem) -> Choice | None:
    """ "fft" where its kernel spectra do not outnumber the signal's and it fits."""
    if REGISTRY["fft"].why_not(problem) is not None:
        return None
    if not definitely(lambda: not kernel_spectra_dominate(*fft_shapes(problem))):
        return None
    return _fit(problem, "fft")


def _backward_fft_fits(problem: Problem) -> bool:
    """Whether FFT gradients, which run whole, stay within BACKWARD_WORKSPACE_FACTOR
    times the input plus output, or BACKWARD_WORKSPACE_BYTES, whichever is larger."""
    if REGISTRY["fft"].why_not(problem) is not None:
        return False
    try:
        spectra = fft_workspace(problem)
    except TypeError:  # a symbolic size the estimate cannot take
        return False
    signals = problem.io_bytes - math.prod(problem.w_shape) * problem.itemsize
    return definitely(lambda: spectra <= BACKWARD_WORKSPACE_FACTOR * signals) or definitely(
        lambda: spectra <= BACKWARD_WORKSPACE_BYTES
    )


def _winograd_rule(problem: Problem) -> Choice | None:
    p = problem.params
    default = (None, lax.Precision.DEFAULT, (lax.Precision.DEFAULT, lax.Precision.DEFAULT))
    input_bytes = math.prod(problem.x_shape) * problem.itemsize
    if (
        p.precision not in default
        or len(problem.kernel) != 2
        or REGISTRY["winograd"].why_not(problem) is not None
        or problem.x_shape[-1] < WINOGRAD_MIN_CHANNELS
        or not definitely(lambda: input_bytes <= WINOGRAD_MAX_INPUT_BYTES)
    ):
        return None
    least = max(WINOGRAD_MIN_TILES, problem.w_shape[-1])
    for name, m in TILE.items():  # larger tiles first
        if definitely(lambda m=m: winograd_tiles(problem, m) >= least):
            choice = _fit(problem, name)
            if choice is not None:
                return choice
    return None


# ---------------------------------------------------------- transposed convs

CPU_SUBPIXEL_MIN_OUTPUT = 2**20
GPU_SUBPIXEL_MIN_OUTPUT = 3 * 2**20


def transpose_choice(requested: str, spec: TransposeSpec, op: str, program=None) -> str:
    """Resolve `requested` to a name in TRANSPOSE_ALGORITHMS; "auto" by `auto_transpose`,
    or under `jaxconv.autotune()` by timing the transposed conv as one unit."""
    if not isinstance(requested, str):
        raise TypeError(f"{op}: `algorithm` must be a string, got {requested!r}.")
    if requested not in TRANSPOSE_ALGORITHMS:
        raise ValueError(
            f"{op}: `algorithm` (={requested!r}) must be one of {TRANSPOSE_ALGORITHMS}."
        )
    if requested != "auto":
        return requested
    rule = auto_transpose(spec)

    def candidates(objective: str) -> list[str]:
        names = [n for n in TRANSPOSE_ALGORITHMS[1:] if n != rule and _transpose_ok(spec, n)]
        if objective == "forward":  # its forward pass is "xla"'s
            names = [n for n in names if n != "xla/subpixel"]
        return [rule, *names]

    return _autotune.decide(
        ("conv_transpose", spec.problem), rule, candidates, program, spec.problem.symbolic
    )


def _transpose_ok(spec: TransposeSpec, name: str) -> bool:
    """Candidates for tuning: subpixel only where strides skip zeros, and none that
    spreads NaN/inf while `exact_nonfinite` is on."""
    strided = any(s > 1 for s in spec.strides)
    if name in ("subpixel", "xla/subpixel"):
        return strided and not exact_nonfinite_active()
    return True


def auto_transpose(spec: TransposeSpec) -> str:
    """The "auto" rule for transposed convs.

    Stride 1: "dilated", a plain convolution that conv's own rule runs. Under
    `exact_nonfinite`, and for symbolic spatial sizes, "dilated" too: the phases skip
    the products of inserted zeros with the kernel, which lax computes (0 * inf is NaN
    there), and need concrete sizes.
    On CPU: "subpixel" where the phases' outputs fit the memory budget and either
    the phases stack into one conv (`TransposeSpec.phases_stack`: U-Net's 2x2/2) or every
    phase has one shape (kernel a multiple of the stride: DCGAN 4x4/2) and the output
    has 1M+ elements; else "xla/subpixel": lax's forward, which holds no workspace,
    and the phases' gradients. On GPU: "xla/subpixel" from 3M output
    elements, else "xla". Elsewhere "xla".
    """
    strided = any(s > 1 for s in spec.strides)
    if not strided or exact_nonfinite_active() or is_symbolic(spec.problem.x_shape[1:-2]):
        return "dilated"
    outputs = spec.out_elements
    if spec.problem.backend == "gpu":
        return "xla/subpixel" if definitely(lambda: outputs >= GPU_SUBPIXEL_MIN_OUTPUT) else "xla"
    if spec.problem.backend != "cpu":
        return "xla"
    even = all(
        d == 1 and k % s == 0 for k, s, d in zip(spec.kernel, spec.strides, spec.rhs_dilation)
    )
    large = definitely(lambda: outputs >= CPU_SUBPIXEL_MIN_OUTPUT)
    if (spec.phases_stack or (even and large)) and _subpixel_fits(spec):
        return "subpixel"
    return "xla/subpixel"


def _subpixel_fits(spec: TransposeSpec) -> bool:
    """The phase outputs and their interleaving hold about two outputs."""
    return within_budget(2 * spec.problem.out_bytes, spec.problem.io_bytes, memory_budget())


# ----------------------------------------------------------------------- pools


def pool_choice(requested: str, op: str, symbolic: bool = False) -> str:
    """ "auto" is "direct" (its forward matches lax and its gradient is faster), but
    "xla" where a spatial size is symbolic: the direct fold places its taps by them."""
    if not isinstance(requested, str) or requested not in POOL_ALGORITHMS:
        raise ValueError(f"{op}: `algorithm` (={requested!r}) must be one of {POOL_ALGORITHMS}.")
    if requested == "direct" and symbolic:
        raise ValueError(
            f"{op}: `algorithm` (='direct') needs concrete spatial sizes; take 'auto' or 'xla'."
        )
    if requested == "auto":
        return "xla" if symbolic else "direct"
    return requested
