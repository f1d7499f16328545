"""`python -m jaxconv.bench`: time jaxconv against lax on real layer shapes.

For every layer it times, in one process: lax, every jaxconv algorithm that
applies, and "auto"; forward and forward+backward; median and min of repeats
after warm-up, compile time apart. It writes `<out>/<device>.md`, `.json` and
`.png` (ratio lax_time / jaxconv_time per layer: above 1 is faster than lax).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.bench.harness import matmul_peak_gflops, time_many
from jaxconv.bench.suites import SUITES, select


def _flops(layer) -> float:
    """Multiply-adds x 2 of the forward pass."""
    if layer.kind == "pool":
        return 0.0
    n, *spatial, cin = layer.x
    *kernel, ig, cout = layer.w
    if layer.kind == "conv_transpose":  # each input pixel meets every tap once
        return 2.0 * n * math.prod(spatial) * math.prod(kernel) * ig * cout
    out = [
        -(-s // st) if layer.padding == "SAME" else (s - k) // st + 1
        for s, k, st in zip(spatial, kernel, layer.strides)
    ]
    return 2.0 * n * math.prod(out) * math.prod(kernel) * ig * cout


SLOW_FOR_LARGE_KERNELS = ("direct", "im2col")
"""Skipped above 49 taps: minutes to compile and run, and never competitive there."""


def _candidates(layer):
    """{name: forward fn(x, w)} for lax and each jaxconv algorithm that applies."""
    import jaxconv

    nd = len(layer.x) - 2
    if layer.kind == "pool":
        return _pool_candidates(layer)
    if layer.kind == "conv_transpose":
        return _transpose_candidates(layer)
    chars = "DHW"[-nd:] if nd <= 3 else None
    dn = ("N" + chars + "C", chars + "IO", "N" + chars + "C")
    args = (layer.strides, layer.padding, None, None, dn, layer.groups)
    x = jax.ShapeDtypeStruct(layer.x, jnp.float32)
    w = jax.ShapeDtypeStruct(layer.w, jnp.float32)
    out = {"lax": lambda x, w: jax.lax.conv_general_dilated(x, w, *args)}
    taps = math.prod(layer.w[:-2])
    names = [n for n in _whole_candidates(x, w, args) if n != "xla"]
    for name in [*names, "auto"]:
        if taps > 49 and any(part in SLOW_FOR_LARGE_KERNELS for part in name.split("/")):
            continue
        out[name] = lambda x, w, name=name: jaxconv.conv_general_dilated(
            x, w, *args, algorithm=name
        )
    out["auto:" + jaxconv.chosen_algorithm(x, w, *args)] = out.pop("auto")
    return out


def _pool_candidates(layer):
    import jaxconv

    fns = {"max": jaxconv.max_pool, "avg": jaxconv.avg_pool}
    from flax import linen

    ref = {"max": linen.max_pool, "avg": linen.avg_pool}[layer.op]
    ours = fns[layer.op]
    args = (layer.window, layer.strides, layer.padding)
    return {
        "lax": lambda x, w: ref(x, *args),
        "direct": lambda x, w: ours(x, *args, algorithm="direct"),
        "auto": lambda x, w: ours(x, *args),
    }


BENCH_WORKSPACE_FACTOR = 4
BENCH_WORKSPACE_BYTES = 256 * 2**20


def _whole_candidates(x, w, args) -> list[str]:
    """Algorithms that can run the layer whole, as a named algorithm runs, with a forward
    workspace of at most BENCH_WORKSPACE_FACTOR times lax's peak or BENCH_WORKSPACE_BYTES,
    whichever is larger. ("auto" stays within the memory budget, in pieces if need be.)"""
    from jaxconv import _conv, _memory
    from jaxconv._algorithms import REGISTRY

    _, problem = _conv._plan(x, w, *args, 1, None, None, "xla", "bench")
    allowed = max(BENCH_WORKSPACE_FACTOR * _memory.io_bytes(problem), BENCH_WORKSPACE_BYTES)
    return [
        name
        for name, info in REGISTRY.items()
        if info.supports(problem) is None and _memory.workspace_bytes(problem, name) <= allowed
    ]


def _transpose_candidates(layer):
    import jaxconv

    nd = len(layer.x) - 2
    chars = "DHW"[-nd:]
    dn = ("N" + chars + "C", chars + "IO", "N" + chars + "C")
    args = (layer.strides, layer.padding, None, dn)
    out = {"lax": lambda x, w: jax.lax.conv_transpose(x, w, *args)}
    for name in ("direct", "subpixel", "xla/subpixel", "auto"):
        out[name] = lambda x, w, name=name: jaxconv.conv_transpose(x, w, *args, algorithm=name)
    from jaxconv._transpose import auto_choice, transpose_pads

    ones = (1,) * len(layer.strides)
    pads = transpose_pads(layer.w[:-2], layer.strides, layer.padding, False, "bench")
    chosen = auto_choice(layer.x, layer.w, layer.strides, pads, ones, "float32")
    out["auto:" + chosen] = out.pop("auto")
    return out


def _torch_row(layer, repeats: int):
    """PyTorch as an optional peer (CPU or CUDA, whichever jax runs on), or None."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if layer.kind != "conv" or len(layer.x) not in (3, 4, 5):
        return None
    import statistics
    import time

    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    nd = len(layer.x) - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    x = torch.randn(layer.x[0], layer.x[-1], *layer.x[1:-1], device=device, requires_grad=True)
    w = torch.randn(layer.w[-1], layer.w[-2], *layer.w[:-2], device=device, requires_grad=True)
    padding = "same" if layer.padding == "SAME" and all(s == 1 for s in layer.strides) else 0
    if layer.padding == "SAME" and padding == 0:
        return None  # torch has no SAME with strides
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def fwd():
        with torch.no_grad():
            return conv(x, w, stride=layer.strides, padding=padding, groups=layer.groups)

    def fwdbwd():
        x.grad = w.grad = None
        conv(x, w, stride=layer.strides, padding=padding, groups=layer.groups).sum().backward()

    def bench(fn):
        start = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - start
        fn()
        sync()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            samples.append(time.perf_counter() - start)
        return first, statistics.median(samples), min(samples)

    (c1, m1, n1), (c2, m2, n2) = bench(fwd), bench(fwdbwd)
    return dict(
        fwd_ms=m1 * 1e3,
        fwd_min_ms=n1 * 1e3,
        fwd_compile_s=c1,
        fwdbwd_ms=m2 * 1e3,
        fwdbwd_min_ms=n2 * 1e3,
        fwdbwd_compile_s=c2,
        gflops=_flops(layer) / m1 / 1e9,
        temp_mb=None,
        peak_mb=None,
    )


