"""Opt-in autotuning, like `torch.backends.cudnn.benchmark`.

While enabled, the first trace of each configuration times the rule's choice and
every other candidate that fits the memory budget, each compiled once and run
exactly as "auto" would run it (in its pieces, in the caller's layout), and keeps
the rule's choice unless another is clearly faster: its best time over `repeats`
round-robin samples must beat the rule's best by `MARGIN`. Candidates whose first
sample is over `PRUNE` times the rule's are dropped after it. A transposed
convolution is tuned as one unit. `objective="forward"` times inference;
`"forward+backward"` times the forward pass and both gradients (`jax.vjp`), which is
what a training step pays.

Choices are kept in memory and in a JSON file, keyed by backend, device kind, jax
version, shapes, dtype and every parameter, so later processes skip the timing. The
file is shared safely: each write takes a lock (`filelock`), merges with what other
processes wrote, and replaces the file atomically. A corrupt or stale file is
ignored with one warning. Queries (`chosen_algorithm`, `candidate_algorithms`) read
the cache but never time or write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Literal

import filelock
import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._settings import exact_nonfinite_active, memory_budget

_VERSION = 2
MARGIN = 0.10
"""Another candidate replaces the rule's choice only if its best time is this much
shorter than the rule's."""
PRUNE = 2.0
"""A candidate whose first timed sample is this many times the rule's is not sampled again."""

Objective = Literal["forward", "forward+backward"]
OBJECTIVES = ("forward", "forward+backward")


def default_cache_path() -> str | None:
    """$JAXCONV_AUTOTUNE_CACHE, else $XDG_CACHE_HOME/jaxconv/autotune.json, else
    ~/.cache/jaxconv/autotune.json; `~` expanded. None where none of these is an
    absolute path (no usable home): the cache then stays in memory, and nothing is
    ever written relative to the working directory.

    Example:
      >>> import os
      >>> os.path.basename(jaxconv.default_autotune_cache_path())
      'autotune.json'
    """
    path = os.environ.get("JAXCONV_AUTOTUNE_CACHE")
    if not path:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = xdg if xdg and os.path.isabs(os.path.expanduser(xdg)) else "~/.cache"
        path = os.path.join(root, "jaxconv", "autotune.json")
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else None


class _Cache:
    """The choices of one cache file, read once, written under a lock and merged."""

    def __init__(self, path: str | None):
        self.path = path
        self.entries: dict | None = None  # what the file held when first read
        self.warned = False

    def _warn(self, message: str) -> None:
        if not self.warned:
            warnings.warn(f"jaxconv.autotune: {message}", RuntimeWarning, stacklevel=5)
        self.warned = True

    def _read(self) -> dict:
        if self.path is None or not os.path.exists(self.path):
            return {}
        try:
            with open(self.path) as f:
                data = json.load(f)
            if not isinstance(data, dict) or data.get("version") != _VERSION:
                raise ValueError("not a jaxconv autotune cache of this version")
            if not isinstance(data.get("entries"), dict):
                raise ValueError("its entries are not a mapping")
            return data["entries"]
        except (OSError, ValueError, RecursionError) as err:
            self._warn(f"ignoring unreadable cache {self.path!r} ({type(err).__name__}: {err}).")
            return {}

    def get(self, key: str):
        if self.entries is None:
            self.entries = self._read()
        return self.entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        if self.entries is None:
            self.entries = {}
        self.entries[key] = entry
        if self.path is None:
            return
        target = os.path.realpath(self.path)  # a symlinked cache stays a link
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with filelock.FileLock(target + ".lock", timeout=60):
                merged = self._read()
                merged[key] = entry
                _write_atomically(target, {"version": _VERSION, "entries": merged})
            self.entries.update(merged)
        except (OSError, filelock.Timeout) as err:
            self._warn(f"cannot write cache {self.path!r} ({type(err).__name__}: {err}).")


