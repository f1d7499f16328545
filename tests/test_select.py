"""The "auto" rules: which algorithm each kind of layer gets on CPU and GPU, for convs and
transposed convs (tracing only)."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxconv
from jaxconv._select import auto_conv, auto_transpose
from jaxconv._spec import transpose_spec
from tests.util import compiled_memory, problem_of


def spec(shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


LAYOUT = {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC"), 5: ("NDHWC", "DHWIO", "NDHWC")}


@pytest.mark.parametrize(
    "xs, ws, strides, groups, want",
    [
        ((1, 16, 16, 8), (3, 3, 1, 8), (1, 1), 8, "depthwise"),
        ((1, 32, 32, 8), (5, 5, 1, 8), (2, 2), 8, "depthwise"),
        ((2, 28, 28, 64), (31, 31, 1, 64), (1, 1), 64, "fft"),  # large depthwise kernel
        ((1, 32, 32, 8), (31, 31, 1, 8), (1, 1), 8, "depthwise"),  # spectra 4x the image
        ((1, 32, 32, 8), (31, 31, 1, 8), (2, 2), 8, "depthwise"),  # strided: no fft
        ((2, 1024, 8), (64, 8, 8), (1,), 1, "xla/fft"),  # dense 1-D: pieces too small
        ((8, 16000, 32), (64, 32, 32), (1,), 1, "fft"),  # long signal: pieces of 16000
        ((1, 499, 768), (128, 48, 768), (1,), 16, "xla/fft"),  # wav2vec2 pos_conv
        ((8, 4096, 64), (128, 4, 64), (1,), 16, "fft"),  # grouped, in pieces of groups
        ((1, 4096, 64), (128, 4, 64), (1,), 16, "fft"),  # under 8192 positions: groups
        ((2, 1024, 8), (64, 8, 8), (2,), 1, "xla"),
        ((1, 64, 2048), (64, 2048, 2048), (1,), 1, "xla/im2col"),  # patches < kernel
        ((1, 8192, 1024), (64, 1024, 1024), (1,), 1, "xla"),  # spectra over the budget
        ((1, 16, 16, 8), (1, 1, 8, 4), (1, 1), 1, "pointwise"),
        ((1, 224, 224, 3), (16, 16, 3, 768), (16, 16), 1, "xla/pointwise"),  # ViT: 768 long
        ((8, 224, 224, 3), (4, 4, 3, 96), (4, 4), 1, "pointwise"),  # ConvNeXt stem: 48 long
        ((1, 64, 64, 3), (4, 4, 3, 8), (4, 4), 1, "pointwise"),  # in chunks of rows
        ((1, 64, 64, 16), (4, 4, 16, 8), (4, 4), 1, "xla/pointwise"),  # 256 long
        ((1, 64, 64, 15), (4, 4, 15, 8), (4, 4), 1, "pointwise"),  # 240 long
        ((1, 64, 64, 3), (4, 4, 3, 8), (2, 2), 1, "xla"),  # overlapping windows
        ((4, 99, 512), (2, 512, 512), (2,), 1, "xla/pointwise"),  # wav2vec2 conv6 patches
        ((4, 56, 56, 64), (1, 1, 64, 8), (2, 2), 1, "pointwise"),  # 1x1/2: no patches
        ((1, 16, 32, 32, 3), (3, 3, 3, 3, 64), (1, 1, 1), 1, "xla2d"),  # video stem
        ((8, 4, 16, 16, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "xla2d"),  # in chunks
        ((2, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "xla2d"),  # 3-D ResNet layer1
        # At batch 1 the kernel's copy, laid out for the taps in the channels, is over.
        ((1, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "xla/xla2d"),
        # One output row, one image: a tap's kernel, window and output over the budget.
        ((1, 2, 16, 16, 64), (2, 3, 3, 64, 64), (1, 1, 1), 1, "xla/xla2d"),
        ((1, 4, 8, 8, 8), (3, 3, 3, 1, 8), (1, 1, 1), 8, "depthwise"),
        ((1, 1000, 1), (10, 1, 16), (5,), 1, "direct/xla"),  # audio stem
        ((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), 1, "xla"),
        ((1, 16, 16, 8), (3, 3, 4, 8), (1, 1), 2, "xla"),
        ((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1, "winograd4"),  # ResNet-50 res2
        ((8, 14, 14, 256), (3, 3, 256, 256), (1, 1), 1, "xla"),  # res4: kernel over budget
        ((8, 7, 7, 512), (3, 3, 512, 512), (1, 1), 1, "xla/im2col"),  # res5: patches < kernel
        ((32, 7, 7, 512), (3, 3, 512, 512), (1, 1), 1, "xla"),  # patches 1.5x the kernel
        ((8, 14, 14, 256), (3, 3, 256, 512), (2, 2), 1, "xla/im2col"),  # ResNet-18 layer4
        ((8, 4, 4, 512), (3, 3, 256, 512), (1, 1), 2, "xla"),  # grouped
        ((4, 3, 3, 128), (3, 3, 128, 32), (1, 1), 1, "xla"),  # DenseNet: 144 KiB kernel
        ((2, 399, 512), (3, 512, 512), (2,), 1, "xla/im2col"),  # wav2vec2 conv4
        ((8, 7, 7, 2048), (1, 1, 2048, 512), (1, 1), 1, "pointwise"),  # 1x1: no patches
        ((2, 4, 4, 4, 512), (3, 3, 3, 512, 512), (1, 1, 1), 1, "im2col"),  # 3-D: patches < kernel
        # 3-D, patches under twice the kernel but over the budget whole: XLA's forward
        ((2, 2, 7, 7, 256), (3, 3, 3, 256, 256), (1, 1, 1), 1, "xla/im2col"),
        ((8, 8, 8, 8, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "xla2d"),  # 3-D: patches > 2x kernel
        ((1, 224, 224, 64), (3, 3, 64, 64), (1, 1), 1, "xla"),  # input over 10 MiB
        ((64, 32, 32, 32), (3, 3, 32, 32), (1, 1), 1, "xla"),  # too few channels
        ((8, 56, 56, 64), (3, 3, 64, 64), (2, 2), 1, "xla"),  # strided
    ],
)
def test_auto_rule_on_cpu(xs, ws, strides, groups, want):
    got = jaxconv.chosen_algorithm(
        spec(xs), spec(ws), strides, "SAME", None, None, LAYOUT[len(xs)], groups
    )
    assert got == want
    assert want in jaxconv.candidate_algorithms(
        spec(xs), spec(ws), strides, "SAME", None, None, LAYOUT[len(xs)], groups
    )


@pytest.mark.parametrize(
    "xs, ws, strides, groups, want",
    [
        ((2, 14, 14, 512), (31, 31, 1, 512), (1, 1), 512, "fft"),  # RepLKNet
        ((2, 14, 14, 512), (31, 31, 1, 512), (2, 2), 512, "xla"),  # strided
        ((4, 28, 28, 256), (13, 13, 1, 256), (1, 1), 256, "xla"),  # unmeasured on GPU
        ((2, 1024, 8), (64, 8, 8), (1,), 1, "xla"),  # dense 1-D: xla/fft on CPU
        ((8, 56, 56, 64), (1, 1, 64, 256), (1, 1), 1, "pointwise"),
        ((8, 224, 224, 3), (4, 4, 3, 96), (4, 4), 1, "pointwise"),  # ConvNeXt stem
        ((8, 224, 224, 3), (16, 16, 3, 768), (16, 16), 1, "xla"),  # ViT: unmeasured
        ((4, 99, 512), (2, 512, 512), (2,), 1, "xla"),  # patches of many channels
        ((8, 56, 56, 32), (3, 3, 1, 32), (1, 1), 32, "xla"),  # depthwise
        ((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1, "xla"),  # winograd4 on CPU
        ((1, 16, 32, 32, 3), (3, 3, 3, 3, 64), (1, 1, 1), 1, "xla"),  # xla2d on CPU
        ((1, 1000, 1), (10, 1, 16), (5,), 1, "xla"),  # direct/xla on CPU
        ((8, 7, 7, 512), (3, 3, 512, 512), (1, 1), 1, "xla"),  # xla/im2col on CPU
    ],
)
def test_auto_rule_on_gpu(xs, ws, strides, groups, want):
    """The GPU rule, traced on CPU: the problem as the planner builds it, on "gpu"."""
    problem = problem_of(xs, ws, strides, groups)
    assert auto_conv(dataclasses.replace(problem, backend="gpu")).algorithm == want
    assert auto_conv(dataclasses.replace(problem, backend="tpu")).algorithm == "xla"


@pytest.mark.parametrize(
    "precision, want",
    [
        (None, "winograd4"),
        ("default", "winograd4"),
        (("default", "default"), "winograd4"),
        ("high", "xla"),
        ("highest", "xla"),
        (("default", "highest"), "xla"),
    ],
)
def test_winograd_only_at_default_precision(precision, want):
    args = (spec((8, 56, 56, 64)), spec((3, 3, 64, 64)), (1, 1), "SAME", None, None, LAYOUT[4])
    assert jaxconv.chosen_algorithm(*args, precision=precision) == want


def test_im2col_rule_needs_a_batch_it_can_bound():
    """With a symbolic batch the patch matrix has no bound against the kernel: lax's."""
    (batch,) = jax.export.symbolic_shape("b")
    xs = jax.ShapeDtypeStruct((batch, 7, 7, 512), jnp.float32)
    args = (xs, spec((3, 3, 512, 512)), (1, 1), "SAME", None, None, LAYOUT[4])
    assert jaxconv.chosen_algorithm(*args) == "xla"


