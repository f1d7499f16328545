"""Flax-compatible pooling over `reduce_window`, with PyTorch's extra options.

Every pool takes flax's positional arguments `(inputs, window_shape, strides=None,
padding="VALID")` with inputs (*batch, *spatial, features) or unbatched
(*spatial, features), and adds keyword-only options: `dilation`, `ceil_mode`,
`padding_mode`, `count_include_pad`/`divisor_override` (average),
`return_indices` (max) and `algorithm`.

Semantics where flax has no such option follow PyTorch's documented formulas:
ceil_mode keeps a last window only if it starts inside the input or the left
padding; the average divisor counts the window elements inside the padded input
(count_include_pad=True) or inside the input (False), never the ceil_mode
overhang; indices are flat offsets into the unpadded spatial plane (h*W + w).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxconv._algorithms._windows import pad_mode
from jaxconv._reduce_window import (
    WindowParams,
    identity,
    monoid_kind,
    reduce_window_direct,
    reduce_window_xla,
    window_tap,
)
from jaxconv._select import pool_choice
from jaxconv._shapes import (
    NUMPY_PAD_MODES,
    PADDING_MODES,
    ceil_mode_pads,
    definitely,
    dilate_dim,
    flatten_batch,
    int_tuple,
    is_symbolic,
    output_shape,
    resolve_padding,
    unflatten_batch,
)
from jaxconv._typing import PaddingMode, PoolAlgorithm, PoolPadding


@dataclasses.dataclass(frozen=True)
class PoolGeometry:
    """A pool call after normalisation: inputs are (N, *S, C) from here on."""

    batch_shape: tuple  # (): an unbatched input, which got a batch of one
    spatial: tuple[int, ...]  # S before any padding_mode padding
    window: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    user_pads: tuple[tuple[int, int], ...]  # the padding the caller asked for
    mode_pads: tuple[tuple[int, int], ...]  # applied as data (reflect/replicate/circular)
    window_pads: tuple[tuple[int, int], ...]  # filled with the init value, ceil overhang included
    padding_mode: str

    @property
    def params(self) -> WindowParams:
        n = len(self.window)
        return WindowParams(
            window=(1, *self.window, 1),
            strides=(1, *self.strides, 1),
            pads=((0, 0), *self.window_pads, (0, 0)),
            base_dilation=(1,) * (n + 2),
            window_dilation=(1, *self.dilation, 1),
        )

    @property
    def padded_spatial(self):
        return tuple(s + lo + hi for s, (lo, hi) in zip(self.spatial, self.mode_pads))

    @property
    def out_spatial(self):
        eff = tuple(map(dilate_dim, self.window, self.dilation))
        return output_shape(self.padded_spatial, eff, self.strides, self.window_pads)


def normalize_pool(inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, op):
    """Validate a pool call; returns (x (N, *S, C), PoolGeometry)."""
    inputs = jnp.asarray(inputs)
    if isinstance(window_shape, int) or not hasattr(window_shape, "__len__"):
        raise TypeError(f"{op}: `window_shape` must be a tuple of ints, got {window_shape!r}.")
    n = len(window_shape)
    window = int_tuple(window_shape, n, "window_shape", op)
    strides = int_tuple(strides, n, "strides", op)
    dilation = int_tuple(dilation, n, "dilation", op)
    x, batch = flatten_batch(inputs, n, op)
    spatial = x.shape[1:-1]
    eff = tuple(map(dilate_dim, window, dilation))
    pads = resolve_padding(padding, spatial, eff, strides, op, allow_int=True)
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"{op}: `padding_mode` (={padding_mode!r}) must be one of {PADDING_MODES}."
        )
    zero = ((0, 0),) * n
    if padding_mode in NUMPY_PAD_MODES and any(lo or hi for lo, hi in pads):
        if any(lo < 0 or hi < 0 for lo, hi in pads):
            raise ValueError(
                f"{op}: `padding` (={pads}) must be >= 0 with `padding_mode`={padding_mode!r}."
            )
        if padding_mode == "reflect" and any(
            max(lo, hi) >= s for (lo, hi), s in zip(pads, spatial)
        ):
            raise ValueError(
                f"{op}: reflect `padding` (={pads}) must be smaller than the input size {spatial}."
            )
        mode_pads, window_pads = pads, zero
    else:
        mode_pads, window_pads = zero, pads
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, mode_pads))
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"{op}: `ceil_mode` must be a bool, got {ceil_mode!r}.")
    if ceil_mode:
        if is_symbolic(padded):
            raise ValueError(f"{op}: `ceil_mode` needs concrete spatial sizes, got {spatial}.")
        window_pads = ceil_mode_pads(padded, eff, strides, window_pads)
    geo = PoolGeometry(
        batch, spatial, window, strides, dilation, pads, mode_pads, window_pads, padding_mode
    )
    if any(
        definitely(lambda s=s, lo=lo, hi=hi: s + lo + hi < 0)
        for s, (lo, hi) in zip(padded, window_pads)
    ):
        raise ValueError(f"{op}: `padding` (={pads}) crops more than the input size {spatial}.")
    return x, geo


def _mode_pad(x, geo: PoolGeometry):
    if geo.padding_mode not in NUMPY_PAD_MODES:
        return x
    return pad_mode(x, geo.mode_pads, geo.padding_mode)


def _reduce(x, init, computation, geo: PoolGeometry, algorithm, op):
    x = _mode_pad(x, geo)
    name = pool_choice(algorithm, op, is_symbolic(x.shape[1:-1]))
    if name == "xla":
        return reduce_window_xla(x, init, computation, geo.params)
    kind, is_identity = monoid_kind(computation, init, x.dtype)
    return reduce_window_direct(x, init, computation, geo.params, kind, is_identity)


def pool(
    inputs: ArrayLike,
    init: ArrayLike,
    reduce_fn: Callable,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    *,
    dilation: Sequence[int] | None = None,
    ceil_mode: bool = False,
    padding_mode: PaddingMode = "zeros",
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array:
    """General pooling with any reducer, a drop-in for `flax.linen.pool`.

    Shapes: inputs (*batch, *S, C) or (*S, C) -> (*batch, *O, C) or (*O, C).

    Args:
      inputs: input array.
      init: reduction start value; it also fills the padding.
      reduce_fn: binary reducer, e.g. `lax.max`; any callable is differentiable.
      window_shape: window size per spatial dimension.
      strides: stride per spatial dimension (default 1).
      padding: 'VALID', 'SAME', 'SAME_LOWER' or (lo, hi) pairs per spatial dim.
      dilation: window dilation per spatial dimension.
      ceil_mode: round the output size up, as PyTorch.
      padding_mode: 'zeros' (the padding holds `init`, as lax pads), 'reflect',
        'replicate' or 'circular' (`jaxconv.PADDING_MODES`).
      algorithm: 'auto', 'direct' or 'xla'.

    Returns:
      The pooled array.

    Example:
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> jaxconv.pool(x, 0.0, jax.lax.add, (2, 2), (2, 2))[0, :, :, 0]
      Array([[10., 18.],
             [42., 50.]], dtype=float32)
    """
    x, geo = normalize_pool(
        inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, "pool"
    )
    return unflatten_batch(_reduce(x, init, reduce_fn, geo, algorithm, "pool"), geo.batch_shape)


def _extremum_pool(
    kind, inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, algorithm, op
):
    x, geo = normalize_pool(
        inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, op
    )
    init = identity(kind, x.dtype)
    fn = lax.max if kind == "max" else lax.min
    return x, geo, _reduce(x, init, fn, geo, algorithm, op)


def max_pool(
    inputs: ArrayLike,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    *,
    dilation: Sequence[int] | None = None,
    ceil_mode: bool = False,
    return_indices: bool = False,
    padding_mode: PaddingMode = "zeros",
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Max pooling, a drop-in for `flax.linen.max_pool` with PyTorch's options.

    The gradient goes to one element per window (the first maximum in row-major
    order), exactly as `jax.grad` through `lax.reduce_window`, with or without
    dilation.

    Shapes: inputs (*batch, *S, C) or (*S, C) -> (*batch, *O, C) or (*O, C).

    Args:
      inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode,
        algorithm: as `jaxconv.pool`.
      return_indices: also return int32 flat indices into the unpadded spatial
        plane (h * W + w in 2-D), as PyTorch, for `max_unpool`.

    Returns:
      The pooled array, or `(values, indices)` with `return_indices`.

    Example:
      >>> x = jnp.array([[1.0, 3.0, 2.0, 0.0]])[..., None]  # (1, 4, 1): W=4, C=1
      >>> v, i = jaxconv.max_pool(x, (2,), (2,), return_indices=True)
      >>> v[..., 0], i[..., 0]
      (Array([[3., 2.]], dtype=float32), Array([[1, 2]], dtype=int32))
    """
    op = "max_pool"
    x, geo, out = _extremum_pool(
        "max",
        inputs,
        window_shape,
        strides,
        padding,
        dilation,
        ceil_mode,
        padding_mode,
        algorithm,
        op,
    )
    if not return_indices:
        return unflatten_batch(out, geo.batch_shape)
    if not jnp.issubdtype(x.dtype, jnp.floating) and not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"{op}: `return_indices` needs a real dtype, got {x.dtype}.")
    if is_symbolic(x.shape[1:-1]):
        raise ValueError(
            f"{op}: `return_indices` needs concrete spatial sizes, got {x.shape[1:-1]}."
        )
    indices = _argmax_indices(_mode_pad(x, geo), geo)
    return unflatten_batch(out, geo.batch_shape), unflatten_batch(indices, geo.batch_shape)


