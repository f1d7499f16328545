"""jaxconv: convolution and pooling for JAX, built from lax primitives.

Drop-in replacements for `jax.lax.conv_general_dilated`, `conv_transpose`,
`reduce_window` and flax's pools and conv modules, with an `algorithm=` choice
that "auto" makes per layer while tracing.
"""

from jaxconv import linen, nnx
from jaxconv._adaptive import (
    adaptive_avg_pool,
    adaptive_max_pool,
    global_avg_pool,
    global_max_pool,
)
from jaxconv._autotune import autotune, set_autotune
from jaxconv._autotune import default_cache_path as default_autotune_cache_path
from jaxconv._conv import (
    ConvPlan,
    candidate_algorithms,
    chosen_algorithm,
    conv,
    conv_general_dilated,
    conv_plan,
    conv_with_general_padding,
)
from jaxconv._layers import ConvHook
from jaxconv._pieces import Pieces
from jaxconv._pool import (
    avg_pool,
    lp_pool,
    max_pool,
    max_unpool,
    min_pool,
    pool,
    sum_pool,
)
from jaxconv._reduce_window import reduce_window
from jaxconv._select import (
    ALGORITHMS,
    POOL_ALGORITHMS,
    TRANSPOSE_ALGORITHMS,
    Record,
    record_choices,
)
from jaxconv._settings import (
    exact_nonfinite,
    memory_budget,
    set_exact_nonfinite,
    set_memory_budget,
)
from jaxconv._shapes import PADDING_MODES
from jaxconv._transpose import conv_transpose

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "PADDING_MODES",
    "POOL_ALGORITHMS",
    "TRANSPOSE_ALGORITHMS",
    "ConvHook",
    "ConvPlan",
    "Pieces",
    "Record",
    "adaptive_avg_pool",
    "adaptive_max_pool",
    "autotune",
    "avg_pool",
    "candidate_algorithms",
    "chosen_algorithm",
    "conv",
    "conv_general_dilated",
    "conv_plan",
    "conv_transpose",
    "conv_with_general_padding",
    "default_autotune_cache_path",
    "exact_nonfinite",
    "global_avg_pool",
    "global_max_pool",
    "linen",
    "lp_pool",
    "max_pool",
    "max_unpool",
    "memory_budget",
    "min_pool",
    "nnx",
    "pool",
    "record_choices",
    "reduce_window",
    "set_autotune",
    "set_exact_nonfinite",
    "set_memory_budget",
    "sum_pool",
]
