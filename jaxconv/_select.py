"""Choosing an algorithm: the "auto" rule, checked once while tracing."""

from __future__ import annotations

from jaxconv._algorithms import REGISTRY, Problem

ALGORITHMS = ("auto", *REGISTRY)


def choose(requested: str, problem: Problem, op: str) -> str:
    """Resolve `requested` to a concrete algorithm name for `problem`.

    A named algorithm that cannot run the problem raises ValueError; "auto"
    only ever picks among supported ones.
    """
    if requested != "auto":
        if requested not in REGISTRY:
            raise ValueError(f"{op}: `algorithm` (={requested!r}) must be one of {ALGORITHMS}.")
        reason = REGISTRY[requested].supports(problem)
        if reason is not None:
            raise ValueError(
                f"{op}: `algorithm` (={requested!r}) cannot run this problem: {reason}"
            )
        return requested
    return auto_rule(problem)


def auto_rule(problem: Problem) -> str:
    """The documented "auto" rule (README, "Choosing an algorithm"), justified by bench/results.

    On CPU:
      1. depthwise (one input channel per group, several groups) -> "depthwise":
         XLA runs grouped convs as many tiny convs; the fused fold is 20-100x faster.
      2. 1x1 kernel -> "pointwise": one GEMM, about 1.5-2x faster than XLA's emitter.
      3. anything else -> "xla": XLA's dense conv reaches 50-80% of the matmul peak.
    On GPU/TPU, "xla" (cuDNN / the TPU emitter) everywhere: their dense and
    grouped convolutions are already fast, and jaxconv has measured no win there yet.
    """
    if problem.backend != "cpu":
        return "xla"
    for name in ("depthwise", "pointwise"):
        if REGISTRY[name].supports(problem) is None:
            return name
    return "xla"
