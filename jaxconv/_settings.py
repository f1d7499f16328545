"""Process-wide settings that `"auto"` reads while tracing: the memory budget and
whether non-finite values must propagate exactly as in lax.

Both apply to convolutions traced after they change; a function jitted before keeps
the choices it made.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator

MEMORY_BUDGET = 1.5
"""Default forward peak memory of "auto" relative to lax's on the same layer."""

_BUDGET = [MEMORY_BUDGET]
_EXACT = [False]  # the process-wide flag, then any `exact_nonfinite()` blocks


def memory_budget() -> float:
    """The forward peak memory "auto" allows itself, as a multiple of lax's.

    Example:
      >>> jaxconv.memory_budget()
      1.5
    """
    return _BUDGET[0]


def set_memory_budget(ratio: float = MEMORY_BUDGET) -> None:
    """Let "auto" use up to `ratio` times lax's forward peak memory (default 1.5).

    The peak counts the arguments, the output and the algorithm's workspace. A larger
    ratio runs fast algorithms whole or in fewer pieces; 1.0 allows no workspace at
    all. It applies to convolutions traced after the call.

    Args:
      ratio: a real number >= 1 (Python or NumPy).

    Raises:
      ValueError: `ratio` is not a real number >= 1.

    Example:
      >>> jaxconv.set_memory_budget(3.0)
      >>> jaxconv.set_memory_budget()  # back to 1.5
    """
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, numbers.Real)
        or not math.isfinite(ratio)
        or not ratio >= 1
    ):
        raise ValueError(f"set_memory_budget: `ratio` (={ratio!r}) must be a finite number >= 1.")
    _BUDGET[0] = float(ratio)


def exact_nonfinite_active() -> bool:
    """Whether "auto" may pick only algorithms that propagate NaN and inf as lax does."""
    return _EXACT[-1]


def set_exact_nonfinite(flag: bool) -> None:
    """Make "auto" pick only algorithms whose NaN and ±inf land where lax's do (True),
    or let it take fast ones that spread them (False, the default), for the process.

    The FFT and Winograd algorithms mix every input of a tile or a transform into
    each output, so one NaN reaches outputs lax keeps finite, and an inf becomes NaN;
    `jaxconv.conv_plan(...).exact_nonfinite` says whether a call's algorithm does not.

    Args:
      flag: a bool.

    Example:
      >>> jaxconv.set_exact_nonfinite(True)
      >>> jaxconv.set_exact_nonfinite(False)
    """
    if not isinstance(flag, bool):
        raise TypeError(f"set_exact_nonfinite: `flag` must be a bool, got {flag!r}.")
    _EXACT[0] = flag


@contextlib.contextmanager
def exact_nonfinite(flag: bool = True) -> Iterator[None]:
    """Inside the block, "auto" picks only algorithms that propagate NaN and ±inf
    exactly as lax does (see `set_exact_nonfinite`).

    Example:
      >>> x, w = jnp.ones((2, 28, 28, 64)), jnp.ones((31, 31, 1, 64))
      >>> args = ((1, 1), "SAME")
      >>> kw = dict(dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=64)
      >>> jaxconv.chosen_algorithm(x, w, *args, **kw)
      'fft'
      >>> with jaxconv.exact_nonfinite():
      ...     jaxconv.chosen_algorithm(x, w, *args, **kw)
      'xla'
    """
    if not isinstance(flag, bool):
        raise TypeError(f"exact_nonfinite: `flag` must be a bool, got {flag!r}.")
    _EXACT.append(flag)
    try:
        yield
    finally:
        _EXACT.pop()
