"""Adaptive and global pooling: output size fixed, bins derived from the input.

Bins follow PyTorch: bin i of an axis of length L split into `out` bins covers
[floor(i*L/out), ceil((i+1)*L/out)). Bins are boxes, so both pools are
separable: average = one small averaging matrix per axis (a GEMM each);
maximum = a static gather of each axis's bins and a first-maximum pick, axis
by axis, innermost first (row-major first maximum, as PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxconv._shapes import (
    adaptive_bins,
    definitely,
    flatten_batch,
    int_tuple,
    is_symbolic,
    unflatten_batch,
)


def _normalize(inputs, output_size, op):
    """-> x (N, *S, C), batch shape, output spatial size (None entries resolved)."""
    inputs = jnp.asarray(inputs)
    if isinstance(output_size, int) or output_size is None:
        n = inputs.ndim - 2
        if n < 1:
            raise ValueError(
                f"{op}: an int `output_size` needs batched inputs (N, *S, C), got shape "
                f"{inputs.shape}; pass a tuple to pool unbatched inputs."
            )
        output_size = (output_size,) * n
    n = len(output_size)
    x, batch = flatten_batch(inputs, n, op)
    spatial = x.shape[1:-1]
    if any(definitely(lambda s=s: s == 0) for s in spatial):
        raise ValueError(
            f"{op}: `inputs` must have non-empty spatial dimensions, got shape {inputs.shape}."
        )
    sizes = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    sizes = int_tuple(sizes, n, "output_size", op)
    return x, batch, sizes


def adaptive_avg_pool(inputs: ArrayLike, output_size: int | Sequence[int | None]) -> jax.Array:
    """Average over PyTorch's adaptive bins.

    Shapes: inputs (*batch, *S, C) or (*S, C) -> (*batch, *output_size, C).

    Args:
      inputs: input array (floating).
      output_size: int (all spatial dims of a batched input) or one entry per
        spatial dim; None keeps that dim. Larger than the input is allowed.

    Returns:
      The pooled array.

    Raises:
      ValueError: output_size < 1 or of the wrong length.

    Example:
      >>> jaxconv.adaptive_avg_pool(jnp.arange(5.0)[:, None], (3,))[:, 0]
      Array([0.5, 2. , 3.5], dtype=float32)
    """
    op = "adaptive_avg_pool"
    x, batch, sizes = _normalize(inputs, output_size, op)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise TypeError(f"{op}: `inputs` must have a floating dtype, got {x.dtype}.")
    compute = jnp.float32 if x.dtype in (jnp.float16, jnp.bfloat16) else x.dtype
    y = x.astype(compute)
    for axis, out in enumerate(sizes, start=1):
        length = y.shape[axis]
        if definitely(lambda length=length, out=out: out == length):
            continue
        if is_symbolic([length]):
            mask = _bin_mask(length, out)  # (L, out)
            mat = mask / mask.sum(0, keepdims=True)
        else:
            mat = np.zeros((length, out))
            for i, (lo, hi) in enumerate(adaptive_bins(length, out)):
                mat[lo:hi, i] = 1.0 / (hi - lo)
        y = jnp.tensordot(y, jnp.asarray(mat, compute), ((axis,), (0,)), precision="highest")
        y = jnp.moveaxis(y, -1, axis)  # (N, ..., out, ..., C)
    return unflatten_batch(y.astype(x.dtype), batch)


def adaptive_max_pool(
    inputs: ArrayLike, output_size: int | Sequence[int | None], *, return_indices: bool = False
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Maximum over PyTorch's adaptive bins; optionally PyTorch-style flat indices.

    Shapes: inputs (*batch, *S, C) or (*S, C) -> (*batch, *output_size, C).

    Args:
      inputs: input array.
      output_size: as `adaptive_avg_pool`.
      return_indices: also return int32 flat indices into the spatial plane.

    Returns:
      The pooled array, or `(values, indices)`.

    Example:
      >>> v, i = jaxconv.adaptive_max_pool(jnp.array([1.0, 5.0, 2.0, 4.0])[:, None], (2,),
      ...                                  return_indices=True)
      >>> v[:, 0], i[:, 0]
      (Array([5., 4.], dtype=float32), Array([1, 3], dtype=int32))
    """
    op = "adaptive_max_pool"
    x, batch, sizes = _normalize(inputs, output_size, op)
    spatial = x.shape[1:-1]
    if is_symbolic(spatial):
        if return_indices:
            raise ValueError(f"{op}: `return_indices` needs concrete spatial sizes, got {spatial}.")
        return unflatten_batch(_masked_max(x, sizes), batch)
    y = x
    positions = {}  # axis -> (N, ..., C) index along that axis of the chosen element
    for axis in reversed(range(1, len(sizes) + 1)):
        length, out = y.shape[axis], sizes[axis - 1]
        bins = adaptive_bins(length, out)
        width = max(hi - lo for lo, hi in bins)
        gather = np.array([[min(lo + j, hi - 1) for j in range(width)] for lo, hi in bins])
        flat = gather.reshape(-1)
        g = jnp.take(y, flat, axis=axis)  # (N, ..., out*width, ..., C)
        g = g.reshape(
            *y.shape[:axis], out, width, *y.shape[axis + 1 :]
        )  # (N, .., out, width, .., C)
        pick = _first_max(g, axis + 1)  # (N, ..., out, 1, ..., C)
        y = jnp.take_along_axis(g, pick, axis=axis + 1).squeeze(axis + 1)
        for a, pos in positions.items():
            pos = jnp.take(pos, flat, axis=axis).reshape(g.shape)
            positions[a] = jnp.take_along_axis(pos, pick, axis=axis + 1).squeeze(axis + 1)
        shape = [1] * g.ndim
        shape[axis], shape[axis + 1] = out, width
        here = jnp.broadcast_to(jnp.asarray(gather.reshape(shape), jnp.int32), g.shape)
        positions[axis] = jnp.take_along_axis(here, pick, axis=axis + 1).squeeze(axis + 1)
    values = unflatten_batch(y, batch)
    if not return_indices:
        return values
    flat_index = jnp.zeros(y.shape, jnp.int32)
    for axis, pos in positions.items():
        flat_index = flat_index + pos * math.prod(spatial[axis:])
    return values, unflatten_batch(flat_index, batch)


