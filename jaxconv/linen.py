"""Flax linen modules: drop-in replacements for `flax.linen.Conv`, `ConvTranspose`,
`ConvLocal`, plus depthwise/separable convs, pooling modules and `swap`.

`Conv`, `ConvTranspose` and `ConvLocal` subclass flax's own, so they take every
constructor argument flax takes (same defaults) and create the same parameters
(names, shapes, dtypes, initialisers): swapping `nn.Conv` for `jaxconv.linen.Conv`
keeps a checkpoint. `Conv` is flax's with jaxconv's `ConvHook` in its
`conv_general_dilated` slot. They add `algorithm`, `padding_mode`,
`preferred_element_type` and (ConvTranspose) `output_padding` and
`feature_group_count`. `swap()` runs an existing flax model's convolutions through
jaxconv without changing it.

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

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxconv import _adaptive, _layers, _pool
from jaxconv._select import ALGORITHMS
from jaxconv._typing import PaddingMode, PoolAlgorithm, PoolPadding, TransposeAlgorithm


class Conv(nn.Conv):
    """`flax.linen.Conv`, computed by jaxconv. Extra fields:

    Attributes:
      padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular',
        applied to the padding that `padding` describes.
      algorithm: a `jaxconv.ALGORITHMS` name; "auto" chooses per layer.
      preferred_element_type: the convolution's output dtype.

    Shapes: inputs (*batch, *S, C) or (*S, C); kernel (*K, C/G, features).
    """

    padding_mode: PaddingMode = "zeros"
    algorithm: str = "auto"
    preferred_element_type: Any = None

    def __post_init__(self):
        op = type(self).__name__
        _layers.check_padding_mode(self.padding_mode, op)
        _layers.check_algorithm(self.algorithm, ALGORITHMS, op)
        slot = self.conv_general_dilated  # flax's slot: a function the caller gave stays
        if slot is None or isinstance(slot, _layers.ConvHook):
            hook = _layers.ConvHook(self.algorithm, self.padding_mode, self.preferred_element_type)
            object.__setattr__(self, "conv_general_dilated", hook)
        super().__post_init__()

    def __call__(self, inputs):
        op = f"jaxconv.linen.{type(self).__name__}"
        kernel_size = _layers.kernel_tuple(self.kernel_size, op)
        _layers.check_groups(jnp.shape(inputs)[-1], self.features, self.feature_group_count, op)
        if inputs.ndim < len(kernel_size) + 1:
            raise ValueError(
                f"{op}: `inputs` of shape {inputs.shape} needs {len(kernel_size)} spatial "
                "dimensions and a feature dimension."
            )
        _layers.canonical_padding(self.padding, len(kernel_size), op)
        return super().__call__(inputs)


class DepthwiseConv(Conv):
    """Depthwise convolution: each input channel convolved with `depth_multiplier`
    filters; a `Conv` with `features` = C * depth_multiplier and
    `feature_group_count` = C, read off the input.

    Every field but `features` is `Conv`'s (positional from `kernel_size` on); the
    parameters are the same Conv's: 'kernel' (*K, 1, C * depth_multiplier) and 'bias'.

    Example:
      >>> from jaxconv import linen as jl
      >>> layer = jl.DepthwiseConv((3, 3), depth_multiplier=2)
      >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 8, 8, 4)))
      >>> variables["params"]["kernel"].shape
      (3, 3, 1, 8)
    """

    features: int | None = dataclasses.field(default=None, kw_only=True)
    depth_multiplier: int = dataclasses.field(default=1, kw_only=True)

    @nn.compact
    def __call__(self, inputs):
        op = "jaxconv.linen.DepthwiseConv"
        channels = jnp.shape(inputs)[-1]
        features = channels * self.depth_multiplier
        if self.features is not None and self.features != features:
            raise ValueError(
                f"{op}: `features` (={self.features}) must be None or the input channels "
                f"times `depth_multiplier` (={features})."
            )
        fields = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(Conv)
            if f.init and f.name not in ("parent", "name", "features", "feature_group_count")
        }
        conv = Conv(features=features, feature_group_count=channels, **fields)
        nn.share_scope(self, conv)  # the Conv's parameters are this module's own
        return conv(inputs)


class SeparableConv(nn.Module):
    """Depthwise conv (no bias) then a 1x1 conv: parameters {'depthwise', 'pointwise'}."""

    features: int
    kernel_size: int | Sequence[int]
    depth_multiplier: int = 1
    strides: int | Sequence[int] = 1
    padding: Any = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    padding_mode: PaddingMode = "zeros"
    algorithm: str = "auto"

    @nn.compact
    def __call__(self, inputs):
        kernel_size = _layers.kernel_tuple(self.kernel_size, "jaxconv.linen.SeparableConv")
        common = dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            algorithm=self.algorithm,
        )
        y = DepthwiseConv(
            kernel_size,
            self.strides,
            self.padding,
            depth_multiplier=self.depth_multiplier,
            use_bias=False,
            padding_mode=self.padding_mode,
            name="depthwise",
            **common,
        )(inputs)
        pointwise = (1,) * len(kernel_size)
        return Conv(self.features, pointwise, use_bias=self.use_bias, name="pointwise", **common)(y)


class ConvTranspose(nn.ConvTranspose):
    """`flax.linen.ConvTranspose`, computed by jaxconv. Extra fields:

    Attributes:
      output_padding: extra output size per spatial dim, as PyTorch.
      feature_group_count: groups, as PyTorch's `groups`.
      padding_mode: 'zeros', 'reflect', 'replicate' or 'circular' (the input is
        extended in that mode; see `_layers.conv_transpose_apply`).
      algorithm: a `jaxconv.TRANSPOSE_ALGORITHMS` name.

    Shapes: inputs (*batch, *S, C); kernel (*K, C/G, features), or with
    `transpose_kernel` (*K, features/G, C).
    """

    output_padding: Any = None
    feature_group_count: int = 1
    padding_mode: PaddingMode = "zeros"
    algorithm: TransposeAlgorithm = "auto"

    @nn.compact
    def __call__(self, inputs):
        config = _layers.TransposeConfig(
            self.output_padding, self.feature_group_count, self.padding_mode, self.algorithm
        )
        return _conv_transpose(self, inputs, config)


def _conv_transpose(module, inputs, config: _layers.TransposeConfig):
    """A linen ConvTranspose's forward pass (flax's or jaxconv's) with jaxconv's options."""
    op = f"jaxconv.linen.{type(module).__name__}"
    _layers.check_padding_mode(config.padding_mode, op)
    _layers.transpose_algorithm(config.algorithm, op)
    kernel_size = _layers.kernel_tuple(module.kernel_size, op)
    in_features = jnp.shape(inputs)[-1]
    groups = _layers.check_groups(in_features, module.features, config.feature_group_count, op)
    shape = _layers.transpose_kernel_shape(
        kernel_size, in_features, module.features, groups, module.transpose_kernel
    )
    kernel, bias = _layers.linen_params(module, shape, (module.features,))
    inputs, kernel, bias = module.promote_dtype(inputs, kernel, bias, dtype=module.dtype)
    return _layers.conv_transpose_apply(module, inputs, kernel, bias, config, op)


class ConvLocal(nn.ConvLocal):
    """`flax.linen.ConvLocal` (unshared weights), computed from strided windows.

    Attributes:
      padding_mode: as `Conv`.

    Shapes: inputs (*batch, *S, C); kernel (*O, prod(K)*C, features); bias (*O, features).
    """

    padding_mode: PaddingMode = "zeros"

    @nn.compact
    def __call__(self, inputs):
        return _conv_local(self, inputs, self.padding_mode)


def _conv_local(module, inputs, padding_mode: str):
    """A linen ConvLocal's forward pass (flax's or jaxconv's)."""
    op = f"jaxconv.linen.{type(module).__name__}"
    kernel_size = _layers.kernel_tuple(module.kernel_size, op)
    _layers.check_padding_mode(padding_mode, op)
    if module.feature_group_count != 1:
        raise ValueError(f"{op}: `feature_group_count` (={module.feature_group_count}) must be 1.")
    out = _layers.local_output_spatial(inputs.shape, module, kernel_size, padding_mode, op)
    kernel_shape = out + (math.prod(kernel_size) * jnp.shape(inputs)[-1], module.features)
    kernel, bias = _layers.linen_params(module, kernel_shape, out + (module.features,))
    inputs, kernel, bias = module.promote_dtype(inputs, kernel, bias, dtype=module.dtype)
    return _layers.conv_local_apply(module, inputs, kernel, bias, kernel_size, padding_mode, op)


