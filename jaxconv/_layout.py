"""dimension_numbers <-> canonical channels-last layouts.

lax describes layouts with `ConvDimensionNumbers(lhs_spec, rhs_spec, out_spec)`:
each spec lists axis indices as (batch|out-feature, feature|in-feature, *spatial).
jaxconv's algorithms all work on channels-last arrays, lhs (N, *S, C) and rhs
(*K, I, O); this module validates the user's layout once and returns the
transpose permutations to and from that canonical form.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jax import lax


@dataclasses.dataclass(frozen=True)
class Layout:
    """Permutations between the caller's layout and channels-last.

    Attributes:
      lhs_to_canon: `lhs.transpose(lhs_to_canon)` is (N, *S, C).
      rhs_to_canon: `rhs.transpose(rhs_to_canon)` is (*K, I, O).
      canon_to_out: `out.transpose(canon_to_out)` puts (N, *O, C) in the caller's layout.
    """

    lhs_to_canon: tuple[int, ...]
    rhs_to_canon: tuple[int, ...]
    canon_to_out: tuple[int, ...]


def _check_spec_strings(specs, ndim: int, op: str) -> None:
    if len(specs) != 3 or not all(isinstance(s, str) for s in specs):
        raise TypeError(
            f"{op}: `dimension_numbers` must be None, a ConvDimensionNumbers or three "
            f"layout strings such as ('NHWC', 'HWIO', 'NHWC'), got {specs!r}."
        )
    for spec, name, required in zip(specs, ("lhs", "rhs", "out"), ("NC", "OI", "NC")):
        if len(spec) != ndim:
            raise ValueError(
                f"{op}: `dimension_numbers` {name} spec {spec!r} must have {ndim} letters, "
                f"one per dimension of the {ndim}-d operands."
            )
        if len(set(spec)) != len(spec):
            raise ValueError(f"{op}: `dimension_numbers` {name} spec {spec!r} repeats a letter.")
        for letter in required:
            if letter not in spec:
                raise ValueError(
                    f"{op}: `dimension_numbers` {name} spec {spec!r} must contain {letter!r}."
                )
    spatial = [set(spec) - set(required) for spec, required in zip(specs, ("NC", "OI", "NC"))]
    if not spatial[0] == spatial[1] == spatial[2]:
        raise ValueError(
            f"{op}: `dimension_numbers` {specs!r} must name the same spatial letters "
            "in lhs, rhs and out."
        )


def _check_spec_ints(dn: lax.ConvDimensionNumbers, ndim: int, op: str) -> None:
    for spec, name in zip(dn, ("lhs_spec", "rhs_spec", "out_spec")):
        if sorted(spec) != list(range(ndim)):
            raise ValueError(
                f"{op}: `dimension_numbers.{name}` (={tuple(spec)!r}) must be a "
                f"permutation of range({ndim})."
            )


def resolve_layout(dimension_numbers, lhs_shape, rhs_shape, op: str) -> Layout:
    """Validate `dimension_numbers` and return permutations to and from channels-last.

    Args:
      dimension_numbers: None (lax's default NC..., OI..., NC...), a
        `lax.ConvDimensionNumbers`, or a tuple of three layout strings.
      lhs_shape: shape of the input.
      rhs_shape: shape of the kernel.
      op: operation name for error messages.

    Returns:
      A `Layout`.

    Raises:
      TypeError / ValueError: malformed dimension numbers.

    Example:
      >>> resolve_layout(("NCHW", "OIHW", "NCHW"), (1, 3, 8, 8), (4, 3, 3, 3), "conv").lhs_to_canon
      (0, 2, 3, 1)
    """
    ndim = len(lhs_shape)
    if dimension_numbers is None:
        dn = lax.ConvDimensionNumbers(*(tuple(range(ndim)),) * 3)
    elif isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        dn = lax.ConvDimensionNumbers(*(tuple(int(i) for i in s) for s in dimension_numbers))
    else:
        _check_spec_strings(tuple(dimension_numbers), ndim, op)
        dn = lax.conv_dimension_numbers(lhs_shape, rhs_shape, tuple(dimension_numbers))
    _check_spec_ints(dn, ndim, op)
    lhs_spec, rhs_spec, out_spec = dn
    out_canon = (
        out_spec[0],
        *out_spec[2:],
        out_spec[1],
    )  # canonical axis i sits at out axis out_canon[i]
    return Layout(
        lhs_to_canon=(lhs_spec[0], *lhs_spec[2:], lhs_spec[1]),
        rhs_to_canon=(*rhs_spec[2:], rhs_spec[1], rhs_spec[0]),
        canon_to_out=tuple(int(i) for i in np.argsort(out_canon)),
    )


def channels_last(n: int) -> tuple[str, str, str]:
    """Layout strings for n spatial dims, channels last: ('NabC', 'abIO', 'NabC').

    Example:
      >>> channels_last(2)
      ('NabC', 'abIO', 'NabC')
    """
    chars = "".join(chr(ord("a") + i) for i in range(n))
    return ("N" + chars + "C", chars + "IO", "N" + chars + "C")


def transpose(x, perm):
    """`x.transpose(perm)`, skipped when `perm` is the identity."""
    return x if tuple(perm) == tuple(range(x.ndim)) else x.transpose(perm)
