"""Pure-integer shape and padding math shared by every conv and pool.

Nothing here imports jax: each function maps Python ints to Python ints, so it
can be tested exhaustively against `jax.lax.padtype_to_pads` and run at trace
time for free. Every user-facing check raises a ValueError/TypeError that names
the operation, the argument and the value received.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from jaxconv._typing import Pads

PADDING_STRINGS = ("VALID", "SAME", "SAME_LOWER")


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
      ValueError: wrong length, or a value below `minimum`.

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
        raise ValueError(f"{op}: `{name}` (={items!r}) must be >= {minimum} in every dimension.")
    return items


def dilate_dim(size: int, dilation: int) -> int:
    """Size of a dimension of `size` elements with `dilation - 1` holes between them.

    Example:
      >>> dilate_dim(3, 2), dilate_dim(0, 2)
      (5, 0)
    """
    return 0 if size == 0 else 1 + dilation * (size - 1)


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
        total = max((out - 1) * stride + window - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if kind == "SAME" else (large, small))
    return tuple(pads)


def resolve_padding(padding, in_shape, window_shape, window_strides, op: str) -> Pads:
    """Normalise a padding string or (lo, hi) pairs to a tuple of int pairs.

    Args:
      padding: 'VALID', 'SAME', 'SAME_LOWER' (any case), or one (lo, hi) pair per
        spatial dimension; negative values crop, as in lax.
      in_shape: spatial input shape (after any input dilation).
      window_shape: effective spatial window shape (after window dilation).
      window_strides: spatial strides.
      op: operation name for error messages.

    Returns:
      One (lo, hi) int pair per spatial dimension.

    Raises:
      ValueError: unknown padding string or wrong number of pairs.
      TypeError: padding is neither a string nor a sequence of int pairs.
    """
    n = len(in_shape)
    if isinstance(padding, str):
        if padding.upper() not in PADDING_STRINGS:
            raise ValueError(
                f"{op}: `padding` (={padding!r}) must be one of {PADDING_STRINGS} "
                "or a sequence of (low, high) integer pairs."
            )
        return padtype_to_pads(in_shape, window_shape, window_strides, padding)
    try:
        pairs = tuple(tuple(pair) for pair in padding)
    except TypeError:
        raise TypeError(
            f"{op}: `padding` must be a string or a sequence of (low, high) integer pairs, "
            f"got {padding!r}."
        ) from None
    if len(pairs) != n or any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            f"{op}: `padding` (={padding!r}) must be {n} (low, high) pairs, "
            "one per spatial dimension."
        )
    return tuple((_index(lo, "padding", op), _index(hi, "padding", op)) for lo, hi in pairs)


def window_output_shape(in_shape, window_shape, window_strides, pads, op: str):
    """Output spatial shape of a window op on an input already dilated.

    `window_shape` is the effective (dilated) window. As in lax, a window that
    does not fit gives a zero-size output; padding that crops below zero is an error.

    Example:
      >>> window_output_shape((7,), (3,), (2,), ((1, 1),), "conv")
      (4,)
    """
    out = []
    for size, window, stride, (lo, hi) in zip(in_shape, window_shape, window_strides, pads):
        padded = size + lo + hi
        if padded < 0:
            raise ValueError(
                f"{op}: `padding` (={tuple(pads)!r}) crops more than the input size "
                f"(={tuple(in_shape)!r})."
            )
        out.append(max((padded - window) // stride + 1, 0))
    return tuple(out)


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
        floor_out = max((padded - window) // stride + 1, 0)
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
