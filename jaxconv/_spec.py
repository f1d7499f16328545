"""User arguments, checked once, and the static problem record every algorithm receives.

`conv_spec` turns lax's arguments into a `ConvSpec`: the layout permutations, and a
`Problem` in canonical channels-last terms, x (N, *S, G, Ig) and w (*K, Ig, G, Og),
with normalised `ConvParams`. After this nothing re-validates: the selection, the
algorithms and the pieces read only these records. Messages name the operation,
the argument and the value, in lax's words.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._layout import Layout, channels_last, resolve_layout
from jaxconv._shapes import (
    Pads,
    definitely,
    dilate_dim,
    int_tuple,
    is_symbolic,
    phases_stack,
    resolve_padding,
    transpose_pads,
    window_output_shape,
)

_PRECISION_NAMES = ("default", "fastest", "high", "highest", "bfloat16", "tensorfloat32", "float32")


@dataclasses.dataclass(frozen=True)
class ConvParams:
    """Normalised convolution parameters, in canonical channels-last terms.

    Attributes:
      strides: window strides, one per spatial dimension.
      pads: (low, high) padding applied after input dilation; may be negative.
      lhs_dilation: input (transposed-conv) dilation.
      rhs_dilation: kernel (atrous) dilation.
      precision: passed to `lax.dot_general`, as normalised by `normalize_precision`.
      preferred_element_type: the output dtype asked for, or None.
      out_dtype: the dtype of the result.
    """

    strides: tuple[int, ...]
    pads: Pads
    lhs_dilation: tuple[int, ...]
    rhs_dilation: tuple[int, ...]
    precision: Any
    preferred_element_type: np.dtype | None
    out_dtype: np.dtype

    @property
    def acc_dtype(self) -> np.dtype:
        """Accumulation dtype: the output dtype, but float32 for 16-bit floats (as XLA
        accumulates them), also where `preferred_element_type` asks for 16 bits."""
        if self.out_dtype.name in ("float16", "bfloat16"):
            return np.dtype("float32")
        return self.out_dtype


@dataclasses.dataclass(frozen=True)
class Problem:
    """One convolution, in canonical terms, without arrays: what selection reads.

    Sizes may be symbolic (`jax.export`); `symbolic` says whether any is.
    """

    x_shape: tuple  # (N, *S, G, Ig)
    w_shape: tuple  # (*K, Ig, G, Og)
    out_spatial: tuple  # (*O)
    params: ConvParams
    dtype: str
    backend: str

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.w_shape[:-3]

    @property
    def groups(self) -> int:
        return self.x_shape[-2]

    @property
    def symbolic(self) -> bool:
        return is_symbolic(self.x_shape, self.w_shape, self.out_spatial)

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def compute_itemsize(self) -> int:
        """Bytes per element of computed workspaces: 16-bit inputs are computed in float32."""
        return max(self.itemsize, 4)

    @property
    def out_elements(self):
        n, groups, og = self.x_shape[0], self.groups, self.w_shape[-1]
        return n * math.prod(self.out_spatial) * groups * og

    @property
    def out_bytes(self):
        return self.out_elements * self.itemsize

    @property
    def io_bytes(self):
        """Bytes of the arguments and the output: lax's whole forward peak on CPU."""
        operands = (math.prod(self.x_shape) + math.prod(self.w_shape)) * self.itemsize
        return operands + self.out_bytes

    @property
    def padded_bytes(self):
        """Bytes of the padded (and lhs-dilated) input copy; 0 when nothing is padded."""
        p = self.params
        if all(lo == hi == 0 for lo, hi in p.pads) and all(d == 1 for d in p.lhs_dilation):
            return 0
        spatial = [
            dilate_dim(s, d) + lo + hi
            for s, d, (lo, hi) in zip(self.x_shape[1:-2], p.lhs_dilation, p.pads)
        ]
        channels = math.prod(self.x_shape[-2:])
        return self.x_shape[0] * math.prod(spatial) * channels * self.itemsize


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A checked `conv_general_dilated` call: everything static about it."""

    layout: Layout
    batch_groups: int  # > 1: the batch split is moved into the group axis
    groups: int
    problem: Problem
    out_shape: tuple  # in the caller's layout
    empty: bool  # the output, the input features or the kernel has no element


@dataclasses.dataclass(frozen=True)
class TransposeSpec:
    """A checked `conv_transpose` call. `problem` is the equivalent convolution of the
    input dilated by the strides (stride 1, `lhs_dilation` = strides), in canonical
    terms; `kernel` (*K) and `transpose_kernel` say how to read the caller's kernel."""

    layout: Layout
    problem: Problem
    strides: tuple[int, ...]
    pads: Pads  # of the lhs-dilated convolution, output_padding included
    rhs_dilation: tuple[int, ...]
    kernel: tuple[int, ...]
    groups: int
    transpose_kernel: bool

    @property
    def out_elements(self):
        return self.problem.out_elements

    @property
    def phases_stack(self) -> bool:
        """Whether its output phases run as one conv (`_shapes.phases_stack`)."""
        return phases_stack(
            self.kernel,
            self.strides,
            self.rhs_dilation,
            self.pads,
            self.problem.out_spatial,
            self.groups,
        )


