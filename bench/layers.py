"""Layer suites: real layer shapes, named after the networks they come from, and the
timing of lax against every jaxconv candidate on each.

Shapes are channels-last: x (N, *S, C), w (*K, I, O). Batch sizes are kept small
enough for a 2-core CPU; `--quick` keeps one or two layers per suite at batch 1; on a
GPU each layer's batch grows until lax's forward takes about 1 ms (`gpu_batch`).
Only jaxconv's public API is used.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

import jaxconv
from bench.harness import memory_bytes, roofline_seconds, stream_calls, time_many


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One convolution: `conv_general_dilated(x, w, strides, padding, groups)`."""

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str | tuple = "SAME"
    groups: int = 1
    quick: bool = False
    kind: str = "conv"

    def batch(self, n: int) -> ConvLayer:
        return dataclasses.replace(self, x=(n, *self.x[1:]))


@dataclasses.dataclass(frozen=True)
class TransposeLayer:
    """One transposed convolution: `conv_transpose(x, w, strides, padding)`."""

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str | tuple = "SAME"
    quick: bool = False
    kind: str = "conv_transpose"

    def batch(self, n: int) -> TransposeLayer:
        return dataclasses.replace(self, x=(n, *self.x[1:]))


@dataclasses.dataclass(frozen=True)
class PoolLayer:
    """One pooling layer: `{op}_pool(x, window, strides, padding)`."""

    name: str
    op: str  # "max" or "avg"
    x: tuple[int, ...]
    window: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str = "VALID"
    quick: bool = False
    kind: str = "pool"

    def batch(self, n: int) -> PoolLayer:
        return dataclasses.replace(self, x=(n, *self.x[1:]))


def _dw(name, n, hw, c, k, s=1, quick=False):
    return ConvLayer(name, (n, hw, hw, c), (k, k, 1, c), (s, s), "SAME", c, quick)


