"""Transposed convolution: lax.conv_transpose's arguments plus PyTorch's output_padding/groups.

A transposed convolution is a convolution over the input dilated by the strides.
"dilated" and "xla" run exactly that (zeros included). "subpixel" skips the
zeros: output phase r (o = s*q + r) only meets kernel taps k with
(r + k*d - lo) divisible by s, so each phase is a small stride-1 convolution
of the undilated input with the sub-kernel w[k0::m], and the phases are
interleaved (Shi et al. 2016, "sub-pixel convolution"; the phase decomposition
of Dumoulin & Visin 2016, sec. 4). "xla/subpixel" runs XLA's forward and the
subpixel phases for every tangent, so its gradients are the phases' transposes
(strided convs without the zeros) while the forward is exactly lax's.

The phases are planned here, as parts of one transposed convolution: each is a
`Problem` whose algorithm the convolution rule picks, run by `_conv.execute`. Where
every phase is the same convolution but for its sub-kernel (the kernel a multiple of
the stride, padding that treats the phases alike, one group), the phases run as one:
their sub-kernels stacked along the output channels, so a 2x2/2 upsampling is one GEMM
and an interleave (the pixel shuffle of Shi et al. 2016).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv._algorithms._base import with_tangents
from jaxconv._conv import execute
from jaxconv._layout import transpose
from jaxconv._select import XLA, Choice, conv_choice, record, transpose_choice
from jaxconv._shapes import is_symbolic
from jaxconv._spec import (
    ConvSpec,
    TransposeSpec,
    apply_out_sharding,
    channels_last_spec,
    check_operand,
    transpose_spec,
)
from jaxconv._typing import DTypeLike, Padding, PrecisionLike, Sharding, TransposeAlgorithm


class Phase(NamedTuple):
    """One output phase of "subpixel": its sub-kernel (start, stop, step) per spatial
    dim, and the stride-1 convolution of the undilated input with it."""

    taps: tuple[tuple[int, int, int], ...]
    spec: ConvSpec
    choice: Choice


@dataclasses.dataclass(frozen=True)
class TransposePlan:
    """Everything static about one transposed conv: the jit key.

    `dilated` is the convolution of the stride-dilated input, `choice` how it runs;
    `phases` (subpixel, xla/subpixel) hold one entry per output phase, None for a
    phase no tap meets; `q_max` the longest phase per spatial dim; `stacked`, where
    the phases share one shape, the one conv they run as (`_stack`)."""

    spec: TransposeSpec
    algorithm: str
    dilated: ConvSpec
    choice: Choice
    phases: tuple[Phase | None, ...] = ()
    q_max: tuple[int, ...] = ()
    stacked: Phase | None = None

    @property
    def parts(self) -> tuple:
        if self.algorithm in ("dilated", "xla"):
            return ((self.choice.algorithm, self.choice.pieces),)
        if self.stacked is not None:
            return ((self.stacked.choice.algorithm, self.stacked.choice.pieces),)
        return tuple((p.choice.algorithm, p.choice.pieces) for p in self.phases if p is not None)


def _flip_and_swap(w, groups: int):
    """`transpose_kernel`: the forward kernel (*K, A, B) of a conv B <- A channels
    (A = O/G per group) becomes the transposed conv's (*K, B/G, G*A): taps flipped,
    V[k, j, g*A + a] = W[-k, a, g*(B/G) + j]."""
    nk = w.ndim - 2
    w = jnp.flip(w, tuple(range(nk)))
    *k, a, b = w.shape
    w = w.reshape(*k, a, groups, b // groups)  # (*K, A, G, B/G)
    w = w.transpose(*range(nk), nk + 2, nk + 1, nk)  # (*K, B/G, G, A)
    return w.reshape(*k, b // groups, groups * a)  # (*K, B/G, G*A)


def _phases(spec: TransposeSpec):
    """(phases in row-major order of the phase index, q_max) of "subpixel"."""
    problem = spec.problem
    spatial, out = problem.x_shape[1:-2], problem.out_spatial
    dims = []  # per dim: m, e, and per phase r: (first tap, tap count, input offset, length)
    for size, s, (lo, _), k, d, o in zip(
        spatial, spec.strides, spec.pads, spec.kernel, spec.rhs_dilation, out
    ):
        g = math.gcd(s, d)
        m, e = s // g, d // g
        phases = []
        for r in range(s):
            ks = [t for t in range(k) if (r + t * d - lo) % s == 0]
            q = max(-(-(o - r) // s), 0)
            offset = (r + ks[0] * d - lo) // s if ks else 0
            phases.append((ks[0] if ks else None, len(ks), offset, q))
        dims.append((m, e, phases, size))
    q_max = tuple(max(ph[3] for ph in phases) for _, _, phases, _ in dims)
    result = []
    for rs in itertools.product(*map(range, spec.strides)):
        taps, pads, dilation, q_shape = [], [], [], []
        for (m, e, phases, size), r in zip(dims, rs):
            k0, count, c, q = phases[r]
            if k0 is None or q == 0:
                break
            taps.append((k0, k0 + (count - 1) * m + 1, m))
            pads.append((-c, (q - 1) + c + (count - 1) * e - (size - 1)))
            dilation.append(e)
            q_shape.append(q)
        else:
            kernel = tuple(len(range(*t)) for t in taps)
            params = dataclasses.replace(
                problem.params,
                strides=(1,) * len(rs),
                pads=tuple(pads),
                lhs_dilation=(1,) * len(rs),
                rhs_dilation=tuple(dilation),
            )
            phase = dataclasses.replace(
                problem,
                w_shape=(*kernel, *problem.w_shape[-3:]),
                out_spatial=tuple(q_shape),
                params=params,
            )
            choice = conv_choice("auto", phase, "conv_transpose")
            result.append(Phase(tuple(taps), channels_last_spec(phase), choice))
            continue
        result.append(None)
    return tuple(result), q_max


def _stack(phases, spec: TransposeSpec) -> Phase | None:
    """The one conv that runs every phase where they are the same conv but for their
    sub-kernels (`_shapes.phases_stack`): those stacked along the output channels,
    (*K_r, I, 1, P*O) in row-major order of the phase index (`_stacked_kernel`). Else
    None."""
    if not spec.phases_stack:
        return None
    first = phases[0].spec.problem
    *kernel, ig, groups, og = first.w_shape
    stacked = dataclasses.replace(first, w_shape=(*kernel, ig, groups, len(phases) * og))
    return Phase((), channels_last_spec(stacked), conv_choice("auto", stacked, "conv_transpose"))


def plan_transpose(spec: TransposeSpec, algorithm: str) -> TransposePlan:
    """The phases (for "subpixel" and "xla/subpixel"), the one conv they run as where
    they stack, and the dilated conv's choice."""
    dilated = channels_last_spec(spec.problem)
    choice = XLA if algorithm != "dilated" else conv_choice("auto", spec.problem, "conv_transpose")
    if algorithm in ("subpixel", "xla/subpixel") and any(s > 1 for s in spec.strides):
        phases, q_max = _phases(spec)
        return TransposePlan(spec, algorithm, dilated, choice, phases, q_max, _stack(phases, spec))
    if algorithm in ("subpixel", "xla/subpixel"):  # stride 1: one phase, the conv itself
        return TransposePlan(
            spec, "dilated", dilated, conv_choice("auto", spec.problem, "conv_transpose")
        )
    return TransposePlan(spec, algorithm, dilated, choice)


