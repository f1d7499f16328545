"""Flax nnx modules: drop-in replacements for `flax.nnx.Conv` and `ConvTranspose`,
plus depthwise/separable convs and pooling modules.

`Conv` and `ConvTranspose` subclass flax's own, so they take the same constructor
arguments (in_features, out_features, kernel_size, ..., rngs) with the same
defaults and hold the same `kernel`/`bias` parameters; they add keyword-only
`algorithm`, `padding_mode` and (ConvTranspose) `output_padding` and
`feature_group_count`. The numerics live in `jaxconv._layers`, shared with
`jaxconv.linen`.

Example:
  >>> from flax import nnx
  >>> from jaxconv import nnx as jn
  >>> layer = jn.Conv(3, 8, (3, 3), padding_mode="circular", rngs=nnx.Rngs(0))
  >>> layer(jnp.ones((2, 16, 16, 3))).shape
  (2, 16, 16, 8)
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxconv import _layers


def _checked_params(module):
    """The kernel (masked) and bias, as flax's nnx layers read them (not yet promoted)."""
    if module.mask is not None and module.mask.shape != module.kernel_shape:
        raise ValueError(
            f"{type(module).__name__}: `mask` shape {module.mask.shape} must equal the kernel "
            f"shape {module.kernel_shape}."
        )
    kernel = module.kernel[...]
    if module.mask is not None:
        kernel = kernel * module.mask
    bias = module.bias[...] if module.bias is not None else None
    return kernel, bias


class Conv(nnx.Conv):
    """`flax.nnx.Conv`, computed by jaxconv.

    Extra keyword-only arguments: `padding_mode` ('zeros', 'reflect', 'replicate',
    'circular') and `algorithm` (a `jaxconv.ALGORITHMS` name). Shapes: inputs
    (*batch, *S, in_features) -> (*batch, *O, out_features).
    """

    def __init__(
        self,
        in_features,
        out_features,
        kernel_size,
        strides=1,
        *,
        padding_mode="zeros",
        algorithm="auto",
        **kwargs,
    ):
        op = "jaxconv.nnx.Conv"
        _layers.check_padding_mode(padding_mode, op)
        _layers.check_groups(in_features, out_features, kwargs.get("feature_group_count", 1), op)
        _layers.kernel_tuple(kernel_size, op)
        super().__init__(in_features, out_features, kernel_size, strides, **kwargs)
        self.padding_mode = padding_mode
        self.algorithm = algorithm

    def __call__(self, inputs, out_sharding=None):
        kernel, bias = _checked_params(self)
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
        return _layers.module_conv(
            self,
            inputs,
            kernel,
            bias,
            groups=self.feature_group_count,
            out_sharding=out_sharding,
            op="jaxconv.nnx.Conv",
        )


