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
    """The documented "auto" rule (see README, "Choosing an algorithm")."""
    return "xla"