def test_auto_rule_with_a_larger_memory_budget():
    """The budget decides what runs whole; the rule's other terms stay (res4: 2x2 tiles,
    there are too few 4x4 ones)."""
    xs, ws = spec((8, 14, 14, 256)), spec((3, 3, 256, 256))
    try:
        jaxconv.set_memory_budget(8)
        assert jaxconv.chosen_algorithm(xs, ws, (1, 1), "SAME", None, None, LAYOUT[4]) == "winograd"
    finally:
        jaxconv.set_memory_budget()
    assert jaxconv.chosen_algorithm(xs, ws, (1, 1), "SAME", None, None, LAYOUT[4]) == "xla"


def _transpose(xs, ws, strides, padding="SAME", backend="cpu"):
    spec = transpose_spec(
        spec_(xs),
        spec_(ws),
        strides,
        padding,
        None,
        LAYOUT[len(xs)],
        False,
        None,
        None,
        False,
        None,
        1,
        "test",
    )
    return dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, backend=backend))


spec_ = spec


@pytest.mark.parametrize(
    "xs, ws, strides, want",
    [
        ((16, 32, 32, 128), (4, 4, 128, 64), (2, 2), "xla/subpixel"),  # phases over budget
        ((16, 16, 16, 256), (4, 4, 256, 128), (2, 2), "xla/subpixel"),  # DCGAN: over budget
        ((16, 8, 8, 1024), (4, 4, 1024, 256), (2, 2), "subpixel"),  # a large kernel: fits
        ((1, 8, 8, 512), (4, 4, 512, 256), (2, 2), "xla/subpixel"),  # under 1M outputs
        ((8, 28, 28, 256), (3, 3, 256, 128), (2, 2), "xla/subpixel"),  # uneven phases
        ((8, 28, 28, 64), (3, 3, 64, 32), (1, 1), "dilated"),  # stride 1: a plain conv
    ],
)
def test_transpose_rule_on_cpu(xs, ws, strides, want):
    assert auto_transpose(_transpose(xs, ws, strides)) == want


