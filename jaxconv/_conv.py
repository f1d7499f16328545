"""Public convolution functions: validate and normalise once, choose, dispatch.

public call -> _padding / _layout (normalise) -> _select.choose -> algorithm
-> back to the caller's layout. All array work runs inside one `jax.jit` keyed
on the static `_Plan`, so eager calls compile once per configuration.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._algorithms import REGISTRY, Problem
from jaxconv._chunk import Chunks, chunked, piece_plan
from jaxconv._layout import Layout, resolve_layout, transpose
from jaxconv._padding import dilate_dim, int_tuple, resolve_padding, window_output_shape
from jaxconv._select import choose, chunks_for
from jaxconv._typing import Algorithm, ConvParams

_PRECISION_NAMES = ("default", "fastest", "high", "highest", "bfloat16", "tensorfloat32", "float32")


def normalize_precision(precision, op: str):
    """None, a name, a `lax.Precision` or a pair of them -> None, Precision or a pair."""
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    if isinstance(precision, str):
        try:
            return lax.Precision(precision.lower())
        except ValueError:
            raise ValueError(
                f"{op}: `precision` (={precision!r}) must be None, a lax.Precision, "
                f"one of {_PRECISION_NAMES} or a pair of them."
            ) from None
    if isinstance(precision, (tuple, list)) and len(precision) == 2:
        pair = tuple(normalize_precision(p, op) for p in precision)
        if None not in pair:
            return pair
    raise ValueError(
        f"{op}: `precision` (={precision!r}) must be None, a lax.Precision, "
        f"one of {_PRECISION_NAMES} or a pair of them."
    )


def _kind(dtype) -> str | None:
    for kind in ("integer", "floating", "complexfloating"):
        if jnp.issubdtype(dtype, getattr(jnp, kind)):
            return kind
    return None


def normalize_preferred(preferred, in_dtype: np.dtype, op: str):
    """Validate `preferred_element_type` against the input dtype, as lax does."""
    if preferred is None:
        return None
    try:
        pref = np.dtype(jax.dtypes.canonicalize_dtype(preferred))
    except TypeError:
        raise TypeError(
            f"{op}: `preferred_element_type` (={preferred!r}) is not a dtype."
        ) from None
    src, dst = _kind(in_dtype), _kind(pref)
    int_to_float = src == "integer" and dst == "floating"
    if dst is None or (src != dst and not int_to_float):
        raise TypeError(
            f"{op}: `preferred_element_type` (={pref}) is incompatible with the "
            f"input dtype {in_dtype}; allowed are (integer, integer), (integer, floating), "
            "(floating, floating) and (complex, complex)."
        )
    if not int_to_float and in_dtype.kind == "i" and pref.kind == "u":
        raise TypeError(
            f"{op}: `preferred_element_type` (={pref}) must keep the signedness of {in_dtype}."
        )
    if not int_to_float and pref.itemsize < in_dtype.itemsize:
        raise TypeError(
            f"{op}: `preferred_element_type` (={pref}) must not be narrower than {in_dtype}."
        )
    return pref


def check_operand(x, name: str, op: str):
    """Convert `x` to a jax array; refuse dtypes lax's conv refuses."""
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise TypeError(f"{op}: `{name}` must be an array, got {type(x).__name__}.") from None
    if _kind(x.dtype) is None:
        raise TypeError(f"{op}: `{name}` must have a numeric dtype, got {x.dtype}.")
    return x


