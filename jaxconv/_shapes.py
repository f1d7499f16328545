"""Shape and padding math shared by every conv and pool: integers in, integers out.

Each function maps dimension sizes to dimension sizes, so it can be tested
exhaustively against lax's own rules (`lax.padtype_to_pads`, the shapes of
`lax.conv_general_dilated`) and runs at trace time for free. Sizes may be
symbolic (`jax.export.symbolic_shape`): the formulas use `jax.core.max_dim`
where a plain `max` would have to compare them. Every check on user input raises
a ValueError/TypeError that names the operation, the argument and the value.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import jax
from jax.core import max_dim

Pads = tuple[tuple[int, int], ...]
"""One (low, high) pair per spatial dimension; negative values crop."""

PADDING_STRINGS = ("VALID", "SAME", "SAME_LOWER")

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
"""`padding_mode` of every conv and pool. "zeros" is lax's own padding: zeros for a
convolution, the reduction's identity for a pool (padding never wins a max). The
others pad the input with data first: mirrored without the edge, the edge repeated,
or wrapped around (`jnp.pad`'s "reflect", "edge" and "wrap")."""

NUMPY_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class SizeError(ValueError, TypeError):
    """A size, stride or dilation out of range. lax raises TypeError for some of these
    and ValueError for others; this is both, so code written for either still works."""


def _index(value, name: str, op: str) -> int:
    """`operator.index(value)`, with an error that names `name`."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: `{name}` must hold integers, got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: `{name}` must hold integers, got {value!r}.") from None


def int_tuple(value, n: int, name: str, op: str, *, default: int = 1, minimum: int = 1):
    """Normalise `None`, an int or a length-`n` sequence to a tuple of `n` ints.

    Args:
      value: `None` (meaning `default` everywhere), one int, or `n` ints.
      n: the number of spatial dimensions.
      name: the argument's name, for error messages.
      op: the public operation's name, for error messages.
      default: the value used for `None`.
      minimum: the smallest value accepted.

    Returns:
      A tuple of `n` Python ints.

    Raises:
      TypeError: a value is not an integer.
      ValueError: wrong length.
      SizeError (a ValueError and a TypeError): a value below `minimum`.

    Example:
      >>> int_tuple(None, 2, "window_strides", "conv")
      (1, 1)
      >>> int_tuple(3, 2, "window_strides", "conv")
      (3, 3)
    """
    if value is None:
        return (default,) * n
    if isinstance(value, str):
        raise TypeError(f"{op}: `{name}` must be an int or a sequence of ints, got {value!r}.")
    if isinstance(value, Sequence) or hasattr(value, "__len__"):
        items = tuple(_index(v, name, op) for v in value)
        if len(items) != n:
            raise ValueError(
                f"{op}: `{name}` (={tuple(value)!r}) must have {n} entries, "
                f"one per spatial dimension, but has {len(items)}."
            )
    else:
        items = (_index(value, name, op),) * n
    if any(v < minimum for v in items):
        raise SizeError(f"{op}: `{name}` (={items!r}) must be >= {minimum} in every dimension.")
    return items


def dilate_dim(size, dilation: int):
    """Size of a dimension of `size` elements with `dilation - 1` holes between them.

    Example:
      >>> dilate_dim(3, 2), dilate_dim(0, 2)
      (5, 0)
    """
    if dilation == 1:
        return size
    return max_dim(1 + dilation * (size - 1), 0)


def output_size(size, window, stride: int, lo=0, hi=0):
    """THE output-size formula of a window op along one axis: windows of `window`
    elements (already dilated) every `stride` over `size` elements (already
    dilated) padded by `lo` and `hi`. A window that does not fit gives 0, as in lax.

    Example:
      >>> output_size(7, 3, 2, 1, 1), output_size(2, 3, 1)
      (4, 0)
    """
    return max_dim((size + lo + hi - window) // stride + 1, 0)


def output_shape(in_shape, window_shape, strides, pads):
    """`output_size` on every axis: (*S), (*K), (*s), ((lo, hi), ...) -> (*O)."""
    return tuple(
        output_size(s, k, st, lo, hi)
        for s, k, st, (lo, hi) in zip(in_shape, window_shape, strides, pads)
    )


def window_output_shape(in_shape, window_shape, window_strides, pads, op: str):
    """`output_shape`, refusing padding that crops more than the input.

    Example:
      >>> window_output_shape((7,), (3,), (2,), ((1, 1),), "conv")
      (4,)
    """
    for size, (lo, hi) in zip(in_shape, pads):
        if definitely(lambda size=size, lo=lo, hi=hi: size + lo + hi < 0):
            raise ValueError(
                f"{op}: `padding` (={tuple(pads)!r}) crops more than the input size "
                f"(={tuple(in_shape)!r})."
            )
    return output_shape(in_shape, window_shape, window_strides, pads)


def padtype_to_pads(in_shape, window_shape, window_strides, padding: str) -> Pads:
    """Resolve 'VALID' / 'SAME' / 'SAME_LOWER' to explicit (lo, hi) pairs, as lax does.

    `window_shape` is the effective (already dilated) window.

    Example:
      >>> padtype_to_pads((5,), (3,), (2,), "SAME")
      ((1, 1),)
      >>> padtype_to_pads((6,), (3,), (2,), "SAME_LOWER")
      ((1, 0),)
    """
    kind = padding.upper()
    if kind == "VALID":
        return ((0, 0),) * len(in_shape)
    pads = []
    for size, window, stride in zip(in_shape, window_shape, window_strides):
        out = -(-size // stride)
        total = max_dim((out - 1) * stride + window - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if kind == "SAME" else (large, small))
    return tuple(pads)


def resolve_padding(
    padding, in_shape, window_shape, window_strides, op: str, *, allow_int: bool = False
) -> Pads:
    """Normalise a padding string, (lo, hi) pairs or (pools) an int to int pairs.

    Args:
      padding: 'VALID', 'SAME', 'SAME_LOWER' (any case), or one (lo, hi) pair per
        spatial dimension; negative values crop, as in lax. With `allow_int`, one int
        is the same padding on both sides of every spatial dimension (PyTorch's habit).
      in_shape: spatial input shape (after any input dilation).
      window_shape: effective spatial window shape (after window dilation).
      window_strides: spatial strides.
      op: operation name for error messages.
      allow_int: accept one int.

    Returns:
      One (lo, hi) int pair per spatial dimension.

    Raises:
      ValueError: unknown padding string or wrong number of pairs.
      TypeError: padding is neither a string nor a sequence of int pairs (nor an int).

    Example:
      >>> resolve_padding(1, (8, 8), (3, 3), (2, 2), "max_pool", allow_int=True)
      ((1, 1), (1, 1))
    """
    n = len(in_shape)
    forms = "a string, an int or" if allow_int else "a string or"
    if isinstance(padding, str):
        if padding.upper() not in PADDING_STRINGS:
            raise ValueError(
                f"{op}: `padding` (={padding!r}) must be one of {PADDING_STRINGS}"
                f"{', an int' if allow_int else ''} or a sequence of (low, high) integer pairs."
            )
        return padtype_to_pads(in_shape, window_shape, window_strides, padding)
    if allow_int and not isinstance(padding, bool) and hasattr(padding, "__index__"):
        p = _index(padding, "padding", op)
        return ((p, p),) * n
    try:
        pairs = tuple(tuple(pair) for pair in padding)
    except TypeError:
        raise TypeError(
            f"{op}: `padding` must be {forms} a sequence of (low, high) integer pairs, "
            f"got {padding!r}."
        ) from None
    if len(pairs) != n or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            f"{op}: `padding` (={padding!r}) must be {n} (low, high) pairs, "
            "one per spatial dimension."
        )
    return tuple((_index(lo, "padding", op), _index(hi, "padding", op)) for lo, hi in pairs)


def ceil_mode_pads(in_shape, window_shape, window_strides, pads):
    """Extend the high padding so the output size rounds up, as PyTorch's ceil_mode.

    PyTorch keeps an extra window only if it starts inside the input or the left
    padding: out = ceil((L + lo + hi - k) / s) + 1, minus one if the last
    window would start at or past L + lo. `window_shape` is the effective window.

    Example:
      >>> ceil_mode_pads((6,), (3,), (2,), ((0, 0),))
      ((0, 1),)
    """
    result = []
    for size, window, stride, (lo, hi) in zip(in_shape, window_shape, window_strides, pads):
        padded = size + lo + hi
        floor_out = output_size(padded, window, stride)
        ceil_out = max(-(-(padded - window) // stride) + 1, 0)
        if ceil_out > floor_out and (ceil_out - 1) * stride >= size + lo:
            ceil_out -= 1
        extra = max((ceil_out - 1) * stride + window - padded, 0) if ceil_out else 0
        result.append((lo, hi + extra))
    return tuple(result)


def adaptive_bins(size: int, out: int):
    """PyTorch's adaptive-pool bins: start = floor(i*L/out), end = ceil((i+1)*L/out).

    Example:
      >>> adaptive_bins(5, 3)
      ((0, 2), (1, 4), (3, 5))
    """
    return tuple((i * size // out, -(-((i + 1) * size) // out)) for i in range(out))


def transpose_pads(kernel, strides, padding, use_consistent_padding: bool, op: str) -> Pads:
    """lax.conv_transpose's padding rule: 'SAME'/'VALID' (or forward-conv pairs with
    `use_consistent_padding`) -> (lo, hi) pads of the lhs-dilated convolution.

    `kernel` is the effective (dilated) kernel size.

    Example:
      >>> transpose_pads((3,), (2,), "SAME", False, "conv_transpose")
      ((2, 1),)
    """
    n = len(kernel)
    if isinstance(padding, str):
        kind = padding.upper()
        if kind not in ("SAME", "VALID"):
            raise ValueError(
                f"{op}: `padding` (={padding!r}) must be 'SAME', 'VALID' or (low, high) pairs."
            )
        forward = [kind] * n
    else:
        try:
            pairs = tuple(tuple(pair) for pair in padding)
        except TypeError:
            raise TypeError(
                f"{op}: `padding` must be a string or (low, high) integer pairs, got {padding!r}."
            ) from None
        if len(pairs) != n or any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"{op}: `padding` (={padding!r}) must be {n} (low, high) pairs.")
        pairs = tuple((_index(lo, "padding", op), _index(hi, "padding", op)) for lo, hi in pairs)
        if not use_consistent_padding:
            return pairs
        forward = pairs
    pads = []
    for k, s, p in zip(kernel, strides, forward):
        if p == "SAME":
            total = k + s - 2
            lo = k - 1 if s > k - 1 else -(-total // 2)
        elif p == "VALID":
            total = k + s - 2 + max(k - s, 0)
            lo = k - 1
        else:
            lo, total = k - p[0] - 1, 2 * k - p[0] - p[1] - 2
        pads.append((lo, total - lo))
    return tuple(pads)


def phases_stack(kernel, strides, rhs_dilation, pads, out_spatial, groups: int) -> bool:
    """Whether every output phase of a transposed conv (o = s*q + r) is the same
    stride-1 conv but for its sub-kernel, so that the phases can run as one.

    Phase r meets the taps k with r + k*d - lo = 0 (mod s); its input offset is
    (r + k0_r*d - lo) / s for its first tap k0_r. The offsets are equal only if
    r + k0_r*d is the same for every r: dilation 1 and k0_r = s - 1 - r, that is
    lo = s - 1 (mod s). The tap counts are equal where the kernel is a multiple of the
    stride, the lengths where the output is (and not empty), and a stacked kernel needs
    one group.
    `pads` are those of the lhs-dilated conv (`transpose_pads`).

    Example:
      >>> phases_stack((2, 2), (2, 2), (1, 1), ((1, 1), (1, 1)), (8, 8), 1)
      True
      >>> phases_stack((3, 3), (2, 2), (1, 1), ((2, 1), (2, 1)), (8, 8), 1)
      False
    """
    if groups != 1 or all(s == 1 for s in strides):
        return False
    return all(
        d == 1 and k % s == 0 and lo % s == s - 1 and o % s == 0 and o > 0
        for k, s, d, (lo, _), o in zip(kernel, strides, rhs_dilation, pads, out_spatial)
    )


def flatten_batch(x, n_spatial: int, op: str):
    """(*batch, *S, C) -> (N, *S, C) and the batch shape to restore; an unbatched
    (*S, C) gets a batch of one and the batch shape `()`.

    As flax's layers do: one leading batch axis is kept as it is, several are merged.
    """
    if x.ndim < n_spatial + 1:
        raise ValueError(
            f"{op}: `inputs` of shape {x.shape} has fewer dimensions than the "
            f"{n_spatial} spatial dimensions + 1 feature dimension it needs."
        )
    batch = tuple(x.shape[: x.ndim - n_spatial - 1])
    if len(batch) == 1:
        return x, batch
    return x.reshape(-1, *x.shape[len(batch) :]), batch  # (N, *S, C)


def unflatten_batch(y, batch):
    """Undo `flatten_batch`: (N, *O, C) -> (*batch, *O, C)."""
    if len(batch) == 1:
        return y
    return y.reshape(*batch, *y.shape[1:])  # (*batch, *O, C)


def is_symbolic(*shapes) -> bool:
    """Whether any size in `shapes` is symbolic (`jax.export.symbolic_shape`)."""
    return any(jax.export.is_symbolic_dim(d) for shape in shapes for d in shape)


def definitely(condition) -> bool:
    """`condition()`, a comparison of sizes, where it holds for every value of the
    symbolic sizes in it; False where that cannot be decided (jax raises
    `InconclusiveDimensionOperation` for those)."""
    try:
        return bool(condition())
    except jax.errors.InconclusiveDimensionOperation:
        return False
