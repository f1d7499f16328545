"""Choosing an algorithm: the "auto" rule, checked once while tracing."""

from __future__ import annotations

import contextlib
import math

import numpy as np
from jax import lax

from jaxconv import _autotune
from jaxconv._algorithms import REGISTRY, Problem
from jaxconv._chunk import Chunks
from jaxconv._memory import (
    WINOGRAD_TILE,
    backward_fft_fits,
    fft_shapes,
    fit_chunks,
    winograd_tiles,
)

ALGORITHMS = ("auto", *REGISTRY)

_RECORDERS: list[list] = []


@contextlib.contextmanager
def record_choices():
    """Record the algorithm every convolution traced inside the block runs.

    Yields a list that fills with `(algorithm, lhs shape (N, *S, G, Ig), kernel
    shape (*K, Ig, G, Og))` tuples, in call order. Tracing is enough: use it
    around `jax.eval_shape` to see what "auto" picks for a model, at no cost.

    Example:
      >>> x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 1, 4))
      >>> with jaxconv.record_choices() as log:
      ...     _ = jax.eval_shape(lambda x, w: jaxconv.conv_general_dilated(
      ...         x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      ...         feature_group_count=4), x, w)
      >>> log[0][0]
      'depthwise'
    """
    log: list = []
    _RECORDERS.append(log)
    try:
        yield log
    finally:
        _RECORDERS.remove(log)


def choose(requested: str, problem: Problem, op: str, record: bool = True) -> str:
    """Resolve `requested` to a concrete algorithm name for `problem`.

    A named algorithm that cannot run the problem raises ValueError; "auto"
    only ever picks among supported ones. `record=False` for queries that run
    nothing (they stay out of `record_choices`).
    """
    name = _resolve(requested, problem, op)
    if record:
        for log in _RECORDERS:
            log.append((name, problem.x_shape, problem.w_shape))
    return name


def _resolve(requested: str, problem: Problem, op: str) -> str:
    if requested != "auto":
        if requested not in REGISTRY:
            raise ValueError(f"{op}: `algorithm` (={requested!r}) must be one of {ALGORITHMS}.")
        reason = REGISTRY[requested].supports(problem)
        if reason is not None:
            raise ValueError(
                f"{op}: `algorithm` (={requested!r}) cannot run this problem: {reason}"
            )
        return requested
    settings = _autotune.active()
    if settings is not None:
        return _autotune.tuned_choice(problem, tuning_candidates(problem), settings)
    return auto_rule(problem)


def tuning_candidates(problem: Problem) -> list[str]:
    """Algorithms that can run `problem` within the memory budget, in chunks where
    needed (for autotuning)."""
    return [name for name in REGISTRY if _fits(problem, name)]


def chunks_for(requested: str, problem: Problem, name: str) -> Chunks:
    """How "auto" runs its choice `name`: in the fewest chunks that fit the memory
    budget. A named algorithm runs whole, as asked."""
    if requested != "auto":
        return Chunks("batch", 1)
    return fit_chunks(problem, name) or Chunks("batch", 1)


FFT_MIN_TAPS = 169  # 13x13
FFT_MIN_TAPS_1D = 64


def _fits(problem: Problem, name: str) -> bool:
    return REGISTRY[name].supports(problem) is None and fit_chunks(problem, name) is not None