def _stacked_kernel(w, plan: TransposePlan):
    """Every phase's sub-kernel, stacked along the output channels: w (*K, I, O) ->
    (*K_r, I, P*O), phase-major. Where the phases stack, phase r takes the taps
    s - 1 - r + j*s (`_shapes.phases_stack`): each kernel dim split into (K_r, s) with
    its phase axis reversed, whose transposes are as cheap (no gather, no scatter)."""
    n, strides = len(plan.spec.strides), plan.spec.strides
    kernel = plan.stacked.spec.problem.kernel  # K_r
    split = w.reshape(*(a for k, s in zip(kernel, strides) for a in (k, s)), *w.shape[-2:])
    split = lax.rev(split, tuple(range(1, 2 * n, 2)))  # (K_r1, s_1, .., K_rn, s_n, I, O)
    perm = [*range(0, 2 * n, 2), 2 * n, *range(1, 2 * n, 2), 2 * n + 1]
    stacked = split.transpose(perm)  # (*K_r, I, *s, O)
    return stacked.reshape(*kernel, w.shape[-2], -1)  # (*K_r, I, P*O)


def _stacked_subpixel(x, w, plan: TransposePlan):
    """Every phase as one conv (`_stack`), then interleaved; x (N, *S, C),
    w (*K, I, O) -> (N, *Qmax*s, O) (every phase is q_max long)."""
    spec, n = plan.spec, len(plan.spec.strides)
    stacked = _stacked_kernel(w, plan)  # (*K_r, I, P*O)
    y = execute(x, stacked, plan.stacked.spec, plan.stacked.choice)  # (N, *Q, P*O)
    y = y.reshape(*y.shape[:-1], *spec.strides, w.shape[-1])  # (N, *Q, *s, O)
    interleaved = [0, *(a for i in range(n) for a in (1 + i, 1 + n + i)), 2 * n + 1]
    y = y.transpose(interleaved)  # (N, Q_1, s_1, .., Q_n, s_n, O)
    return y.reshape(y.shape[0], *(q * s for q, s in zip(plan.q_max, spec.strides)), -1)


