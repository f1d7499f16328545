"""The "auto" rule: which algorithm each kind of layer gets on CPU and GPU (tracing only)."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import jaxconv


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
        ((1, 64, 2048), (64, 2048, 2048), (1,), 1, "xla"),  # spectra over the budget
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
        ((1, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "xla2d"),  # 3-D ResNet layer1
        # One output row, one image: a tap's kernel, window and output over the budget.
        ((1, 2, 16, 16, 64), (2, 3, 3, 64, 64), (1, 1, 1), 1, "xla/xla2d"),
        ((1, 4, 8, 8, 8), (3, 3, 3, 1, 8), (1, 1, 1), 8, "depthwise"),
        ((1, 1000, 1), (10, 1, 16), (5,), 1, "direct/xla"),  # audio stem
        ((1, 16, 16, 8), (3, 3, 8, 8), (1, 1), 1, "xla"),
        ((1, 16, 16, 8), (3, 3, 4, 8), (1, 1), 2, "xla"),
        ((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1, "winograd4"),  # ResNet-50 res2
        ((8, 14, 14, 256), (3, 3, 256, 256), (1, 1), 1, "xla"),  # res4: kernel over budget
        ((8, 7, 7, 512), (3, 3, 512, 512), (1, 1), 1, "xla"),  # res5: few tiles of either
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
    ],
)
def test_auto_rule_on_gpu(xs, ws, strides, groups, want):
    """The GPU rule, traced on CPU: the problem as the planner builds it, on "gpu"."""
    from jaxconv._conv import _plan
    from jaxconv._select import auto_rule

    args = (strides, "SAME", None, None, LAYOUT[len(xs)], groups, 1, None, None, "xla", "t")
    _, problem = _plan(spec(xs), spec(ws), *args)
    assert auto_rule(dataclasses.replace(problem, backend="gpu")) == want
    assert auto_rule(dataclasses.replace(problem, backend="tpu")) == "xla"


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


@pytest.mark.parametrize("ratio", [0.5, "2", True, float("nan")])
def test_set_memory_budget_rejects(ratio):
    with pytest.raises(ValueError, match=r"`ratio` \(=.*\) must be a number >= 1"):
        jaxconv.set_memory_budget(ratio)
