"""The benchmark's tables: `<device>.md/.json/.png` for layers, `<device>-networks.*` for
whole networks, and the README's headline tables, generated from the committed JSON so
they cannot go stale (`python -m bench.report`, or `make docs`).
"""

from __future__ import annotations

import argparse
import json
import os
import re

import numpy as np

FEWER_FLOPS = ("fft", "winograd", "winograd4")
"""Algorithms that do fewer multiplications than a direct conv: their GFLOP/s are
direct-conv equivalents, so no % of the matmul peak is given for them."""


def _host(meta) -> str:
    """The host's CPU model for a table's header, where the run recorded it."""
    return f" on {meta['cpu']}" if meta.get("cpu") else ""


def _fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def _auto(rows) -> tuple[str, dict]:
    name = next(k for k in rows if k.startswith("auto"))
    return name.split(":", 1)[-1], rows[name]


def _peak_ratio(row, base) -> str:
    a, b = row.get("peak_mb"), base.get("peak_mb")
    if a is None or b is None:
        return "-"
    return f"{a:.1f}/{b:.1f} ({a / b:.2f})" if b else f"{a:.1f}/{b:.1f}"


def _pct(value: float) -> str:
    """A share of the roofline; above 100 the layer ran faster than the passes that
    bound it did in the same rounds, which says the bound was mismeasured: ">100"."""
    return ">100" if value > 100 else f"{value:.0f}"


