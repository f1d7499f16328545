"""Public convolution functions: check once, choose once, run.

conv_general_dilated -> _spec.conv_spec (check, normalise) -> _select.conv_choice
(algorithm + pieces) -> execute (one jit keyed on the static spec and choice:
caller's layout -> canonical -> algorithm, whole or in pieces -> caller's layout)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxconv._algorithms import REGISTRY
from jaxconv._algorithms._base import forward_only
from jaxconv._layout import transpose
from jaxconv._pieces import Pieces, piece_bytes, run_in_pieces, takers
from jaxconv._select import Choice, auto_conv, conv_candidates, conv_choice, record
from jaxconv._spec import ConvSpec, apply_out_sharding, check_operand, conv_spec
from jaxconv._typing import Algorithm, DTypeLike, Padding, PrecisionLike, Sharding


@functools.partial(jax.jit, static_argnums=(2, 3))
def execute(lhs, rhs, spec: ConvSpec, choice: Choice):
    """The convolution `spec` describes, run as `choice` says; lhs, rhs and the result
    in the caller's layout."""
    if spec.empty:
        return jnp.zeros(spec.out_shape, spec.problem.params.out_dtype)
    algorithm = REGISTRY[choice.algorithm]
    run = functools.partial(_run, spec=spec, algorithm=algorithm, pieces=choice.pieces)
    if algorithm.differentiated is not None:
        run = forward_only(
            run, lambda x, w: _canonical_call(x, w, spec, spec.groups, algorithm.differentiated)
        )
    return run(lhs, rhs)


def _run(lhs, rhs, spec: ConvSpec, algorithm, pieces: Pieces):
    """`algorithm` on lhs and rhs, whole or in `pieces`."""
    count = pieces.count
    if count == 1 or spec.batch_groups > 1:
        return _canonical_call(lhs, rhs, spec, spec.groups, algorithm.fn)
    # Pieces of the caller's arrays, not of canonical views (a loop would copy those).
    layout = spec.layout
    out_c = len(layout.canon_to_out) - 1
    take_x, take_w, axis, params = takers(
        pieces,
        lhs,
        rhs,
        spec.problem.params,
        (layout.lhs_to_canon[0], layout.lhs_to_canon[-1], layout.lhs_to_canon[1]),
        (layout.rhs_to_canon[0], layout.rhs_to_canon[-1]),
        tuple(layout.canon_to_out.index(i) for i in (0, out_c, 1)),
    )
    piece_spec = dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, params=params))
    groups = spec.groups // count if pieces.axis == "groups" else spec.groups
    run = run_in_pieces(
        lambda x, w: _canonical_call(x, w, piece_spec, groups, algorithm.in_pieces),
        count,
        take_x,
        take_w,
        axis,
        whole=lambda x, w: _canonical_call(x, w, spec, spec.groups, algorithm.fn),
    )
    return run(lhs, rhs)