SUITES = {
    "resnet50": [
        ConvLayer("conv1 7x7/2 3->64", (8, 224, 224, 3), (7, 7, 3, 64), (2, 2), "SAME"),
        ConvLayer("res2 3x3 64", (8, 56, 56, 64), (3, 3, 64, 64), (1, 1), quick=True),
        ConvLayer("res3 3x3 128", (8, 28, 28, 128), (3, 3, 128, 128), (1, 1)),
        ConvLayer("res3 3x3/2 128", (8, 56, 56, 128), (3, 3, 128, 128), (2, 2)),
        ConvLayer("res4 3x3 256", (8, 14, 14, 256), (3, 3, 256, 256), (1, 1)),
        ConvLayer("res5 3x3 512", (8, 7, 7, 512), (3, 3, 512, 512), (1, 1)),
        ConvLayer("res2 1x1 64->256", (8, 56, 56, 64), (1, 1, 64, 256), (1, 1), quick=True),
        ConvLayer("res3 1x1/2 256->512", (8, 56, 56, 256), (1, 1, 256, 512), (2, 2)),
    ],
    "vgg16": [
        ConvLayer("conv1_2 3x3 64", (1, 224, 224, 64), (3, 3, 64, 64), (1, 1)),
        ConvLayer("conv2_2 3x3 128", (2, 112, 112, 128), (3, 3, 128, 128), (1, 1)),
        ConvLayer("conv3_3 3x3 256", (2, 56, 56, 256), (3, 3, 256, 256), (1, 1)),
        ConvLayer("conv4_3 3x3 512", (2, 28, 28, 512), (3, 3, 512, 512), (1, 1)),
    ],
    "mobilenetv2": [
        _dw("dw 3x3 112x112x32", 8, 112, 32, 3, quick=True),
        _dw("dw 3x3/2 112x112x96", 8, 112, 96, 3, 2),
        _dw("dw 3x3 56x56x144", 8, 56, 144, 3),
        _dw("dw 3x3 28x28x192", 8, 28, 192, 3),
        _dw("dw 3x3 14x14x576", 8, 14, 576, 3),
        _dw("dw 3x3 7x7x960", 8, 7, 960, 3),
        ConvLayer("pw 1x1 24->144", (8, 56, 56, 24), (1, 1, 24, 144), (1, 1)),
    ],
    "efficientnet_b0": [
        _dw("dw 3x3 112x112x32", 8, 112, 32, 3),
        _dw("dw 5x5/2 56x56x144", 8, 56, 144, 5, 2, quick=True),
        _dw("dw 5x5 28x28x240", 8, 28, 240, 5),
        _dw("dw 5x5 14x14x672", 8, 14, 672, 5),
        _dw("dw 5x5 7x7x1152", 8, 7, 1152, 5),
    ],
    "convnext_t": [
        ConvLayer("stem 4x4/4 3->96", (8, 224, 224, 3), (4, 4, 3, 96), (4, 4), "VALID"),
        _dw("dw 7x7 56x56x96", 8, 56, 96, 7, quick=True),
        _dw("dw 7x7 28x28x192", 8, 28, 192, 7),
        _dw("dw 7x7 14x14x384", 8, 14, 384, 7),
        _dw("dw 7x7 7x7x768", 8, 7, 768, 7),
    ],
    "vit_b16": [
        ConvLayer(
            "patch embed 16x16/16 3->768",
            (8, 224, 224, 3),
            (16, 16, 3, 768),
            (16, 16),
            "VALID",
            quick=True,
        ),
    ],
    "large_kernel": [
        _dw("replknet dw 31x31 14x14x512", 2, 14, 512, 31),
        _dw("replknet dw 31x31 28x28x256", 2, 28, 256, 31),
        _dw("dw 13x13 28x28x256", 4, 28, 256, 13, quick=True),
        ConvLayer("1-D k64 16->16", (4, 4096, 16), (64, 16, 16), (1,), "SAME", quick=True),
        ConvLayer("1-D speech k65 64->64", (4, 4000, 64), (65, 64, 64), (1,), "SAME"),
        ConvLayer("1-D k128 dw 64", (4, 4096, 64), (128, 1, 64), (1,), "SAME", 64),
        ConvLayer("1-D k128 g16 64", (8, 4096, 64), (128, 4, 64), (1,), "SAME", 16),
        ConvLayer("1-D k64 32->32 16000", (8, 16000, 32), (64, 32, 32), (1,), "SAME"),
    ],
    "wav2vec2": [
        ConvLayer("conv0 k10/5 1->512", (4, 16000, 1), (10, 1, 512), (5,), "VALID", quick=True),
        ConvLayer("conv1 k3/2 512", (4, 3199, 512), (3, 512, 512), (2,), "VALID"),
        ConvLayer("conv6 k2/2 512", (4, 99, 512), (2, 512, 512), (2,), "VALID"),
        ConvLayer("pos_conv k128 g16 768", (1, 499, 768), (128, 48, 768), (1,), ((64, 64),), 16),
    ],
    "resnet3d18": [
        ConvLayer("c3d conv1 3x3x3 3->64", (1, 16, 112, 112, 3), (3, 3, 3, 3, 64), (1, 1, 1)),
        ConvLayer("layer1 3x3x3 64", (1, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), quick=True),
        ConvLayer("layer2 3x3x3 128", (1, 8, 14, 14, 128), (3, 3, 3, 128, 128), (1, 1, 1)),
        ConvLayer("layer3 3x3x3/2 256", (1, 8, 14, 14, 128), (3, 3, 3, 128, 256), (2, 2, 2)),
    ],
}

SUITES["unet_decoder"] = [
    TransposeLayer("dcgan 4x4/2 512->256", (16, 8, 8, 512), (4, 4, 512, 256), (2, 2), quick=True),
    TransposeLayer("dcgan 4x4/2 256->128", (16, 16, 16, 256), (4, 4, 256, 128), (2, 2)),
    TransposeLayer("dcgan 4x4/2 128->64", (16, 32, 32, 128), (4, 4, 128, 64), (2, 2)),
    TransposeLayer("unet 3x3/2 256->128", (8, 28, 28, 256), (3, 3, 256, 128), (2, 2), quick=True),
    TransposeLayer("unet 2x2/2 128->64", (8, 56, 56, 128), (2, 2, 128, 64), (2, 2), "VALID"),
    TransposeLayer("unet 3x3/2 64->32", (8, 56, 56, 64), (3, 3, 64, 32), (2, 2)),
]