def _subpixel(x, w, plan: TransposePlan):
    """Phase-decomposed transposed convolution; x (N, *S, C), w (*K, I, O) -> (N, *Out, O)."""
    spec = plan.spec
    out = spec.problem.out_spatial
    if plan.stacked is not None:
        y = _stacked_subpixel(x, w, plan)  # (N, *Qmax*s, O)
        return y[(slice(None), *(slice(0, o) for o in out), slice(None))]  # (N, *Out, O)
    n = len(spec.strides)
    out_dtype = spec.problem.params.out_dtype
    phases = iter(plan.phases)

    def build(depth):
        """Interleave the phases of dims depth.. -> (N, *Qmax*s for those dims, O)."""
        if depth == n:
            phase = next(phases)
            shape = (x.shape[0], *plan.q_max, w.shape[-1])
            if phase is None:
                return jnp.zeros(shape, out_dtype)
            sub_w = w[tuple(slice(*t) for t in phase.taps)]  # (*K_r, I, O)
            y = execute(x, sub_w, phase.spec, phase.choice)  # (N, *Q_r, O)
            config = [(0, 0, 0)] + [(0, qm - qy, 0) for qm, qy in zip(plan.q_max, y.shape[1:-1])]
            return lax.pad(y, jnp.zeros((), y.dtype), config + [(0, 0, 0)])  # (N, *Qmax, O)
        parts = [build(depth + 1) for _ in range(spec.strides[depth])]
        y = jnp.stack(parts, axis=depth + 2)  # (N, .., Qmax_d, s_d, .., O)
        shape = list(parts[0].shape)
        shape[depth + 1] *= spec.strides[depth]
        return y.reshape(shape)  # (N, .., Qmax_d*s_d, .., O)

    y = build(0)
    return y[(slice(None), *(slice(0, o) for o in out), slice(None))]  # (N, *Out, O)


def _xla_forward(x, w, plan: TransposePlan):
    return execute(x, w, plan.dilated, XLA)  # (N, *Out, O)


_xla_subpixel = with_tangents(_xla_forward, _subpixel, "conv_transpose_xla_subpixel")


@functools.partial(jax.jit, static_argnums=2)
def _execute(lhs, rhs, plan: TransposePlan):
    spec = plan.spec
    x = transpose(lhs, spec.layout.lhs_to_canon)  # (N, *S, C)
    w = transpose(rhs, spec.layout.rhs_to_canon)  # (*K, I, O)
    if spec.transpose_kernel:
        w = _flip_and_swap(w, spec.groups)  # (*K, O/G, G*I)
    if plan.dilated.empty:
        out = jnp.zeros(plan.dilated.out_shape, spec.problem.params.out_dtype)
    elif plan.algorithm == "subpixel":
        out = _subpixel(x, w, plan)
    elif plan.algorithm == "xla/subpixel":
        out = _xla_subpixel(x, w, plan)
    else:
        out = execute(x, w, plan.dilated, plan.choice)  # (N, *Out, O)
    return transpose(out, spec.layout.canon_to_out)


def _program(lhs, rhs, spec: TransposeSpec):
    """What autotuning times for a candidate: the whole transposed conv."""
    specs = (jax.ShapeDtypeStruct(lhs.shape, lhs.dtype), jax.ShapeDtypeStruct(rhs.shape, rhs.dtype))

    def program(name: str):
        return functools.partial(_execute, plan=plan_transpose(spec, name)), specs

    return program


def conv_transpose(
    lhs: jax.typing.ArrayLike,
    rhs: jax.typing.ArrayLike,
    strides: int | tuple[int, ...],
    padding: Padding,
    rhs_dilation: tuple[int, ...] | None = None,
    dimension_numbers: Any = None,
    transpose_kernel: bool = False,
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    use_consistent_padding: bool = False,
    *,
    output_padding: int | tuple[int, ...] | None = None,
    feature_group_count: int = 1,
    out_sharding: Sharding | None = None,
    algorithm: TransposeAlgorithm = "auto",
) -> jax.Array:
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
      algorithm: one of `jaxconv.TRANSPOSE_ALGORITHMS`.

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
    lhs, rhs = check_operand(lhs, "lhs", op), check_operand(rhs, "rhs", op)
    spec = transpose_spec(
        lhs,
        rhs,
        strides,
        padding,
        rhs_dilation,
        dimension_numbers,
        transpose_kernel,
        precision,
        preferred_element_type,
        use_consistent_padding,
        output_padding,
        feature_group_count,
        op,
    )
    name = transpose_choice(algorithm, spec, op, _program(lhs, rhs, spec))
    if name in ("subpixel", "xla/subpixel") and is_symbolic(spec.problem.x_shape[1:-2]):
        raise ValueError(
            f"{op}: `algorithm` (={name!r}) needs concrete spatial sizes to plan its phases."
        )
    plan = plan_transpose(spec, name)
    x_shape = tuple(lhs.shape[i] for i in spec.layout.lhs_to_canon)
    w_shape = tuple(rhs.shape[i] for i in spec.layout.rhs_to_canon)
    record(op, Choice(plan.algorithm), x_shape, w_shape, plan.parts)
    return apply_out_sharding(_execute(lhs, rhs, plan), out_sharding)
