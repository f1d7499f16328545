"""Flax linen modules: drop-in replacements for `flax.linen.Conv`, `ConvTranspose`,
`ConvLocal`, plus depthwise/separable convs and pooling modules.

`Conv`, `ConvTranspose` and `ConvLocal` subclass flax's own, so they take every
constructor argument flax takes (same defaults) and create the same parameters
(names, shapes, dtypes, initialisers): swapping `nn.Conv` for
`jaxconv.linen.Conv` keeps a checkpoint. They add `algorithm`, `padding_mode`,
`preferred_element_type` and (ConvTranspose) `output_padding` and
`feature_group_count`. The numerics live in `jaxconv._layers`, shared with
`jaxconv.nnx`.

Example:
  >>> import flax.linen as nn
  >>> from jaxconv import linen as jl
  >>> layer = jl.Conv(features=8, kernel_size=(3, 3), padding_mode="reflect")
  >>> x = jnp.ones((2, 16, 16, 3))
  >>> params = layer.init(jax.random.key(0), x)
  >>> jax.tree.map(jnp.shape, params)["params"]
  {'bias': (8,), 'kernel': (3, 3, 3, 8)}
  >>> layer.apply(params, x).shape
  (2, 16, 16, 8)
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxconv import _layers


class Conv(nn.Conv):
    """`flax.linen.Conv`, computed by jaxconv. Extra fields:

    Attributes:
      padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular',
        applied to the padding that `padding` describes.
      algorithm: a `jaxconv.ALGORITHMS` name; "auto" chooses per layer.
      preferred_element_type: accumulation/output dtype of the convolution.

    Shapes: inputs (*batch, *S, C) or (*S, C); kernel (*K, C/G, features).
    """

    padding_mode: str = "zeros"
    algorithm: str = "auto"
    preferred_element_type: Any = None

    @nn.compact
    def __call__(self, inputs):
        op = "jaxconv.linen.Conv"
        kernel_size = _layers.kernel_tuple(self.kernel_size, op)
        _layers.check_padding_mode(self.padding_mode, op)
        in_features = jnp.shape(inputs)[-1]
        groups = _layers.check_groups(in_features, self.features, self.feature_group_count, op)
        kernel_shape = kernel_size + (in_features // groups, self.features)
        kernel, bias = _params(self, kernel_shape, (self.features,))
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return _layers.module_conv(self, inputs, kernel, bias, groups=groups, op=op)


def _params(module, kernel_shape, bias_shape):
    """flax's parameters: 'kernel' (masked) and optional 'bias'."""
    if module.mask is not None and module.mask.shape != kernel_shape:
        raise ValueError(
            f"{type(module).__name__}: `mask` shape {module.mask.shape} must equal the kernel "
            f"shape {kernel_shape}."
        )
    kernel = module.param("kernel", module.kernel_init, kernel_shape, module.param_dtype)
    if module.mask is not None:
        kernel = kernel * module.mask
    bias = None
    if module.use_bias:
        bias = module.param("bias", module.bias_init, bias_shape, module.param_dtype)
    return kernel, bias