SUITES["pooling"] = [
    PoolLayer(
        "resnet maxpool 3x3/2 SAME", "max", (32, 56, 56, 128), (3, 3), (2, 2), "SAME", quick=True
    ),
    PoolLayer("resnet stem maxpool 3x3/2", "max", (8, 112, 112, 64), (3, 3), (2, 2), "SAME"),
    PoolLayer("maxpool 3x3/2 SAME 16x112", "max", (16, 112, 112, 64), (3, 3), (2, 2), "SAME"),
    PoolLayer("inception maxpool 3x3/1", "max", (8, 35, 35, 192), (3, 3), (1, 1), "SAME"),
    PoolLayer("vgg maxpool 2x2/2", "max", (8, 112, 112, 128), (2, 2), (2, 2)),
    PoolLayer("avgpool 3x3/2 SAME", "avg", (32, 56, 56, 128), (3, 3), (2, 2), "SAME", quick=True),
    PoolLayer("densenet transition avgpool 2x2/2", "avg", (16, 56, 56, 128), (2, 2), (2, 2)),
    PoolLayer("inception avgpool 3x3/1", "avg", (8, 35, 35, 192), (3, 3), (1, 1), "SAME"),
    PoolLayer("resnet head avgpool 7x7", "avg", (32, 7, 7, 2048), (7, 7), (1, 1)),
]

QUICK_BATCH = 1
QUICK_POOL_BATCH = 8


def select(suites: list[str] | None, quick: bool):
    """The layers to run: [(suite, layer)], in suite order."""
    names = suites or list(SUITES)
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        raise ValueError(f"--suite {unknown} unknown; choose from {list(SUITES)}")
    out = []
    for suite in names:
        for layer in SUITES[suite]:
            if quick and not layer.quick:
                continue
            if quick:  # pooling is cheap per image: a larger quick batch keeps it measurable
                layer = layer.batch(QUICK_POOL_BATCH if layer.kind == "pool" else QUICK_BATCH)
            out.append((suite, layer))
    return out


# ---------------------------------------------------------------- candidates

WHOLE_WORKSPACE_FACTOR = 4
WHOLE_WORKSPACE_BYTES = 256 * 2**20
"""Named algorithms run whole: those whose forward workspace exceeds this many times
lax's peak, or these bytes, whichever is larger, are not timed."""

PER_TAP_ALGORITHMS = ("direct", "direct/xla")
"""Unrolled per kernel tap: minutes to compile above 49 taps, and never competitive there."""


def _dimension_numbers(nd: int):
    chars = "DHW"[-nd:] if nd <= 3 else "".join(chr(ord("a") + i) for i in range(nd))
    return ("N" + chars + "C", chars + "IO", "N" + chars + "C")


def auto_choice(fn, *specs) -> str:
    """What "auto" runs inside `fn` (traced once, computing nothing): "name" or
    "name in 8 row pieces"."""
    with jaxconv.record_choices() as log:
        jax.eval_shape(fn, *specs)
    convs = [r for r in log if r.op in ("conv_general_dilated", "conv_transpose")] or log
    if not convs:
        return "direct"
    r = convs[0]
    return (
        r.algorithm
        if r.pieces.count == 1
        else f"{r.algorithm} in {r.pieces.count} {r.pieces.axis} pieces"
    )