def _write_atomically(path: str, data: dict) -> None:
    """Write `data` as JSON to a temporary file beside `path`, with `path`'s permission
    bits where it exists, then rename it over `path`; no temporary file is left."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".autotune-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclasses.dataclass
class _Settings:
    cache: _Cache
    repeats: int
    objective: str


def _settings(cache_path, repeats, objective) -> _Settings:
    """Checked settings: bad arguments fail here, not at the first traced conv."""
    if objective not in OBJECTIVES:
        raise ValueError(f"autotune: `objective` (={objective!r}) must be one of {OBJECTIVES}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"autotune: `repeats` (={repeats!r}) must be a positive int.")
    if cache_path is not None and not isinstance(cache_path, (str, os.PathLike)):
        raise TypeError(
            f"autotune: `cache_path` must be None, a str or an os.PathLike, got {cache_path!r}."
        )
    if cache_path is None:
        path = default_cache_path()
    else:
        path = os.path.abspath(os.path.expanduser(os.fspath(cache_path)))
    return _Settings(_Cache(path), repeats, objective)


_ACTIVE: list[_Settings] = []


def active() -> _Settings | None:
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def autotune(
    cache_path: str | os.PathLike | None = None,
    repeats: int = 5,
    objective: Objective = "forward",
) -> Iterator[_Settings]:
    """Time the candidates of every convolution traced inside the block; cache the winners.

    The first trace of a configuration compiles each candidate once and runs it
    `repeats` + 1 times; later traces, and later processes through the cache file,
    pay nothing. docs/design.md ("Autotuning") gives what that costs on real models.

    Args:
      cache_path: JSON cache file (default: `default_autotune_cache_path()`),
        created on first use.
      repeats: timed runs per candidate (the best is compared).
      objective: "forward" (inference) or "forward+backward" (training: the forward
        pass plus the input and kernel gradients). Each has its own cache entries.

    Raises:
      ValueError: `objective` or `repeats` out of range.
      TypeError: `cache_path` is not a path.

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
    cache_path: str | os.PathLike | None = None,
    repeats: int = 5,
    objective: Objective = "forward",
) -> None:
    """Turn autotuning on or off for the rest of the process (the setting form of
    `autotune`, with the same arguments).

    Example:
      >>> jaxconv.set_autotune(False)
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: `enabled` must be a bool, got {enabled!r}.")
    _ACTIVE[:] = [_settings(cache_path, repeats, objective)] if enabled else []


def cache_key(op: str, problem, objective: str) -> str:
    """Everything a choice depends on, as a JSON string."""
    dev = jax.devices()[0]
    p = problem.params
    return json.dumps(
        [
            op,
            objective,
            jax.default_backend(),
            dev.device_kind,
            jax.__version__,
            [str(d) for d in problem.x_shape],
            [str(d) for d in problem.w_shape],
            problem.dtype,
            list(p.strides),
            [list(q) for q in p.pads],
            list(p.lhs_dilation),
            list(p.rhs_dilation),
            repr(p.precision),
            str(p.preferred_element_type),
            memory_budget(),  # it decides the candidates, and their pieces
            exact_nonfinite_active(),
        ]
    )


def _encode(candidate) -> str:
    """A candidate as the cache stores it: a name, or "name@axis*count" for pieces."""
    if isinstance(candidate, str):
        return candidate
    name, (axis, count) = candidate
    return name if count == 1 else f"{name}@{axis}*{count}"


def decide(key_parts, rule, candidates, program, symbolic: bool):
    """The choice for one configuration: `rule` unless autotuning is on and a cached
    or timed candidate replaces it.

    Args:
      key_parts: (op, problem): what the cache key is made of.
      rule: the rule's choice, itself a candidate.
      candidates: objective -> the candidates, the rule's first.
      program: `candidate -> (fn(lhs, rhs), (lhs spec, rhs spec))`, the program that
        candidate runs; None for a query, which times nothing.
      symbolic: the shapes have symbolic sizes: nothing can be timed.
    """
    settings = active()
    if settings is None:
        return rule
    if symbolic:
        warnings.warn(
            "jaxconv.autotune: shapes with symbolic sizes cannot be timed; "
            "using the rule's choice.",
            RuntimeWarning,
            stacklevel=4,
        )
        return rule
    op, problem = key_parts
    objective = settings.objective if jnp.issubdtype(problem.dtype, jnp.inexact) else "forward"
    key = cache_key(op, problem, objective)
    cached = settings.cache.get(key)
    options = {_encode(c): c for c in candidates(objective)}
    if cached is not None:
        name = cached.get("choice") if isinstance(cached, dict) else None
        if name in options:
            return options[name]
        settings.cache._warn(f"ignoring stale cache entry {cached!r}; retuning.")
    if program is None or len(options) == 1:
        return rule
    best, seconds = _measure(options, _encode(rule), program, settings.repeats, objective)
    settings.cache.put(key, {"choice": best, "seconds": seconds})
    return options[best]


def _measure(options: dict, rule: str, program, repeats: int, objective: str):
    """(the winner's encoding, {encoding: best seconds}) of the round-robin timing."""
    runs = {}
    with jax.ensure_compile_time_eval():  # concrete, even while an outer jit traces
        for name, candidate in options.items():
            fn, specs = program(candidate)
            runs[name] = _compiled(fn, specs, objective)
        samples = {name: [] for name in runs}
        order = random.Random(0)
        for round_ in range(repeats):
            names = list(samples)
            order.shuffle(names)
            for name in names:
                start = time.perf_counter()
                runs[name]()
                samples[name].append(time.perf_counter() - start)
            if round_ == 0:  # prune the clearly slower ones
                limit = PRUNE * samples[rule][0]
                samples = {n: s for n, s in samples.items() if n == rule or s[0] <= limit}
    best_times = {name: min(s) for name, s in samples.items()}
    fastest = min(best_times, key=best_times.get)
    if best_times[fastest] <= (1 - MARGIN) * best_times[rule]:
        return fastest, best_times
    return rule, best_times


def _compiled(fn, specs, objective: str):
    """A zero-argument call of `fn` compiled for `objective` on random data, warmed up."""
    rng = np.random.default_rng(0)
    args = []
    for spec in specs:  # NumPy data: concrete even while an outer jit is tracing
        data = rng.standard_normal(spec.shape)
        args.append(np.asarray(data).astype(spec.dtype))

    def forward_backward(x, w):
        out, vjp = jax.vjp(fn, x, w)
        return out, vjp(out)  # the output itself is a cotangent of the right shape

    run = forward_backward if objective == "forward+backward" else fn
    compiled = jax.jit(run).lower(*args).compile()
    jax.block_until_ready(compiled(*args))  # warm-up

    def call():
        jax.block_until_ready(compiled(*args))

    return call
