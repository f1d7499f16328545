"""`reduce_window` from strided slices and an elementwise fold, differentiable throughout.

Three paths, chosen once per call from the computation and the init value:

* monoid (max, min, add, mul and their jnp twins): a window is a box, so the
  reduction is separable: fold each spatial axis in turn (k1 + k2 slices
  instead of k1 * k2).
* max/min with the identity init: the same separable fold, under a
  `custom_jvp` whose tangent follows the one element per window that
  `select_and_scatter` would pick (the first maximum in row-major order), so
  gradients equal `jax.grad` through `lax.reduce_window`, ties included. The
  tangent rule is linear (where + slice), so reverse mode is its transpose:
  pads of masked cotangents, with no select_and_scatter.
* any other binary callable: a row-major fold over every window tap from the
  init value, differentiated by plain autodiff (which lax cannot do).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxconv._algorithms._windows import axis_tap_window, tap_window, taps
from jaxconv._select import pool_choice
from jaxconv._shapes import (
    definitely,
    dilate_dim,
    int_tuple,
    is_symbolic,
    output_shape,
    padtype_to_pads,
    resolve_padding,
    window_output_shape,
)
from jaxconv._typing import PoolAlgorithm

_MONOIDS = {
    lax.max: "max",
    jnp.maximum: "max",
    lax.min: "min",
    jnp.minimum: "min",
    lax.add: "add",
    jnp.add: "add",
    operator.add: "add",
    lax.mul: "mul",
    jnp.multiply: "mul",
    operator.mul: "mul",
}
_COMBINE = {"max": lax.max, "min": lax.min, "add": lax.add, "mul": lax.mul}


def identity(kind: str, dtype):
    """The identity element of monoid `kind` for `dtype` (-inf / dtype min for max, ...)."""
    dtype = np.dtype(dtype)
    if kind in ("add", "mul"):
        return np.array(0 if kind == "add" else 1, dtype)
    if jnp.issubdtype(dtype, jnp.inexact):
        return np.array(-np.inf if kind == "max" else np.inf, dtype)
    if dtype == np.bool_:
        return np.array(kind == "min", dtype)
    info = jnp.iinfo(dtype)
    return np.array(info.min if kind == "max" else info.max, dtype)


@dataclasses.dataclass(frozen=True)
class WindowParams:
    """Normalised window geometry over every axis of the operand."""

    window: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    base_dilation: tuple[int, ...]
    window_dilation: tuple[int, ...]


def resolve_window(
    shape, window_dimensions, window_strides, padding, base_dilation, window_dilation, op: str
) -> WindowParams:
    """Validate lax-style window arguments for an operand of `shape`."""
    n = len(shape)
    window = int_tuple(window_dimensions, n, "window_dimensions", op)
    strides = int_tuple(window_strides, n, "window_strides", op)
    base = int_tuple(base_dilation, n, "base_dilation", op)
    wdil = int_tuple(window_dilation, n, "window_dilation", op)
    eff = tuple(map(dilate_dim, window, wdil))
    if isinstance(padding, str):
        # As lax: string padding sees the undilated operand and the dilated window.
        resolve_padding(padding, shape, eff, strides, op)  # validates the string
        pads = padtype_to_pads(shape, eff, strides, padding)
    else:
        pads = resolve_padding(padding, shape, eff, strides, op)
    window_output_shape(tuple(map(dilate_dim, shape, base)), eff, strides, pads, op)
    return WindowParams(window, strides, pads, base, wdil)


def out_shape(shape, p: WindowParams):
    """The output shape of a window op with `p` on an operand of `shape`."""
    eff = tuple(map(dilate_dim, p.window, p.window_dilation))
    return output_shape(tuple(map(dilate_dim, shape, p.base_dilation)), eff, p.strides, p.pads)


def _pad(x, value, p: WindowParams):
    config = [(lo, hi, d - 1) for (lo, hi), d in zip(p.pads, p.base_dilation)]
    if all(c == (0, 0, 0) for c in config):
        return x
    return lax.pad(x, value, config)


def _predilate(x, fill, p: WindowParams):
    """Apply base dilation (and with it all padding) up front; other paths pad per tap."""
    if all(d == 1 for d in p.base_dilation):
        return x, p
    zero = ((0, 0),) * x.ndim
    return _pad(x, fill, p), dataclasses.replace(p, pads=zero, base_dilation=(1,) * x.ndim)


def _axis_taps(x, fill, axis, k, s, d, lo, o):
    """The k windows of `x` along `axis`, each a strided slice padded (fusibly) along it."""
    for t in range(k):
        yield axis_tap_window(x, t, fill, axis, s, d, lo, o)


def _active_axes(x, p: WindowParams, out):
    """Axes that need folding, innermost first (the order that makes row-major ties work)."""
    for axis in reversed(range(x.ndim)):
        k, s, (lo, _) = p.window[axis], p.strides[axis], p.pads[axis]
        if k == 1 and s == 1 and lo == 0 and x.shape[axis] == out[axis]:
            continue
        yield axis, k, s, p.window_dilation[axis], lo, out[axis]


_REDUCE = {
    "max": lax.reduce_max,
    "min": lax.reduce_min,
    "add": lax.reduce_sum,
    "mul": lax.reduce_prod,
}


def _covers(x, p: WindowParams, axis: int, out) -> bool:
    """Whether the one window on `axis` spans the whole unpadded, undilated axis."""
    return (
        out[axis] == 1
        and p.window[axis] == x.shape[axis]
        and p.window_dilation[axis] == 1
        and p.pads[axis] == (0, 0)
        and p.base_dilation[axis] == 1
    )


def _separable(x, fill, kind, p: WindowParams, out):
    """Fold each axis in turn, innermost first: x -> out. A window spanning a whole
    axis becomes a plain reduction (XLA's reduce is faster than a long fold)."""
    combine = _COMBINE[kind]
    x, p = _predilate(x, fill, p)
    for axis, k, s, d, lo, o in _active_axes(x, p, out):
        if _covers(x, p, axis, out):
            x = lax.expand_dims(_REDUCE[kind](x, (axis,)), (axis,))
            continue
        acc = None
        for window in _axis_taps(x, fill, axis, k, s, d, lo, o):
            acc = window if acc is None else combine(acc, window)
        x = acc
    return x


_FOLD_MAX_TAPS = 27
"""Windows up to this many taps fold in one fused pass; larger ones go axis by axis."""


def _monoid(x, fill, kind, p: WindowParams, out):
    """A monoid over every window: one fused fold for small windows, separable for large."""
    covered = all(_covers(x, p, a, out) for a, *_ in _active_axes(x, p, out))
    if len(p.window) and np.prod(p.window) <= _FOLD_MAX_TAPS and not covered:
        return _fold(x, fill, _COMBINE[kind], p, out, start_with_init=False)
    return _separable(x, fill, kind, p, out)


# --------------------------------------------------------------- gradients
#
# The gradient of a window reduction is a scatter of the output cotangent back onto
# the input: every tap t sends its share c_t (the whole cotangent for a sum, the
# cotangent where t was the window's chosen element for a max) to the input positions
# o * s + t * d - lo. Written as one pad per tap, XLA checks bounds per tap and
# element. `phase_scatter` instead splits the input by stride phase: input i = q*s + r
# receives from the taps with (t*d - lo - r) divisible by s, at output q - m_t, so each
# phase is a sum of a few shifted output-sized arrays, and the phases interleave into
# the input in one more pass. The reductions' tangents are written as that scatter's
# `linear_transpose`, so reverse mode runs the scatter itself; forward mode runs its
# transpose (slices), and both stay linear: custom_jvp, no custom_vjp.
#
# XLA:CPU fuses cheap producers into every op that reads them, once per read. The
# scatter reads its inputs at up to taps shifts, so each input it reads is made by a
# pass of its own: the cotangent and the max's chosen tap are padded once and sliced
# per tap (`_sliced_terms`), the chosen tap is an int8 array (`_computed_once`), and
# the extremum it is chosen by comes from XLA's reduce_window. docs/design.md
# ("Pools") has the measurements.


def _phase_shifts(k: int, s: int, d: int, lo: int, out: int, size: int):
    """Per input phase r of one axis: (its length Q_r, [(tap, output shift m)])."""
    phases = []
    for r in range(s):
        length = max(-(-(size - r) // s), 0)
        terms = [(t, (t * d - lo - r) // s) for t in range(k) if (t * d - lo - r) % s == 0]
        phases.append((length, terms))
    return phases


def phase_scatter(term, p: WindowParams, in_shape, out, dtype):
    """The adjoint of gathering windows -> `in_shape`: the sum, over taps, of the
    output-shaped share each tap carries, sent to the input positions the tap reads.

    `term(tap, config)` returns tap `tap`'s share moved onto one input phase, as
    `lax.pad(share, 0, config)` would (`_sliced_terms` builds it).
    Every argument covers all axes; base dilation is 1.
    """
    axes = [
        _phase_shifts(k, s, d, lo, o, size)
        for k, s, d, (lo, _), o, size in zip(
            p.window, p.strides, p.window_dilation, p.pads, out, in_shape
        )
    ]

    def phase(rs):
        """The input positions of phase `rs` (one phase per axis): (*Q_r)."""
        lengths = [axes[a][r][0] for a, r in enumerate(rs)]
        acc = None
        for tap_shift in itertools.product(*(axes[a][r][1] for a, r in enumerate(rs))):
            tap = tuple(t for t, _ in tap_shift)
            config = [(m, q - o - m, 0) for (_, m), q, o in zip(tap_shift, lengths, out)]
            acc = term(tap, config) if acc is None else acc + term(tap, config)  # (*Q_r)
        return jnp.zeros(lengths, dtype) if acc is None else acc

    def interleave(axis, rs):
        """Phases rs + (r, ...) for every r on `axis` and beyond -> (*Q, S_axis, ...)."""
        if axis == len(in_shape):
            return phase(rs)
        s, size = p.strides[axis], in_shape[axis]
        if s == 1:
            return interleave(axis + 1, (*rs, 0))
        longest = axes[axis][0][0]
        parts = []
        for r in range(s):
            part = interleave(axis + 1, (*rs, r))  # (.., Q_r, ..)
            short = longest - part.shape[axis]
            if short:
                config = [(0, 0, 0)] * part.ndim
                config[axis] = (0, short, 0)
                part = lax.pad(part, jnp.zeros((), dtype), config)
            parts.append(part)
        y = jnp.stack(parts, axis=axis + 1)  # (.., Q, s, ..)
        y = y.reshape(*y.shape[:axis], longest * s, *y.shape[axis + 2 :])  # (.., Q*s, ..)
        return lax.slice_in_dim(y, 0, size, axis=axis)  # (.., S, ..)

    return interleave(0, ())


def _one_window_strides(p: WindowParams, out):
    """`p` with the stride of every axis that holds a single window raised to the
    window's extent: the same windows, and `phase_scatter` then moves each tap's share
    to the input it reads alone, not over every input position (a global pool's
    gradient would otherwise cost taps x input)."""
    strides = tuple(
        max(s, (k - 1) * d + 1) if definitely(lambda o=o: o == 1) else s
        for k, s, d, o in zip(p.window, p.strides, p.window_dilation, out)
    )
    return dataclasses.replace(p, strides=strides)


def _shift_margins(p: WindowParams, in_shape, out):
    """Per axis (low, high): how far past an output-shaped array `phase_scatter` moves
    any tap's share, on any phase."""
    margins = []
    for k, s, d, (lo, _), o, size in zip(
        p.window, p.strides, p.window_dilation, p.pads, out, in_shape
    ):
        phases = _phase_shifts(k, s, d, lo, o, size)
        shifts = [(q, m) for q, terms in phases for _, m in terms]
        margins.append((max(0, *(m for _, m in shifts)), max(0, *(q - o - m for q, m in shifts))))
    return margins


def _pad_margins(a, fill, margins):
    """(*out) -> (*out + margins): `a` padded once for `_sliced_terms`."""
    return lax.pad(a, jnp.asarray(fill, a.dtype), [(lo, hi, 0) for lo, hi in margins])


def _sliced_terms(share, padded, margins, out):
    """`phase_scatter`'s terms as `share(tap, *slices)` of the `padded` arrays
    (`_pad_margins`): each slice is the view of them that a tap moves onto a phase.

    Padding once and slicing keeps what the shares read a pass of its own: a pad per
    term would let XLA fuse, and recompute, their producers in every term.
    """

    def term(tap, config):
        start = [lo - m for (lo, _), (m, _, _) in zip(margins, config)]
        limit = [lo + o + h for (lo, _), o, (_, h, _) in zip(margins, out, config)]
        return share(tap, *(lax.slice(a, start, limit) for a in padded))  # (*Q_r)

    return term


def _computed_once(a):
    """`a`, made by a pass of its own: XLA:CPU does not fuse a reduce into the ops
    that read it, so what they read at many shifts (a window's chosen tap) is computed
    once, not once per read. The reduce adds `a` to zero: a copy."""
    stacked = jnp.stack([a, jnp.zeros_like(a)])  # (2, *a.shape)
    return jnp.sum(stacked, axis=0, dtype=a.dtype)  # (*a.shape)


def _chosen_tap(x, value, p: WindowParams, out):
    """The row-major index of each window's chosen element: the first tap that holds
    its extremum `value`, or a NaN (the extremum is NaN exactly when one is there, and
    PyTorch sends the gradient to it). Windows of padding alone choose tap 0.

    Each tap compares its in-bounds slice of x with the matching slice of `value` and
    pads the boolean, so no padded window of x is shared with the fold that made
    `value` (XLA would copy each one out whole). Taps are visited last to first: each
    `where` then depends on `value` alone, not on the taps before it.
    """
    kernel = p.window
    dtype = jnp.int8 if math.prod(kernel) <= 127 else jnp.int32
    index = jnp.zeros(out, dtype)
    for flat, tap in reversed(list(enumerate(taps(kernel)))):
        start, limit, v_start, v_limit, config = [], [], [], [], []
        for t, d, s, (lo, _), o, size in zip(
            tap, p.window_dilation, p.strides, p.pads, out, x.shape
        ):
            first = max(0, -(-(lo - t * d) // s))  # first output whose input is in bounds
            last = min(o - 1, (size - 1 + lo - t * d) // s)
            start.append(first * s + t * d - lo)
            limit.append(last * s + t * d - lo + 1)
            v_start.append(first)
            v_limit.append(last + 1)
            config.append((first, o - 1 - last, 0))
        if any(a > b for a, b in zip(v_start, v_limit)):  # this tap only meets padding
            continue
        window = lax.slice(x, start, limit, p.strides)
        hit = (window == lax.slice(value, v_start, v_limit)) | jnp.isnan(window)
        hit = lax.pad(hit, False, config)  # (*out)
        index = jnp.where(hit, jnp.asarray(flat, dtype), index)
    return index


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _select_reduce(x, fill, kind, p, out):
    """Max/min over windows; the gradient goes to one element per window, the first
    extremum in row-major order (a NaN first), as `phase_scatter`s."""
    return _monoid(x, fill, kind, p, out)


@_select_reduce.defjvp
def _select_reduce_jvp(kind, p, out, primals, tangents):
    (x, fill), (tx, _) = primals, tangents
    value = _select_reduce(x, fill, kind, p, out)
    p = _one_window_strides(p, out)
    # The extremum the index compares with comes from XLA's reduce_window, which XLA
    # makes once; the fold would be fused into, and recomputed by, every consumer
    # below. The output itself stays the fold, differentiable by this rule again.
    extremum = reduce_window_xla(lax.stop_gradient(x), identity(kind, x.dtype), _COMBINE[kind], p)
    index = _computed_once(_chosen_tap(x, extremum, p, out))  # (*out) int8
    flat = {tap: i for i, tap in enumerate(taps(p.window))}

    margins = _shift_margins(p, x.shape, out)
    padded_index = _pad_margins(index, -1, margins)

    def scatter(ct):  # ct (*out) -> (*x.shape): each window's cotangent to its choice
        zero = jnp.zeros((), ct.dtype)
        term = _sliced_terms(
            lambda tap, i, c: jnp.where(i == flat[tap], c, zero),
            (padded_index, _pad_margins(ct, 0, margins)),
            margins,
            out,
        )
        return phase_scatter(term, p, x.shape, out, ct.dtype)

    (tangent,) = jax.linear_transpose(scatter, jax.ShapeDtypeStruct(out, tx.dtype))(tx)
    return value, tangent


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _sum_reduce(x, p, out):
    """The sum over every window, with its gradient as one `phase_scatter`."""
    return _monoid(x, jnp.zeros((), x.dtype), "add", p, out)


@_sum_reduce.defjvp
def _sum_reduce_jvp(p, out, primals, tangents):
    (x,), (tx,) = primals, tangents
    value = _sum_reduce(x, p, out)
    p = _one_window_strides(p, out)
    margins = _shift_margins(p, x.shape, out)

    def scatter(ct):  # ct (*out) -> (*x.shape)
        term = _sliced_terms(lambda tap, c: c, (_pad_margins(ct, 0, margins),), margins, out)
        return phase_scatter(term, p, x.shape, out, ct.dtype)

    (tangent,) = jax.linear_transpose(scatter, jax.ShapeDtypeStruct(out, tx.dtype))(tx)
    return value, tangent


def window_tap(x, tap, fill, p: WindowParams, out):
    """What window tap `tap` meets at every output position, without padding all of `x`
    (`_windows.tap_window`)."""
    return tap_window(x, tap, fill, p.pads, p.strides, p.window_dilation, out, p.base_dilation)


def _tap_valid(tap, shape, p: WindowParams, out):
    """Static mask (*out) of the output positions where tap `tap` meets a real element.

    Padding and base-dilation holes are not folded, as XLA does: that matters
    only for reducers where the init value is not an identity.
    """
    mask = np.ones((), bool)
    for t, d, s, (lo, _), o, size, b in zip(
        tap, p.window_dilation, p.strides, p.pads, out, shape, p.base_dilation
    ):
        pos = np.arange(o) * s + t * d - lo  # position in the dilated input
        ok = (pos >= 0) & (pos < dilate_dim(size, b)) & (pos % b == 0)
        mask = np.multiply.outer(mask, ok)
    return mask


def _fold(x, init, computation, p: WindowParams, out, start_with_init: bool):
    """Row-major fold over every window tap, from `init` or from the first tap."""
    if not start_with_init:
        acc = None
        for tap in taps(p.window):
            window = window_tap(x, tap, init, p, out)
            acc = window if acc is None else computation(acc, window)
        return acc
    (acc,) = _fold_operands((x,), (init,), lambda a, b: (computation(a[0], b[0]),), p, out)
    return acc


def _fold_operands(xs, inits, combine, p: WindowParams, out):
    """The row-major fold from the init values over every tap, of one operand or several
    of one shape: `combine(acc_tuple, window_tuple) -> tuple`. Padding and base-dilation
    holes are not folded, as XLA does (this matters only where an init value is not an
    identity)."""
    acc = tuple(jnp.broadcast_to(init, out) for init in inits)
    for tap in taps(p.window):
        valid = _tap_valid(tap, xs[0].shape, p, out)
        if not valid.any():
            continue
        windows = tuple(window_tap(x, tap, init, p, out) for x, init in zip(xs, inits))
        step = tuple(combine(acc, windows))
        if not valid.all():
            step = tuple(jnp.where(jnp.asarray(valid), s, a) for s, a in zip(step, acc))
        acc = step
    return acc


def elementwise(computation, variadic: bool):
    """`computation`, written for scalars as lax traces it, applied to whole arrays by
    vmap over their elements: a reducer that means something else on arrays (e.g. one
    calling `jnp.all`) then gives lax's result. Arrays and tuples of arrays in and out."""

    def combine(acc, windows):
        shape = acc[0].shape
        flat_a = tuple(a.reshape(-1) for a in acc)
        flat_w = tuple(w.reshape(-1) for w in windows)
        if variadic:
            out = jax.vmap(computation)(flat_a, flat_w)
        else:
            out = (jax.vmap(computation)(flat_a[0], flat_w[0]),)
        return tuple(o.reshape(shape) for o in out)

    return combine


def monoid_kind(computation, init_value, dtype):
    """'max'/'min'/'add'/'mul' if `computation` is a known monoid, else None; and
    whether `init_value` is (concretely) its identity."""
    kind = _MONOIDS.get(computation)
    if kind is None:
        return None, False
    try:
        init = np.asarray(init_value)
    except (TypeError, jax.errors.TracerArrayConversionError):
        return kind, False
    return kind, bool(init.shape == () and init == identity(kind, dtype))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def reduce_window_direct(x, init_value, computation, p: WindowParams, kind, is_identity):
    """The primitive path: pad, then fold (separable for monoids).

    `kind, is_identity = monoid_kind(computation, init_value, x.dtype)`, decided
    by the caller while `init_value` is still concrete. A computation that is no known
    monoid is traced on scalars (`elementwise`).
    """
    with jax.named_scope("jaxconv.reduce_window"):
        init_value = jnp.asarray(init_value, x.dtype)
        out = out_shape(x.shape, p)
        if any(definitely(lambda o=o: o == 0) for o in out):
            return jnp.broadcast_to(init_value, out)
        if kind is None:
            (y,) = _fold_operands((x,), (init_value,), elementwise(computation, False), p, out)
            return y
        if not is_identity:
            return _fold(x, init_value, computation, p, out, start_with_init=True)
        floating = jnp.issubdtype(x.dtype, jnp.floating)
        if floating and kind in ("max", "min", "add"):
            x, p = _predilate(x, init_value, p)  # base dilation first; its pads transpose
            if kind == "add":
                return _sum_reduce(x, p, out)
            return _select_reduce(x, init_value, kind, p, out)
        return _monoid(x, init_value, kind, p, out)


@functools.partial(jax.jit, static_argnums=(2, 3))
def reduce_window_variadic(xs, inits, computation, p: WindowParams):
    """Several operands of one shape folded together: `computation((a, ...), (b, ...))`
    -> (c, ...), traced on scalars. Returns a tuple."""
    with jax.named_scope("jaxconv.reduce_window"):
        inits = tuple(jnp.asarray(i, x.dtype) for i, x in zip(inits, xs))
        out = out_shape(xs[0].shape, p)
        if any(definitely(lambda o=o: o == 0) for o in out):
            return tuple(jnp.broadcast_to(i, out) for i in inits)
        return _fold_operands(xs, inits, elementwise(computation, True), p, out)


def reduce_window_xla(x, init_value, computation, p: WindowParams):
    """lax.reduce_window itself: the oracle and escape hatch (not differentiable in general)."""
    return lax.reduce_window(
        x, init_value, computation, p.window, p.strides, p.pads, p.base_dilation, p.window_dilation
    )


def reduce_window(
    operand: ArrayLike,
    init_value: ArrayLike,
    computation: Callable,
    window_dimensions: Sequence[int],
    window_strides: Sequence[int] | None = None,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    base_dilation: Sequence[int] | None = None,
    window_dilation: Sequence[int] | None = None,
    *,
    algorithm: PoolAlgorithm = "auto",
) -> jax.Array:
    """Windowed reduction, a differentiable drop-in for `jax.lax.reduce_window`.

    Shapes: operand (*D) -> (*Out) with, per axis,
    Out = floor((dilate(D, base_dilation) + lo + hi - dilate(W, window_dilation)) / stride) + 1.

    Args:
      operand: array to reduce.
      init_value: scalar starting value; also the padding value.
      computation: binary function: lax.max/min/add/mul, their jnp twins, or
        any callable (applied as a row-major fold from `init_value`).
      window_dimensions: window size per axis.
      window_strides: stride per axis (default 1).
      padding: 'VALID', 'SAME', 'SAME_LOWER' or (lo, hi) pairs per axis.
      base_dilation: holes inserted between operand elements.
      window_dilation: holes inserted between window taps.
      algorithm: "auto", "direct" (primitives) or "xla" (lax.reduce_window).

    Returns:
      The reduced array, dtype of `operand`.

    Raises:
      ValueError / TypeError: sizes of the wrong length or sign, bad padding, an
        unknown algorithm.

    Example:
      >>> x = jnp.arange(16.0).reshape(4, 4)
      >>> jaxconv.reduce_window(x, -jnp.inf, jax.lax.max, (2, 2), (2, 2), "VALID")
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
    """
    op = "reduce_window"
    if not callable(computation):
        raise TypeError(f"{op}: `computation` must be a binary callable, got {computation!r}.")
    variadic = isinstance(operand, (tuple, list))
    operands = tuple(map(jnp.asarray, operand)) if variadic else (jnp.asarray(operand),)
    inits = tuple(init_value) if isinstance(init_value, (tuple, list)) else (init_value,)
    if len(inits) != len(operands) or not operands:
        raise TypeError(
            f"{op}: `init_value` must hold one scalar per operand ({len(operands)}), "
            f"got {init_value!r}."
        )
    for i, init in enumerate(inits):
        if jnp.ndim(init) != 0:
            raise TypeError(f"{op}: `init_value` must be scalars, got shape {jnp.shape(init)}.")
        if jnp.result_type(init) != operands[i].dtype and not _weakly_typed(init):
            raise TypeError(
                f"{op}: `init_value` dtype {jnp.result_type(init)} must match the operand "
                f"dtype {operands[i].dtype}."
            )
    if any(x.shape != operands[0].shape for x in operands):
        raise TypeError(
            f"{op}: the operands must have one shape, got {[x.shape for x in operands]}."
        )
    p = resolve_window(
        operands[0].shape,
        window_dimensions,
        window_strides,
        padding,
        base_dilation,
        window_dilation,
        op,
    )
    name = pool_choice(algorithm, op, is_symbolic(operands[0].shape))
    if name == "xla":
        if variadic:
            return lax.reduce_window(
                operands,
                inits,
                computation,
                p.window,
                p.strides,
                p.pads,
                p.base_dilation,
                p.window_dilation,
            )
        return reduce_window_xla(operands[0], init_value, computation, p)
    if variadic:
        return reduce_window_variadic(operands, inits, computation, p)
    kind, is_identity = monoid_kind(computation, init_value, operands[0].dtype)
    return reduce_window_direct(operands[0], init_value, computation, p, kind, is_identity)


def _weakly_typed(value) -> bool:
    """A Python scalar, which takes the operand's dtype as lax lets it."""
    return isinstance(value, (int, float, complex, bool)) or (
        hasattr(value, "weak_type") and value.weak_type
    )