def _bin_mask(length, out):
    """(L, out) bool: element l lies in PyTorch's bin i; L may be symbolic."""
    pos = jnp.arange(length)[:, None]
    i = jnp.arange(out)[None, :]
    return (pos >= (i * length) // out) & (pos < -((-(i + 1) * length) // out))


def _masked_max(x, sizes):
    """Adaptive max pooling through bin masks (for symbolic sizes): x (N, *S, C) ->
    (N, *sizes, C), the first maximum of each bin."""
    y = x
    for axis, out in enumerate(sizes, start=1):
        shape = [1] * (y.ndim + 1)
        shape[axis], shape[axis + 1] = y.shape[axis], out
        mask = _bin_mask(y.shape[axis], out).reshape(shape)  # (1, .., L, out, .., 1)
        spread = jnp.expand_dims(y, axis + 1)  # (N, .., L, 1, .., C)
        low = jnp.asarray(
            -jnp.inf if jnp.issubdtype(y.dtype, jnp.inexact) else jnp.iinfo(y.dtype).min, y.dtype
        )
        masked = jnp.where(mask, spread, low)  # (N, .., L, out, .., C)
        pick = jnp.argmax(masked, axis=axis, keepdims=True)  # (N, .., 1, out, .., C)
        y = jnp.take_along_axis(masked, lax.stop_gradient(pick), axis=axis).squeeze(axis)
    return y  # (N, *sizes, C)


def _first_max(g, axis):
    """Index of the first maximum along `axis` (NaN counts as maximum), kept as a size-1 axis."""
    if jnp.issubdtype(g.dtype, jnp.floating):
        nan = jnp.isnan(g)
        key = jnp.where(nan, jnp.inf, g)
        best = jnp.max(key, axis=axis, keepdims=True)
        hit = jnp.where(jnp.any(nan, axis=axis, keepdims=True), nan, key == best)
    else:
        hit = g == jnp.max(g, axis=axis, keepdims=True)
    return lax.stop_gradient(jnp.argmax(hit, axis=axis, keepdims=True).astype(jnp.int32))


def _spatial_axes(inputs, op):
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 3:
        raise ValueError(
            f"{op}: `inputs` must be (N, *S, C) with a spatial dim, got {inputs.shape}."
        )
    if any(definitely(lambda s=s: s == 0) for s in inputs.shape[1:-1]):
        raise ValueError(
            f"{op}: `inputs` must have non-empty spatial dimensions, got shape {inputs.shape}."
        )
    return inputs, tuple(range(1, inputs.ndim - 1))


def global_avg_pool(inputs: ArrayLike, keepdims: bool = False) -> jax.Array:
    """Mean over every spatial axis of (N, *S, C) -> (N, C) or (N, *1, C).

    Example:
      >>> jaxconv.global_avg_pool(jnp.ones((2, 3, 3, 4))).shape
      (2, 4)
    """
    inputs, axes = _spatial_axes(inputs, "global_avg_pool")
    return jnp.mean(inputs, axis=axes, keepdims=keepdims)


def global_max_pool(inputs: ArrayLike, keepdims: bool = False) -> jax.Array:
    """Maximum over every spatial axis of (N, *S, C) -> (N, C) or (N, *1, C).

    Example:
      >>> jaxconv.global_max_pool(jnp.ones((2, 3, 3, 4)), keepdims=True).shape
      (2, 1, 1, 4)
    """
    inputs, axes = _spatial_axes(inputs, "global_max_pool")
    return jnp.max(inputs, axis=axes, keepdims=keepdims)
