"""Opt-in autotuning, like `torch.backends.cudnn.benchmark`.

While enabled, the first trace of each convolution configuration times every
algorithm that can run it (on random data of the same shapes, after warm-up,
median of repeats) and keeps the fastest. `objective="forward"` times the forward
pass (inference); `"forward+backward"` times the forward pass with both gradients
(`jax.vjp`), which is what a training step pays; the choice is cached in
memory and in a JSON file, so later processes skip the timing. The cache key
covers backend, device kind, jax version, shapes, dtype and every parameter.
A corrupt or stale cache file is ignored with a warning, never a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import tempfile
import time
import warnings
from typing import Literal

import jax
import numpy as np

_VERSION = 1


def default_cache_path() -> str:
    """$JAXCONV_AUTOTUNE_CACHE, else ~/.cache/jaxconv/autotune.json."""
    return os.environ.get("JAXCONV_AUTOTUNE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "jaxconv", "autotune.json"
    )


Objective = Literal["forward", "forward+backward"]
OBJECTIVES = ("forward", "forward+backward")


@dataclasses.dataclass
class _Settings:
    cache_path: str
    repeats: int
    objective: str
    memo: dict


def _settings(cache_path, repeats, objective) -> _Settings:
    """Checked settings: bad arguments fail here, not at the first traced conv."""
    if objective not in OBJECTIVES:
        raise ValueError(f"autotune: `objective` (={objective!r}) must be one of {OBJECTIVES}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"autotune: `repeats` (={repeats!r}) must be a positive int.")
    return _Settings(cache_path or default_cache_path(), repeats, objective, {})


_ACTIVE: list[_Settings] = []


def active() -> _Settings | None:
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def autotune(cache_path: str | None = None, repeats: int = 5, objective: Objective = "forward"):
    """Time the candidates of every convolution traced inside the block; cache the winners.

    Args:
      cache_path: JSON cache file (default: `default_cache_path()`); None entries
        are created on first use.
      repeats: timed runs per candidate (median is kept).
      objective: "forward" (inference) or "forward+backward" (training: the
        forward pass plus the input and kernel gradients). Each objective has
        its own cache entries.

    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "tune.json")
      >>> x, w = jnp.ones((1, 16, 16, 8)), jnp.ones((3, 3, 8, 8))
      >>> with jaxconv.autotune(cache_path=path, repeats=1):
      ...     y = jaxconv.conv_general_dilated(x, w, (1, 1), "SAME",
      ...                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> os.path.exists(path)
      True
    """
    settings = _settings(cache_path, repeats, objective)
    _ACTIVE.append(settings)
    try:
        yield settings
    finally:
        _ACTIVE.remove(settings)


def set_autotune(
    enabled: bool,
    cache_path: str | None = None,
    repeats: int = 5,
    objective: Objective = "forward",
) -> None:
    """Turn autotuning on or off for the rest of the process (the setting form).

    Example:
      >>> jaxconv.set_autotune(False)
    """
    _ACTIVE[:] = [_settings(cache_path, repeats, objective)] if enabled else []


def cache_key(problem, objective: str = "forward") -> str:
    from jaxconv._memory import memory_budget

    dev = jax.devices()[0]
    p = problem.params
    return json.dumps(
        [
            objective,
            jax.default_backend(),
            dev.device_kind,
            jax.__version__,
            list(problem.x_shape),
            list(problem.w_shape),
            problem.dtype,
            list(p.strides),
            [list(q) for q in p.pads],
            list(p.lhs_dilation),
            list(p.rhs_dilation),
            repr(p.precision),
            str(p.preferred_element_type),
            memory_budget(),  # it decides which candidates run, and in how many chunks
        ]
    )


def _load(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
        if data.get("version") != _VERSION or not isinstance(data.get("entries"), dict):
            raise ValueError(f"unexpected layout (version {data.get('version')!r})")
        return data["entries"]
    except (OSError, ValueError, AttributeError) as err:
        warnings.warn(
            f"jaxconv.autotune: ignoring unreadable cache {path!r} ({err}).",
            RuntimeWarning,
            stacklevel=4,
        )
        return {}


def _store(path: str, entries: dict) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"version": _VERSION, "entries": entries}, f, indent=1)
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(
            f"jaxconv.autotune: cannot write cache {path!r} ({err}).", RuntimeWarning, stacklevel=4
        )


def time_candidate(fn, x, w, params, repeats: int, objective: str = "forward") -> float:
    """Median seconds of the compiled `fn(x, w, params)` on concrete data: the forward
    pass, or for "forward+backward" the forward pass and both gradients (`jax.vjp`)."""

    def forward(x, w):
        return fn(x, w, params)

    def forward_backward(x, w):
        out, vjp = jax.vjp(forward, x, w)
        return out, vjp(out)  # the output itself is a cotangent of the right shape

    run = forward_backward if objective == "forward+backward" else forward
    with jax.ensure_compile_time_eval():
        compiled = jax.jit(run).lower(x, w).compile()
        jax.block_until_ready(compiled(x, w))  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(compiled(x, w))
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tuned_choice(problem, candidates, settings: _Settings) -> str:
    """The fastest of `candidates` ({name: fn}) for `problem`, from cache or by timing."""
    from jaxconv._algorithms import REGISTRY
    from jaxconv._chunk import chunked_algorithm
    from jaxconv._memory import fit_chunks

    # Integer convs have no gradient: time their forward pass whatever the objective.
    inexact = np.issubdtype(np.dtype(problem.dtype), np.inexact)
    objective = settings.objective if inexact else "forward"
    key = cache_key(problem, objective)
    if key in settings.memo:
        return settings.memo[key]
    entries = _load(settings.cache_path)
    entry = entries.get(key)
    if entry is not None:
        name = entry.get("algorithm") if isinstance(entry, dict) else None
        if name in candidates:
            settings.memo[key] = name
            return name
        warnings.warn(
            f"jaxconv.autotune: ignoring stale cache entry {entry!r}; retuning.",
            RuntimeWarning,
            stacklevel=4,
        )
    if objective == "forward":
        # A composite's forward is its first part's ("xla/fft" runs "xla" forward):
        # timing it again could only pick it by noise, and saddle training with its
        # backward.
        candidates = [name for name in candidates if "/" not in name] or candidates
    rng = np.random.default_rng(0)
    dtype = np.dtype(problem.dtype)
    x = rng.standard_normal(problem.x_shape).astype(dtype)  # NumPy: concrete even while
    w = rng.standard_normal(problem.w_shape).astype(dtype)  # an outer jit is tracing
    times = {  # each as "auto" would run it: in chunks where the memory budget needs them
        name: time_candidate(
            chunked_algorithm(REGISTRY[name], fit_chunks(problem, name)),
            x,
            w,
            problem.params,
            settings.repeats,
            objective,
        )
        for name in candidates
    }
    best = min(times, key=times.get)
    entries = _load(settings.cache_path)
    entries[key] = {"algorithm": best, "seconds": times}
    _store(settings.cache_path, entries)
    settings.memo[key] = best
    return best
