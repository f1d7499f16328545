"""What the linen and nnx modules share: batch flattening, padding rules, the
forward passes of Conv/ConvTranspose/ConvLocal, and the pooling table.

The modules only create parameters (with flax's names, shapes and initialisers)
and call these functions, so both front ends compute the same numbers.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _adaptive, _pool
from jaxconv._algorithms._common import strided_window, taps
from jaxconv._conv import conv_general_dilated
from jaxconv._layout import channels_last
from jaxconv._padding import dilate_dim, int_tuple, resolve_padding
from jaxconv._transpose import conv_transpose

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def kernel_tuple(kernel_size, op: str) -> tuple[int, ...]:
    """flax's rule: an int is a 1-D kernel; a sequence is one size per spatial dim."""
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size,)
    return int_tuple(tuple(kernel_size), len(tuple(kernel_size)), "kernel_size", op)


def broadcast(value, n: int, name: str, op: str, minimum: int = 1) -> tuple[int, ...]:
    """flax's `maybe_broadcast`: None -> 1, int -> repeated, sequence -> checked."""
    return int_tuple(1 if value is None else value, n, name, op, minimum=minimum)


def check_padding_mode(padding_mode, op: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{op}: `padding_mode` (={padding_mode!r}) must be one of {PADDING_MODES}."
        )
    return padding_mode


def check_groups(in_features: int, out_features: int, groups, op: str) -> int:
    groups = int_tuple(groups, 1, "feature_group_count", op)[0]
    if in_features % groups or out_features % groups:
        raise ValueError(
            f"{op}: `feature_group_count` (={groups}) must divide the input features "
            f"(={in_features}) and the output features (={out_features})."
        )
    return groups


def flatten_batch(inputs, n: int, op: str):
    """(*batch, *S, C) -> (N, *S, C) as flax does (unbatched gets a batch of 1)."""
    if inputs.ndim < n + 1:
        raise ValueError(
            f"{op}: `inputs` of shape {inputs.shape} needs {n} spatial dims and a feature dim."
        )
    batch = inputs.shape[: inputs.ndim - n - 1]
    if len(batch) == 1:
        return inputs, None
    return inputs.reshape(-1, *inputs.shape[len(batch) :]), batch  # (N, *S, C)


def restore_batch(y, batch):
    return y if batch is None else y.reshape(*batch, *y.shape[1:])  # (*batch, *O, C)


def canonical_padding(padding, n: int, op: str):
    """flax's `canonicalize_padding`: str, int, or n ints / (lo, hi) pairs."""
    if isinstance(padding, str):
        return padding.upper()
    if isinstance(padding, int):
        return ((padding, padding),) * n
    if isinstance(padding, Sequence) and len(padding) == n:
        pairs = []
        for p in padding:
            if isinstance(p, int):
                pairs.append((p, p))
            elif isinstance(p, Sequence) and len(p) == 2:
                pairs.append(tuple(p))
            else:
                break
        if len(pairs) == n:
            return tuple(pairs)
    raise ValueError(
        f"{op}: `padding` (={padding!r}) must be a string, an int, or {n} ints or "
        "(low, high) pairs."
    )


def _pad_mode(x, pads, mode):
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=_NP_MODE[mode])


