"""Benchmark suites: real layer shapes, named after the networks they come from.

Shapes are channels-last: x (N, *S, C), w (*K, I, O). Batch sizes are kept
small enough for a 2-core CPU; `--quick` keeps one or two layers per suite
at batch 1.
"""

from __future__ import annotations

import dataclasses


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
    PoolLayer("vgg maxpool 2x2/2", "max", (8, 112, 112, 128), (2, 2), (2, 2)),
    PoolLayer("avgpool 3x3/2 SAME", "avg", (32, 56, 56, 128), (3, 3), (2, 2), "SAME", quick=True),
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
