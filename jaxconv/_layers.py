"""What the linen and nnx modules share: flax's `conv_general_dilated=` hook, the
forward passes of ConvTranspose and ConvLocal, parameter creation, and argument checks.

Flax's Conv (linen and nnx) calls the function in its `conv_general_dilated` slot
with lax's arguments; `ConvHook` is jaxconv's, with an algorithm and a padding mode,
so jaxconv's Conv modules are flax's with that hook, and `swap` installs it in a
flax model. Flax's ConvTranspose and ConvLocal call lax directly, so their forward
passes are written here once, for both front ends.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv._algorithms._windows import pad_mode, pad_spatial, strided_window, taps
from jaxconv._conv import conv_general_dilated
from jaxconv._layout import channels_last, resolve_layout, transpose
from jaxconv._select import ALGORITHMS, TRANSPOSE_ALGORITHMS
from jaxconv._shapes import (
    PADDING_MODES,
    definitely,
    dilate_dim,
    flatten_batch,
    int_tuple,
    is_symbolic,
    resolve_padding,
    unflatten_batch,
    window_output_shape,
)
from jaxconv._transpose import conv_transpose


def check_padding_mode(padding_mode, op: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{op}: `padding_mode` (={padding_mode!r}) must be one of {PADDING_MODES}."
        )
    return padding_mode


def check_algorithm(algorithm, names, op: str) -> str:
    if not isinstance(algorithm, str) or algorithm not in names:
        raise ValueError(f"{op}: `algorithm` (={algorithm!r}) must be one of {names}.")
    return algorithm


def kernel_tuple(kernel_size, op: str) -> tuple[int, ...]:
    """flax's rule: an int is a 1-D kernel; a sequence is one size per spatial dim."""
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size,)
    try:
        kernel_size = tuple(kernel_size)
    except TypeError:
        raise TypeError(
            f"{op}: `kernel_size` must be an int or a sequence of ints, got {kernel_size!r}."
        ) from None
    return int_tuple(kernel_size, len(kernel_size), "kernel_size", op)


def broadcast(value, n: int, name: str, op: str) -> tuple[int, ...]:
    """flax's `maybe_broadcast`: None -> 1, int -> repeated, sequence -> checked."""
    return int_tuple(1 if value is None else value, n, name, op)


def check_groups(in_features: int, out_features: int, groups, op: str) -> int:
    groups = int_tuple(groups, 1, "feature_group_count", op)[0]
    if in_features % groups or out_features % groups:
        raise ValueError(
            f"{op}: `feature_group_count` (={groups}) must divide the input features "
            f"(={in_features}) and the output features (={out_features})."
        )
    return groups


def canonical_padding(padding, n: int, op: str):
    """flax's `canonicalize_padding`: str, int, or n ints / (lo, hi) pairs."""
    if isinstance(padding, str):
        return padding.upper()
    if isinstance(padding, int):
        return ((padding, padding),) * n
    try:
        pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    except TypeError:
        pairs = []
    if len(pairs) == n and all(len(p) == 2 for p in pairs):
        return tuple(pairs)
    raise ValueError(
        f"{op}: `padding` (={padding!r}) must be a string, an int, or {n} ints or "
        "(low, high) pairs."
    )