def auto_rule(problem: Problem) -> str:
    """The documented "auto" rule (README, "Choosing an algorithm"), justified by bench/results.

    Every algorithm below with a workspace is taken only if it fits the memory budget
    (`_memory`: forward peak within 1.5x lax's by default), whole or in pieces (`_chunk`).

    On CPU:
      1. stride 1 and a large kernel (13x13+ taps, or 64+ in 1-D) -> "fft" if it fits:
         depthwise 11-110x; grouped 1-D k128 (4 channels per group) 11x; dense 1-D
         1.3-2x (long signals in overlap-save segments). Dense pieces of rows or images
         keep 8192 output positions (`_memory._piece_ok`): smaller ones lost the lead
         (1-D k64 16->16 on 4x4096: 0.8-1.0x in pieces of 1024-4096 positions, 1.9x
         whole). Where the kernel spectra outnumber the signal's (many channels, short
         signals), or no such pieces fit, dense convs get "xla/fft": XLA's forward, FFT
         gradients (wav2vec2 pos_conv: fwd+bwd 17x). Depthwise ones go on to 2.
      2. depthwise (one input channel per group, several groups) -> "depthwise":
         XLA runs grouped convs as many tiny convs; the fused fold is 15-100x faster.
      3. windows that do not overlap (1x1 kernels; patch embeddings such as 4x4/4)
         -> "pointwise": one GEMM, about 1.5-2x faster than XLA's emitter. Patches of
         256+ taps x input channels get "xla/pointwise" (XLA's forward, the GEMM's
         gradients): their relayout made wav2vec2's k2/2 512->512 0.76-0.96x forward
         and ViT's 16x16/16 stem 0.83x at batch 1.
      4. 3-D (and higher) dense convs -> "xla2d": XLA's strong 2-D conv over the last two
         axes, one leading tap at a time (forward 1.2-3.5x, with the backward 3-20x).
         Where one tap's kernel, window and output do not fit -> "xla/xla2d": XLA's
         forward, the 2-D convs' gradients (fwd+bwd 3-18x).
      5. a single input channel (audio stems) -> "direct/xla": per-tap forward (~1.2-1.4x),
         XLA's gradients.
      6. 2-D dense 3x3 stride-1 convs with 64+ input channels per group and inputs up
         to 10 MiB, at DEFAULT precision -> "winograd4" while there are 256+ output
         tiles of 4x4 and no fewer than output channels, else "winograd" on the same
         terms for 2x2 tiles (forward 1.1-2x; gradients from XLA). Winograd's rounding
         (about 5e-6 of the largest output in float32 for F(4,3)) is what
         precision=DEFAULT allows; "high" and "highest" never get it. Larger inputs
         and fewer channels measured slower than XLA.
      7. anything else, or a choice that does not fit -> "xla": XLA's dense 2-D conv
         reaches 50-80% of the matmul peak and holds no workspace.
    On GPU, `_gpu_rule`. On TPU, "xla" everywhere: nothing has been measured there.
    """
    if problem.backend == "gpu":
        return _gpu_rule(problem)
    if problem.backend != "cpu":
        return "xla"
    taps = math.prod(problem.kernel)
    large = taps >= FFT_MIN_TAPS or (len(problem.kernel) == 1 and taps >= FFT_MIN_TAPS_1D)
    if large and _stride_one(problem):
        dense = REGISTRY["depthwise"].supports(problem) is not None
        if _fft_fits(problem):
            return "fft"
        fft_ok = REGISTRY["fft"].supports(problem) is None
        if dense and fft_ok and backward_fft_fits(problem):  # XLA's forward: no workspace
            return "xla/fft"
    if REGISTRY["depthwise"].supports(problem) is None:
        return "depthwise" if _fits(problem, "depthwise") else "xla"
    if REGISTRY["pointwise"].supports(problem) is None:
        return _pointwise_rule(problem)
    if len(problem.kernel) >= 3:
        return "xla2d" if _fits(problem, "xla2d") else "xla/xla2d"
    if problem.groups * problem.x_shape[-1] == 1 and taps <= FFT_MIN_TAPS_1D:
        return "direct/xla" if _fits(problem, "direct/xla") else "xla"
    return _winograd_rule(problem) or "xla"


POINTWISE_MAX_PATCH_LENGTH = 256
"""Patches (more than one tap) of this many taps x input channels per group or more
take "xla/pointwise" on CPU: XLA's conv runs long contractions near matmul speed, and
the space-to-depth copy cost more than it saved there (wav2vec2 conv6 k2/2 512, 1024
long: 0.76-0.96x forward; ViT's 16x16/16 stem, 768 long: 0.83x at batch 1, 1.07x at 8).
Short ones, such as ConvNeXt's 4x4/4 stem (48 long), keep "pointwise" (1.6-2.1x)."""