def layer_summary_rows(results, meta) -> list[str]:
    """The summary table: what auto picks on each layer, its ratios to lax, its share of
    the matmul peak (compute-bound layers) or of the memory roofline (memory-bound)."""
    lines = [
        "| suite | layer | lax fwd ms | lax fwd+bwd ms | auto picks | auto fwd x | "
        "auto fwd+bwd x | best fwd x (algorithm) | auto GFLOP/s | % peak | "
        "% roofline fwd / fwd+bwd | peak MB auto/lax (x) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows = r["rows"]
        picked, auto = _auto(rows)
        best = max(
            (k for k in rows if k not in ("lax", "torch") and not k.startswith("auto")),
            key=lambda k: rows[k]["fwd_x"],
            default=None,
        )
        best_s = f"{rows[best]['fwd_x']:.2f} ({best})" if best else "-"
        bound = r.get("memory_bound", False)
        direct_flops = picked.split(" ")[0] not in FEWER_FLOPS
        peak = None
        if auto.get("gflops") and not bound and direct_flops:
            peak = 100 * auto["gflops"] / meta["peak_gflops"]
        roof = "-"
        if auto.get("fwd_roofline_pct") is not None:
            roof = f"{_pct(auto['fwd_roofline_pct'])} / {_pct(auto['fwdbwd_roofline_pct'])}"
        lines.append(
            f"| {r['suite']} | {r['layer']} | {rows['lax']['fwd_ms']:.2f} | "
            f"{rows['lax']['fwdbwd_ms']:.2f} | {picked} | {auto['fwd_x']:.2f} | "
            f"{auto['fwdbwd_x']:.2f} | {best_s} | {_fmt(auto.get('gflops'), 1)} | "
            f"{_fmt(peak, 0)} | {roof} | {_peak_ratio(auto, rows['lax'])} |"
        )
    return lines


def write_layers(results, meta, out_dir: str, stem: str, plot: bool = True) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    bw = meta.get("bandwidth_gbs")
    lines = [
        f"# jaxconv benchmark: {meta['device']}",
        "",
        f"jax {meta['jax']}, {meta['backend']}{_host(meta)}, {meta['date']}, "
        f"commit {meta.get('commit', '?')}, "
        f"matmul peak {meta['peak_gflops']:.0f} GFLOP/s, copy bandwidth "
        f"{_fmt(bw, 1)} GB/s, {'quick' if meta['quick'] else 'full'} run. Ratios are "
        "lax time / jaxconv time, measured in the same process (median of repeats after "
        "warm-up, candidates sampled round-robin): above 1.00 is faster than lax. Where "
        "auto picks `xla` it compiles to the same HLO as lax, so its deviation from 1.00 "
        "there shows the noise of this shared machine.",
        "",
        "`% peak` is auto's GFLOP/s against the matmul peak, for compute-bound layers whose "
        "algorithm does the direct conv's multiplications. `% roofline` is, for "
        "memory-bound layers (pools, depthwise convs, under 10 flops per byte), the least "
        "time the pass can take against auto's: the best time of a pass that only reads "
        "the bytes it must read plus that of a pass that only writes the bytes it must "
        "write, measured in the same run at the same sizes. The forward reads the inputs "
        "and writes the output; fwd+bwd is the gradient program, which reads the "
        "cotangent and the inputs the gradients need and writes the gradients. The "
        "least time is the faster of a read-only pass plus a write-only pass, and a copy "
        "of as many bytes, timed in the same rounds as the layer. `>100` marks a layer "
        "that ran faster than those passes: writes to fresh buffers pay page faults that "
        "vary from call to call here, and the bound was then mismeasured.",
        "",
        *(f"FAILED: {line}" for line in meta.get("failed", [])),
        "",
        "## Summary: what `auto` picks",
        "",
        *layer_summary_rows(results, meta),
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
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(text)
    if plot:
        _plot_layers(results, os.path.join(out_dir, stem + ".png"), meta)
    return text


def network_rows(rows) -> list[str]:
    lines = [
        "| network | input | flax step ms | jaxconv step ms | speedup | compile s flax → "
        "jaxconv (x) | break-even steps | peak MB flax → jaxconv (x) | PyTorch step ms | "
        "jaxconv vs PyTorch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = "x".join(map(str, r["input"]))
        peak = "-"
        if r.get("peak_ratio"):
            peak = f"{r['flax_peak_mb']:.0f} → {r['jaxconv_peak_mb']:.0f} ({r['peak_ratio']:.2f})"
        even = "-" if r.get("break_even_steps") is None else f"{r['break_even_steps']:.0f}"
        lines.append(
            f"| {r['network']} | {shape} | {r['flax_step_ms']:.0f} | {r['jaxconv_step_ms']:.0f} | "
            f"{r['speedup']:.2f}x | {r['flax_compile_s']:.1f} → {r['jaxconv_compile_s']:.1f} "
            f"({r['compile_ratio']:.2f}) | {even} | {peak} | "
            f"{_fmt(r.get('torch_step_ms'), 0)} | "
            f"{'-' if r.get('vs_torch') is None else format(r['vs_torch'], '.2f') + 'x'} |"
        )
    return lines


def write_networks(rows, meta, out_dir: str, stem: str, plot: bool = True) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump(dict(meta=meta, networks=rows), f, indent=1)
    torch = meta.get("torch") or "not installed"
    lines = [
        f"# jaxconv whole-network training steps: {meta['device']}",
        "",
        f"jax {meta['jax']}, flax {meta.get('flax', '?')}, PyTorch {torch}, {meta['backend']}"
        f"{_host(meta)}, {meta['date']}, commit {meta.get('commit', '?')}. One jitted SGD step (forward, "
        "backward, update, state donated) of each network built with flax nnx's layers, "
        "against the same model after `jaxconv.nnx.swap` with jaxconv's pools; the two are "
        "alternated in one process, medians after two warm-up steps. Compile is the first "
        "call's tracing, lowering and compilation, the faster of two for each variant, "
        "timed alternated from cleared caches; peak is `memory_analysis()` of the compiled step. "
        "PyTorch runs the same architecture eagerly (channels_last) in the same process.",
        "",
        *(f"FAILED: {line}" for line in meta.get("failed", [])),
        "",
        *network_rows(rows),
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(text)
    if plot:
        _plot_networks(rows, os.path.join(out_dir, stem + ".png"), meta)
    return text


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _plot_layers(results, path, meta):
    plt = _pyplot()
    if plt is None:
        return
    labels, fwd, bwd = [], [], []
    for r in results:
        _, auto = _auto(r["rows"])
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


def _plot_networks(rows, path, meta):
    plt = _pyplot()
    if plt is None:
        return
    labels = [r["network"] for r in rows]
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1.5))
    ax.barh(y - 0.2, [r["speedup"] for r in rows], 0.4, label="jaxconv vs flax (step)")
    torch = [r.get("vs_torch") or 0 for r in rows]
    if any(torch):
        ax.barh(y + 0.2, torch, 0.4, label="jaxconv vs PyTorch (step)")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("training-step speed-up (their time / jaxconv's time), log scale")
    ax.set_title(f"whole networks on {meta['device']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------ README tables

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
HEADLINE_LAYERS = {
    ("mobilenetv2", "dw 3x3 112x112x32"),
    ("efficientnet_b0", "dw 5x5 28x28x240"),
    ("convnext_t", "dw 7x7 56x56x96"),
    ("large_kernel", "replknet dw 31x31 14x14x512"),
    ("large_kernel", "1-D k128 g16 64"),
    ("resnet50", "res2 3x3 64"),
    ("resnet50", "res2 1x1 64->256"),
    ("vit_b16", "patch embed 16x16/16 3->768"),
    ("resnet3d18", "layer1 3x3x3 64"),
    ("unet_decoder", "dcgan 4x4/2 256->128"),
    ("pooling", "resnet stem maxpool 3x3/2"),
    ("pooling", "densenet transition avgpool 2x2/2"),
}


def readme_block(results_dir: str, device: str = "cpu-2core") -> str:
    """The README's headline tables, from `<device>-networks.json` and `<device>.json`."""
    lines = [BEGIN, ""]
    networks = os.path.join(results_dir, f"{device}-networks.json")
    if os.path.exists(networks):
        with open(networks) as f:
            data = json.load(f)
        lines += [
            f"Training steps of whole networks ({device}, `bench/results/{device}-networks.md`):",
            "",
            *network_rows(data["networks"]),
            "",
        ]
    layers = os.path.join(results_dir, f"{device}.json")
    if os.path.exists(layers):
        with open(layers) as f:
            data = json.load(f)
        lines += [
            f"Single layers, lax time / jaxconv time ({device}, `bench/results/{device}.md`):",
            "",
            "| layer | auto picks | forward | forward+backward |",
            "|---|---|---|---|",
        ]
        for r in data["results"]:
            if (r["suite"], r["layer"]) in HEADLINE_LAYERS:
                picked, auto = _auto(r["rows"])
                lines.append(
                    f"| {r['suite']}: {r['layer']} | {picked} | {auto['fwd_x']:.1f}x | "
                    f"{auto['fwdbwd_x']:.1f}x |"
                )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update_readme(readme: str, results_dir: str) -> bool:
    """Rewrite the README's block between the markers; True if it changed."""
    with open(readme) as f:
        text = f.read()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block")
    new = pattern.sub(lambda _: readme_block(results_dir), text)
    if new != text:
        with open(readme, "w") as f:
            f.write(new)
    return new != text


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--results", default="bench/results")
    args = parser.parse_args(argv)
    changed = update_readme(args.readme, args.results)
    print(f"{args.readme}: {'updated' if changed else 'up to date'}")


if __name__ == "__main__":
    main()