@dataclasses.dataclass(frozen=True)
class ConvHook:
    """`jaxconv.conv_general_dilated` for flax's `conv_general_dilated=` slot, with an
    algorithm and a padding mode.

    With `padding_mode` other than "zeros", the input is first padded with data
    ("reflect", "replicate", "circular") by the amounts lax's `padding` gives, and
    the convolution runs with "VALID". Hashable, so flax keeps it as static
    configuration.

    Example:
      >>> from flax import nnx
      >>> from jaxconv import ConvHook
      >>> layer = nnx.Conv(3, 8, (3, 3), conv_general_dilated=ConvHook("auto", "reflect"),
      ...                  rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((2, 16, 16, 3))).shape
      (2, 16, 16, 8)
    """

    algorithm: str = "auto"
    padding_mode: str = "zeros"
    preferred_element_type: Any = None  # used where the caller passes none (flax linen)

    def __post_init__(self):
        check_algorithm(self.algorithm, ALGORITHMS, "ConvHook")
        check_padding_mode(self.padding_mode, "ConvHook")

    def __call__(
        self,
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=None,
        rhs_dilation=None,
        dimension_numbers=None,
        feature_group_count=1,
        batch_group_count=1,
        precision=None,
        preferred_element_type=None,
        out_sharding=None,
    ):
        if self.padding_mode != "zeros":
            lhs, padding = self._pad(
                lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers
            )
        return conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
            precision,
            self.preferred_element_type
            if preferred_element_type is None
            else preferred_element_type,
            out_sharding,
            algorithm=self.algorithm,
        )

    def _pad(self, lhs, rhs, strides, padding, lhs_dilation, rhs_dilation, dimension_numbers):
        """lhs padded with data as `padding` asks, and "VALID"."""
        op = "ConvHook"
        n = lhs.ndim - 2
        layout = resolve_layout(dimension_numbers, lhs.shape, rhs.shape, op)
        if lhs_dilation is not None and any(d > 1 for d in int_tuple(lhs_dilation, n, "x", op)):
            raise ValueError(
                f"{op}: `padding_mode`={self.padding_mode!r} needs `input_dilation` 1, "
                f"got {lhs_dilation}."
            )
        x = transpose(lhs, layout.lhs_to_canon)  # (N, *S, C)
        kernel = tuple(rhs.shape[i] for i in layout.rhs_to_canon)[:-2]  # (*K)
        dilation = int_tuple(rhs_dilation, n, "kernel_dilation", op)
        window = tuple(map(dilate_dim, kernel, dilation))
        strides = int_tuple(strides, n, "strides", op)
        pads = resolve_padding(padding, x.shape[1:-1], window, strides, op)
        if any(definitely(lambda lo=lo, hi=hi: lo < 0 or hi < 0) for lo, hi in pads):
            raise ValueError(
                f"{op}: `padding_mode`={self.padding_mode!r} needs padding >= 0, got {pads}."
            )
        if is_symbolic(*pads):
            raise ValueError(
                f"{op}: `padding_mode`={self.padding_mode!r} needs padding that does not "
                f"depend on symbolic sizes (explicit pairs, or 'SAME' at stride 1), got {pads}."
            )
        x = pad_mode(x, pads, self.padding_mode)  # (N, *Sp, C)
        inverse = tuple(layout.lhs_to_canon.index(i) for i in range(lhs.ndim))
        return transpose(x, inverse), "VALID"


def linen_params(module, kernel_shape, bias_shape):
    """A linen module's 'kernel' (masked) and optional 'bias', as flax creates them."""
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


def nnx_params(module):
    """An nnx module's kernel (masked) and bias, as flax reads them (not yet promoted)."""
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