def candidates(layer) -> dict:
    """{name: forward fn(x, w)} for lax, each jaxconv algorithm that applies, and "auto"."""
    if layer.kind == "pool":
        return _pool_candidates(layer)
    nd = len(layer.x) - 2
    dn = _dimension_numbers(nd)
    x = jax.ShapeDtypeStruct(layer.x, jnp.float32)
    w = jax.ShapeDtypeStruct(layer.w, jnp.float32)
    if layer.kind == "conv_transpose":
        args = (layer.strides, layer.padding, None, dn)
        out = {"lax": lambda x, w: jax.lax.conv_transpose(x, w, *args)}
        names = [n for n in jaxconv.TRANSPOSE_ALGORITHMS if n != "auto"]

        def ours(name):
            return lambda x, w: jaxconv.conv_transpose(x, w, *args, algorithm=name)
    else:
        args = (layer.strides, layer.padding, None, None, dn, layer.groups)
        out = {"lax": lambda x, w: jax.lax.conv_general_dilated(x, w, *args)}
        taps = math.prod(layer.w[:-2])
        names = [
            n
            for n in jaxconv.ALGORITHMS
            if n not in ("auto", "xla")
            and not (taps > 49 and n in PER_TAP_ALGORITHMS)
            and _runs_whole(n, x, w, args)
        ]

        def ours(name):
            return lambda x, w: jaxconv.conv_general_dilated(x, w, *args, algorithm=name)

    for name in names:
        out[name] = ours(name)
    auto = ours("auto")
    out["auto:" + auto_choice(auto, x, w)] = auto
    return out


def _runs_whole(name, x, w, args) -> bool:
    try:
        plan = jaxconv.conv_plan(x, w, *args, algorithm=name)
    except ValueError:  # it cannot run this layer
        return False
    allowed = max(WHOLE_WORKSPACE_FACTOR * plan.io_bytes, WHOLE_WORKSPACE_BYTES)
    return plan.workspace_bytes <= allowed


def _pool_candidates(layer):
    from flax import linen

    fns = {"max": jaxconv.max_pool, "avg": jaxconv.avg_pool}
    ref = {"max": linen.max_pool, "avg": linen.avg_pool}[layer.op]
    ours = fns[layer.op]
    args = (layer.window, layer.strides, layer.padding)
    return {
        "lax": lambda x, w: ref(x, *args),
        "xla": lambda x, w: ours(x, *args, algorithm="xla"),
        "auto:direct": lambda x, w: ours(x, *args),
    }


# ---------------------------------------------------------------- one layer


def flops(layer, out_shape) -> float:
    """Multiply-adds x 2 of the forward pass (0 for pools)."""
    if layer.kind == "pool":
        return 0.0
    *kernel, ig, _ = layer.w
    if layer.kind == "conv_transpose":  # each input pixel meets every tap once
        n, *spatial, _ = layer.x
        return 2.0 * n * math.prod(spatial) * math.prod(kernel) * ig * layer.w[-1]
    return 2.0 * math.prod(out_shape) * math.prod(kernel) * ig


def roofline_bytes(layer, out_shape) -> tuple[tuple[int, int], tuple[int, int]]:
    """((read, written) forward, (read, written) forward+backward): the float32 bytes
    the timed programs must move at least.

    The forward reads the inputs and writes the output once. The fwd+bwd program is
    the gradient of <layer(x, w), ct>: it reads the cotangent and the inputs the
    gradients depend on (x and w for a conv, x for a max pool, neither for an average
    pool, whose gradient is the cotangent spread back) and writes the gradients. It
    need not write the output, which no gradient reads.
    """
    x, out = math.prod(layer.x), math.prod(out_shape)
    w = math.prod(layer.w) if layer.kind != "pool" else 0
    forward = (4 * (x + w), 4 * out)
    if layer.kind == "pool" and layer.op == "avg":
        return forward, (4 * out, 4 * x)
    return forward, (4 * (x + w + out), 4 * (x + w))


MEMORY_BOUND_FLOPS_PER_BYTE = 10


def memory_bound(layer, out_shape) -> bool:
    """Pools, depthwise convs and any layer under 10 flops per byte moved."""
    if layer.kind == "pool" or (layer.kind == "conv" and layer.groups == layer.x[-1] > 1):
        return True
    return flops(layer, out_shape) < MEMORY_BOUND_FLOPS_PER_BYTE * sum(
        roofline_bytes(layer, out_shape)[0]
    )


GPU_MIN_LAX_MS = 1.0
GPU_MAX_BATCH = 1024


