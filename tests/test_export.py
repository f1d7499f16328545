"""`jax.export` with symbolic shapes, as models are served: every public function and
module exports with a symbolic batch, and with symbolic spatial sizes where its
arguments allow, and the exported program computes what the function does."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import export, lax

import jaxconv
from jaxconv import linen as jl
from jaxconv import nnx as jn
from tests.util import random

NDHWC = ("NDHWC", "DHWIO", "NDHWC")
NHWC = ("NHWC", "HWIO", "NHWC")
DENSE, DW, PW, DW13 = (
    random((3, 3, 8, 8), seed=1),
    random((3, 3, 1, 8), seed=2),
    random((1, 1, 8, 4), seed=3),
    random((13, 13, 1, 8), seed=4),
)


def conv(w, strides=(1, 1), groups=1, **kw):
    return lambda x: jaxconv.conv_general_dilated(
        x, w, strides, "SAME", dimension_numbers=NHWC, feature_group_count=groups, **kw
    )


FUNCTIONS = {
    "conv dense": conv(DENSE),
    "conv dense strided": conv(DENSE, (2, 2)),
    "conv depthwise": conv(DW, groups=8),
    "conv depthwise strided": conv(DW, (2, 2), groups=8),
    "conv depthwise 13x13": conv(DW13, groups=8),
    "conv pointwise": conv(PW),
    "conv": lambda x: jaxconv.conv(
        x.transpose(0, 3, 1, 2), DENSE.transpose(3, 2, 0, 1), (1, 1), "SAME"
    ),
    "conv_with_general_padding": lambda x: jaxconv.conv_with_general_padding(
        x.transpose(0, 3, 1, 2), DENSE.transpose(3, 2, 0, 1), (1, 1), ((1, 1), (1, 1)), None, None
    ),
    "conv_transpose": lambda x: jaxconv.conv_transpose(x, DENSE, (2, 2), "SAME"),
    "conv_transpose 2x2/2": lambda x: jaxconv.conv_transpose(x, DENSE[:2, :2], (2, 2), "SAME"),
    "reduce_window": lambda x: jaxconv.reduce_window(
        x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME"
    ),
    "pool": lambda x: jaxconv.pool(x, 0.0, lax.add, (2, 2), (2, 2)),
    "max_pool": lambda x: jaxconv.max_pool(x, (3, 3), (2, 2), "SAME"),
    "min_pool": lambda x: jaxconv.min_pool(x, (2, 2), (1, 1), padding_mode="reflect"),
    "avg_pool": lambda x: jaxconv.avg_pool(x, (3, 3), (2, 2), "SAME", count_include_pad=False),
    "sum_pool": lambda x: jaxconv.sum_pool(x, (2, 2), (2, 2), 1),
    "lp_pool": lambda x: jaxconv.lp_pool(x, (2, 2), (2, 2), p=2),
    "adaptive_avg_pool": lambda x: jaxconv.adaptive_avg_pool(x, (3, 2)),
    "adaptive_max_pool": lambda x: jaxconv.adaptive_max_pool(x, (3, 2)),
    "global_avg_pool": jaxconv.global_avg_pool,
    "global_max_pool": jaxconv.global_max_pool,
}
BATCH_ONLY = {  # these need concrete spatial sizes (their static index tables)
    "max_pool indices": lambda x: jaxconv.max_pool(x, (2, 2), (2, 2), return_indices=True),
    "max_unpool": lambda x: jaxconv.max_unpool(
        *jaxconv.max_pool(x, (2, 2), (2, 2), return_indices=True), (16, 16)
    ),
    "max_pool ceil_mode": lambda x: jaxconv.max_pool(x, (3, 3), (2, 2), ceil_mode=True),
}


def exported(fn, spec):
    """fn exported for `spec`; spatial sizes of at least 4 (reflect padding needs them)."""
    constraints = [f"{d} >= 4" for d in ("h", "w") if d in spec]
    shape = export.symbolic_shape(spec, constraints=constraints)
    return export.export(jax.jit(fn))(jax.ShapeDtypeStruct(shape, jnp.float32))


def check(fn, spec, shapes):
    """Export fn at `spec`, then call the exported program on inputs of `shapes`."""
    program = exported(fn, spec)
    for shape in shapes:
        x = random(shape, seed=5)
        got, want = program.call(x), fn(x)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", list(FUNCTIONS) + list(BATCH_ONLY))
def test_functions_export_with_a_symbolic_batch(name):
    fn = {**FUNCTIONS, **BATCH_ONLY}[name]
    check(fn, "b, 16, 16, 8", [(1, 16, 16, 8), (3, 16, 16, 8)])


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_functions_export_with_symbolic_spatial_sizes(name):
    check(FUNCTIONS[name], "b, h, w, 8", [(2, 12, 15, 8)])


@pytest.mark.parametrize("name", list(BATCH_ONLY))
def test_what_needs_concrete_sizes_says_so(name):
    with pytest.raises(ValueError, match=r"needs concrete spatial sizes"):
        exported(BATCH_ONLY[name], "b, h, w, 8")


def modules():
    rngs = nnx.Rngs(0)
    yield "nnx.Conv", jn.Conv(8, 4, (3, 3), padding_mode="reflect", rngs=rngs)
    yield "nnx.Conv strided", jn.Conv(8, 4, (3, 3), strides=2, rngs=rngs)
    yield "nnx.ConvTranspose", jn.ConvTranspose(8, 4, (3, 3), (2, 2), output_padding=1, rngs=rngs)
    yield "nnx.DepthwiseConv", jn.DepthwiseConv(8, (5, 5), rngs=rngs)
    yield "nnx.SeparableConv", jn.SeparableConv(8, 4, (3, 3), rngs=rngs)
    yield "nnx.MaxPool", jn.MaxPool((2, 2), (2, 2))
    yield "nnx.AvgPool", jn.AvgPool((3, 3), (1, 1), "SAME")
    yield "nnx.AdaptiveAvgPool", jn.AdaptiveAvgPool((2, 2))
    x = jnp.ones((1, 16, 16, 8))
    for name, module in [
        ("linen.Conv", jl.Conv(4, (3, 3), strides=2)),
        ("linen.ConvTranspose", jl.ConvTranspose(4, (3, 3), (2, 2))),
        ("linen.DepthwiseConv", jl.DepthwiseConv((3, 3))),
        ("flax nnx.Conv, swapped", None),
    ]:
        if module is None:
            model = jaxconv.nnx.swap(nnx.Conv(8, 8, (3, 3), feature_group_count=8, rngs=rngs))
            yield name, model
            continue
        variables = module.init(jax.random.key(0), x)
        yield name, (lambda m, v: lambda x: m.apply(v, x))(module, variables)
    conv = nn.Conv(8, (3, 3), feature_group_count=8)
    variables = conv.init(jax.random.key(0), x)

    def swapped(x):
        with jaxconv.linen.swap():
            return conv.apply(variables, x)

    yield "flax linen.Conv, swapped", swapped


@pytest.mark.parametrize("name, module", list(modules()), ids=[n for n, _ in modules()])
def test_modules_export(name, module):
    fn = module if not isinstance(module, nnx.Module) else (lambda x: module(x))
    check(fn, "b, 16, 16, 8", [(2, 16, 16, 8)])
    check(fn, "b, h, w, 8", [(2, 12, 14, 8)])


def test_data_padding_that_depends_on_symbolic_sizes_is_refused():
    layer = jn.Conv(8, 4, (3, 3), strides=2, padding_mode="reflect", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`padding_mode`='reflect' needs padding that does not"):
        exported(lambda x: layer(x), "b, h, w, 8")


GRADIENT_KERNELS = {  # name: (kernel, the function of x it builds)
    "dense": (DENSE, lambda w: conv(w)),
    "dense strided": (DENSE, lambda w: conv(w, (2, 2))),
    "depthwise": (DW, lambda w: conv(w, groups=8)),
    "depthwise strided": (DW, lambda w: conv(w, (2, 2), groups=8)),
    "depthwise 13x13": (DW13, lambda w: conv(w, groups=8)),
    "pointwise": (PW, lambda w: conv(w)),
    "im2col": (DENSE, lambda w: conv(w, algorithm="im2col")),
    "xla/im2col strided": (DENSE, lambda w: conv(w, (2, 2), algorithm="xla/im2col")),
    "conv_transpose 2x2/2, stacked phases": (
        DENSE[:2, :2],
        lambda w: lambda x: jaxconv.conv_transpose(x, w, (2, 2), "SAME", algorithm="subpixel"),
    ),
}


@pytest.mark.parametrize("name", list(GRADIENT_KERNELS))
def test_conv_gradients_export_with_a_symbolic_batch(name):
    """The gradients with respect to both operands export too: each algorithm's kernel
    gradient (depthwise: a fold, whole under a symbolic batch; im2col: the gathered
    patches) takes any batch."""
    w, make = GRADIENT_KERNELS[name]

    def grads(x, w):
        return jax.grad(lambda x, w: jnp.sum(jnp.sin(make(w)(x))), (0, 1))(x, w)

    shape = export.symbolic_shape("b, 16, 16, 8")
    program = export.export(jax.jit(grads))(
        jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(w.shape, w.dtype)
    )
    for batch in (1, 3):
        x = random((batch, 16, 16, 8), seed=6)
        for got, want in zip(program.call(x, w), grads(x, w)):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("algorithm", ["auto", "xla2d", "xla/xla2d", "im2col"])
def test_3d_conv_and_gradients_export_with_a_symbolic_batch(algorithm):
    """3-D: the taps in the channels of one 2-D conv (xla2d), and the gathered patches
    (im2col), forward and both gradients, take any batch."""
    w = random((3, 3, 3, 8, 16), seed=8)

    def grads(x, w):
        def f(x, w):
            return jaxconv.conv_general_dilated(
                x, w, (1, 2, 2), "SAME", dimension_numbers=NDHWC, algorithm=algorithm
            )

        return f(x, w), jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))), (0, 1))(x, w)

    shape = export.symbolic_shape("b, 4, 6, 6, 8")
    program = export.export(jax.jit(grads))(
        jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(w.shape, w.dtype)
    )
    for batch in (1, 3):
        x = random((batch, 4, 6, 6, 8), seed=9)
        for got, want in zip(jax.tree.leaves(program.call(x, w)), jax.tree.leaves(grads(x, w))):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("algorithm", ["im2col", "xla/im2col"])
def test_im2col_gradients_export_with_symbolic_spatial_sizes(algorithm):
    """With symbolic spatial sizes the kernel gradient's patches are the per-tap slices
    (a gather needs its index table): both gradients export and match."""

    def grads(x, w):
        f = conv(w, (2, 2), algorithm=algorithm)
        return jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x))), (0, 1))(x, w)

    shape = export.symbolic_shape("b, h, w, 8", constraints=["h >= 4", "w >= 4"])
    program = export.export(jax.jit(grads))(
        jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(DENSE.shape, DENSE.dtype)
    )
    x = random((2, 12, 15, 8), seed=7)
    for got, want in zip(program.call(x, DENSE), grads(x, DENSE)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