@contextlib.contextmanager
def swap(algorithm: str = "auto"):
    """Run every `flax.linen` Conv, ConvTranspose and ConvLocal called inside the block
    through jaxconv, with the same variables.

    Flax's modules are intercepted (`nn.intercept_methods`), not changed: `init` and
    `apply` inside the block create and read the very variables they would without it,
    so a checkpoint carries over both ways. jaxconv's own modules and subclasses of
    flax's are left as they are.

    Args:
      algorithm: the convolutions' `algorithm` ("auto" chooses per layer); transposed
        convs take "auto" unless this names one of `jaxconv.TRANSPOSE_ALGORITHMS`.

    Example:
      >>> import flax.linen as nn
      >>> model = nn.Sequential([nn.Conv(8, (3, 3), feature_group_count=1), nn.relu,
      ...                        nn.Conv(8, (3, 3), feature_group_count=8)])
      >>> x = jnp.ones((2, 16, 16, 8))
      >>> variables = model.init(jax.random.key(0), x)
      >>> with jaxconv.linen.swap():
      ...     with jaxconv.record_choices() as log:
      ...         y = model.apply(variables, x)
      >>> [r.algorithm for r in log]
      ['xla', 'depthwise']
    """
    _layers.check_algorithm(algorithm, ALGORITHMS, "jaxconv.linen.swap")
    hook = _layers.ConvHook(algorithm)
    config = _layers.TransposeConfig(algorithm=_layers.swap_transpose_algorithm(algorithm))

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        kind = type(module)
        if kind is nn.Conv and module.conv_general_dilated is None:
            object.__setattr__(module, "conv_general_dilated", hook)
            try:
                return next_fun(*args, **kwargs)
            finally:
                object.__setattr__(module, "conv_general_dilated", None)
        if kind is nn.ConvTranspose:
            return _conv_transpose(module, *args, config)
        if kind is nn.ConvLocal and module.conv_general_dilated is None:
            return _conv_local(module, *args, "zeros")
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        yield