def dtype_kind(dtype) -> str | None:
    """'bool', 'integer', 'floating' or 'complexfloating'; None for other dtypes."""
    if np.dtype(dtype) == np.bool_:
        return "bool"
    for kind in ("integer", "floating", "complexfloating"):
        if jnp.issubdtype(dtype, getattr(jnp, kind)):
            return kind
    return None


def check_operand(x, name: str, op: str):
    """`x` as a jax array (a `jax.ShapeDtypeStruct` stays one); refuse dtypes lax's
    conv refuses."""
    if not isinstance(x, jax.ShapeDtypeStruct):
        try:
            x = jnp.asarray(x)
        except TypeError:
            raise TypeError(f"{op}: `{name}` must be an array, got {type(x).__name__}.") from None
    if dtype_kind(x.dtype) is None:
        raise TypeError(f"{op}: `{name}` must have a numeric or bool dtype, got {x.dtype}.")
    return x


def normalize_precision(precision, op: str):
    """None, a name, a `lax.Precision` or a pair of them -> None, Precision or a pair."""
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    if isinstance(precision, str):
        try:
            return lax.Precision(precision.lower())
        except ValueError:
            pass
    elif isinstance(precision, (tuple, list)) and len(precision) == 2:
        pair = tuple(normalize_precision(p, op) for p in precision)
        if None not in pair:
            return pair
    raise ValueError(
        f"{op}: `precision` (={precision!r}) must be None, a lax.Precision, "
        f"one of {_PRECISION_NAMES} or a pair of them."
    )


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
    src, dst = dtype_kind(in_dtype), dtype_kind(pref)
    int_to_float = src == "integer" and dst == "floating"
    if dst is None or (src != dst and not int_to_float):
        raise TypeError(
            f"{op}: `preferred_element_type` (={pref}) is incompatible with the "
            f"input dtype {in_dtype}; allowed are (integer, integer), (integer, floating), "
            "(floating, floating), (complex, complex) and (bool, bool)."
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


def apply_out_sharding(out, sharding):
    """Honour lax's `out_sharding`: reshard on explicit meshes, else constrain."""
    if sharding is None:
        return out
    mesh = getattr(sharding, "mesh", None)
    explicit = mesh is None or jax.sharding.AxisType.Explicit in tuple(mesh.axis_types)
    if explicit:
        return jax.sharding.reshard(out, sharding)
    return jax.lax.with_sharding_constraint(out, sharding)


def conv_spec(
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
    op: str,
) -> ConvSpec:
    """Check `conv_general_dilated`'s arguments (arrays or `ShapeDtypeStruct`s) and
    normalise them into a `ConvSpec`."""
    if lhs.ndim != rhs.ndim or lhs.ndim < 2:
        raise ValueError(
            f"{op}: `lhs` and `rhs` must have the same rank (>= 2: batch, feature, "
            f"*spatial), got lhs.shape={lhs.shape} and rhs.shape={rhs.shape}."
        )
    if lhs.dtype != rhs.dtype:
        raise TypeError(
            f"{op}: `lhs` and `rhs` must have the same dtype, got {lhs.dtype} and {rhs.dtype}."
        )
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
    if bgc > 1 and not definitely(lambda: batch % bgc == 0):
        raise ValueError(
            f"{op}: `batch_group_count` (={bgc}) must divide the lhs batch size (={batch})."
        )
    if isinstance(padding, str) and any(d > 1 for d in lhs_dil):
        raise ValueError(
            f"{op}: string `padding` (={padding!r}) is not allowed with `lhs_dilation` "
            f"(={lhs_dil}), as in lax: give (low, high) pairs, or use conv_transpose."
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
    problem = Problem(
        x_shape=(batch // bgc, *lhs_c[1:-1], groups, in_features),
        w_shape=(*rhs_c[:-1], groups, out_features // groups),
        out_spatial=out_spatial,
        params=params,
        dtype=str(np.dtype(lhs.dtype)),
        backend=jax.default_backend(),
    )
    out_c = (batch // bgc, *out_spatial, out_features)  # (N, *O, O)
    out_shape = tuple(out_c[i] for i in layout.canon_to_out)
    empty = any(definitely(lambda d=d: d == 0) for d in (*out_shape, in_features, *rhs_c[:-2]))
    return ConvSpec(layout, bgc, groups, problem, out_shape, empty)


def transpose_spec(
    lhs,
    rhs,
    strides,
    padding,
    rhs_dilation,
    dimension_numbers,
    transpose_kernel,
    precision,
    preferred_element_type,
    use_consistent_padding,
    output_padding,
    feature_group_count,
    op: str,
) -> TransposeSpec:
    """Check `conv_transpose`'s arguments and normalise them into a `TransposeSpec`."""
    if lhs.ndim != rhs.ndim or lhs.ndim < 2:
        raise ValueError(
            f"{op}: `lhs` and `rhs` must have the same rank (>= 2: batch, feature, "
            f"*spatial), got lhs.shape={lhs.shape} and rhs.shape={rhs.shape}."
        )
    n = lhs.ndim - 2
    if dimension_numbers is None:
        dimension_numbers = channels_last(n)
    layout = resolve_layout(dimension_numbers, lhs.shape, rhs.shape, op)
    strides = int_tuple(strides, n, "strides", op)
    rhs_dilation = int_tuple(rhs_dilation, n, "rhs_dilation", op)
    groups = int_tuple(feature_group_count, 1, "feature_group_count", op)[0]
    output_padding = int_tuple(output_padding, n, "output_padding", op, default=0, minimum=0)
    if not isinstance(transpose_kernel, bool):
        raise TypeError(f"{op}: `transpose_kernel` must be a bool, got {transpose_kernel!r}.")
    for p, s, d in zip(output_padding, strides, rhs_dilation):
        if p >= max(s, d):
            raise ValueError(
                f"{op}: `output_padding` (={output_padding}) must be smaller than the stride "
                f"or the dilation (strides={strides}, rhs_dilation={rhs_dilation})."
            )
    x_shape = tuple(lhs.shape[i] for i in layout.lhs_to_canon)  # (N, *S, C)
    w_shape = tuple(rhs.shape[i] for i in layout.rhs_to_canon)  # (*K, I, O)
    if transpose_kernel:
        if w_shape[-1] % groups:
            raise ValueError(
                f"{op}: `feature_group_count` (={groups}) must divide the kernel's "
                f"forward input features (={w_shape[-1]})."
            )
        w_shape = (*w_shape[:-2], w_shape[-1] // groups, groups * w_shape[-2])  # (*K, O/G, G*I)
    kernel = tuple(map(dilate_dim, w_shape[:n], rhs_dilation))
    pads = transpose_pads(kernel, strides, padding, use_consistent_padding, op)
    pads = tuple((lo, hi + p) for (lo, hi), p in zip(pads, output_padding))
    conv = conv_spec(
        jax.ShapeDtypeStruct(x_shape, lhs.dtype),
        jax.ShapeDtypeStruct(w_shape, rhs.dtype),
        (1,) * n,
        pads,
        strides,
        rhs_dilation,
        channels_last(n),
        groups,
        1,
        precision,
        preferred_element_type,
        op,
    )
    return TransposeSpec(
        layout=layout,
        problem=conv.problem,
        strides=strides,
        pads=pads,
        rhs_dilation=rhs_dilation,
        kernel=w_shape[:n],
        groups=groups,
        transpose_kernel=transpose_kernel,
    )


def channels_last_spec(problem: Problem) -> ConvSpec:
    """The `ConvSpec` of a convolution that jaxconv itself poses in channels-last form
    (a transposed conv's phases): x (N, *S, C), w (*K, I, O)."""
    n = len(problem.kernel)
    layout = resolve_layout(channels_last(n), (0,) * (n + 2), (0,) * (n + 2), "jaxconv")
    groups, og = problem.groups, problem.w_shape[-1]
    out_shape = (problem.x_shape[0], *problem.out_spatial, groups * og)
    in_features = problem.x_shape[-1]
    empty = any(definitely(lambda d=d: d == 0) for d in (*out_shape, in_features, *problem.kernel))
    return ConvSpec(layout, 1, groups, problem, out_shape, empty)