def _canonical_call(lhs, rhs, spec: ConvSpec, g: int, fn):
    """Into the canonical layout with `g` groups, `fn`, and back to the caller's."""
    x = transpose(lhs, spec.layout.lhs_to_canon)  # (N, *S, C)
    w = transpose(rhs, spec.layout.rhs_to_canon)  # (*K, I, O)
    if spec.batch_groups > 1:
        x = x.reshape(g, x.shape[0] // g, *x.shape[1:])  # (B, Nb, *S, I)
        x = jnp.moveaxis(x, 0, -2)  # (Nb, *S, B, I)
    else:
        x = x.reshape(*x.shape[:-1], g, x.shape[-1] // g)  # (N, *S, G, Ig)
    w = w.reshape(*w.shape[:-1], g, w.shape[-1] // g)  # (*K, Ig, G, Og)
    out = fn(x, w, spec.problem.params)  # (N, *O, G, Og)
    out = out.reshape(*out.shape[:-2], -1)  # (N, *O, G*Og)
    return transpose(out, spec.layout.canon_to_out)


def _program(lhs, rhs, spec: ConvSpec):
    """What autotuning times for a candidate: `execute` on arrays like lhs and rhs."""
    specs = (jax.ShapeDtypeStruct(lhs.shape, lhs.dtype), jax.ShapeDtypeStruct(rhs.shape, rhs.dtype))

    def program(choice: Choice):
        return functools.partial(execute, spec=spec, choice=choice), specs

    return program


def _check(
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
    op,
):
    """Arrays or `ShapeDtypeStruct`s, and the checked `ConvSpec` of the call."""
    lhs, rhs = check_operand(lhs, "lhs", op), check_operand(rhs, "rhs", op)
    spec = conv_spec(
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
        op,
    )
    return lhs, rhs, spec


def conv_general_dilated(
    lhs: jax.typing.ArrayLike,
    rhs: jax.typing.ArrayLike,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...] | None = None,
    rhs_dilation: tuple[int, ...] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    out_sharding: Sharding | None = None,
    *,
    algorithm: Algorithm = "auto",
) -> jax.Array:
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
        Strings are refused with `lhs_dilation`, as in lax.
      lhs_dilation: None or n positive ints: holes inserted in the input.
      rhs_dilation: None or n positive ints: holes inserted in the kernel (atrous).
      dimension_numbers: None, a `lax.ConvDimensionNumbers` or three layout
        strings such as ('NHWC', 'HWIO', 'NHWC').
      feature_group_count: split input features into this many groups.
      batch_group_count: split the input batch into this many groups.
      precision: None, a `lax.Precision`, its name, or a pair of them.
      preferred_element_type: output dtype; 16-bit floats still accumulate in float32.
      out_sharding: optional output sharding, applied as a sharding constraint.
      algorithm: one of `jaxconv.ALGORITHMS`; "auto" chooses while tracing.

    Returns:
      The convolution, in the layout `dimension_numbers` gives for the output.

    Raises:
      ValueError: ranks, channels, groups, strides, dilations, padding or layout
        that do not fit, an unknown algorithm, or one that cannot run the problem.
      TypeError: mismatched or non-numeric dtypes, non-integer sizes.

    Example:
      >>> x, w = jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
      >>> jaxconv.conv_general_dilated(x, w, (1, 1), "SAME", algorithm="direct").shape
      (1, 4, 8, 8)
    """
    op = "conv_general_dilated"
    lhs, rhs, spec = _check(
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
        op,
    )
    choice = conv_choice(algorithm, spec.problem, op, _program(lhs, rhs, spec))
    if spec.batch_groups > 1:
        choice = Choice(choice.algorithm)  # the batch split is a view: no pieces
    record(op, choice, spec.problem.x_shape, spec.problem.w_shape)
    return apply_out_sharding(execute(lhs, rhs, spec, choice), out_sharding)


def conv(
    lhs: jax.typing.ArrayLike,
    rhs: jax.typing.ArrayLike,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    *,
    algorithm: Algorithm = "auto",
) -> jax.Array:
    """Convolution in lax's default NC*/OI* layout, a drop-in for `lax.conv`.

    Shapes: lhs (N, C, *S), rhs (O, C, *K) -> (N, O, *Out).

    Example:
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
    lhs: jax.typing.ArrayLike,
    rhs: jax.typing.ArrayLike,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...] | None,
    rhs_dilation: tuple[int, ...] | None,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    *,
    algorithm: Algorithm = "auto",
) -> jax.Array:
    """Convolution with explicit padding and dilations, a drop-in for lax's.

    Shapes: lhs (N, C, *S), rhs (O, C, *K) -> (N, O, *Out).

    Example:
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


class ConvPlan(NamedTuple):
    """What `conv_general_dilated` would run on some arguments, and what it would hold.

    Attributes:
      algorithm: a name in `jaxconv.ALGORITHMS`.
      pieces: (axis, count) of the sequential pieces it runs in; count 1 is whole.
      workspace_bytes: the forward scratch it holds at once (estimated from the shapes).
      io_bytes: the bytes of its arguments and output, lax's whole forward peak.
      exact_nonfinite: whether NaN and ±inf land where lax's do.
    """

    algorithm: str
    pieces: Pieces
    workspace_bytes: int
    io_bytes: int
    exact_nonfinite: bool


def conv_plan(
    lhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    rhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...] | None = None,
    rhs_dilation: tuple[int, ...] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    *,
    algorithm: Algorithm = "auto",
) -> ConvPlan:
    """The `ConvPlan` of a `conv_general_dilated` call. Takes arrays or
    `jax.ShapeDtypeStruct`s and computes nothing (under `jaxconv.autotune()` it reads
    the cache, and times nothing).

    Example:
      >>> x = jax.ShapeDtypeStruct((8, 56, 56, 64), "float32")
      >>> w = jax.ShapeDtypeStruct((3, 3, 64, 64), "float32")
      >>> plan = jaxconv.conv_plan(x, w, (1, 1), "SAME",
      ...                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> plan.algorithm, plan.pieces.count > 1, plan.workspace_bytes < plan.io_bytes
      ('winograd4', True, True)
    """
    op = "conv_plan"
    _, _, spec = _check(
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
        op,
    )
    choice = conv_choice(algorithm, spec.problem, op)
    problem, chosen = spec.problem, REGISTRY[choice.algorithm]
    if choice.pieces.count == 1:
        workspace = chosen.workspace(problem, False)
    else:
        workspace = piece_bytes(problem, chosen, *choice.pieces)
    return ConvPlan(
        choice.algorithm,
        choice.pieces,
        workspace,
        problem.io_bytes,
        chosen.exact_nonfinite(problem),
    )


def chosen_algorithm(
    lhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    rhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...] | None = None,
    rhs_dilation: tuple[int, ...] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    *,
    algorithm: Algorithm = "auto",
) -> str:
    """The algorithm `conv_general_dilated` would run on these arguments
    (`conv_plan(...).algorithm`). Takes arrays or `jax.ShapeDtypeStruct`s; computes
    nothing.

    Example:
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 3), "float32")
      >>> w = jax.ShapeDtypeStruct((3, 3, 3, 16), "float32")
      >>> jaxconv.chosen_algorithm(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
      'xla'
    """
    return conv_plan(
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
        algorithm=algorithm,
    ).algorithm


def candidate_algorithms(
    lhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    rhs: jax.typing.ArrayLike | jax.ShapeDtypeStruct,
    window_strides: int | tuple[int, ...],
    padding: Padding,
    lhs_dilation: tuple[int, ...] | None = None,
    rhs_dilation: tuple[int, ...] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> list[str]:
    """The algorithms autotuning would time on these arguments: those meant for this
    backend that fit the memory budget (in pieces where need be). Takes arrays or
    `jax.ShapeDtypeStruct`s; computes nothing.

    Example:
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 3), "float32")
      >>> w = jax.ShapeDtypeStruct((1, 1, 3, 16), "float32")
      >>> "pointwise" in jaxconv.candidate_algorithms(
      ...     x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
      True
    """
    _, _, spec = _check(
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
        "candidate_algorithms",
    )
    rule = auto_conv(spec.problem)
    return [choice.algorithm for choice in conv_candidates(spec.problem, rule)]