def conv_padding(x, padding, padding_mode, kernel, kernel_dilation, strides, input_dilation, op):
    """Apply flax's padding strings and jaxconv's `padding_mode`; return (x, lax padding)."""
    n = len(kernel)
    padding = canonical_padding(padding, n, op)
    eff = [dilate_dim(k, d) for k, d in zip(kernel, kernel_dilation)]
    if padding in ("CIRCULAR", "REFLECT"):  # flax: pad as SAME would, with wrap / reflect
        pads = tuple(((k - 1) // 2, k // 2) for k in eff)
        return _pad_mode(x, pads, padding.lower() if padding == "REFLECT" else "circular"), "VALID"
    if padding == "CAUSAL":
        if n != 1:
            raise ValueError(f"{op}: `padding`='CAUSAL' needs a 1-D convolution, got {n}-D.")
        return jnp.pad(x, ((0, 0), (eff[0] - 1, 0), (0, 0))), "VALID"
    if padding_mode == "zeros":
        return x, padding
    if any(d > 1 for d in input_dilation):
        raise ValueError(f"{op}: `padding_mode`={padding_mode!r} needs input_dilation 1.")
    pads = resolve_padding(padding, x.shape[1:-1], eff, strides, op)
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"{op}: `padding_mode`={padding_mode!r} needs padding >= 0, got {pads}.")
    return _pad_mode(x, pads, padding_mode), "VALID"


def _add_bias(y, bias):
    if bias is None:
        return y
    return y + bias.reshape((1,) * (y.ndim - bias.ndim) + bias.shape)


def conv_apply(
    inputs,
    kernel,
    bias,
    *,
    strides,
    padding,
    input_dilation,
    kernel_dilation,
    feature_group_count,
    precision,
    preferred_element_type,
    padding_mode,
    algorithm,
    out_sharding=None,
    op="Conv",
):
    """Conv's forward pass. inputs (*batch, *S, C), kernel (*K, C/G, F) -> (*batch, *O, F)."""
    n = kernel.ndim - 2
    x, batch = flatten_batch(inputs, n, op)
    strides = broadcast(strides, n, "strides", op)
    input_dilation = broadcast(input_dilation, n, "input_dilation", op)
    kernel_dilation = broadcast(kernel_dilation, n, "kernel_dilation", op)
    x, pads = conv_padding(
        x, padding, padding_mode, kernel.shape[:n], kernel_dilation, strides, input_dilation, op
    )
    y = conv_general_dilated(
        x,
        kernel,
        strides,
        pads,
        input_dilation,
        kernel_dilation,
        channels_last(n),
        feature_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
        out_sharding=out_sharding,
        algorithm=algorithm,
    )
    return restore_batch(_add_bias(y, bias), batch)


def conv_transpose_apply(
    inputs,
    kernel,
    bias,
    *,
    strides,
    padding,
    kernel_dilation,
    transpose_kernel,
    precision,
    preferred_element_type,
    padding_mode,
    output_padding,
    feature_group_count,
    algorithm,
    out_sharding=None,
    op="ConvTranspose",
):
    """ConvTranspose's forward pass, flax's CIRCULAR rule included.

    With a `padding_mode` other than zeros, the input is first extended by
    q = ceil((k_eff - 1) / s) elements per side in that mode and q*s output
    elements are cropped from each side: the output has the zeros-mode size, and
    its borders see the extended input instead of zeros.
    """
    n = kernel.ndim - 2
    x, batch = flatten_batch(inputs, n, op)
    strides = broadcast(strides, n, "strides", op)
    kernel_dilation = broadcast(kernel_dilation, n, "kernel_dilation", op)
    padding = canonical_padding(padding, n, op)
    circular = padding == "CIRCULAR"
    lax_padding = "VALID" if circular else padding
    eff = [dilate_dim(k, d) for k, d in zip(kernel.shape[:n], kernel_dilation)]
    extend = [0] * n
    if padding_mode != "zeros":
        extend = [-(-(e - 1) // s) for e, s in zip(eff, strides)]
        if padding_mode == "reflect" and any(q >= s for q, s in zip(extend, x.shape[1:-1])):
            raise ValueError(f"{op}: reflect `padding_mode` needs inputs larger than {extend}.")
        x = _pad_mode(x, tuple((q, q) for q in extend), padding_mode)
    y = conv_transpose(
        x,
        kernel,
        strides,
        lax_padding,
        kernel_dilation,
        channels_last(n),
        transpose_kernel,
        precision,
        preferred_element_type,
        output_padding=output_padding,
        feature_group_count=feature_group_count,
        out_sharding=out_sharding,
        algorithm=algorithm,
    )
    if any(extend):
        crop = tuple(
            slice(q * s, y.shape[i + 1] - q * s) for i, (q, s) in enumerate(zip(extend, strides))
        )
        y = y[(slice(None), *crop, slice(None))]
    if circular:  # flax's periodic wrap of the output, one spatial dim at a time
        periods = [d * s for d, s in zip(x.shape[1:-1], strides)]
        diffs = [-(yd - p) % (2 * p) for yd, p in zip(y.shape[1:-1], periods)]
        pads = [
            (d // 2, (d + 1) // 2) if transpose_kernel else ((d + 1) // 2, d // 2) for d in diffs
        ]
        y = jnp.pad(y, [(0, 0), *pads, (0, 0)])
        for i, p in enumerate(periods, start=1):
            y = y.reshape(*y.shape[:i], -1, p, *y.shape[i + 1 :]).sum(axis=i)
    return restore_batch(_add_bias(y, bias), batch)


def module_conv(module, inputs, kernel, bias, *, groups, op, out_sharding=None):
    """`conv_apply` with the configuration a Conv-like module (linen or nnx) stores."""
    return conv_apply(
        inputs,
        kernel,
        bias,
        strides=module.strides,
        padding=module.padding,
        input_dilation=module.input_dilation,
        kernel_dilation=module.kernel_dilation,
        feature_group_count=groups,
        precision=module.precision,
        preferred_element_type=module.preferred_element_type,
        padding_mode=module.padding_mode,
        algorithm=module.algorithm,
        out_sharding=out_sharding,
        op=op,
    )


def module_conv_transpose(module, inputs, kernel, bias, *, groups, op, out_sharding=None):
    """`conv_transpose_apply` with the configuration a ConvTranspose module stores."""
    return conv_transpose_apply(
        inputs,
        kernel,
        bias,
        strides=module.strides,
        padding=module.padding,
        kernel_dilation=module.kernel_dilation,
        transpose_kernel=module.transpose_kernel,
        precision=module.precision,
        preferred_element_type=module.preferred_element_type,
        padding_mode=module.padding_mode,
        output_padding=module.output_padding,
        feature_group_count=groups,
        algorithm=module.algorithm,
        out_sharding=out_sharding,
        op=op,
    )


def _local_geometry(
    x_shape, kernel_size, strides, padding, input_dilation, kernel_dilation, padding_mode, op
):
    """ConvLocal's padded input shape, lax padding pairs and output spatial shape."""
    n = len(kernel_size)
    strides = broadcast(strides, n, "strides", op)
    input_dilation = broadcast(input_dilation, n, "input_dilation", op)
    kernel_dilation = broadcast(kernel_dilation, n, "kernel_dilation", op)
    found = {}

    def pad(x):
        x, found["padding"] = conv_padding(
            x, padding, padding_mode, kernel_size, kernel_dilation, strides, input_dilation, op
        )
        return x

    padded = jax.eval_shape(pad, jax.ShapeDtypeStruct(x_shape, jnp.float32)).shape
    dil_in = [dilate_dim(s, d) for s, d in zip(padded[1:-1], input_dilation)]
    eff = [dilate_dim(k, d) for k, d in zip(kernel_size, kernel_dilation)]
    pads = resolve_padding(found["padding"], dil_in, eff, strides, op)
    out = tuple(
        max((s + lo + hi - e) // st + 1, 0)
        for s, (lo, hi), e, st in zip(dil_in, pads, eff, strides)
    )
    return pads, out, strides, input_dilation, kernel_dilation


def local_output_spatial(
    in_shape,
    *,
    kernel_size,
    strides,
    padding,
    input_dilation,
    kernel_dilation,
    precision,
    padding_mode,
    op,
):
    """Spatial output shape of ConvLocal on inputs of `in_shape` (sizes its kernel)."""
    del precision
    n = len(kernel_size)
    flat = (math.prod(in_shape[: len(in_shape) - n - 1]), *in_shape[len(in_shape) - n - 1 :])
    return _local_geometry(
        flat, kernel_size, strides, padding, input_dilation, kernel_dilation, padding_mode, op
    )[1]


def conv_local_apply(
    inputs,
    kernel,
    bias,
    *,
    kernel_size,
    strides,
    padding,
    input_dilation,
    kernel_dilation,
    precision,
    padding_mode,
    op="ConvLocal",
):
    """Unshared-weight conv: kernel (*O, C*T, F) with patch features ordered (C, *K)."""
    n = len(kernel_size)
    x, batch = flatten_batch(inputs, n, op)
    pads, out, strides, input_dilation, kernel_dilation = _local_geometry(
        x.shape, kernel_size, strides, padding, input_dilation, kernel_dilation, padding_mode, op
    )
    x, _ = conv_padding(
        x, padding, padding_mode, kernel_size, kernel_dilation, strides, input_dilation, op
    )
    config = [(0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in zip(pads, input_dilation)), (0, 0, 0)]
    xp = lax.pad(x, jnp.zeros((), x.dtype), config)  # (N, *Sp, C)
    windows = [strided_window(xp, tap, kernel_dilation, strides, out) for tap in taps(kernel_size)]
    patches = jnp.stack(windows, axis=-1)  # (N, *O, C, T)
    patches = patches.reshape(*patches.shape[:-2], -1)  # (N, *O, C*T)
    y = jnp.einsum("n...k,...kf->n...f", patches, kernel, precision=precision)  # (N, *O, F)
    return restore_batch(_add_bias(y, bias), batch)


# ------------------------------------------------------------------- pooling

_POOL_FUNCTIONS = {
    "MaxPool": _pool.max_pool,
    "MinPool": _pool.min_pool,
    "AvgPool": _pool.avg_pool,
    "SumPool": _pool.sum_pool,
    "LPPool": _pool.lp_pool,
    "AdaptiveAvgPool": _adaptive.adaptive_avg_pool,
    "AdaptiveMaxPool": _adaptive.adaptive_max_pool,
    "GlobalAvgPool": _adaptive.global_avg_pool,
    "GlobalMaxPool": _adaptive.global_max_pool,
}


def _pool_entry(fn):
    """(fn, required argument names, {argument: default}) read off fn's signature, after
    `inputs`, so the modules' fields and defaults cannot drift from the functions'."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    required = tuple(p.name for p in params if p.default is inspect.Parameter.empty)
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return fn, required, defaults


# Module name -> (function, required argument names, keyword defaults). linen and nnx
# build their pooling modules from this one table.
POOLS = {name: _pool_entry(fn) for name, fn in _POOL_FUNCTIONS.items()}


def pool_apply(name: str, inputs, config: dict):
    """Call pooling function `name` with a module's stored configuration (all by keyword)."""
    fn, positional, defaults = POOLS[name]
    return fn(inputs, **{k: config[k] for k in (*positional, *defaults)})


def unpool_apply(inputs, indices, output_shape):
    return _pool.max_unpool(inputs, indices, output_shape)
