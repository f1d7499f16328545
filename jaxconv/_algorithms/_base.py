"""What an algorithm is: one object that owns everything true of it.

Every algorithm computes the same canonical function,

    fn(x (N, *S, G, Ig), w (*K, Ig, G, Og), params: ConvParams) -> (N, *O, G, Og),

and says, as plain data or pure functions of a `Problem`, what selection needs:
whether it can run the problem, the forward workspace it holds, along which axes
it may run in pieces and which pieces still run well, whether NaN and inf land
where lax's do, and which backends it is meant for. The memory budget, the piece
search and the autotuner read these fields and name no algorithm.

A composite is a structured pair: one algorithm's forward pass with another's
tangents (and so, by transposition, its gradients), e.g. XLA forward with FFT
gradients. `pair` builds it; nothing parses names. An algorithm fast in its forward
pass alone names instead what runs, primal and tangents, wherever the call is
differentiated (`differentiated`, applied by `forward_only`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxconv._spec import ConvParams, Problem, dtype_kind

NUMERIC = ("integer", "floating", "complexfloating")
INEXACT = ("floating", "complexfloating")
ALL_BACKENDS = ("cpu", "gpu", "tpu")
PIECE_AXES = ("rows", "groups", "batch")


def _always(problem: Problem) -> str | None:
    return None


def _no_workspace(problem: Problem, piece: bool = False) -> int:
    return 0


def _any_piece(piece: Problem, axis: str, count: int) -> bool:
    return True


def _exact(problem: Problem) -> bool:
    return True


def _inexact(problem: Problem) -> bool:
    return False


def no_holes(problem: Problem) -> bool:
    """No stride and no lhs dilation: lax's gradients of strided convs, and its lhs-dilated
    convs, multiply the zeros they insert with the other operand (0 * inf is NaN), which
    an algorithm that skips those products does not reproduce."""
    p = problem.params
    return all(s == 1 for s in p.strides) and all(d == 1 for d in p.lhs_dilation)


EXACT, INEXACT_NONFINITE = _exact, _inexact


@dataclasses.dataclass(frozen=True, eq=False)
class Algorithm:
    """A convolution algorithm and everything selection needs to know of it.

    Attributes:
      name: the `algorithm=` name.
      fn: the canonical function (module docstring).
      summary: one line, for the docs.
      supports: `problem -> None` if it can run the problem, else the reason.
      dtypes: the dtype kinds it takes ('bool', 'integer', 'floating', 'complexfloating').
      workspace: `(problem, piece) -> bytes` of scratch its forward pass holds at once,
        estimated from the shapes; `piece`: as it runs on a piece (`piece_fn`).
      piece_axes: the axes it may run in pieces along, in order of preference
        ("rows" of the output, "groups", "batch"); () never.
      piece_ok: `(piece problem, axis, count) -> bool`: whether such a piece still
        runs fast enough to be worth it (speed, not memory).
      piece_fn: what runs on a piece, whose input is a computed window or slice;
        None: `fn`.
      tangent_fn: the same function free of custom derivative rules, which another
        algorithm's tangents can run (JAX transposes it); None: `fn`.
      kernel_tangent_fn: the same, run for the tangent along the kernel (x, dw), where
        a form that transposes more cheaply with respect to the kernel exists; None:
        `tangent_fn`.
      differentiated: for an algorithm that is fast in the forward pass alone, the
        canonical function that runs instead, its primal and its tangents, wherever
        the call is differentiated (`forward_only`); None: `fn` always.
      exact_nonfinite: `problem -> bool`: whether NaN and ±inf in either operand land
        where lax's do (float32 on CPU), in the values and in the gradients.
      backends: where "auto" and the autotuner consider it; () only when named.
      forward, tangents: the parts of a composite, else None.
    """

    name: str
    fn: Callable
    summary: str
    supports: Callable[[Problem], str | None] = _always
    dtypes: tuple[str, ...] = NUMERIC
    workspace: Callable[..., int] = _no_workspace
    piece_axes: tuple[str, ...] = PIECE_AXES
    piece_ok: Callable[[Problem, str, int], bool] = _any_piece
    piece_fn: Callable | None = None
    tangent_fn: Callable | None = None
    kernel_tangent_fn: Callable | None = None
    differentiated: Callable | None = None
    exact_nonfinite: Callable[[Problem], bool] = _exact
    backends: tuple[str, ...] = ALL_BACKENDS
    forward: Algorithm | None = None
    tangents: Algorithm | None = None

    def why_not(self, problem: Problem) -> str | None:
        """None if the algorithm can run `problem`, else the reason."""
        kind = dtype_kind(problem.dtype)
        if kind not in self.dtypes:
            return f"it takes {' or '.join(self.dtypes)} inputs, got {problem.dtype}."
        return self.supports(problem)

    @property
    def in_pieces(self) -> Callable:
        return self.piece_fn or self.fn

    @property
    def composite(self) -> bool:
        return self.forward is not None


def is_zero(tangent) -> bool:
    """Whether a custom_jvp tangent (with `symbolic_zeros=True`) is a symbolic zero."""
    return type(tangent) is jax.custom_derivatives.SymbolicZero


def bilinear_tangent(out, dx, dw, along_x, along_w):
    """The tangent of a function linear in each of its two operands:
    `along_x(dx) + along_w(dw)`, skipping symbolic zeros. `out` is the primal output,
    whose zeros stand for a tangent with neither."""
    terms = []
    if not is_zero(dx):
        terms.append(along_x(dx))
    if not is_zero(dw):
        terms.append(along_w(dw))
    if not terms:
        return jnp.zeros_like(out)
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def with_tangents(
    primal: Callable, tangent: Callable, name: str, kernel_tangent: Callable | None = None
) -> Callable:
    """A canonical conv that runs `primal` forward and `tangent` for every tangent
    (`kernel_tangent`, if given, for the one along the kernel).

    A convolution is bilinear, so its JVP is tangent(dx, w) + kernel_tangent(x, dw);
    under reverse mode JAX transposes those, so the backward pass costs what their
    transposes cost. Forward mode still works: it is a custom_jvp with a linear rule,
    not a custom_vjp.
    """
    kernel_tangent = kernel_tangent or tangent

    @functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
    def conv(x, w, p: ConvParams):
        return primal(x, w, p)

    @functools.partial(conv.defjvp, symbolic_zeros=True)
    def _jvp(p, primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        out = conv(x, w, p)
        tan = bilinear_tangent(
            out, dx, dw, lambda dx: tangent(dx, w, p), lambda dw: kernel_tangent(x, dw, p)
        )
        return out, tan

    conv.__name__ = conv.__qualname__ = name
    return conv


def forward_only(primal: Callable, differentiated: Callable) -> Callable:
    """`primal(x, w)` where the call is not differentiated; wherever it is (jvp, grad,
    linearize), `differentiated(x, w)`, the same bilinear function, runs instead, for
    the primal output and for the tangents, so reverse mode saves and transposes only
    it. A custom_jvp: forward mode works."""

    @jax.custom_jvp
    def conv(x, w):
        return primal(x, w)

    @functools.partial(conv.defjvp, symbolic_zeros=True)
    def _jvp(primals, tangents):
        (x, w), (dx, dw) = primals, tangents
        out = differentiated(x, w)
        along_x, along_w = (lambda dx: differentiated(dx, w)), (lambda dw: differentiated(x, dw))
        return out, bilinear_tangent(out, dx, dw, along_x, along_w)

    return conv


def pair(forward: Algorithm, tangents: Algorithm, summary: str) -> Algorithm:
    """`forward`'s forward pass with `tangents`' tangents and gradients, as one
    algorithm named "forward/tangents". It runs where both can; its workspace and its
    pieces are the forward's (pieces cut only the forward pass); its non-finite values
    are exact where both parts' are."""
    name = f"{forward.name}/{tangents.name}"
    tangent = tangents.tangent_fn or tangents.fn

    def supports(problem: Problem) -> str | None:
        return forward.why_not(problem) or tangents.why_not(problem)

    return Algorithm(
        name=name,
        fn=with_tangents(forward.fn, tangent, name.replace("/", "_"), tangents.kernel_tangent_fn),
        summary=summary,
        supports=supports,
        dtypes=tuple(k for k in forward.dtypes if k in tangents.dtypes),
        workspace=forward.workspace,
        piece_axes=forward.piece_axes,
        piece_ok=forward.piece_ok,
        piece_fn=forward.in_pieces,
        exact_nonfinite=lambda p: forward.exact_nonfinite(p) and tangents.exact_nonfinite(p),
        backends=tuple(b for b in forward.backends if b in tangents.backends),
        forward=forward,
        tangents=tangents,
    )
