"""Type aliases of the public signatures. The `Literal` name lists are checked against
the registries by tests/test_typing.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from jax import lax

Algorithm = Literal[
    "auto",
    "direct",
    "im2col",
    "pointwise",
    "depthwise",
    "fft",
    "winograd",
    "winograd4",
    "xla",
    "xla2d",
    "direct/xla",
    "xla/fft",
    "xla/xla2d",
    "xla/pointwise",
    "xla/im2col",
]
"""Names accepted by the `algorithm=` argument of every conv function."""

TransposeAlgorithm = Literal["auto", "dilated", "subpixel", "xla", "xla/subpixel"]
"""Names accepted by the `algorithm=` argument of `conv_transpose`."""

PoolAlgorithm = Literal["auto", "direct", "xla"]
"""Names accepted by the `algorithm=` argument of `reduce_window` and the pools."""

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
"""`padding_mode` of the convs and pools."""

Padding = str | Sequence[tuple[int, int]]
"""'VALID', 'SAME', 'SAME_LOWER', or one (low, high) pair per spatial dimension."""

PoolPadding = str | int | Sequence[tuple[int, int]]
"""A `Padding`, or one int for the same padding on both sides of every spatial dim."""

PrecisionLike = None | str | lax.Precision | tuple[Any, Any]
DTypeLike = Any
Sharding = Any
