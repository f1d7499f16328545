"""Transposed convolution: lax.conv_transpose's arguments plus PyTorch's output_padding/groups.

A transposed convolution is a convolution over the input dilated by the strides.
"direct" and "xla" run exactly that (zeros included). "subpixel" skips the
zeros: output phase r (o = s*q + r) only meets kernel taps k with
(r + k*d - lo) divisible by s, so each phase is a small stride-1 convolution
of the undilated input with the sub-kernel w[k0::m], and the phases are
interleaved (Shi et al. 2016, "sub-pixel convolution"; the phase decomposition
of Dumoulin & Visin 2016, sec. 4). "xla/subpixel" runs XLA's forward and the
subpixel phases for every tangent, so its gradients are the phases' transposes
(strided convs without the zeros) while the forward is exactly lax's.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv._algorithms import with_tangents
from jaxconv._conv import (
    apply_out_sharding,
    check_operand,
    chosen_algorithm,
    conv_general_dilated,
    normalize_precision,
)
from jaxconv._layout import channels_last, resolve_layout, transpose
from jaxconv._memory import subpixel_fits
from jaxconv._padding import dilate_dim, int_tuple
from jaxconv._typing import TransposeAlgorithm

TRANSPOSE_ALGORITHMS = ("auto", "direct", "subpixel", "xla", "xla/subpixel")


def transpose_pads(kernel, strides, padding, use_consistent_padding, op):
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
            pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
        except (TypeError, ValueError):
            raise TypeError(
                f"{op}: `padding` must be a string or (low, high) integer pairs, got {padding!r}."
            ) from None
        if len(pairs) != n:
            raise ValueError(f"{op}: `padding` (={padding!r}) must be {n} (low, high) pairs.")
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


def _flip_and_swap(w, groups):
    """`transpose_kernel`: the forward kernel (*K, A, B) of a conv B <- A channels
    (A = O/G per group) becomes the transposed conv's (*K, B/G, G*A): taps flipped,
    V[k, j, g*A + a] = W[-k, a, g*(B/G) + j]."""
    nk = w.ndim - 2
    w = jnp.flip(w, tuple(range(nk)))
    *k, a, b = w.shape
    w = w.reshape(*k, a, groups, b // groups)  # (*K, A, G, B/G)
    w = w.transpose(*range(nk), nk + 2, nk + 1, nk)  # (*K, B/G, G, A)
    return w.reshape(*k, b // groups, groups * a)  # (*K, B/G, G*A)


def _out_spatial(spatial, kernel, strides, pads, rhs_dilation) -> list[int]:
    """Output length per axis: the input dilated by the strides, padded, minus the
    dilated kernel, plus one."""
    return [
        dilate_dim(size, s) + lo + hi - dilate_dim(k, d) + 1
        for size, s, (lo, hi), k, d in zip(spatial, strides, pads, kernel, rhs_dilation)
    ]


def _subpixel(x, w, strides, pads, rhs_dilation, groups, conv_kwargs):
    """Phase-decomposed transposed convolution; x (N, *S, C), w (*K, I, O) -> (N, *Out, O)."""
    n = x.ndim - 2
    spatial, kernel = x.shape[1:-1], w.shape[:n]
    out = _out_spatial(spatial, kernel, strides, pads, rhs_dilation)
    dims = []  # per dim: for each phase r, (taps k0::m, input offset c, sub-dilation e, count Q)
    for L, s, (lo, _), k, d, o in zip(spatial, strides, pads, kernel, rhs_dilation, out):
        g = math.gcd(s, d)
        m, e = s // g, d // g
        phases = []
        for r in range(s):
            ks = [t for t in range(k) if (r + t * d - lo) % s == 0]
            q = max(-(-(o - r) // s), 0)
            phases.append(
                (ks[0] if ks else None, len(ks), (r + ks[0] * d - lo) // s if ks else 0, q)
            )
        dims.append((m, e, phases, L))
    q_max = [max(ph[3] for ph in phases) for _, _, phases, _ in dims]

    def phase_conv(rs):
        index, sub_pads, sub_dil = [], [], []
        for (m, e, phases, L), r in zip(dims, rs):
            k0, count, c, q = phases[r]
            if k0 is None or q == 0:
                return None
            index.append(slice(k0, k0 + (count - 1) * m + 1, m))
            hi = (q - 1) + c + (count - 1) * e - (L - 1)
            sub_pads.append((-c, hi))
            sub_dil.append(e)
        sub_w = w[tuple(index)]  # (*K_r, I, O)
        return conv_general_dilated(
            x,
            sub_w,
            (1,) * n,
            sub_pads,
            None,
            sub_dil,
            channels_last(n),
            feature_group_count=groups,
            **conv_kwargs,
        )  # (N, *Q_r, O)

    def build(prefix):
        """Interleave phases of the dims after `prefix`: -> (N, *Qmax*s for those dims, O)."""
        depth = len(prefix)
        if depth == n:
            y = phase_conv(prefix)
            shape = (x.shape[0], *q_max, w.shape[-1])
            if y is None:
                return jnp.zeros(shape, conv_kwargs.get("preferred_element_type") or x.dtype)
            config = [(0, 0, 0)] + [(0, qm - qy, 0) for qm, qy in zip(q_max, y.shape[1:-1])]
            return lax.pad(y, jnp.zeros((), y.dtype), config + [(0, 0, 0)])  # (N, *Qmax, O)
        parts = [build((*prefix, r)) for r in range(strides[depth])]
        y = jnp.stack(parts, axis=depth + 2)  # (N, .., Qmax_d, s_d, .., O)
        shape = list(parts[0].shape)
        shape[depth + 1] *= strides[depth]
        return y.reshape(shape)  # (N, .., Qmax_d*s_d, .., O)

    y = build(())
    return y[(slice(None), *(slice(0, o) for o in out), slice(None))]  # (N, *Out, O)


class _Static(NamedTuple):
    """The hashable, non-array arguments of one transposed conv (channels-last)."""

    strides: tuple
    pads: tuple
    rhs_dilation: tuple
    groups: int
    precision: object
    preferred_element_type: object

    def kwargs(self) -> dict:
        return dict(precision=self.precision, preferred_element_type=self.preferred_element_type)


def _xla_forward(x, w, t: _Static):
    n = x.ndim - 2
    return conv_general_dilated(
        x,
        w,
        (1,) * n,
        t.pads,
        t.strides,
        t.rhs_dilation,
        channels_last(n),
        feature_group_count=t.groups,
        algorithm="xla",
        **t.kwargs(),
    )  # (N, *Out, O)


def _subpixel_tangent(x, w, t: _Static):
    return _subpixel(x, w, t.strides, t.pads, t.rhs_dilation, t.groups, t.kwargs())


_xla_subpixel = with_tangents(_xla_forward, _subpixel_tangent, "conv_transpose_xla_subpixel")


def _auto(kernel, strides, rhs_dilation, phases_ok: bool = True) -> str:
    """Stride 1: a plain conv ("direct" lets conv_general_dilated's auto choose).
    Phases of one shape (kernel a multiple of the stride: DCGAN 4x4/2, U-Net 2x2/2):
    "subpixel", forward 1.1-1.9x lax on outputs of 1M+ elements, where `phases_ok`
    (they fit the memory budget and the output is that large). Uneven phases (3x3/2)
    make small, unequal convs whose forward measured 0.8x; they, small outputs and
    phases over budget get "xla/subpixel": lax's forward, which holds no workspace, and
    the subpixel gradients (fwd+bwd 9-22x either way)."""
    if all(s == 1 for s in strides):
        return "direct"
    if phases_ok and all(d == 1 and k % s == 0 for k, s, d in zip(kernel, strides, rhs_dilation)):
        return "subpixel"
    return "xla/subpixel"


CPU_SUBPIXEL_MIN_OUTPUT = 2**20
"""Output elements from which "auto" takes "subpixel" on CPU, if its phases fit: DCGAN
4x4/2 512->256 at batch 1 (65K outputs) ran 0.75x lax forward, the DCGAN layers at batch
16 (1-4M outputs) 1.1-1.9x (named, whole)."""

GPU_SUBPIXEL_MIN_OUTPUT = 3 * 2**20
"""Output elements from which "auto" takes `xla/subpixel` on GPU (below: "xla")."""


def auto_choice(x_shape, w_shape, strides, pads, rhs_dilation, dtype, backend=None) -> str:
    """What "auto" runs for a transposed conv: x (N, *S, I), w (*K, I, O) channels-last,
    `pads` as `transpose_pads` gives them, on `backend` (default: jax's).

    On CPU, `_auto` (subpixel's forward from 1M outputs). On GPU (one H100,
    bench/results/nvidia-h100-80gb-hbm3.md), strided layers with outputs of 3M+ elements
    get `xla/subpixel` (U-Net decoders at batch 8 and DCGAN 128->64 at 16: fwd+bwd
    1.6-4.8x, lax's fwd+bwd there took 3-11x its forward); smaller ones get "xla": the
    phases' extra launches made DCGAN 512->256 and 256->128 (1-2M outputs, 0.13 ms)
    0.6-0.7x. On TPU, "xla": nothing has been measured there.
    """
    out_spatial = _out_spatial(x_shape[1:-1], w_shape[:-2], strides, pads, rhs_dilation)
    outputs = x_shape[0] * math.prod(out_spatial) * w_shape[-1]  # N * prod(Out) * O
    backend = backend or jax.default_backend()
    if backend != "cpu" and any(s > 1 for s in strides):
        return "xla/subpixel" if backend == "gpu" and outputs >= GPU_SUBPIXEL_MIN_OUTPUT else "xla"
    phases_ok = outputs >= CPU_SUBPIXEL_MIN_OUTPUT and subpixel_fits(
        x_shape, w_shape, out_spatial, np.dtype(dtype).itemsize
    )
    return _auto(w_shape[:-2], strides, rhs_dilation, phases_ok)


def conv_transpose(
    lhs,
    rhs,
    strides,
    padding,
    rhs_dilation=None,
    dimension_numbers=None,
    transpose_kernel=False,
    precision=None,
    preferred_element_type=None,
    use_consistent_padding=False,
    *,
    output_padding=None,
    feature_group_count=1,
    out_sharding=None,
    algorithm: TransposeAlgorithm = "auto",
):
    """Transposed convolution, a drop-in for `jax.lax.conv_transpose` with more.

    Shapes (default layout for rank n+2: N*C / *IO, e.g. NHWC / HWIO):
      lhs: (N, *S, C); rhs: (*K, C/G, O) (or, with `transpose_kernel`, the forward
      kernel (*K, O/G, C)); returns (N, *Out, O) with, per spatial dim,
      Out = dilate(S, stride) + lo + hi - dilate(K, rhs_dilation) + 1 + output_padding.

    Args:
      lhs, rhs, strides, padding, rhs_dilation, dimension_numbers,
        transpose_kernel, precision, preferred_element_type,
        use_consistent_padding: as `lax.conv_transpose`.
      output_padding: extra size on the high side of each spatial dim, as
        PyTorch's ConvTranspose; each must be < max(stride, rhs_dilation).
      feature_group_count: groups, as PyTorch's ConvTranspose `groups`.
      out_sharding: optional output sharding.
      algorithm: "auto", "direct" (lhs-dilated primitive conv), "subpixel"
        (phase decomposition, no multiplications by inserted zeros), "xla", or
        "xla/subpixel" (XLA's forward, subpixel gradients).

    Returns:
      The transposed convolution.

    Raises:
      ValueError / TypeError: bad shapes, padding, output_padding or algorithm.

    Example:
      >>> x, w = jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 8))
      >>> jaxconv.conv_transpose(x, w, (2, 2), "SAME", algorithm="subpixel").shape
      (1, 8, 8, 8)
    """
    op = "conv_transpose"
    lhs = check_operand(lhs, "lhs", op)
    rhs = check_operand(rhs, "rhs", op)
    if lhs.ndim != rhs.ndim or lhs.ndim < 3:
        raise ValueError(
            f"{op}: `lhs` and `rhs` must have the same rank (>= 3), got lhs.shape={lhs.shape} "
            f"and rhs.shape={rhs.shape}."
        )
    if algorithm not in TRANSPOSE_ALGORITHMS:
        raise ValueError(
            f"{op}: `algorithm` (={algorithm!r}) must be one of {TRANSPOSE_ALGORITHMS}."
        )
    n = lhs.ndim - 2
    if dimension_numbers is None:
        dimension_numbers = channels_last(n)
    layout = resolve_layout(dimension_numbers, lhs.shape, rhs.shape, op)
    strides = int_tuple(strides, n, "strides", op)
    rhs_dilation = int_tuple(rhs_dilation, n, "rhs_dilation", op)
    groups = int_tuple(feature_group_count, 1, "feature_group_count", op)[0]
    output_padding = int_tuple(output_padding, n, "output_padding", op, default=0, minimum=0)
    for p, s, d in zip(output_padding, strides, rhs_dilation):
        if p >= max(s, d):
            raise ValueError(
                f"{op}: `output_padding` (={output_padding}) must be smaller than the stride "
                f"or the dilation (strides={strides}, rhs_dilation={rhs_dilation})."
            )
    x = transpose(lhs, layout.lhs_to_canon)  # (N, *S, C)
    w = transpose(rhs, layout.rhs_to_canon)  # (*K, I, O)
    if transpose_kernel:
        if w.shape[-1] % groups:
            raise ValueError(
                f"{op}: `feature_group_count` (={groups}) must divide the kernel's "
                f"forward input features (={w.shape[-1]})."
            )
        w = _flip_and_swap(w, groups)  # (*K, O/G, G*I)
    kernel = tuple(map(dilate_dim, w.shape[:n], rhs_dilation))
    pads = transpose_pads(kernel, strides, padding, use_consistent_padding, op)
    pads = tuple((lo, hi + p) for (lo, hi), p in zip(pads, output_padding))
    kwargs = dict(precision=precision, preferred_element_type=preferred_element_type)
    canon = channels_last(n)
    name = algorithm
    if name == "auto":
        name = auto_choice(x.shape, w.shape, strides, pads, rhs_dilation, x.dtype)
    if name in ("subpixel", "xla/subpixel") and any(s > 1 for s in strides):
        # Validate like conv_general_dilated (same messages); computes nothing.
        chosen_algorithm(
            x, w, (1,) * n, pads, strides, rhs_dilation, canon, groups, **kwargs, algorithm="xla"
        )
        if name == "subpixel":
            out = _subpixel(x, w, strides, pads, rhs_dilation, groups, kwargs)
        else:
            static = _Static(
                strides,
                pads,
                rhs_dilation,
                groups,
                normalize_precision(precision, op),  # hashable: a static argument
                preferred_element_type,
            )
            out = _xla_subpixel(x, w, static)
    else:
        conv_alg = {"direct": "direct", "subpixel": "auto", "xla": "xla", "xla/subpixel": "xla"}[
            name
        ]
        if algorithm == "auto":
            conv_alg = "auto"
        out = conv_general_dilated(
            x,
            w,
            (1,) * n,
            pads,
            strides,
            rhs_dilation,
            canon,
            feature_group_count=groups,
            algorithm=conv_alg,
            **kwargs,
        )
    return apply_out_sharding(transpose(out, layout.canon_to_out), out_sharding)
