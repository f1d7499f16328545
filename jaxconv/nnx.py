"""Flax nnx modules: drop-in replacements for `flax.nnx.Conv` and `ConvTranspose`,
plus depthwise/separable convs, pooling modules and `swap`.

`Conv` is flax's own with jaxconv's `ConvHook` in its `conv_general_dilated` slot;
`ConvTranspose` subclasses flax's. Both take flax's constructor arguments, with the
same defaults, and hold the same `kernel`/`bias` parameters (metadata included).
They add keyword-only `algorithm`, `padding_mode` and (ConvTranspose)
`output_padding` and `feature_group_count`. `swap(model)` makes an existing flax
model's convolutions run through jaxconv, in place.

Example:
  >>> from flax import nnx
  >>> from jaxconv import nnx as jn
  >>> layer = jn.Conv(3, 8, (3, 3), padding_mode="circular", rngs=nnx.Rngs(0))
  >>> layer(jnp.ones((2, 16, 16, 3))).shape
  (2, 16, 16, 8)
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype
from flax.nnx.nn.linear import default_bias_init as DEFAULT_BIAS_INIT
from flax.nnx.nn.linear import default_kernel_init as DEFAULT_KERNEL_INIT
from jax import lax

from jaxconv import _adaptive, _layers, _pool
from jaxconv._select import ALGORITHMS
from jaxconv._typing import PaddingMode, PoolAlgorithm, PoolPadding, TransposeAlgorithm


def _signed(cls):
    """Show `cls.__init__`'s arguments to `inspect.signature(cls)` (nnx's metaclass
    would show `(*args, **kwargs)`)."""
    init = inspect.signature(cls.__init__)
    cls.__signature__ = init.replace(parameters=list(init.parameters.values())[1:])
    return cls


@_signed
class Conv(nnx.Conv):
    """`flax.nnx.Conv`, computed by jaxconv: flax's module with `ConvHook(algorithm,
    padding_mode)` as its `conv_general_dilated`.

    Takes flax's arguments with flax's defaults, plus keyword-only `padding_mode`
    ('zeros', 'reflect', 'replicate', 'circular') and `algorithm` (a
    `jaxconv.ALGORITHMS` name). Shapes: inputs (*batch, *S, in_features) ->
    (*batch, *O, out_features); kernel (*K, in_features / groups, out_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        *,
        padding: Any = "SAME",
        input_dilation: int | Sequence[int] | None = 1,
        kernel_dilation: int | Sequence[int] | None = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        mask: Any = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Any = DEFAULT_KERNEL_INIT,
        bias_init: Any = DEFAULT_BIAS_INIT,
        promote_dtype: Any = promote_dtype,
        preferred_element_type: Any = None,
        rngs: nnx.Rngs,
        kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
        padding_mode: PaddingMode = "zeros",
        algorithm: str = "auto",
    ):
        op = f"jaxconv.nnx.{type(self).__name__}"
        kernel = _layers.kernel_tuple(kernel_size, op)
        _layers.check_groups(in_features, out_features, feature_group_count, op)
        _layers.canonical_padding(padding, len(kernel), op)
        super().__init__(
            in_features,
            out_features,
            kernel_size,
            strides,
            padding=padding,
            input_dilation=input_dilation,
            kernel_dilation=kernel_dilation,
            feature_group_count=feature_group_count,
            use_bias=use_bias,
            mask=mask,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=kernel_init,
            bias_init=bias_init,
            conv_general_dilated=_layers.ConvHook(algorithm, padding_mode),
            promote_dtype=promote_dtype,
            preferred_element_type=preferred_element_type,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
        )
        self.padding_mode = padding_mode
        self.algorithm = algorithm


@_signed
class DepthwiseConv(Conv):
    """Depthwise convolution: `Conv(in, in * depth_multiplier, feature_group_count=in)`,
    with the rest of `Conv`'s keyword arguments.

    Example:
      >>> from flax import nnx
      >>> from jaxconv import nnx as jn
      >>> jn.DepthwiseConv(4, (3, 3), depth_multiplier=2, rngs=nnx.Rngs(0)).kernel.shape
      (3, 3, 1, 8)
    """

    def __init__(
        self,
        in_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        *,
        depth_multiplier: int = 1,
        rngs: nnx.Rngs,
        **conv_kwargs,
    ):
        if "feature_group_count" in conv_kwargs or "out_features" in conv_kwargs:
            raise TypeError(
                "jaxconv.nnx.DepthwiseConv: `feature_group_count` and `out_features` follow "
                "from `in_features` and `depth_multiplier`."
            )
        super().__init__(
            in_features,
            in_features * depth_multiplier,
            kernel_size,
            strides,
            feature_group_count=in_features,
            rngs=rngs,
            **conv_kwargs,
        )


@_signed
class SeparableConv(nnx.Module):
    """Depthwise conv (no bias) then a 1x1 conv, as attributes `depthwise` and `pointwise`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        *,
        depth_multiplier: int = 1,
        padding="SAME",
        use_bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        algorithm: str = "auto",
        dtype=None,
        param_dtype=jnp.float32,
        precision=None,
        rngs: nnx.Rngs,
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


@_signed
class ConvTranspose(nnx.ConvTranspose):
    """`flax.nnx.ConvTranspose`, computed by jaxconv.

    Takes flax's arguments with flax's defaults, plus keyword-only `output_padding`,
    `feature_group_count` (as PyTorch's `groups`; with groups the kernel is
    (*K, in/G, out), or (*K, out/G, in) with `transpose_kernel`), `padding_mode` and
    `algorithm` (a `jaxconv.TRANSPOSE_ALGORITHMS` name).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = None,
        *,
        padding: Any = "SAME",
        kernel_dilation: int | Sequence[int] | None = None,
        use_bias: bool = True,
        mask: Any = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Any = DEFAULT_KERNEL_INIT,
        bias_init: Any = DEFAULT_BIAS_INIT,
        transpose_kernel: bool = False,
        promote_dtype: Any = promote_dtype,
        preferred_element_type: Any = None,
        rngs: nnx.Rngs,
        kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
        output_padding: int | Sequence[int] | None = None,
        feature_group_count: int = 1,
        padding_mode: PaddingMode = "zeros",
        algorithm: TransposeAlgorithm = "auto",
    ):
        op = "jaxconv.nnx.ConvTranspose"
        _layers.check_padding_mode(padding_mode, op)
        _layers.transpose_algorithm(algorithm, op)
        kernel = _layers.kernel_tuple(kernel_size, op)
        groups = _layers.check_groups(in_features, out_features, feature_group_count, op)
        shape = _layers.transpose_kernel_shape(
            kernel, in_features, out_features, groups, transpose_kernel
        )

        def grouped_init(key, flax_shape, dtype):  # flax has no groups: the grouped shape
            return kernel_init(key, shape, dtype)

        super().__init__(
            in_features,
            out_features,
            kernel_size,
            strides,
            padding=padding,
            kernel_dilation=kernel_dilation,
            use_bias=use_bias,
            mask=mask,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=grouped_init,
            bias_init=bias_init,
            transpose_kernel=transpose_kernel,
            promote_dtype=promote_dtype,
            preferred_element_type=preferred_element_type,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
        )
        self.kernel_shape = shape
        self.config = _layers.TransposeConfig(output_padding, groups, padding_mode, algorithm)

    def __call__(self, inputs):
        return _conv_transpose(self, inputs, self.config)


def _conv_transpose(module, inputs, config: _layers.TransposeConfig):
    """An nnx ConvTranspose's forward pass (flax's or jaxconv's) with jaxconv's options."""
    kernel, bias = _layers.nnx_params(module)
    inputs, kernel, bias = module.promote_dtype((inputs, kernel, bias), dtype=module.dtype)
    return _layers.conv_transpose_apply(
        module, inputs, kernel, bias, config, f"jaxconv.nnx.{type(module).__name__}"
    )


class _SwappedConvTranspose(nnx.ConvTranspose):
    """A flax `nnx.ConvTranspose` that `swap` switched to jaxconv: same attributes,
    jaxconv's forward pass."""

    def __call__(self, inputs):
        return _conv_transpose(self, inputs, self.jaxconv_config)


def swap(model, *, algorithm: str = "auto"):
    """Make every flax `nnx.Conv` and `nnx.ConvTranspose` (and `nnx.ConvLocal`, where
    flax has one) in `model`'s graph run through jaxconv, in place; returns `model`.

    Parameters, their metadata and the state tree are untouched: a Conv gets
    `ConvHook(algorithm)` in its `conv_general_dilated` slot, a ConvTranspose
    jaxconv's forward pass. Layers with a `conv_general_dilated` of their own, and
    subclasses of flax's layers (jaxconv's among them), are left as they are.
    Calling it again with another `algorithm` switches them again.

    Args:
      model: an nnx Module (or any graph node holding modules).
      algorithm: a `jaxconv.ALGORITHMS` name; transposed convs take "auto" unless this
        names one of `jaxconv.TRANSPOSE_ALGORITHMS`.

    Returns:
      `model`.

    Example:
      >>> from flax import nnx
      >>> model = nnx.Sequential(nnx.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0)), nnx.relu)
      >>> before = nnx.state(model)
      >>> model = jaxconv.nnx.swap(model)
      >>> jax.tree.structure(nnx.state(model)) == jax.tree.structure(before)
      True
      >>> model(jnp.ones((1, 8, 8, 3))).shape
      (1, 8, 8, 8)
    """
    op = "jaxconv.nnx.swap"
    _layers.check_algorithm(algorithm, ALGORITHMS, op)
    hook = _layers.ConvHook(algorithm)
    config = _layers.TransposeConfig(algorithm=_layers.swap_transpose_algorithm(algorithm))
    local = getattr(nnx, "ConvLocal", None)
    found = False
    for _, node in nnx.iter_graph(model):
        kind = type(node)
        if kind is nnx.Conv or (local is not None and kind is local):
            found = True
            slot = node.conv_general_dilated
            if slot is lax.conv_general_dilated or isinstance(slot, _layers.ConvHook):
                node.conv_general_dilated = hook
        elif kind in (nnx.ConvTranspose, _SwappedConvTranspose):
            found = True
            node.__class__ = _SwappedConvTranspose
            node.jaxconv_config = config
    if not found:
        warnings.warn(
            f"{op}: `model` holds no flax Conv or ConvTranspose; nothing was swapped.",
            stacklevel=2,
        )
    return model


# ------------------------------------------------------------------- pooling


@_signed
class MaxPool(nnx.Module):
    """`jaxconv.max_pool` as a module; the arguments are its own.

    Example:
      >>> from jaxconv import nnx as jn
      >>> jn.MaxPool((2, 2), (2, 2), ceil_mode=True)(jnp.ones((1, 5, 5, 3))).shape
      (1, 3, 3, 3)
    """

    def __init__(
        self,
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: PoolPadding = "VALID",
        *,
        dilation: Sequence[int] | None = None,
        ceil_mode: bool = False,
        return_indices: bool = False,
        padding_mode: PaddingMode = "zeros",
        algorithm: PoolAlgorithm = "auto",
    ):
        self.window_shape, self.strides, self.padding = window_shape, strides, padding
        self.dilation, self.ceil_mode, self.return_indices = dilation, ceil_mode, return_indices
        self.padding_mode, self.algorithm = padding_mode, algorithm

    def __call__(self, inputs):
        return _pool.max_pool(inputs, **_layers.pool_arguments(self, _pool.max_pool))


@_signed
class MinPool(nnx.Module):
    """`jaxconv.min_pool` as a module; the arguments are its own."""

    def __init__(
        self,
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: PoolPadding = "VALID",
        *,
        dilation: Sequence[int] | None = None,
        ceil_mode: bool = False,
        padding_mode: PaddingMode = "zeros",
        algorithm: PoolAlgorithm = "auto",
    ):
        self.window_shape, self.strides, self.padding = window_shape, strides, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode
        self.padding_mode, self.algorithm = padding_mode, algorithm

    def __call__(self, inputs):
        return _pool.min_pool(inputs, **_layers.pool_arguments(self, _pool.min_pool))


@_signed
class AvgPool(nnx.Module):
    """`jaxconv.avg_pool` as a module; the arguments are its own."""

    def __init__(
        self,
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: PoolPadding = "VALID",
        count_include_pad: bool = True,
        *,
        dilation: Sequence[int] | None = None,
        ceil_mode: bool = False,
        divisor_override: float | None = None,
        padding_mode: PaddingMode = "zeros",
        algorithm: PoolAlgorithm = "auto",
    ):
        self.window_shape, self.strides, self.padding = window_shape, strides, padding
        self.count_include_pad, self.dilation, self.ceil_mode = (
            count_include_pad,
            dilation,
            ceil_mode,
        )
        self.divisor_override, self.padding_mode, self.algorithm = (
            divisor_override,
            padding_mode,
            algorithm,
        )

    def __call__(self, inputs):
        return _pool.avg_pool(inputs, **_layers.pool_arguments(self, _pool.avg_pool))


@_signed
class SumPool(nnx.Module):
    """`jaxconv.sum_pool` as a module; the arguments are its own."""

    def __init__(
        self,
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: PoolPadding = "VALID",
        *,
        dilation: Sequence[int] | None = None,
        ceil_mode: bool = False,
        padding_mode: PaddingMode = "zeros",
        algorithm: PoolAlgorithm = "auto",
    ):
        self.window_shape, self.strides, self.padding = window_shape, strides, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode
        self.padding_mode, self.algorithm = padding_mode, algorithm

    def __call__(self, inputs):
        return _pool.sum_pool(inputs, **_layers.pool_arguments(self, _pool.sum_pool))


@_signed
class LPPool(nnx.Module):
    """`jaxconv.lp_pool` as a module; the arguments are its own (`p` required).

    Example:
      >>> from jaxconv import nnx as jn
      >>> jn.LPPool((2, 2), (2, 2), p=2)(jnp.ones((1, 4, 4, 1)))[0, :, :, 0]
      Array([[2., 2.],
             [2., 2.]], dtype=float32)
    """

    def __init__(
        self,
        window_shape: Sequence[int],
        strides: Sequence[int] | None = None,
        padding: PoolPadding = "VALID",
        *,
        p: float,
        ceil_mode: bool = False,
        algorithm: PoolAlgorithm = "auto",
    ):
        self.window_shape, self.strides, self.padding = window_shape, strides, padding
        self.p, self.ceil_mode, self.algorithm = p, ceil_mode, algorithm

    def __call__(self, inputs):
        return _pool.lp_pool(inputs, **_layers.pool_arguments(self, _pool.lp_pool))


@_signed
class AdaptiveAvgPool(nnx.Module):
    """`jaxconv.adaptive_avg_pool` as a module."""

    def __init__(self, output_size: int | Sequence[int | None]):
        self.output_size = output_size

    def __call__(self, inputs):
        return _adaptive.adaptive_avg_pool(inputs, self.output_size)


@_signed
class AdaptiveMaxPool(nnx.Module):
    """`jaxconv.adaptive_max_pool` as a module."""

    def __init__(self, output_size: int | Sequence[int | None], *, return_indices: bool = False):
        self.output_size, self.return_indices = output_size, return_indices

    def __call__(self, inputs):
        return _adaptive.adaptive_max_pool(
            inputs, self.output_size, return_indices=self.return_indices
        )


@_signed
class GlobalAvgPool(nnx.Module):
    """`jaxconv.global_avg_pool` as a module."""

    def __init__(self, keepdims: bool = False):
        self.keepdims = keepdims

    def __call__(self, inputs):
        return _adaptive.global_avg_pool(inputs, self.keepdims)


@_signed
class GlobalMaxPool(nnx.Module):
    """`jaxconv.global_max_pool` as a module."""

    def __init__(self, keepdims: bool = False):
        self.keepdims = keepdims

    def __call__(self, inputs):
        return _adaptive.global_max_pool(inputs, self.keepdims)


@_signed
class MaxUnpool(nnx.Module):
    """`jaxconv.max_unpool` as a module: `MaxUnpool(output_shape)(values, indices)`."""

    def __init__(self, output_shape: Sequence[int]):
        self.output_shape = tuple(output_shape)

    def __call__(self, inputs, indices):
        return _pool.max_unpool(inputs, indices, self.output_shape)


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
    "swap",
]