def gpu_batch(layer):
    """The layer at a batch where lax's forward takes about GPU_MIN_LAX_MS (doubling)."""
    fn = jax.jit(candidates(layer)["lax"])
    while layer.x[0] < GPU_MAX_BATCH:
        x = jnp.ones(layer.x, jnp.float32)
        w = jnp.ones(layer.w if layer.kind != "pool" else (), jnp.float32)
        t = time_many({"lax": (fn, (x, w))}, repeats=3)["lax"].min_s
        if t * 1e3 >= GPU_MIN_LAX_MS:
            break
        layer = layer.batch(layer.x[0] * 2)
    return layer


def run_layer(layer, repeats: int, memory: bool = True):
    """Every candidate's forward and forward+backward times, compile times, memory and,
    for memory-bound layers, the share of the roofline: the least time of passes that
    only read, and only write, the bytes the program must move, timed in the same
    rounds ({candidate: row}, and the layer's own fields)."""
    key = jax.random.key(0)
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, layer.x, jnp.float32)
    w = jax.random.normal(kw, layer.w, jnp.float32) if layer.kind != "pool" else jnp.zeros(())
    fns = candidates(layer)
    out_shape = jax.eval_shape(fns["lax"], x, w).shape
    work = flops(layer, out_shape)
    ct = jnp.ones(out_shape, jnp.float32)
    fwd_calls, bwd_calls = {}, {}
    for name, fn in fns.items():
        fwd_calls[name] = (jax.jit(fn), (x, w))
        if layer.kind == "pool":
            bwd = jax.jit(jax.grad(lambda x, ct, fn=fn: jnp.vdot(fn(x, None), ct)))
            bwd_calls[name] = (bwd, (x, ct))
        else:
            bwd = jax.jit(jax.grad(lambda x, w, ct, fn=fn: jnp.vdot(fn(x, w), ct), (0, 1)))
            bwd_calls[name] = (bwd, (x, w, ct))
    fwd_bytes, bwd_bytes = roofline_bytes(layer, out_shape)
    bound = memory_bound(layer, out_shape)
    t_fwd = time_many(fwd_calls | (stream_calls(*fwd_bytes) if bound else {}), repeats)
    t_bwd = time_many(bwd_calls | (stream_calls(*bwd_bytes) if bound else {}), repeats)
    roof_fwd = roof_bwd = None
    if bound:
        roof_fwd, roof_bwd = 1e3 * roofline_seconds(t_fwd), 1e3 * roofline_seconds(t_bwd)
    rows = {}
    for name, (fwd, args) in fwd_calls.items():
        wanted = memory and (name == "lax" or name.startswith("auto"))  # the table's columns
        mem = memory_bytes(fwd, *args) if wanted else None
        row = dict(
            fwd_ms=t_fwd[name].median_s * 1e3,
            fwd_min_ms=t_fwd[name].min_s * 1e3,
            fwd_compile_s=t_fwd[name].compile_s,
            fwdbwd_ms=t_bwd[name].median_s * 1e3,
            fwdbwd_min_ms=t_bwd[name].min_s * 1e3,
            fwdbwd_compile_s=t_bwd[name].compile_s,
            gflops=work / t_fwd[name].median_s / 1e9 if work else None,
            temp_mb=mem[0] / 2**20 if mem else None,
            peak_mb=mem[1] / 2**20 if mem else None,
        )
        if bound:
            row["fwd_roofline_pct"] = 100 * roof_fwd / row["fwd_ms"]
            row["fwdbwd_roofline_pct"] = 100 * roof_bwd / row["fwdbwd_ms"]
        rows[name] = row
    base = rows["lax"]
    for row in rows.values():
        row["fwd_x"] = base["fwd_ms"] / row["fwd_ms"]
        row["fwdbwd_x"] = base["fwdbwd_ms"] / row["fwdbwd_ms"]
    extra = dict(
        memory_bound=bound,
        fwd_bytes=fwd_bytes,
        fwdbwd_bytes=bwd_bytes,
        fwd_roofline_ms=roof_fwd,
        fwdbwd_roofline_ms=roof_bwd,
        flops=work,
    )
    return rows, extra