def test_subpixel_budget_decides_transpose_auto():
    """DCGAN 4x4/2 128->64 at batch 16: phase outputs of 2x the output fit a budget of 4,
    not 1.5."""
    spec = _transpose((16, 32, 32, 128), (4, 4, 128, 64), (2, 2))
    assert auto_transpose(spec) == "xla/subpixel"
    try:
        jaxconv.set_memory_budget(4)
        assert auto_transpose(spec) == "subpixel"
    finally:
        jaxconv.set_memory_budget()


@pytest.mark.parametrize(
    "xs, ws, strides, backend, want",
    [
        ((16, 8, 8, 512), (4, 4, 512, 256), (2, 2), "gpu", "xla"),  # DCGAN: 1M outputs
        ((16, 32, 32, 128), (4, 4, 128, 64), (2, 2), "gpu", "xla/subpixel"),  # 4M
        ((8, 56, 56, 128), (2, 2, 128, 64), (2, 2), "gpu", "xla/subpixel"),  # U-Net 2x2/2
        ((8, 56, 56, 128), (3, 3, 128, 64), (1, 1), "gpu", "dilated"),  # stride 1
        ((8, 56, 56, 128), (2, 2, 128, 64), (2, 2), "tpu", "xla"),
        ((1, 4, 4, 512), (4, 4, 512, 256), (2, 2), "cpu", "xla/subpixel"),  # 16K outputs
        ((16, 8, 8, 1024), (4, 4, 1024, 512), (2, 2), "cpu", "subpixel"),  # 2M, fits
        ((16, 8, 8, 512), (4, 4, 512, 256), (2, 2), "cpu", "xla/subpixel"),  # 1M, over budget
    ],
)
def test_transpose_rule_per_backend(xs, ws, strides, backend, want):
    assert auto_transpose(_transpose(xs, ws, strides, backend=backend)) == want


@pytest.mark.parametrize(
    "xs, ws",
    [((8, 8, 8, 64), (4, 4, 64, 32)), ((4, 28, 28, 32), (2, 2, 32, 16))],  # DCGAN, U-Net
)
def test_conv_transpose_auto_forward_peak_within_budget(xs, ws):
    def run(fn):
        return compiled_memory(
            lambda x, w: fn(x, w, (2, 2), "SAME", dimension_numbers=LAYOUT[4]), spec(xs), spec(ws)
        )[1]

    assert run(jaxconv.conv_transpose) <= jaxconv.memory_budget() * run(lax.conv_transpose)