def min_pool(
    inputs: ArrayLike,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    *,
    dilation: Sequence[int] | None = None,
    ceil_mode: bool = False,
    padding_mode: PaddingMode = "zeros",
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array:
    """Min pooling, a drop-in for `flax.linen.min_pool` (options as `max_pool`).

    Example:
      >>> jaxconv.min_pool(jnp.array([[4.0, 1.0, 3.0]])[..., None], (2,))[..., 0]
      Array([[1., 1.]], dtype=float32)
    """
    _, geo, out = _extremum_pool(
        "min",
        inputs,
        window_shape,
        strides,
        padding,
        dilation,
        ceil_mode,
        padding_mode,
        algorithm,
        "min_pool",
    )
    return unflatten_batch(out, geo.batch_shape)


def _index_windows(geo: PoolGeometry):
    """Static per-tap flat indices (T, *O) into the unpadded plane; -1 marks padding."""
    plane = np.arange(math.prod(geo.spatial), dtype=np.int64).reshape(geo.spatial)
    if geo.padding_mode in NUMPY_PAD_MODES:
        plane = np.pad(plane, geo.mode_pads, mode=NUMPY_PAD_MODES[geo.padding_mode])
    out = geo.out_spatial
    windows = []
    for tap in np.ndindex(*geo.window):
        sl = []
        for t, d, s, (lo, _), o, size in zip(
            tap, geo.dilation, geo.strides, geo.window_pads, out, plane.shape
        ):
            pos = np.arange(o) * s + t * d - lo
            sl.append(np.where((pos >= 0) & (pos < size), pos, -1))
        grid = np.ix_(*sl)
        valid = np.ones(out, bool)
        for g in grid:
            valid &= g >= 0
        idx = plane[tuple(np.clip(g, 0, None) for g in grid)] if plane.size else np.zeros(out, int)
        windows.append(np.where(valid, idx, -1))
    return np.stack(windows)  # (T, *O)


def _argmax_indices(x, geo: PoolGeometry):
    """PyTorch's max-pool indices: first maximum in row-major order, NaN wins."""
    index = _index_windows(geo)  # (T, *O)
    out = geo.out_spatial
    valid_any = index >= 0
    first = np.where(valid_any.any(0), index[valid_any.argmax(0), *np.indices(out)], 0)
    params = geo.params
    full_out = (x.shape[0], *out, x.shape[-1])
    acc = jnp.full(
        full_out,
        -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min,
        x.dtype,
    )
    best = jnp.broadcast_to(jnp.asarray(first[None, ..., None], jnp.int32), full_out)
    init = identity("max", x.dtype)
    for k, tap in enumerate(np.ndindex(*geo.window)):
        window = window_tap(x, (0, *tap, 0), init, params, full_out)  # (N, *O, C)
        greater = window > acc
        if jnp.issubdtype(x.dtype, jnp.floating):
            greater = greater | jnp.isnan(window)
        take = jnp.asarray(index[k][None, ..., None] >= 0) & greater
        acc = jnp.where(take, window, acc)
        best = jnp.where(take, jnp.asarray(index[k][None, ..., None], jnp.int32), best)
    return best


def _divisor(geo: PoolGeometry, count_include_pad: bool):
    """Per-output count of window elements in the padded (or unpadded) input: (1, *O, 1)."""
    counts = []
    for size, (ulo, uhi), (mlo, mhi), (wlo, _), k, d, s, o in zip(
        geo.spatial,
        geo.user_pads,
        geo.mode_pads,
        geo.window_pads,
        geo.window,
        geo.dilation,
        geo.strides,
        geo.out_spatial,
    ):
        if geo.padding_mode in NUMPY_PAD_MODES:
            lo_edge, hi_edge = 0, size + mlo + mhi  # padded data counts as data
        elif count_include_pad:
            lo_edge, hi_edge = wlo - ulo, wlo + size + uhi
        else:
            lo_edge, hi_edge = wlo, wlo + size
        start = jnp.arange(o)[:, None] * s + jnp.arange(k)[None, :] * d  # (O, K) positions
        counts.append(((start >= lo_edge) & (start < hi_edge)).sum(1))  # (O,); O may be symbolic
    div = jnp.ones(())
    for c in counts:
        div = div[..., None] * c.reshape((1,) * div.ndim + c.shape)  # (O1, ..., Oi)
    return div[None, ..., None]  # (1, *O, 1)


def _refuse_windows_of_padding(geo: PoolGeometry, op: str) -> None:
    """A window that holds only padding has nothing to average without the padding
    (count_include_pad=False): PyTorch refuses such padding, and so does this."""
    if is_symbolic(geo.padded_spatial):
        return
    for size, (lo, _), k, d, s, o in zip(
        geo.padded_spatial, geo.window_pads, geo.window, geo.dilation, geo.strides, geo.out_spatial
    ):
        for i in range(o):
            if not any(0 <= i * s + t * d - lo < size for t in range(k)):
                raise ValueError(
                    f"{op}: `padding` (={geo.user_pads}) leaves windows of padding alone, which "
                    "have nothing to average with count_include_pad=False; pad at most half "
                    "the window."
                )


def avg_pool(
    inputs: ArrayLike,
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
) -> jax.Array:
    """Average pooling, a drop-in for `flax.linen.avg_pool` with PyTorch's options.

    Shapes: inputs (*batch, *S, C) or (*S, C) -> (*batch, *O, C) or (*O, C).

    Args:
      inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode,
        algorithm: as `jaxconv.pool`.
      count_include_pad: divide by the window elements inside the padded input
        (True, flax's default) or inside the input alone.
      divisor_override: divide by this number instead.

    Returns:
      The pooled array (a floating dtype).

    Example:
      >>> x = jnp.arange(4.0).reshape(1, 4, 1)
      >>> jaxconv.avg_pool(x, (2,), (2,), ((1, 0),), count_include_pad=False)[..., 0]
      Array([[0. , 1.5]], dtype=float32)
    """
    op = "avg_pool"
    x, geo = normalize_pool(
        inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, op
    )
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise TypeError(f"{op}: `inputs` must have a floating dtype, got {x.dtype}.")
    total = _reduce(x, identity("add", x.dtype), lax.add, geo, algorithm, op)
    if divisor_override is not None:
        if not isinstance(divisor_override, (int, float)) or divisor_override == 0:
            raise ValueError(
                f"{op}: `divisor_override` (={divisor_override!r}) must be a non-zero number."
            )
        return unflatten_batch(total / jnp.asarray(divisor_override, total.dtype), geo.batch_shape)
    if not count_include_pad:
        _refuse_windows_of_padding(geo, op)
    divisor = jnp.asarray(_divisor(geo, count_include_pad), total.dtype)
    return unflatten_batch(total / divisor, geo.batch_shape)


def sum_pool(
    inputs: ArrayLike,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    *,
    dilation: Sequence[int] | None = None,
    ceil_mode: bool = False,
    padding_mode: PaddingMode = "zeros",
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array:
    """Sum pooling (integer dtypes too); arguments as `jaxconv.pool`.

    Example:
      >>> jaxconv.sum_pool(jnp.array([[1, 2, 3]])[..., None], (2,))[..., 0]
      Array([[3, 5]], dtype=int32)
    """
    x, geo = normalize_pool(
        inputs, window_shape, strides, padding, dilation, ceil_mode, padding_mode, "sum_pool"
    )
    out = _reduce(x, identity("add", x.dtype), lax.add, geo, algorithm, "sum_pool")
    return unflatten_batch(out, geo.batch_shape)


def lp_pool(
    inputs: ArrayLike,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: PoolPadding = "VALID",
    *,
    p: float,
    ceil_mode: bool = False,
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array:
    """Power-average pooling, PyTorch's LPPool: (sum over the window of x**p) ** (1/p).

    p=1 is sum pooling; p=inf is max pooling. A window of zeros gives 0, with a zero
    gradient (PyTorch's), not NaN.

    Example:
      >>> jaxconv.lp_pool(jnp.array([[3.0, 4.0]])[..., None], (2,), p=2)[..., 0]
      Array([[5.]], dtype=float32)
    """
    op = "lp_pool"
    if (
        isinstance(p, (bool, np.bool_))
        or not isinstance(p, numbers.Real)
        or math.isnan(p)
        or not p > 0
    ):
        raise ValueError(f"{op}: `p` (={p!r}) must be a positive number, or inf.")
    if math.isinf(p):  # PyTorch: "at p = infinity, one gets max pooling"
        return max_pool(
            inputs, window_shape, strides, padding, ceil_mode=ceil_mode, algorithm=algorithm
        )
    x, geo = normalize_pool(inputs, window_shape, strides, padding, None, ceil_mode, "zeros", op)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{op}: `inputs` must have a floating dtype, got {x.dtype}.")
    total = _reduce(x**p, identity("add", x.dtype), lax.add, geo, algorithm, op)
    # A window of zeros is 0, with a zero gradient (not 0 * inf), as in PyTorch.
    zero = total == 0
    out = jnp.where(zero, 0, jnp.where(zero, 1, total) ** (1.0 / float(p)))
    return unflatten_batch(out.astype(x.dtype), geo.batch_shape)


def _check_unpool_indices(indices, plane: int, out_spatial, op: str) -> None:
    """Concrete indices outside [0, prod(output_shape)) are refused, as PyTorch refuses
    them; traced ones cannot be checked, and those are dropped (not wrapped)."""
    if isinstance(indices, jax.core.Tracer) or indices.size == 0:
        return
    values = np.asarray(indices)  # concrete: checked here, even inside an outer jit
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= plane:
        bad = low if low < 0 else high
        raise ValueError(
            f"{op}: `indices` holds {bad}, outside the output plane of `output_shape` "
            f"(={tuple(out_spatial)!r}, {plane} positions)."
        )


def max_unpool(inputs: ArrayLike, indices: ArrayLike, output_shape: Sequence[int]) -> jax.Array:
    """Inverse of `max_pool(..., return_indices=True)`: scatter values to their indices.

    Shapes: inputs and indices (*batch, *O, C) or (*O, C); `output_shape` is the
    spatial shape S; returns (*batch, *S, C) with zeros where nothing landed.

    Example:
      >>> x = jnp.array([[1.0, 3.0, 2.0, 0.0]])[..., None]
      >>> v, i = jaxconv.max_pool(x, (2,), (2,), return_indices=True)
      >>> jaxconv.max_unpool(v, i, (4,))[..., 0]
      Array([[0., 3., 2., 0.]], dtype=float32)
    """
    op = "max_unpool"
    inputs, indices = jnp.asarray(inputs), jnp.asarray(indices)
    if isinstance(output_shape, int) or not hasattr(output_shape, "__len__"):
        raise TypeError(f"{op}: `output_shape` must be a tuple of ints, got {output_shape!r}.")
    n = len(output_shape)
    out_spatial = int_tuple(output_shape, n, "output_shape", op, minimum=0)
    if indices.shape != inputs.shape:
        raise ValueError(
            f"{op}: `indices` shape {indices.shape} must equal `inputs` shape {inputs.shape}."
        )
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{op}: `indices` must be integers, got {indices.dtype}.")
    plane = math.prod(out_spatial)
    _check_unpool_indices(indices, plane, out_spatial, op)
    x, batch = flatten_batch(inputs, n, op)
    idx, _ = flatten_batch(indices, n, op)
    nb, c, pooled = x.shape[0], x.shape[-1], math.prod(x.shape[1:-1])
    flat_x = x.reshape(nb, pooled, c)  # (N, P, C)
    flat_i = idx.reshape(nb, pooled, c)  # (N, P, C)
    flat_i = jnp.where(flat_i < 0, plane, flat_i)  # negative: dropped, not wrapped
    rows = jnp.arange(nb)[:, None, None]
    cols = jnp.arange(c)[None, None, :]
    out = jnp.zeros((nb, plane, c), x.dtype)
    out = out.at[rows, flat_i, cols].set(flat_x, mode="drop")  # (N, prod(S), C)
    return unflatten_batch(out.reshape(nb, *out_spatial, c), batch)  # (N, *S, C)
