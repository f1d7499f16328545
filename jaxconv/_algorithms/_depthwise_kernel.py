"""The depthwise kernel gradient as one variadic reduction, with a transpose of its own.

Reverse mode runs the transpose of a conv's tangent in its kernel. For the depthwise
fold that transpose is, per tap, a reduction over the batch and space of x's window
times the cotangent. JAX transposes the fold into one `reduce_sum` per tap, and
XLA:CPU writes every tap's window out before reducing it. One variadic `lax.reduce`
over all taps is the loop that reads x and the cotangent once and keeps the taps'
sums in registers, but it has no transpose rule, so a `custom_jvp` cannot reach it.

Here the kernel tangent and the kernel gradient are two primitives, each the other's
transpose:

    kernel_tangent(x, dw)[n, o, c, m] = sum_k x_pad[n, o*s + k*d, c] * dw[k, c, m]
    kernel_gradient(x, ct)[k, c, m]   = sum_{n, o} x_pad[n, o*s + k*d, c] * ct[n, o, c, m]

Both are bilinear and lower to plain `lax` (`mlir.lower_fun`). Their JVPs are
bilinear, their transposes in x are JAX's own transpose of the fold, and their
batching rules fold the mapped axis into the batch or the channels. So jit, vmap,
grad, grad of grad, jvp and `jax.export` all reach the reduction (docs/design.md,
"The kernel gradient as one variadic reduction").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv._algorithms import _windows
from jaxconv._shapes import dilate_dim
from jaxconv._spec import ConvParams


def kernel_tangent(x, dw, p: ConvParams):
    """The fold of x with a kernel tangent, as the primitive whose transpose in dw is
    `kernel_gradient`.

    x: (N, *S, C, 1), dw: (*K, 1, C, M) -> (N, *O, C, M) in `p.out_dtype`.
    """
    return tangent_p.bind(x, dw, p=p)


def kernel_gradient(x, ct, p: ConvParams, kernel, dtype):
    """The kernel gradient of the depthwise fold, one variadic reduction over the taps.

    x: (N, *S, C, 1), ct: (N, *O, C, M) -> (*kernel, 1, C, M) in `dtype`.
    """
    return gradient_p.bind(x, ct, p=p, kernel=tuple(kernel), dtype=np.dtype(dtype))


def _fold(x, dw, p: ConvParams):
    """The fold from one padded copy of x, in the accumulation dtype, cast to the
    output's: the kernel tangent's lowering, so plain that JAX transposes it in x. A
    multiplier of 1 is squeezed out: XLA:CPU's loops over a trailing unit axis run
    slower. x: (N, *S, C, 1), dw: (*K, 1, C, M) -> (N, *O, C, M)."""
    n_sp = len(p.pads)
    squeeze = dw.shape[-1] == 1
    xs = x[..., 0] if squeeze else x  # (N, *S, C[, 1])
    ws = dw[..., 0] if squeeze else dw  # (*K, 1, C[, M])
    xp = _windows.pad_spatial(xs, p.pads, p.lhs_dilation, 0, trail=xs.ndim - 1 - n_sp)
    kernel = dw.shape[:n_sp]
    out = _windows.out_spatial(xp.shape[1 : 1 + n_sp], kernel, p)

    def window(tap):
        return _windows.strided_window(xp, tap, p.rhs_dilation, p.strides, out)

    acc = _windows.tap_sum(window, ws, kernel, p.acc_dtype)  # (N, *O, C[, M])
    if acc is None:  # no taps: a zero-size kernel
        acc = jnp.zeros((x.shape[0], *out, *ws.shape[n_sp + 1 :]), p.acc_dtype)
    y = acc[..., None] if squeeze else acc  # (N, *O, C, M)
    return y.astype(p.out_dtype)


def _reduce(x, ct, p: ConvParams, kernel, dtype):
    """Every tap's window of x times ct, summed in one variadic `lax.reduce` over the
    last spatial axis (the batch and the other rows stay as outputs, shared by the
    cores), then in a second over the rest.

    x: (N, *S, C, 1), ct: (N, *O, C, M) -> (*K, 1, C, M) in `dtype`.
    """
    n_sp = len(kernel)
    squeeze = ct.shape[-1] == 1
    xs = x[..., 0] if squeeze else x  # (N, *S, C[, 1])
    cs = (ct[..., 0] if squeeze else ct).astype(p.acc_dtype)  # (N, *O, C[, M])
    xp = _windows.pad_spatial(xs, p.pads, p.lhs_dilation, 0, trail=xs.ndim - 1 - n_sp)
    out = ct.shape[1 : 1 + n_sp]
    terms = [
        _windows.strided_window(xp, tap, p.rhs_dilation, p.strides, out).astype(p.acc_dtype) * cs
        for tap in _windows.taps(kernel)
    ]  # each (N, *O, C[, M])
    if not terms:
        return jnp.zeros((*kernel, 1, *ct.shape[-2:]), dtype)
    zeros = [np.zeros((), p.acc_dtype)] * len(terms)
    rows = lax.reduce(terms, zeros, _add_all, (n_sp,))  # each (N, *O[:-1], C[, M])
    sums = lax.reduce(list(rows), zeros, _add_all, tuple(range(n_sp)))  # each (C[, M])
    g = jnp.stack(sums).reshape(*kernel, 1, *ct.shape[-2:])  # (*K, 1, C, M)
    return g.astype(dtype)


def _add_all(a, b):
    return tuple(u + v for u, v in zip(a, b))


def _x_transpose(ct, x, dw, p: ConvParams):
    """The transpose in x of the fold with kernel dw: JAX's own, of `_fold`."""
    aval = jax.ShapeDtypeStruct(x.aval.shape, x.aval.dtype)
    (dx,) = jax.linear_transpose(lambda x: _fold(x, dw, p), aval)(ct)
    return dx