def _pointwise_rule(problem: Problem) -> str:
    """Non-overlapping windows: "pointwise" for 1x1 kernels and short patches, if it
    fits, else "xla"; "xla/pointwise" for long patches."""
    taps = math.prod(problem.kernel)
    if taps > 1 and taps * problem.x_shape[-1] >= POINTWISE_MAX_PATCH_LENGTH:
        return "xla/pointwise"
    return "pointwise" if _fits(problem, "pointwise") else "xla"


GPU_FFT_MIN_TAPS = 31 * 31
"""Depthwise kernels from which "auto" takes the FFT on GPU (measured at 31x31 only)."""


def _gpu_rule(problem: Problem) -> str:
    """On GPU, XLA hands convolutions to cuDNN, which is fast almost everywhere. Measured
    on one H100 (bench/results/nvidia-h100-80gb-hbm3.md, batch 2-16):

      1. depthwise stride-1 kernels of 31x31 and more -> "fft" if it fits (RepLKNet 31x31
         14x14x512: forward 2.1x, fwd+bwd 2.0x). Smaller large kernels are unmeasured.
      2. windows that do not overlap (1x1 kernels, short patches) -> "pointwise": one
         cuBLAS GEMM, forward 1.1-2.1x and fwd+bwd 1.2-2.2x on all four measured.
         Long patches (ViT's stem, wav2vec2's conv6) are unmeasured there: "xla".
      3. anything else -> "xla". On dense 3x3 layers direct and Winograd ran 0.4-1.3x
         forward. On depthwise ones, "depthwise" ran 1.2-1.6x forward but 0.5-1.0x
         fwd+bwd (ConvNeXt 7x7: 0.7x and 4.8x); at these sizes (0.05-0.3 ms) launch
         overhead blurs everything by +-25%.
    """
    depthwise = REGISTRY["depthwise"].supports(problem) is None
    large = math.prod(problem.kernel) >= GPU_FFT_MIN_TAPS
    if depthwise and large and _stride_one(problem) and _fft_fits(problem):
        return "fft"
    if _pointwise_rule(problem) == "pointwise":
        return "pointwise"
    return "xla"


def _stride_one(problem: Problem) -> bool:
    return all(s == 1 for s in problem.params.strides)


def _fft_fits(problem: Problem) -> bool:
    """The FFT applies, its kernel spectra do not outnumber the signal's, and it fits."""
    from jaxconv._algorithms.fft import kernel_spectra_dominate

    return (
        REGISTRY["fft"].supports(problem) is None
        and not kernel_spectra_dominate(*fft_shapes(problem))
        and _fits(problem, "fft")
    )


WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MAX_INPUT_BYTES = 10 * 2**20
WINOGRAD_MIN_TILES = 256
"""Where "auto" takes Winograd (rule 6): measured on ResNet-50, VGG-16 and U-Net 3x3
layers, bench/results and README."""


def _winograd_rule(problem: Problem) -> str | None:
    p = problem.params
    fast_ok = p.precision in (None, lax.Precision.DEFAULT) or p.precision == (
        lax.Precision.DEFAULT,
        lax.Precision.DEFAULT,
    )
    if (
        not fast_ok
        or len(problem.kernel) != 2
        or REGISTRY["winograd"].supports(problem) is not None
        or problem.x_shape[-1] < WINOGRAD_MIN_CHANNELS
        or math.prod(problem.x_shape) * np.dtype(problem.dtype).itemsize > WINOGRAD_MAX_INPUT_BYTES
    ):
        return None
    for name, m in WINOGRAD_TILE.items():  # larger tiles first
        # Enough tiles per GEMM, and at least as many as output channels: otherwise the
        # transformed kernel (a^2 x Ig x Og) outweighs the tiles (VGG conv4_3: 1.0x).
        if winograd_tiles(problem, m) >= max(WINOGRAD_MIN_TILES, problem.w_shape[-1]) and _fits(
            problem, name
        ):
            return name
    return None