class ConvTranspose(nn.ConvTranspose):
    """`flax.linen.ConvTranspose`, computed by jaxconv. Extra fields:

    Attributes:
      output_padding: extra output size per spatial dim, as PyTorch.
      feature_group_count: groups, as PyTorch's `groups`.
      padding_mode: 'zeros', 'reflect', 'replicate' or 'circular' (the input is
        extended in that mode; see `jaxconv._layers.conv_transpose_apply`).
      algorithm: a `jaxconv.TRANSPOSE_ALGORITHMS` name.

    Shapes: inputs (*batch, *S, C); kernel (*K, C/G, features), or with
    `transpose_kernel` (*K, features/G, C).
    """

    output_padding: Any = None
    feature_group_count: int = 1
    padding_mode: str = "zeros"
    algorithm: str = "auto"

    @nn.compact
    def __call__(self, inputs):
        op = "jaxconv.linen.ConvTranspose"
        kernel_size = _layers.kernel_tuple(self.kernel_size, op)
        _layers.check_padding_mode(self.padding_mode, op)
        in_features = jnp.shape(inputs)[-1]
        groups = _layers.check_groups(in_features, self.features, self.feature_group_count, op)
        if self.transpose_kernel:
            kernel_shape = kernel_size + (self.features // groups, in_features)
        else:
            kernel_shape = kernel_size + (in_features // groups, self.features)
        kernel, bias = _params(self, kernel_shape, (self.features,))
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return _layers.module_conv_transpose(self, inputs, kernel, bias, groups=groups, op=op)


class ConvLocal(nn.ConvLocal):
    """`flax.linen.ConvLocal` (unshared weights), computed from strided windows.

    Attributes:
      padding_mode: as `Conv`.

    Shapes: inputs (*batch, *S, C); kernel (*O, prod(K)*C, features); bias (*O, features).
    """

    padding_mode: str = "zeros"

    @nn.compact
    def __call__(self, inputs):
        op = "jaxconv.linen.ConvLocal"
        kernel_size = _layers.kernel_tuple(self.kernel_size, op)
        _layers.check_padding_mode(self.padding_mode, op)
        if self.feature_group_count != 1:
            raise ValueError(
                f"{op}: `feature_group_count` (={self.feature_group_count}) must be 1."
            )
        kwargs = dict(
            kernel_size=kernel_size,
            strides=self.strides,
            padding=self.padding,
            input_dilation=self.input_dilation,
            kernel_dilation=self.kernel_dilation,
            precision=self.precision,
            padding_mode=self.padding_mode,
            op=op,
        )
        out = _layers.local_output_spatial(inputs.shape, **kwargs)
        kernel_shape = out + (math.prod(kernel_size) * jnp.shape(inputs)[-1], self.features)
        kernel, bias = _params(self, kernel_shape, out + (self.features,))
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return _layers.conv_local_apply(inputs, kernel, bias, **kwargs)


class DepthwiseConv(nn.Module):
    """Depthwise convolution: each input channel convolved with `depth_multiplier` filters.

    Parameters as a `Conv` with `feature_group_count` = input features:
    'kernel' (*K, 1, C * depth_multiplier) and 'bias' (C * depth_multiplier,).
    """

    kernel_size: Any
    depth_multiplier: int = 1
    strides: Any = 1
    padding: Any = "SAME"
    input_dilation: Any = 1
    kernel_dilation: Any = 1
    use_bias: bool = True
    mask: Any = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Any = nn.linear.default_kernel_init
    bias_init: Any = nn.initializers.zeros_init()
    padding_mode: str = "zeros"
    algorithm: str = "auto"
    preferred_element_type: Any = None

    @nn.compact
    def __call__(self, inputs):
        return _depthwise(self, inputs, jnp.shape(inputs)[-1])


def _depthwise(module, inputs, in_features):
    op = "jaxconv.linen.DepthwiseConv"
    kernel_size = _layers.kernel_tuple(module.kernel_size, op)
    _layers.check_padding_mode(module.padding_mode, op)
    features = in_features * module.depth_multiplier
    kernel, bias = _params(module, kernel_size + (1, features), (features,))
    promote = nn.dtypes.promote_dtype
    inputs, kernel, bias = promote(inputs, kernel, bias, dtype=module.dtype)
    return _layers.module_conv(module, inputs, kernel, bias, groups=in_features, op=op)


class SeparableConv(nn.Module):
    """Depthwise conv (no bias) then a 1x1 conv: parameters {'depthwise', 'pointwise'}."""

    features: int
    kernel_size: Any
    depth_multiplier: int = 1
    strides: Any = 1
    padding: Any = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    padding_mode: str = "zeros"
    algorithm: str = "auto"

    @nn.compact
    def __call__(self, inputs):
        kernel_size = _layers.kernel_tuple(self.kernel_size, "jaxconv.linen.SeparableConv")
        y = DepthwiseConv(
            kernel_size,
            self.depth_multiplier,
            self.strides,
            self.padding,
            use_bias=False,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            padding_mode=self.padding_mode,
            algorithm=self.algorithm,
            name="depthwise",
        )(inputs)
        return Conv(
            self.features,
            (1,) * len(kernel_size),
            use_bias=self.use_bias,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            algorithm=self.algorithm,
            name="pointwise",
        )(y)


def _pool_module(name):
    fn, positional, defaults = _layers.POOLS[name]
    fields = (*positional, *defaults)

    def __call__(self, inputs):
        return _layers.pool_apply(name, inputs, {k: getattr(self, k) for k in fields})

    namespace = {
        "__annotations__": {k: "Any" for k in fields},
        "__call__": __call__,
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"Module over `jaxconv.{fn.__name__}`; fields are its arguments.\n\n"
        + (fn.__doc__ or "").split("\n\n")[0],
        **defaults,
    }
    return type(name, (nn.Module,), namespace)


MaxPool = _pool_module("MaxPool")
MinPool = _pool_module("MinPool")
AvgPool = _pool_module("AvgPool")
SumPool = _pool_module("SumPool")
LPPool = _pool_module("LPPool")
AdaptiveAvgPool = _pool_module("AdaptiveAvgPool")
AdaptiveMaxPool = _pool_module("AdaptiveMaxPool")
GlobalAvgPool = _pool_module("GlobalAvgPool")
GlobalMaxPool = _pool_module("GlobalMaxPool")


class MaxUnpool(nn.Module):
    """Module over `jaxconv.max_unpool`: `MaxUnpool(output_shape)(values, indices)`."""

    output_shape: Any

    def __call__(self, inputs, indices):
        return _layers.unpool_apply(inputs, indices, self.output_shape)


__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgPool",
    "Conv",
    "ConvLocal",
    "ConvTranspose",
    "DepthwiseConv",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "LPPool",
    "MaxPool",
    "MaxUnpool",
    "MinPool",
    "SeparableConv",
    "SumPool",
]
