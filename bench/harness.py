"""Timing harness: warm-up, block_until_ready, medians, compile time apart; the
machine's matmul peak and copy bandwidth, measured in the same run.

Every candidate of a layer is timed in the same process, so the ratio to lax is
meaningful even on a noisy shared machine; absolute times are not.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time

import jax
import jax.numpy as jnp


@dataclasses.dataclass
class Timing:
    compile_s: float
    median_s: float
    min_s: float


def time_many(calls: dict, repeats: int = 7, min_time: float = 0.05) -> dict:
    """Time several jitted calls round-robin: {name: (fn, args)} -> {name: Timing}.

    Each is compiled and warmed up first; then every repeat takes one sample of
    each in turn, so a slow drift of a shared machine's load hits all of them
    alike instead of whichever happened to run during it. Each round runs the
    candidates in a new (seeded) random order, and calls a candidate faster than
    4 x `min_time` once untimed before its sample: otherwise whichever always
    follows a slow, memory-hungry candidate pays for it.
    """
    compile_s, inner, warm = {}, {}, {}
    for name, (fn, args) in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        compile_s[name] = time.perf_counter() - start
        jax.block_until_ready(fn(*args))
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        once = time.perf_counter() - start
        inner[name] = max(1, min(50, int(min_time / max(once, 1e-6))))
        warm[name] = once < 4 * min_time
    samples = {name: [] for name in calls}
    order = random.Random(0)
    for _ in range(repeats):
        names = list(calls)
        order.shuffle(names)
        for name in names:
            fn, args = calls[name]
            if warm[name]:  # not slow: one untimed call first
                jax.block_until_ready(fn(*args))
            start = time.perf_counter()
            for _ in range(inner[name]):
                out = fn(*args)
            jax.block_until_ready(out)
            samples[name].append((time.perf_counter() - start) / inner[name])
    return {
        name: Timing(compile_s[name], statistics.median(s), min(s)) for name, s in samples.items()
    }


def matmul_peak_gflops(sizes=(1024, 2048), dtype=jnp.float32, repeats: int = 9) -> float:
    """Best GFLOP/s of n x n x n matmuls on the default device: the compute peak."""
    calls = {}
    for n in sizes:
        a = jnp.ones((n, n), dtype)
        calls[n] = (jax.jit(lambda a, b: a @ b), (a, a))
    timings = time_many(calls, repeats=repeats)
    return max(2 * n**3 / t.min_s / 1e9 for n, t in timings.items())


def copy_seconds(nbytes: int, repeats: int = 9) -> float:
    """Best time of one fused pass that reads nbytes / 2 of float32 and writes as many:
    a copy that moves `nbytes` (in cache where they fit in cache, from memory where
    they do not)."""
    x = jnp.ones((max(nbytes // 8, 1),), jnp.float32)
    timing = time_many({"copy": (jax.jit(lambda x: x * 1.0001), (x,))}, repeats=repeats)["copy"]
    return timing.min_s


def stream_calls(read: int, written: int) -> dict:
    """Programs for `time_many` that bound a pass reading `read` bytes and writing
    `written`: one that only reads them (a sum), one that only writes them (a fill),
    and a copy moving as many bytes in all. `roofline_seconds` takes the least time
    they show. Timed in the same rounds as the layer they bound, they meet the same
    caches and the same allocator: a write to a fresh buffer pays its page faults,
    and whether it does depends on what ran just before."""
    x = jnp.ones((max(read // 4, 1),), jnp.float32)
    n = max(written // 4, 1)
    c = jnp.ones((max((read + written) // 8, 1),), jnp.float32)
    return {
        "roofline read": (jax.jit(lambda x: jnp.sum(x)), (x,)),
        "roofline write": (jax.jit(lambda s: jnp.broadcast_to(s, (n,)) + 0), (jnp.float32(1.5),)),
        "roofline copy": (jax.jit(lambda c: c * 1.0001), (c,)),
    }


def roofline_seconds(timings: dict) -> float:
    """The least time of a pass, from the `stream_calls` programs' best times: reading
    then writing, or a copy of as many bytes, whichever was faster here."""
    apart = timings["roofline read"].min_s + timings["roofline write"].min_s
    return min(apart, timings["roofline copy"].min_s)


def copy_bandwidth_gbs(mib: int = 256, repeats: int = 9) -> float:
    """GB/s (read plus written) of a copy moving `mib` MiB: main memory's bandwidth."""
    nbytes = mib * 2**20
    return nbytes / copy_seconds(nbytes, repeats) / 1e9


def memory_bytes(jitted, *args) -> tuple[int, int] | None:
    """(temp, peak) bytes of a compiled call: the scratch XLA allocates, and that plus
    its arguments and outputs (what the call holds at once)."""
    try:
        stats = jitted.lower(*args).compile().memory_analysis()
    except Exception:  # memory_analysis is not on every backend
        return None
    if stats is None:
        return None
    temp = int(stats.temp_size_in_bytes)
    peak = (
        temp
        + int(stats.argument_size_in_bytes)
        + int(stats.output_size_in_bytes)
        - int(stats.alias_size_in_bytes)
    )
    return temp, peak