# ------------------------------------------------------------------- pooling


class MaxPool(nn.Module):
    """`jaxconv.max_pool` as a module; the fields are its arguments.

    Example:
      >>> from jaxconv import linen as jl
      >>> jl.MaxPool((2, 2), (2, 2), ceil_mode=True).apply({}, jnp.ones((1, 5, 5, 3))).shape
      (1, 3, 3, 3)
    """

    window_shape: Sequence[int]
    strides: Sequence[int] | None = None
    padding: PoolPadding = "VALID"
    dilation: Sequence[int] | None = None
    ceil_mode: bool = False
    return_indices: bool = False
    padding_mode: PaddingMode = "zeros"
    algorithm: PoolAlgorithm = "auto"

    def __call__(self, inputs):
        return _pool.max_pool(inputs, **_layers.pool_arguments(self, _pool.max_pool))


class MinPool(nn.Module):
    """`jaxconv.min_pool` as a module; the fields are its arguments."""

    window_shape: Sequence[int]
    strides: Sequence[int] | None = None
    padding: PoolPadding = "VALID"
    dilation: Sequence[int] | None = None
    ceil_mode: bool = False
    padding_mode: PaddingMode = "zeros"
    algorithm: PoolAlgorithm = "auto"

    def __call__(self, inputs):
        return _pool.min_pool(inputs, **_layers.pool_arguments(self, _pool.min_pool))


class AvgPool(nn.Module):
    """`jaxconv.avg_pool` as a module; the fields are its arguments."""

    window_shape: Sequence[int]
    strides: Sequence[int] | None = None
    padding: PoolPadding = "VALID"
    count_include_pad: bool = True
    dilation: Sequence[int] | None = None
    ceil_mode: bool = False
    divisor_override: float | None = None
    padding_mode: PaddingMode = "zeros"
    algorithm: PoolAlgorithm = "auto"

    def __call__(self, inputs):
        return _pool.avg_pool(inputs, **_layers.pool_arguments(self, _pool.avg_pool))


class SumPool(nn.Module):
    """`jaxconv.sum_pool` as a module; the fields are its arguments."""

    window_shape: Sequence[int]
    strides: Sequence[int] | None = None
    padding: PoolPadding = "VALID"
    dilation: Sequence[int] | None = None
    ceil_mode: bool = False
    padding_mode: PaddingMode = "zeros"
    algorithm: PoolAlgorithm = "auto"

    def __call__(self, inputs):
        return _pool.sum_pool(inputs, **_layers.pool_arguments(self, _pool.sum_pool))


class LPPool(nn.Module):
    """`jaxconv.lp_pool` as a module; the fields are its arguments (`p` required).

    Example:
      >>> from jaxconv import linen as jl
      >>> jl.LPPool((2, 2), (2, 2), p=2).apply({}, jnp.ones((1, 4, 4, 1)))[0, :, :, 0]
      Array([[2., 2.],
             [2., 2.]], dtype=float32)
    """

    window_shape: Sequence[int]
    strides: Sequence[int] | None = None
    padding: PoolPadding = "VALID"
    p: float = dataclasses.field(kw_only=True)
    ceil_mode: bool = False
    algorithm: PoolAlgorithm = "auto"

    def __call__(self, inputs):
        return _pool.lp_pool(inputs, **_layers.pool_arguments(self, _pool.lp_pool))


class AdaptiveAvgPool(nn.Module):
    """`jaxconv.adaptive_avg_pool` as a module."""

    output_size: int | Sequence[int | None]

    def __call__(self, inputs):
        return _adaptive.adaptive_avg_pool(inputs, self.output_size)


class AdaptiveMaxPool(nn.Module):
    """`jaxconv.adaptive_max_pool` as a module."""

    output_size: int | Sequence[int | None]
    return_indices: bool = False

    def __call__(self, inputs):
        return _adaptive.adaptive_max_pool(
            inputs, self.output_size, return_indices=self.return_indices
        )


class GlobalAvgPool(nn.Module):
    """`jaxconv.global_avg_pool` as a module."""

    keepdims: bool = False

    def __call__(self, inputs):
        return _adaptive.global_avg_pool(inputs, self.keepdims)


class GlobalMaxPool(nn.Module):
    """`jaxconv.global_max_pool` as a module."""

    keepdims: bool = False

    def __call__(self, inputs):
        return _adaptive.global_max_pool(inputs, self.keepdims)


class MaxUnpool(nn.Module):
    """`jaxconv.max_unpool` as a module: `MaxUnpool(output_shape)(values, indices)`."""

    output_shape: Sequence[int]

    def __call__(self, inputs, indices):
        return _pool.max_unpool(inputs, indices, self.output_shape)


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
    "swap",
]