class ConvTranspose(nnx.ConvTranspose):
    """`flax.nnx.ConvTranspose`, computed by jaxconv.

    Extra keyword-only arguments: `output_padding`, `feature_group_count` (as
    PyTorch's `groups`; with groups the kernel is (*K, in/G, out), or
    (*K, out/G, in) with `transpose_kernel`), `padding_mode` and `algorithm`.
    """

    def __init__(
        self,
        in_features,
        out_features,
        kernel_size,
        strides=None,
        *,
        output_padding=None,
        feature_group_count=1,
        padding_mode="zeros",
        algorithm="auto",
        rngs,
        **kwargs,
    ):
        op = "jaxconv.nnx.ConvTranspose"
        _layers.check_padding_mode(padding_mode, op)
        groups = _layers.check_groups(in_features, out_features, feature_group_count, op)
        super().__init__(in_features, out_features, kernel_size, strides, rngs=rngs, **kwargs)
        if groups > 1:  # flax has no groups: resize the kernel it made
            k = self.kernel_size
            if self.transpose_kernel:
                shape = k + (out_features // groups, in_features)
            else:
                shape = k + (in_features // groups, out_features)
            init = kwargs.get("kernel_init", nnx.nn.linear.default_kernel_init)
            dtype = kwargs.get("param_dtype", jnp.float32)
            self.kernel_shape = shape
            self.kernel = nnx.Param(init(rngs.params(), shape, dtype))
        self.output_padding = output_padding
        self.feature_group_count = groups
        self.padding_mode = padding_mode
        self.algorithm = algorithm

    def __call__(self, inputs, out_sharding=None):
        kernel, bias = _checked_params(self)
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
        return _layers.module_conv_transpose(
            self,
            inputs,
            kernel,
            bias,
            groups=self.feature_group_count,
            out_sharding=out_sharding,
            op="jaxconv.nnx.ConvTranspose",
        )


class DepthwiseConv(Conv):
    """Depthwise convolution: `Conv(in, in * depth_multiplier, feature_group_count=in)`."""

    def __init__(self, in_features, kernel_size, strides=1, *, depth_multiplier=1, **kwargs):
        super().__init__(
            in_features,
            in_features * depth_multiplier,
            kernel_size,
            strides,
            feature_group_count=in_features,
            **kwargs,
        )


class SeparableConv(nnx.Module):
    """Depthwise conv (no bias) then a 1x1 conv, as attributes `depthwise` and `pointwise`."""

    def __init__(
        self,
        in_features,
        out_features,
        kernel_size,
        strides=1,
        *,
        depth_multiplier=1,
        padding="SAME",
        use_bias=True,
        padding_mode="zeros",
        algorithm="auto",
        dtype=None,
        param_dtype=jnp.float32,
        precision=None,
        rngs,
    ):
        kernel = _layers.kernel_tuple(kernel_size, "jaxconv.nnx.SeparableConv")
        common = dict(
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            algorithm=algorithm,
            rngs=rngs,
        )
        self.depthwise = DepthwiseConv(
            in_features,
            kernel,
            strides,
            depth_multiplier=depth_multiplier,
            padding=padding,
            use_bias=False,
            padding_mode=padding_mode,
            **common,
        )
        self.pointwise = Conv(
            in_features * depth_multiplier,
            out_features,
            (1,) * len(kernel),
            use_bias=use_bias,
            **common,
        )

    def __call__(self, inputs):
        return self.pointwise(self.depthwise(inputs))


def _pool_module(name):
    fn, positional, defaults = _layers.POOLS[name]
    fields = (*positional, *defaults)

    def __init__(self, *args, **kwargs):
        if len(args) > len(fields):
            raise TypeError(f"{name} takes at most {len(fields)} arguments, got {len(args)}.")
        config = dict(defaults) | dict(zip(fields, args))
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"{name}: unknown argument `{key}`; expected one of {fields}.")
            config[key] = value
        missing = [k for k in positional if k not in config]
        if missing:
            raise TypeError(f"{name}: missing argument(s) {missing}.")
        self.config = config

    def __call__(self, inputs):
        return _layers.pool_apply(name, inputs, self.config)

    doc = (
        f"Module over `jaxconv.{fn.__name__}`: `{name}({', '.join(fields)})(inputs)`.\n\n"
        + (fn.__doc__ or "").split("\n\n")[0]
    )
    return type(
        name,
        (nnx.Module,),
        {
            "__init__": __init__,
            "__call__": __call__,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": doc,
        },
    )


MaxPool = _pool_module("MaxPool")
MinPool = _pool_module("MinPool")
AvgPool = _pool_module("AvgPool")
SumPool = _pool_module("SumPool")
LPPool = _pool_module("LPPool")
AdaptiveAvgPool = _pool_module("AdaptiveAvgPool")
AdaptiveMaxPool = _pool_module("AdaptiveMaxPool")
GlobalAvgPool = _pool_module("GlobalAvgPool")
GlobalMaxPool = _pool_module("GlobalMaxPool")


class MaxUnpool(nnx.Module):
    """Module over `jaxconv.max_unpool`: `MaxUnpool(output_shape)(values, indices)`."""

    def __init__(self, output_shape):
        self.output_shape = tuple(output_shape)

    def __call__(self, inputs, indices):
        return _layers.unpool_apply(inputs, indices, self.output_shape)


__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgPool",
    "Conv",
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
