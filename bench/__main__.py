"""`python -m bench` (`make bench`): time jaxconv against lax on real layers, and whole
networks against flax (and PyTorch, where installed).

For every layer: lax, every jaxconv algorithm that applies, and "auto", forward and
forward+backward, in one process, medians after warm-up, compile time apart. For every
network: one training step, flax's layers against `jaxconv.nnx.swap`. Results go to
`--out` (default bench/out, not committed); `--save` writes the committed tables in
bench/results instead and regenerates the README's headline tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

import jax

from bench import report
from bench.harness import copy_bandwidth_gbs, matmul_peak_gflops
from bench.layers import SUITES, gpu_batch, run_layer, select
from bench.networks import NETWORKS, run_network, select_networks

RESULTS = "bench/results"


def device_name() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"cpu-{os.cpu_count()}core"
    return dev.device_kind.lower().replace(" ", "-")


def cpu_model() -> str:
    """The host CPU's model name (Linux `/proc/cpuinfo`), else `platform.processor()`:
    the device name alone does not tell two 2-core hosts apart."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _previous(path: str, key: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)[key]


def _meta(args) -> dict:
    try:
        import flax

        flax_version = flax.__version__
    except ImportError:
        flax_version = None
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return dict(
        device=device_name(),
        backend=jax.default_backend(),
        jax=jax.__version__,
        flax=flax_version,
        torch=torch_version,
        python=sys.version.split()[0],
        machine=platform.machine(),
        cpu=cpu_model(),
        date=time.strftime("%Y-%m-%d"),
        commit=_commit(),
        quick=args.quick,
    )


def run_layers(args, meta, out: str) -> int:
    suites = [s for s in (args.suite or list(SUITES)) if s != "networks"]
    if not suites:
        return 0
    layers = select(suites, args.quick)
    meta = dict(
        meta,
        peak_gflops=matmul_peak_gflops(sizes=(1024, 2048, 3072) if args.quick else (1024, 2048)),
        bandwidth_gbs=copy_bandwidth_gbs(),
    )
    stem = meta["device"] + ("-quick" if args.quick else "")
    path = os.path.join(out, stem + ".json")
    results = _previous(path, "results") if args.resume else []
    done = {(r["suite"], r["layer"]) for r in results}
    on_gpu = jax.default_backend() == "gpu"
    for suite, layer in layers:
        if (suite, layer.name) in done:
            continue
        print(f"bench: {suite}: {layer.name}", flush=True)
        try:
            if on_gpu:
                layer = gpu_batch(layer)
            rows, extra = run_layer(layer, args.repeats, not args.quick)
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
                **extra,
            )
        )
        report.write_layers(results, meta, out, stem, plot=False)  # a killed run keeps its layers
    order = {(s, layer.name): i for i, (s, layer) in enumerate(select(None, args.quick))}
    results.sort(key=lambda r: order.get((r["suite"], r["layer"]), len(order)))
    print(report.write_layers(results, meta, out, stem))
    return len(meta.get("failed", []))


def run_networks(args, meta, out: str) -> int:
    if args.suite and "networks" not in args.suite:
        return 0
    stem = meta["device"] + "-networks" + ("-quick" if args.quick else "")
    path = os.path.join(out, stem + ".json")
    rows = _previous(path, "networks") if args.resume else []
    done = {r["network"] for r in rows}
    for network in select_networks(args.network, args.quick):
        if network.name in done:
            continue
        print(f"bench: networks: {network.name}", flush=True)
        try:
            rows.append(run_network(network, args.repeats, args.quick))
        except Exception as e:
            traceback.print_exc()
            meta.setdefault("failed", []).append(f"{network.name}: {type(e).__name__}: {e}")
        finally:
            jax.clear_caches()
        report.write_networks(rows, meta, out, stem, plot=False)
    order = {n.name: i for i, n in enumerate(NETWORKS)}
    rows.sort(key=lambda r: order.get(r["network"], len(order)))
    print(report.write_networks(rows, meta, out, stem))
    return len(meta.get("failed", []))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "networks"],
        help="suite to run (repeatable); default: every layer suite and the networks",
    )
    parser.add_argument(
        "--network",
        action="append",
        choices=[n.name for n in NETWORKS],
        help="with --suite networks: only these (repeatable)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few layers at batch 1, two small networks (< 5 min)"
    )
    parser.add_argument("--backend", default=None, help="jax platform: cpu, cuda, rocm, tpu")
    parser.add_argument("--out", default="bench/out", help="results directory (not committed)")
    parser.add_argument(
        "--save", action="store_true", help=f"write the committed tables in {RESULTS}"
    )
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (--quick: 3)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the layers and networks already in the output's JSON; run only the rest",
    )
    args = parser.parse_args(argv)
    if args.backend:
        jax.config.update("jax_platforms", args.backend)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    out = RESULTS if args.save else args.out
    meta = _meta(args)
    failed = run_layers(args, meta, out) + run_networks(args, meta, out)
    if args.save:
        changed = report.update_readme("README.md", RESULTS)
        print(f"README.md: {'updated' if changed else 'up to date'}")
    if failed:
        sys.exit(f"{failed} layer(s) or network(s) failed: see FAILED in the tables")


if __name__ == "__main__":
    main()
