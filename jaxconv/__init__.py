"""jaxconv: convolution and pooling for JAX, built from lax primitives.

Drop-in replacements for `jax.lax.conv_general_dilated` and friends, with an
`algorithm=` choice ("direct", "im2col", ..., "xla", "auto").
"""

from jaxconv._conv import chosen_algorithm, conv, conv_general_dilated, conv_with_general_padding
from jaxconv._select import ALGORITHMS

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "chosen_algorithm",
    "conv",
    "conv_general_dilated",
    "conv_with_general_padding",
]
