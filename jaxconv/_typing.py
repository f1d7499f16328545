"""Type aliases and the canonical parameter record every algorithm receives."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

Pads = tuple[tuple[int, int], ...]
"""One (low, high) pair per spatial dimension; negative values crop."""

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
    "xla/direct",
    "direct/xla",
    "xla/fft",
    "xla/xla2d",
    "xla/pointwise",
]
"""Names accepted by the `algorithm=` argument of every conv function."""

PoolAlgorithm = Literal["auto", "direct", "xla"]
"""Names accepted by the `algorithm=` argument of `reduce_window` and the pools."""

TransposeAlgorithm = Literal["auto", "direct", "subpixel", "xla", "xla/subpixel"]
"""Names accepted by the `algorithm=` argument of `conv_transpose`."""


@dataclasses.dataclass(frozen=True)
class ConvParams:
    """Normalised convolution parameters, in canonical channels-last terms.

    Every algorithm receives `x` of shape (N, *S, G, Ig), `w` of shape
    (*K, Ig, G, Og) and one of these, and returns (N, *O, G, Og). Both feature
    groups and batch groups arrive as the group axis G (a batch group is a
    feature group once the batch split is moved into the channels).

    Attributes:
      strides: window strides, one per spatial dimension.
      pads: (low, high) padding applied after input dilation; may be negative.
      lhs_dilation: input (transposed-conv) dilation.
      rhs_dilation: kernel (atrous) dilation.
      precision: passed to `lax.dot_general`, as normalised by `_conv`.
      preferred_element_type: accumulation/output dtype, or None.
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
        """Accumulation dtype: the preferred type, or float32 for 16-bit floats."""
        if self.preferred_element_type is not None:
            return self.preferred_element_type
        if self.out_dtype.name in ("float16", "bfloat16"):
            return np.dtype("float32")
        return self.out_dtype
