"""Convolution algorithms. Each takes (x, w, params) in canonical form:

x (N, *S, G, Ig), w (*K, Ig, G, Og), `ConvParams` -> (N, *O, G, Og).

`REGISTRY` maps each name to its function and to a `supports` predicate that
returns None when the algorithm can run the problem, or the reason it cannot.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxconv._typing import ConvParams


@dataclasses.dataclass(frozen=True)
class Problem:
    """Static description of one convolution, in canonical terms (no arrays)."""

    x_shape: tuple[int, ...]  # (N, *S, G, Ig)
    w_shape: tuple[int, ...]  # (*K, Ig, G, Og)
    out_spatial: tuple[int, ...]
    params: ConvParams
    dtype: str
    backend: str

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.w_shape[:-3]

    @property
    def groups(self) -> int:
        return self.x_shape[-2]


def _always(problem: Problem) -> str | None:
    return None


@dataclasses.dataclass(frozen=True)
class AlgorithmInfo:
    fn: Callable
    supports: Callable[[Problem], str | None] = _always
    # What runs on each piece of chunked execution (`_chunk`), whose input is itself a
    # computed window or slice; None: `fn`.
    piece_fn: Callable | None = None

    @property
    def in_pieces(self) -> Callable:
        return self.piece_fn or self.fn


# Imported after Problem/AlgorithmInfo exist; the modules only need _common.
from jaxconv._algorithms.depthwise import (  # noqa: E402
    conv_depthwise,
    conv_depthwise_padded,
    depthwise_unsupported,
)
from jaxconv._algorithms.direct import conv_direct  # noqa: E402
from jaxconv._algorithms.fft import conv_fft, fft_unsupported  # noqa: E402
from jaxconv._algorithms.im2col import conv_im2col  # noqa: E402
from jaxconv._algorithms.pointwise import conv_pointwise, pointwise_unsupported  # noqa: E402
from jaxconv._algorithms.winograd import (  # noqa: E402
    conv_winograd,
    conv_winograd4,
    winograd_unsupported,
)
from jaxconv._algorithms.xla import conv_xla  # noqa: E402
from jaxconv._algorithms.xla2d import (  # noqa: E402
    conv_xla2d,
    conv_xla2d_terms,
    xla2d_unsupported,
)


def with_tangents(primal, tangent, name: str):
    """An algorithm that runs `primal` forward and `tangent` for every tangent.

    A convolution is bilinear, so its JVP is tangent(dx, w) + tangent(x, dw); under
    reverse mode JAX transposes those, so the backward pass costs what `tangent`'s
    transposes cost. This pairs XLA's fast forward with a primitive backward (or the
    reverse) where the bench shows each side wins. Forward mode still works: it is
    a custom_jvp with a linear rule, not a custom_vjp.
    """

    @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
    def conv(x, w, p):
        return primal(x, w, p)

    @functools.partial(conv.defjvp, symbolic_zeros=True)
    def _jvp(p, primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        out = conv(x, w, p)
        tan = jnp.zeros_like(out)
        if type(dx) is not jax.custom_derivatives.SymbolicZero:
            tan = tan + tangent(dx, w, p)
        if type(dw) is not jax.custom_derivatives.SymbolicZero:
            tan = tan + tangent(x, dw, p)
        return out, tan

    conv.__name__ = conv.__qualname__ = name
    return conv


def conv_exact(x, w, p: ConvParams):
    """The fastest exact algorithm for the tangents of an inexact forward: XLA's conv,
    or for 3-D and up `xla2d` (whose backward beats XLA's 3-D one)."""
    return conv_xla2d_terms(x, w, p) if w.ndim - 3 >= 3 else conv_xla(x, w, p)


REGISTRY: dict[str, AlgorithmInfo] = {
    "direct": AlgorithmInfo(conv_direct),
    "im2col": AlgorithmInfo(conv_im2col),
    "pointwise": AlgorithmInfo(conv_pointwise, pointwise_unsupported),
    # Pieces pad a copy: the split's border bands would come on top of the piece's own.
    "depthwise": AlgorithmInfo(conv_depthwise, depthwise_unsupported, conv_depthwise_padded),
    "fft": AlgorithmInfo(conv_fft, fft_unsupported),
    # Winograd forward; gradients from exact convs (faster than autodiff through the
    # transforms, which measured 0.4-0.9x lax with the backward).
    "winograd": AlgorithmInfo(
        with_tangents(conv_winograd, conv_exact, "conv_winograd"), winograd_unsupported
    ),
    "winograd4": AlgorithmInfo(
        with_tangents(conv_winograd4, conv_exact, "conv_winograd4"), winograd_unsupported
    ),
    "xla": AlgorithmInfo(conv_xla),
    # One leading tap at a time forward; tangents from the written-out sum of 2-D convs.
    "xla2d": AlgorithmInfo(
        with_tangents(conv_xla2d, conv_xla2d_terms, "conv_xla2d"), xla2d_unsupported
    ),
    # Forward by one algorithm, gradients by another (see `with_tangents`).
    "xla/direct": AlgorithmInfo(with_tangents(conv_xla, conv_direct, "conv_xla_direct")),
    "direct/xla": AlgorithmInfo(with_tangents(conv_direct, conv_xla, "conv_direct_xla")),
    "xla/fft": AlgorithmInfo(with_tangents(conv_xla, conv_fft, "conv_xla_fft"), fft_unsupported),
    "xla/xla2d": AlgorithmInfo(
        with_tangents(conv_xla, conv_xla2d_terms, "conv_xla_xla2d"), xla2d_unsupported
    ),
    "xla/pointwise": AlgorithmInfo(
        with_tangents(conv_xla, conv_pointwise, "conv_xla_pointwise"), pointwise_unsupported
    ),
}