def transpose_kernel_shape(kernel_size, in_features, out_features, groups, transpose_kernel):
    """ConvTranspose's kernel: (*K, in/G, out), or (*K, out/G, in) with `transpose_kernel`."""
    if transpose_kernel:
        return (*kernel_size, out_features // groups, in_features)
    return (*kernel_size, in_features // groups, out_features)


def _add_bias(y, bias):
    if bias is None:
        return y
    return y + bias.reshape((1,) * (y.ndim - bias.ndim) + bias.shape)


@dataclasses.dataclass(frozen=True)
class TransposeConfig:
    """jaxconv's options of a ConvTranspose (flax's own fields are read off the module)."""

    output_padding: Any = None
    feature_group_count: int = 1
    padding_mode: str = "zeros"
    algorithm: str = "auto"


def conv_transpose_apply(module, inputs, kernel, bias, config: TransposeConfig, op: str):
    """ConvTranspose's forward pass, flax's CIRCULAR rule included: inputs
    (*batch, *S, C), kernel as `transpose_kernel_shape` -> (*batch, *Out, features).

    `module` holds flax's ConvTranspose fields (strides, padding, kernel_dilation,
    transpose_kernel, precision, preferred_element_type). With a `padding_mode` other
    than zeros, the input is first extended by q = ceil((k_eff - 1) / s) elements per
    side in that mode and q*s output elements are cropped from each side: the output
    has the zeros-mode size, and its borders see the extended input instead of zeros.
    """
    n = kernel.ndim - 2
    x, batch = flatten_batch(inputs, n, op)
    strides = broadcast(module.strides, n, "strides", op)
    kernel_dilation = broadcast(module.kernel_dilation, n, "kernel_dilation", op)
    padding = canonical_padding(module.padding, n, op)
    circular = padding == "CIRCULAR"
    eff = [dilate_dim(k, d) for k, d in zip(kernel.shape[:n], kernel_dilation)]
    extend = [0] * n
    if config.padding_mode != "zeros":
        extend = [-(-(e - 1) // s) for e, s in zip(eff, strides)]
        if config.padding_mode == "reflect" and any(q >= s for q, s in zip(extend, x.shape[1:-1])):
            raise ValueError(f"{op}: reflect `padding_mode` needs inputs larger than {extend}.")
        x = pad_mode(x, tuple((q, q) for q in extend), config.padding_mode)
    y = conv_transpose(
        x,
        kernel,
        strides,
        "VALID" if circular else padding,
        kernel_dilation,
        channels_last(n),
        module.transpose_kernel,
        module.precision,
        getattr(module, "preferred_element_type", None),
        output_padding=config.output_padding,
        feature_group_count=config.feature_group_count,
        algorithm=config.algorithm,
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
            (d // 2, (d + 1) // 2) if module.transpose_kernel else ((d + 1) // 2, d // 2)
            for d in diffs
        ]
        y = jnp.pad(y, [(0, 0), *pads, (0, 0)])
        for i, p in enumerate(periods, start=1):
            y = y.reshape(*y.shape[:i], -1, p, *y.shape[i + 1 :]).sum(axis=i)
    return unflatten_batch(_add_bias(y, bias), batch)


def _local_prepare(x, module, kernel_size, padding_mode: str, op: str):
    """ConvLocal's input (N, *S, C) after flax's padding strings and `padding_mode`, and
    (lax pads, output spatial shape, strides, input dilation, kernel dilation)."""
    n = len(kernel_size)
    strides = broadcast(module.strides, n, "strides", op)
    input_dilation = broadcast(module.input_dilation, n, "input_dilation", op)
    kernel_dilation = broadcast(module.kernel_dilation, n, "kernel_dilation", op)
    window = [dilate_dim(k, d) for k, d in zip(kernel_size, kernel_dilation)]
    padding = canonical_padding(module.padding, n, op)
    if padding in ("CIRCULAR", "REFLECT"):  # flax: pad as SAME would, with wrap / reflect
        mode = "circular" if padding == "CIRCULAR" else "reflect"
        x, padding = pad_mode(x, tuple(((k - 1) // 2, k // 2) for k in window), mode), "VALID"
    elif padding == "CAUSAL":
        if n != 1:
            raise ValueError(f"{op}: `padding`='CAUSAL' needs a 1-D convolution, got {n}-D.")
        x, padding = pad_spatial(x, ((window[0] - 1, 0),), (1,), 0, trail=1), "VALID"
    elif padding_mode != "zeros":
        if any(d > 1 for d in input_dilation):
            raise ValueError(f"{op}: `padding_mode`={padding_mode!r} needs input_dilation 1.")
        pads = resolve_padding(padding, x.shape[1:-1], window, strides, op)
        if any(lo < 0 or hi < 0 for lo, hi in pads):
            raise ValueError(f"{op}: `padding_mode`={padding_mode!r} needs padding >= 0.")
        x, padding = pad_mode(x, pads, padding_mode), "VALID"
    dilated = [dilate_dim(s, d) for s, d in zip(x.shape[1:-1], input_dilation)]
    pads = resolve_padding(padding, dilated, window, strides, op)
    out = window_output_shape(dilated, window, strides, pads, op)
    return x, (pads, out, strides, input_dilation, kernel_dilation)


def local_output_spatial(in_shape, module, kernel_size, padding_mode: str, op: str):
    """Spatial output shape of ConvLocal on inputs of `in_shape` (sizes its kernel)."""
    n = len(kernel_size)
    flat = (math.prod(in_shape[: len(in_shape) - n - 1]), *in_shape[len(in_shape) - n - 1 :])
    found = {}

    def prepare(x):
        x, found["geometry"] = _local_prepare(x, module, kernel_size, padding_mode, op)
        return x

    jax.eval_shape(prepare, jax.ShapeDtypeStruct(flat, jnp.float32))
    return found["geometry"][1]


def conv_local_apply(module, inputs, kernel, bias, kernel_size, padding_mode: str, op: str):
    """Unshared-weight conv: inputs (*batch, *S, C), kernel (*O, C*T, F) with patch
    features ordered (C, *K) -> (*batch, *O, F)."""
    n = len(kernel_size)
    x, batch = flatten_batch(inputs, n, op)
    x, (pads, out, strides, input_dilation, dilation) = _local_prepare(
        x, module, kernel_size, padding_mode, op
    )
    xp = pad_spatial(x, pads, input_dilation, 0, trail=1)  # (N, *Sp, C)
    windows = [strided_window(xp, tap, dilation, strides, out) for tap in taps(kernel_size)]
    patches = jnp.stack(windows, axis=-1)  # (N, *O, C, T)
    patches = patches.reshape(*patches.shape[:-2], -1)  # (N, *O, C*T)
    y = jnp.einsum("n...k,...kf->n...f", patches, kernel, precision=module.precision)  # (N, *O, F)
    return unflatten_batch(_add_bias(y, bias), batch)


def transpose_algorithm(algorithm, op: str) -> str:
    return check_algorithm(algorithm, TRANSPOSE_ALGORITHMS, op)


def swap_transpose_algorithm(algorithm: str) -> str:
    """What `swap(algorithm=...)` runs transposed convs with: the same name where it is
    a transposed-conv algorithm ("auto", "xla"), else "auto"."""
    return algorithm if algorithm in TRANSPOSE_ALGORITHMS else "auto"


@functools.cache
def _parameters(fn) -> tuple[str, ...]:
    return tuple(inspect.signature(fn).parameters)[1:]  # all but `inputs`


def pool_arguments(module, fn) -> dict:
    """A pooling module's fields as keyword arguments of its function `fn`; each of
    `fn`'s arguments after `inputs` is a field of the module of the same name."""
    return {name: getattr(module, name) for name in _parameters(fn)}