def apply_out_sharding(out, sharding):
    """Honour lax's `out_sharding`: reshard on explicit meshes, else constrain."""
    if sharding is None:
        return out
    mesh = getattr(sharding, "mesh", None)
    explicit = mesh is None or jax.sharding.AxisType.Explicit in tuple(mesh.axis_types)
    if explicit:
        return jax.sharding.reshard(out, sharding)
    return jax.lax.with_sharding_constraint(out, sharding)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything static about one call: the jit cache key."""

    layout: Layout
    batch_groups: int  # > 1: the batch split is moved into the group axis
    groups: int
    params: ConvParams
    algorithm: str
    out_shape: tuple[int, ...]  # in the caller's layout
    empty: bool
    chunks: Chunks = Chunks("batch", 1)  # sequential slices that fit the memory budget


@functools.partial(jax.jit, static_argnums=2)
def _run(lhs, rhs, plan: _Plan):
    if plan.empty:
        return jnp.zeros(plan.out_shape, plan.params.out_dtype)
    if plan.chunks.count == 1:
        return _canonical_call(lhs, rhs, plan, plan.groups)
    # Pieces of the caller's arrays (batch_groups is 1 here), not of canonical views.
    layout, count = plan.layout, plan.chunks.count
    out_c = len(layout.canon_to_out) - 1
    take_x, take_w, axis, params = piece_plan(
        plan.chunks,
        lhs,
        rhs,
        plan.params,
        (layout.lhs_to_canon[0], layout.lhs_to_canon[-1], layout.lhs_to_canon[1]),
        (layout.rhs_to_canon[0], layout.rhs_to_canon[-1]),
        tuple(layout.canon_to_out.index(i) for i in (0, out_c, 1)),
    )
    piece = dataclasses.replace(plan, params=params)
    groups = plan.groups // count if plan.chunks.axis == "groups" else plan.groups
    run = chunked(
        lambda x, w: _canonical_call(x, w, piece, groups, REGISTRY[plan.algorithm].in_pieces),
        count,
        take_x,
        take_w,
        axis,
        whole=lambda x, w: _canonical_call(x, w, plan, plan.groups),
    )
    return run(lhs, rhs)


def _canonical_call(lhs, rhs, plan: _Plan, g: int, fn=None):
    """Into the canonical layout, the algorithm (`g` groups; `fn`, default the
    registry's), and back to the caller's."""
    x = transpose(lhs, plan.layout.lhs_to_canon)  # (N, *S, C)
    w = transpose(rhs, plan.layout.rhs_to_canon)  # (*K, I, O)
    if plan.batch_groups > 1:
        x = x.reshape(g, x.shape[0] // g, *x.shape[1:])  # (B, Nb, *S, I)
        x = jnp.moveaxis(x, 0, -2)  # (Nb, *S, B, I)
    else:
        x = x.reshape(*x.shape[:-1], g, x.shape[-1] // g)  # (N, *S, G, Ig)
    w = w.reshape(*w.shape[:-1], g, w.shape[-1] // g)  # (*K, Ig, G, Og)
    out = (fn or REGISTRY[plan.algorithm].fn)(x, w, plan.params)  # (N, *O, G, Og)
    out = out.reshape(*out.shape[:-2], -1)  # (N, *O, G*Og)
    return transpose(out, plan.layout.canon_to_out)


def _plan(
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
    preferred_element_type,
    algorithm,
    op,
):
    if lhs.ndim != rhs.ndim or lhs.ndim < 2:
        raise ValueError(
            f"{op}: `lhs` and `rhs` must have the same rank (>= 2: batch, feature, "
            f"*spatial), got lhs.shape={lhs.shape} and rhs.shape={rhs.shape}."
        )
    if lhs.dtype != rhs.dtype:
        raise TypeError(
            f"{op}: `lhs` and `rhs` must have the same dtype, got {lhs.dtype} and {rhs.dtype}."
        )
    if not isinstance(algorithm, str):
        raise TypeError(f"{op}: `algorithm` must be a string, got {algorithm!r}.")
    layout = resolve_layout(dimension_numbers, lhs.shape, rhs.shape, op)
    n_spatial = lhs.ndim - 2
    lhs_c = tuple(lhs.shape[i] for i in layout.lhs_to_canon)  # (N, *S, C)
    rhs_c = tuple(rhs.shape[i] for i in layout.rhs_to_canon)  # (*K, I, O)
    strides = int_tuple(window_strides, n_spatial, "window_strides", op)
    lhs_dil = int_tuple(lhs_dilation, n_spatial, "lhs_dilation", op)
    rhs_dil = int_tuple(rhs_dilation, n_spatial, "rhs_dilation", op)
    fgc = int_tuple(feature_group_count, 1, "feature_group_count", op)[0]
    bgc = int_tuple(batch_group_count, 1, "batch_group_count", op)[0]
    batch, channels = lhs_c[0], lhs_c[-1]
    in_features, out_features = rhs_c[-2], rhs_c[-1]
    if fgc > 1 and bgc > 1:
        raise ValueError(
            f"{op}: at most one of `feature_group_count` (={fgc}) and "
            f"`batch_group_count` (={bgc}) may be > 1."
        )
    if channels % fgc:
        raise ValueError(
            f"{op}: `feature_group_count` (={fgc}) must divide the lhs features (={channels})."
        )
    if channels // fgc != in_features:
        raise ValueError(
            f"{op}: lhs features (={channels}) / `feature_group_count` (={fgc}) must equal "
            f"the rhs input features (={in_features}); lhs.shape={lhs.shape}, rhs.shape={rhs.shape}."
        )
    groups = max(fgc, bgc)
    if out_features % groups:
        name = "feature_group_count" if fgc > 1 else "batch_group_count"
        raise ValueError(
            f"{op}: `{name}` (={groups}) must divide the rhs output features (={out_features})."
        )
    if batch % bgc:
        raise ValueError(
            f"{op}: `batch_group_count` (={bgc}) must divide the lhs batch size (={batch})."
        )
    dilated_in = tuple(map(dilate_dim, lhs_c[1:-1], lhs_dil))
    window = tuple(map(dilate_dim, rhs_c[:-2], rhs_dil))
    pads = resolve_padding(padding, dilated_in, window, strides, op)
    out_spatial = window_output_shape(dilated_in, window, strides, pads, op)
    pref = normalize_preferred(preferred_element_type, np.dtype(lhs.dtype), op)
    params = ConvParams(
        strides=strides,
        pads=pads,
        lhs_dilation=lhs_dil,
        rhs_dilation=rhs_dil,
        precision=normalize_precision(precision, op),
        preferred_element_type=pref,
        out_dtype=pref if pref is not None else np.dtype(lhs.dtype),
    )
    out_c = (batch // bgc, *out_spatial, out_features)  # (N, *O, O)
    problem = Problem(
        x_shape=(batch // bgc, *lhs_c[1:-1], groups, in_features),
        w_shape=(*rhs_c[:-1], groups, out_features // groups),
        out_spatial=out_spatial,
        params=params,
        dtype=str(lhs.dtype),
        backend=jax.default_backend(),
    )
    name = choose(algorithm, problem, op, record=op == "conv_general_dilated")
    chunks = chunks_for(algorithm, problem, name) if bgc == 1 else Chunks("batch", 1)
    out_shape = tuple(out_c[i] for i in layout.canon_to_out)
    empty = math.prod(out_shape) == 0 or in_features == 0 or math.prod(rhs_c[:-2]) == 0
    return _Plan(layout, bgc, groups, params, name, out_shape, empty, chunks), problem


def conv_general_dilated(
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
    *,
    algorithm: Algorithm = "auto",
):
    """General N-d convolution with dilation and groups, a drop-in for lax's.

    Same arguments, defaults and results as `jax.lax.conv_general_dilated`,
    computed by the algorithm `algorithm` names (see `jaxconv.ALGORITHMS`).

    Shapes (in lax's default layout; `dimension_numbers` permutes them):
      lhs: (N, C, *S) with C = G * Ig, or N = B * Nb for batch groups.
      rhs: (O, Ig, *K) with O divisible by the group count.
      returns: (N, O, *Out) where, per spatial dim,
        Out = floor((dilate(S, lhs_dilation) + lo + hi - dilate(K, rhs_dilation)) / stride) + 1.

    Args:
      lhs: input array, rank n + 2.
      rhs: kernel array, rank n + 2, same dtype as `lhs`.
      window_strides: n positive ints (or one int).
      padding: 'VALID', 'SAME', 'SAME_LOWER' or n (low, high) int pairs; negative crops.
      lhs_dilation: None or n positive ints: holes inserted in the input.
      rhs_dilation: None or n positive ints: holes inserted in the kernel (atrous).
      dimension_numbers: None, a `lax.ConvDimensionNumbers` or three layout
        strings such as ('NHWC', 'HWIO', 'NHWC').
      feature_group_count: split input features into this many groups.
      batch_group_count: split the input batch into this many groups.
      precision: None, a `lax.Precision`, its name, or a pair of them.
      preferred_element_type: accumulation and output dtype.
      out_sharding: optional output sharding, applied as a sharding constraint.
      algorithm: one of `jaxconv.ALGORITHMS`; "auto" chooses while tracing.

    Returns:
      The convolution, in the layout `dimension_numbers` gives for the output.

    Raises:
      ValueError: ranks, channels, groups, strides, dilations, padding or layout
        that do not fit, an unknown algorithm, or one that cannot run the problem.
      TypeError: mismatched or non-numeric dtypes, non-integer sizes.

    Example:
      >>> import jax.numpy as jnp, jaxconv
      >>> x, w = jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
      >>> jaxconv.conv_general_dilated(x, w, (1, 1), "SAME", algorithm="direct").shape
      (1, 4, 8, 8)
    """
    op = "conv_general_dilated"
    lhs = check_operand(lhs, "lhs", op)
    rhs = check_operand(rhs, "rhs", op)
    plan, _ = _plan(
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
        preferred_element_type,
        algorithm,
        op,
    )
    return apply_out_sharding(_run(lhs, rhs, plan), out_sharding)


def conv(
    lhs,
    rhs,
    window_strides,
    padding,
    precision=None,
    preferred_element_type=None,
    *,
    algorithm: Algorithm = "auto",
):
    """Convolution in lax's default NC*/OI* layout, a drop-in for `lax.conv`.

    Shapes: lhs (N, C, *S), rhs (O, C, *K) -> (N, O, *Out).

    Example:
      >>> import jax.numpy as jnp, jaxconv
      >>> jaxconv.conv(jnp.ones((2, 3, 9)), jnp.ones((5, 3, 3)), (2,), "VALID").shape
      (2, 5, 4)
    """
    return conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        precision=precision,
        preferred_element_type=preferred_element_type,
        algorithm=algorithm,
    )


def conv_with_general_padding(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    precision=None,
    preferred_element_type=None,
    *,
    algorithm: Algorithm = "auto",
):
    """Convolution with explicit padding and dilations, a drop-in for lax's.

    Shapes: lhs (N, C, *S), rhs (O, C, *K) -> (N, O, *Out).

    Example:
      >>> import jax.numpy as jnp, jaxconv
      >>> x, w = jnp.ones((1, 1, 5, 5)), jnp.ones((1, 1, 3, 3))
      >>> jaxconv.conv_with_general_padding(x, w, (1, 1), ((1, 1), (0, 0)), None, (2, 1)).shape
      (1, 1, 3, 3)
    """
    return conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        precision=precision,
        preferred_element_type=preferred_element_type,
        algorithm=algorithm,
    )


def candidate_algorithms(
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
):
    """Algorithms that can run these arguments within the workspace budget (what
    autotuning times). Takes arrays or `jax.ShapeDtypeStruct`s; computes nothing.

    Example:
      >>> import jax, jaxconv
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 3), "float32")
      >>> w = jax.ShapeDtypeStruct((1, 1, 3, 16), "float32")
      >>> "pointwise" in jaxconv.candidate_algorithms(
      ...     x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
      True
    """
    from jaxconv._select import tuning_candidates

    _, problem = _plan(
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
        preferred_element_type,
        "xla",
        "candidate_algorithms",
    )
    return tuning_candidates(problem)


def chosen_algorithm(
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
    *,
    algorithm: Algorithm = "auto",
):
    """The algorithm `conv_general_dilated` would run on these arguments.

    Takes arrays or `jax.ShapeDtypeStruct`s; computes nothing.

    Example:
      >>> import jax, jaxconv
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 3), "float32")
      >>> w = jax.ShapeDtypeStruct((3, 3, 3, 16), "float32")
      >>> jaxconv.chosen_algorithm(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      ...                          algorithm="im2col")
      'im2col'
    """
    plan, _ = _plan(
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
        preferred_element_type,
        algorithm,
        "chosen_algorithm",
    )
    return plan.algorithm