# --- kernel_tangent: bilinear in (x, dw), transposes to kernel_gradient in dw ---

tangent_p = Primitive("jaxconv_depthwise_kernel_tangent")


def _tangent_shape(x, dw, p: ConvParams):
    n_sp = len(p.pads)
    padded = [
        dilate_dim(s, d) + lo + hi
        for s, d, (lo, hi) in zip(x.shape[1 : 1 + n_sp], p.lhs_dilation, p.pads)
    ]
    out = _windows.out_spatial(padded, dw.shape[:n_sp], p)
    return (x.shape[0], *out, x.shape[-2], dw.shape[-1])  # (N, *O, C, M)


tangent_p.def_impl(jax.jit(_fold, static_argnames="p"))
tangent_p.def_abstract_eval(
    lambda x, dw, *, p: jax.core.ShapedArray(_tangent_shape(x, dw, p), p.out_dtype)
)
mlir.register_lowering(tangent_p, mlir.lower_fun(_fold, multiple_results=False))
ad.defbilinear(
    tangent_p,
    lambda ct, x, dw, *, p: _x_transpose(ct, x, dw, p),
    lambda ct, x, dw, *, p: kernel_gradient(x, ct, p, dw.aval.shape[: len(p.pads)], dw.aval.dtype),
)


def _tangent_batch(args, dims, *, p: ConvParams):
    x, dw = args
    bx, bw = dims
    if bw is None:  # the mapped axis joins the batch
        b = x.shape[bx]
        xb = jnp.moveaxis(x, bx, 0)  # (B, N, *S, C, 1)
        xb = xb.reshape(b * xb.shape[1], *xb.shape[2:])  # (B*N, *S, C, 1)
        y = kernel_tangent(xb, dw, p)  # (B*N, *O, C, M)
        return y.reshape(b, y.shape[0] // b, *y.shape[1:]), 0  # (B, N, *O, C, M)
    b = dw.shape[bw]
    xc = _mapped_into_channels(x, bx, b)  # (N, *S, B*C, 1)
    wc = _mapped_into_channels(dw, bw, b)  # (*K, 1, B*C, M)
    y = kernel_tangent(xc, wc, p)  # (N, *O, B*C, M)
    return _channels_out(y, b, y.ndim - 2), y.ndim - 2


batching.primitive_batchers[tangent_p] = _tangent_batch


# --- kernel_gradient: bilinear in (x, ct), transposes to kernel_tangent in ct ---

gradient_p = Primitive("jaxconv_depthwise_kernel_gradient")
gradient_p.def_impl(jax.jit(_reduce, static_argnames=("p", "kernel", "dtype")))
gradient_p.def_abstract_eval(
    lambda x, ct, *, p, kernel, dtype: jax.core.ShapedArray((*kernel, 1, *ct.shape[-2:]), dtype)
)
mlir.register_lowering(gradient_p, mlir.lower_fun(_reduce, multiple_results=False))
ad.defbilinear(
    gradient_p,
    lambda g, x, ct, *, p, kernel, dtype: _x_transpose(ct, x, g, p),
    lambda g, x, ct, *, p, kernel, dtype: kernel_tangent(x, g.astype(dtype), p).astype(
        ct.aval.dtype
    ),
)


def _gradient_batch(args, dims, *, p: ConvParams, kernel, dtype):
    x, ct = args
    bx, bc = dims
    b = ct.shape[bc] if bx is None else x.shape[bx]
    xc = _mapped_into_channels(x, bx, b)  # (N, *S, B*C, 1)
    cc = _mapped_into_channels(ct, bc, b)  # (N, *O, B*C, M)
    g = kernel_gradient(xc, cc, p, kernel, dtype)  # (*K, 1, B*C, M)
    return _channels_out(g, b, g.ndim - 2), g.ndim - 2


batching.primitive_batchers[gradient_p] = _gradient_batch


def _mapped_into_channels(a, bdim, b: int):
    """a, whose channels are its second-last axis, with its mapped axis `bdim` (None:
    broadcast to `b`) merged into the channels, mapped-major: (..., C, M) with B at
    `bdim` -> (..., B*C, M)."""
    if bdim is None:
        a = jnp.broadcast_to(a[None], (b, *a.shape))  # (B, ..., C, M)
        bdim = 0
    channel_axis = a.ndim - 3  # C's axis without the mapped one
    a = jnp.moveaxis(a, bdim, channel_axis)  # (..., B, C, M)
    shape = a.shape
    return a.reshape(*shape[:channel_axis], b * shape[channel_axis + 1], *shape[channel_axis + 2 :])


def _channels_out(a, b: int, channel_axis: int):
    """The inverse of `_mapped_into_channels` on an output: (..., B*C, ...) ->
    (..., B, C, ...), the mapped axis at `channel_axis`."""
    shape = a.shape
    c = shape[channel_axis] // b
    return a.reshape(*shape[:channel_axis], b, c, *shape[channel_axis + 1 :])