def _fwd_bwd(fn):
    def loss(x, w, ct):
        return jnp.vdot(fn(x, w), ct)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def _memory_bytes(jitted, *args) -> tuple[int, int] | None:
    """(temp, peak) bytes of the compiled forward: the scratch XLA allocates, and that
    plus its arguments and outputs (what the call holds at once)."""
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


def run_layer(layer, repeats: int, memory: bool = True):
    key = jax.random.key(0)
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, layer.x, jnp.float32)
    w = (
        jax.random.normal(kw, layer.w, jnp.float32)
        if layer.kind != "pool"
        else jnp.zeros((), jnp.float32)
    )
    flops = _flops(layer)
    fwd_calls, bwd_calls, memory_bytes = {}, {}, {}
    for name, fn in _candidates(layer).items():
        fwd = jax.jit(fn)
        ct = jnp.ones(jax.eval_shape(fwd, x, w).shape, jnp.float32)
        fwd_calls[name] = (fwd, (x, w))
        if layer.kind == "pool":
            bwd = jax.jit(jax.grad(lambda x, ct, fn=fn: jnp.vdot(fn(x, None), ct)))
            bwd_calls[name] = (bwd, (x, ct))
        else:
            bwd_calls[name] = (_fwd_bwd(fn), (x, w, ct))
    t_fwd = time_many(fwd_calls, repeats)
    t_bwd = time_many(bwd_calls, repeats)
    for name, (fwd, args) in fwd_calls.items():  # after timing: it compiles again
        wanted = memory and (name == "lax" or name.startswith("auto"))  # the table's columns
        memory_bytes[name] = _memory_bytes(fwd, *args) if wanted else None
    rows = {}
    for name in fwd_calls:
        rows[name] = dict(
            fwd_ms=t_fwd[name].median_s * 1e3,
            fwd_min_ms=t_fwd[name].min_s * 1e3,
            fwd_compile_s=t_fwd[name].compile_s,
            fwdbwd_ms=t_bwd[name].median_s * 1e3,
            fwdbwd_min_ms=t_bwd[name].min_s * 1e3,
            fwdbwd_compile_s=t_bwd[name].compile_s,
            gflops=flops / t_fwd[name].median_s / 1e9 if flops else None,
            temp_mb=memory_bytes[name][0] / 2**20 if memory_bytes[name] else None,
            peak_mb=memory_bytes[name][1] / 2**20 if memory_bytes[name] else None,
        )
    peer = _torch_row(layer, repeats)
    if peer is not None:
        rows["torch"] = peer
    base = rows["lax"]
    for row in rows.values():
        row["fwd_x"] = base["fwd_ms"] / row["fwd_ms"]
        row["fwdbwd_x"] = base["fwdbwd_ms"] / row["fwdbwd_ms"]
    return rows


