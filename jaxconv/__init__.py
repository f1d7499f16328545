"""jaxconv: convolution and pooling for JAX, built from lax primitives.

Drop-in replacements for `jax.lax.conv_general_dilated` and friends, with an
`algorithm=` choice ("direct", "im2col", ..., "xla", "auto").
"""

from jaxconv import linen, nnx
from jaxconv._adaptive import (
    adaptive_avg_pool,
    adaptive_max_pool,
    global_avg_pool,
    global_max_pool,
)
from jaxconv._autotune import autotune, set_autotune
from jaxconv._conv import (
    candidate_algorithms,
    chosen_algorithm,
    conv,
    conv_general_dilated,
    conv_with_general_padding,
)
from jaxconv._memory import set_memory_budget
from jaxconv._pool import (
    PADDING_MODES,
    avg_pool,
    lp_pool,
    max_pool,
    max_unpool,
    min_pool,
    pool,
    sum_pool,
)
from jaxconv._reduce_window import POOL_ALGORITHMS, reduce_window
from jaxconv._select import ALGORITHMS, record_choices
from jaxconv._transpose import TRANSPOSE_ALGORITHMS, conv_transpose

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "PADDING_MODES",
    "POOL_ALGORITHMS",
    "TRANSPOSE_ALGORITHMS",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "autotune",
    "avg_pool",
    "candidate_algorithms",
    "chosen_algorithm",
    "conv",
    "conv_general_dilated",
    "conv_transpose",
    "conv_with_general_padding",
    "global_avg_pool",
    "global_max_pool",
    "linen",
    "lp_pool",
    "max_pool",
    "max_unpool",
    "min_pool",
    "nnx",
    "pool",
    "record_choices",
    "reduce_window",
    "set_autotune",
    "set_memory_budget",
    "sum_pool",
]