def _fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def _peak_ratio(row, base) -> str:
    a, b = row.get("peak_mb"), base.get("peak_mb")
    if a is None or b is None:
        return "-"
    return f"{a:.1f}/{b:.1f} ({a / b:.2f})" if b else f"{a:.1f}/{b:.1f}"


def _previous_results(out_dir: str, stem: str) -> list:
    """The layers an earlier (interrupted) run of this device wrote, for --resume."""
    path = os.path.join(out_dir, stem + ".json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["results"]


def write_report(results, meta, out_dir: str, stem: str, plot: bool = True):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    lines = [
        f"# jaxconv benchmark: {meta['device']}",
        "",
        f"jax {meta['jax']}, {meta['backend']}, {meta['date']}, matmul peak "
        f"{meta['peak_gflops']:.0f} GFLOP/s, {'quick' if meta['quick'] else 'full'} run. "
        "Ratios are lax time / jaxconv time, measured in the same process "
        "(median of repeats after warm-up, candidates sampled round-robin): above 1.00 is "
        "faster than lax. Where auto picks `xla` it compiles to the same HLO as lax, so its "
        "deviation from 1.00 there shows the noise of this shared machine.",
        "",
        meta.get("peak_note", ""),
        "",
        *(f"FAILED: {line}" for line in meta.get("failed", [])),
        "",
        "## Summary: what `auto` picks",
        "",
        "| suite | layer | lax fwd ms | lax fwd+bwd ms | auto picks | auto fwd x | "
        "auto fwd+bwd x | best fwd x (algorithm) | auto GFLOP/s | % peak | "
        "temp MB auto/lax | peak MB auto/lax (x) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows = r["rows"]
        auto_name = next(k for k in rows if k.startswith("auto"))
        auto = rows[auto_name]
        best = max(
            (k for k in rows if k not in ("lax", "torch") and not k.startswith("auto")),
            key=lambda k: rows[k]["fwd_x"],
            default=None,
        )
        best_s = f"{rows[best]['fwd_x']:.2f} ({best})" if best else "-"
        peak = (100 * auto["gflops"] / meta["peak_gflops"]) if auto["gflops"] else None
        lines.append(
            f"| {r['suite']} | {r['layer']} | {rows['lax']['fwd_ms']:.2f} | "
            f"{rows['lax']['fwdbwd_ms']:.2f} | {auto_name.split(':')[-1]} | "
            f"{auto['fwd_x']:.2f} | {auto['fwdbwd_x']:.2f} | {best_s} | "
            f"{_fmt(auto['gflops'], 1)} | {_fmt(peak, 0)} | "
            f"{_fmt(auto['temp_mb'], 1)}/{_fmt(rows['lax']['temp_mb'], 1)} | "
            f"{_peak_ratio(auto, rows['lax'])} |"
        )
    lines += [
        "",
        "## Every candidate",
        "",
        "| suite | layer | candidate | fwd ms (min) | fwd x | fwd+bwd ms (min) | "
        "fwd+bwd x | compile s fwd/bwd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, row in r["rows"].items():
            lines.append(
                f"| {r['suite']} | {r['layer']} | {name} | {row['fwd_ms']:.2f} "
                f"({row['fwd_min_ms']:.2f}) | {row['fwd_x']:.2f} | {row['fwdbwd_ms']:.2f} "
                f"({row['fwdbwd_min_ms']:.2f}) | {row['fwdbwd_x']:.2f} | "
                f"{row['fwd_compile_s']:.2f}/{row['fwdbwd_compile_s']:.2f} |"
            )
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if plot:
        _plot(results, os.path.join(out_dir, stem + ".png"), meta)


def _plot(results, path, meta):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    labels, fwd, bwd = [], [], []
    for r in results:
        auto = next(v for k, v in r["rows"].items() if k.startswith("auto"))
        labels.append(f"{r['suite']}: {r['layer']}")
        fwd.append(auto["fwd_x"])
        bwd.append(auto["fwdbwd_x"])
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1.5))
    y = np.arange(len(labels))
    ax.barh(y - 0.2, fwd, 0.4, label="auto, forward")
    ax.barh(y + 0.2, bwd, 0.4, label="auto, forward+backward")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over lax (lax time / jaxconv time), log scale")
    ax.set_title(f"jaxconv vs lax on {meta['device']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def device_name() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return dev.device_kind.lower().replace(" ", "-")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m jaxconv.bench", description=__doc__)
    parser.add_argument(
        "--suite",
        action="append",
        choices=list(SUITES),
        help="suite to run (repeatable); default: all",
    )
    parser.add_argument("--quick", action="store_true", help="a few layers at batch 1 (< 2 min)")
    parser.add_argument("--backend", default=None, help="jax platform: cpu, cuda, rocm, tpu")
    parser.add_argument("--out", default="bench/results", help="output directory")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (--quick: 3)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the layers already in <out>/<device>.json and run only the rest",
    )
    args = parser.parse_args(argv)
    if args.backend:
        jax.config.update("jax_platforms", args.backend)
    layers = select(args.suite, args.quick)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    try:
        from tqdm import tqdm
    except ImportError:  # progress bar is optional

        def tqdm(it, **_):
            return it

    meta = dict(
        device=device_name(),
        backend=jax.default_backend(),
        jax=jax.__version__,
        python=sys.version.split()[0],
        machine=platform.machine(),
        date=time.strftime("%Y-%m-%d"),
        quick=args.quick,
        peak_gflops=matmul_peak_gflops(),
    )
    stem = meta["device"] + ("-quick" if args.quick else "")
    results = _previous_results(args.out, stem) if args.resume else []
    done = {(r["suite"], r["layer"]) for r in results}
    bar = tqdm([sl for sl in layers if (sl[0], sl[1].name) not in done], desc="bench", unit="layer")
    for suite, layer in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{suite}: {layer.name}")
        try:
            rows = run_layer(layer, args.repeats, memory=not args.quick)
        except Exception as e:  # report it and go on: one broken layer must not lose a run
            traceback.print_exc()
            meta.setdefault("failed", []).append(f"{suite}: {layer.name}: {type(e).__name__}: {e}")
            continue
        finally:
            jax.clear_caches()
        results.append(
            dict(
                suite=suite,
                layer=layer.name,
                kind=layer.kind,
                x=layer.x,
                w=getattr(layer, "w", None),
                rows=rows,
            )
        )
        write_report(results, meta, args.out, stem, plot=False)  # a killed run keeps its layers
    order = {(suite, layer.name): i for i, (suite, layer) in enumerate(select(None, args.quick))}
    results.sort(key=lambda r: order.get((r["suite"], r["layer"]), len(order)))  # suite order
    write_report(results, meta, args.out, stem)
    with open(os.path.join(args.out, stem + ".md")) as f:
        print(f.read())
    if meta.get("failed"):
        sys.exit(f"{len(meta['failed'])} layer(s) failed: see FAILED in the table")


if __name__ == "__main__":
    main()
