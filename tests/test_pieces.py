"""The memory budget and pieces: workspace estimates against `memory_analysis()`, the
piece search, running in pieces, and auto's forward peak."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv._algorithms import REGISTRY
from jaxconv._conv import execute
from jaxconv._pieces import Pieces, fit, piece_bytes, sliced
from jaxconv._select import Choice, conv_choice
from jaxconv._settings import MEMORY_BUDGET
from tests.util import FULL, LAYOUT, assert_close, compiled_memory, conv_spec_of, random


def spec(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


def plan_for(xs, ws, strides, groups, algorithm="auto", padding="SAME", dn=None, dtype="float32"):
    """(ConvSpec, Choice) of a conv, as conv_general_dilated makes them."""
    cs = conv_spec_of(xs, ws, strides, groups, padding, dn=dn, dtype=dtype)
    return cs, conv_choice(algorithm, cs.problem, "test")


def workspace(problem, name):
    return REGISTRY[name].workspace(problem, False)


def fit_pieces(problem, name, budget=MEMORY_BUDGET):
    return fit(problem, REGISTRY[name], budget)


def allowed(problem):
    return (MEMORY_BUDGET - 1) * problem.io_bytes


# (x shape, w shape, strides, groups, padding): layers where "auto" picks an algorithm
# with a workspace, cut down to compile quickly.
LAYERS = [
    ((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1, "SAME"),  # winograd4, in batch pieces
    ((4, 56, 56, 32), (3, 3, 1, 32), (1, 1), 32, "SAME"),  # depthwise, bands padded per tap
    ((2, 56, 56, 32), (7, 7, 1, 32), (1, 1), 32, "SAME"),  # depthwise, bands copied
    ((4, 28, 28, 64), (5, 5, 1, 64), (2, 2), 64, "SAME"),  # strided depthwise 5x5
    ((1, 14, 14, 128), (7, 7, 1, 128), (1, 1), 128, "SAME"),  # depthwise copy, group pieces
    ((2, 14, 14, 128), (31, 31, 1, 128), (1, 1), 128, "SAME"),  # fft, group pieces
    ((2, 2048, 32), (128, 1, 32), (1,), 32, "SAME"),  # 1-D fft
    ((2, 4096, 64), (128, 4, 64), (1,), 16, "SAME"),  # grouped 1-D fft, group pieces
    ((2, 112, 112, 3), (16, 16, 3, 192), (16, 16), 1, "VALID"),  # pointwise patches
    ((2, 4, 4, 4, 512), (3, 3, 3, 512, 512), (1, 1, 1), 1, "SAME"),  # 3-D im2col, whole
    ((1, 8, 56, 56, 3), (3, 3, 3, 3, 32), (1, 1, 1), 1, "SAME"),  # xla2d, a video stem
    ((8, 4, 14, 14, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "SAME"),  # xla2d, batch chunks
    ((2, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "SAME"),  # xla2d, row pieces
    ((1, 8, 14, 14, 128), (3, 3, 3, 128, 256), (2, 2, 2), 1, "SAME"),  # xla/im2col, 3-D
]


@pytest.mark.parametrize("xs, ws, strides, groups, padding", LAYERS)
def test_auto_forward_peak_within_budget_of_lax(xs, ws, strides, groups, padding):
    cs, choice = plan_for(xs, ws, strides, groups, padding=padding)
    assert choice.algorithm != "xla", "the table should exercise algorithms with a workspace"
    dn = LAYOUT[len(xs)]
    x, w = spec(xs), spec(ws)
    _, auto_peak = compiled_memory(
        lambda x, w: jaxconv.conv_general_dilated(
            x, w, strides, padding, dimension_numbers=dn, feature_group_count=groups
        ),
        x,
        w,
    )
    _, lax_peak = compiled_memory(
        lambda x, w: lax.conv_general_dilated(
            x, w, strides, padding, dimension_numbers=dn, feature_group_count=groups
        ),
        x,
        w,
    )
    assert auto_peak <= MEMORY_BUDGET * lax_peak, choice


@pytest.mark.parametrize("xs, ws, strides, groups, padding", LAYERS)
def test_workspace_estimate_matches_memory_analysis(xs, ws, strides, groups, padding):
    """The estimate that decides chunking tracks what XLA allocates (unchunked)."""
    cs, choice = plan_for(xs, ws, strides, groups, padding=padding)
    name = choice.algorithm
    dn = LAYOUT[len(xs)]
    temp, _ = compiled_memory(
        lambda x, w: jaxconv.conv_general_dilated(
            x, w, strides, padding, dimension_numbers=dn, feature_group_count=groups, algorithm=name
        ),
        spec(xs),
        spec(ws),
    )
    estimate = workspace(cs.problem, name)
    assert 0.6 * estimate - 2**16 <= temp <= 1.3 * estimate + 2**16, (name, temp, estimate)


@pytest.mark.parametrize(
    "xs, ws, strides",
    [((8, 7, 7, 256), (3, 3, 256, 256), (1, 1)), ((2, 99, 256), (3, 256, 256), (2,))],
)
def test_im2col_estimate_matches_memory_analysis(xs, ws, strides):
    """ "auto" runs im2col's gradients only (`xla/im2col`); named, its forward holds the
    padded input and the patch matrix twice (each tap's window, then their
    concatenation), as estimated."""
    cs, _ = plan_for(xs, ws, strides, 1)
    dn = LAYOUT[len(xs)]
    temp, _ = compiled_memory(
        lambda x, w: jaxconv.conv_general_dilated(
            x, w, strides, "SAME", dimension_numbers=dn, algorithm="im2col"
        ),
        spec(xs),
        spec(ws),
    )
    estimate = workspace(cs.problem, "im2col")
    assert 0.6 * estimate - 2**16 <= temp <= 1.3 * estimate + 2**16, (temp, estimate)


@pytest.mark.parametrize("xs, ws, strides", [LAYERS[-2][:3], LAYERS[-1][:3]])
def test_xla2d_estimate_counts_float32_copies_of_16bit_inputs(xs, ws, strides):
    """XLA:CPU converts bfloat16 x and w to float32, whole, for its convs."""
    cs, choice = plan_for(xs, ws, strides, 1, algorithm="xla2d", dtype="bfloat16")
    x, w = spec(xs, jnp.bfloat16), spec(ws, jnp.bfloat16)
    temp, _ = compiled_memory(lambda x, w: execute(x, w, cs, choice), x, w)
    estimate = workspace(cs.problem, "xla2d")
    assert 0.6 * estimate <= temp <= 1.3 * estimate, (temp, estimate)


def test_chunks_shrink_the_measured_workspace():
    xs, ws = (8, 28, 28, 64), (3, 3, 64, 64)
    cs, _ = plan_for(xs, ws, (1, 1), 1, algorithm="winograd4")
    temps = {}
    for count in (1, 4):
        choice = Choice("winograd4", Pieces("batch", count))
        temps[count], _ = compiled_memory(
            lambda x, w, choice=choice: execute(x, w, cs, choice), spec(xs), spec(ws)
        )
    assert temps[4] < 0.4 * temps[1], temps


def test_fit_picks_fewest_dividing_pieces():
    problem = plan_for((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1)[0].problem
    pieces = fit_pieces(problem, "winograd4")
    # One group: the output rows are cut first (56 of them), not the batch.
    assert pieces.axis == "rows" and 56 % pieces.count == 0
    counts = [k for k in range(2, 57) if 56 % k == 0]
    winograd4 = REGISTRY["winograd4"]
    fits = [piece_bytes(problem, winograd4, "rows", k) <= allowed(problem) for k in counts]
    assert workspace(problem, "winograd4") > allowed(problem)
    assert pieces.count == counts[fits.index(True)]
    assert fit_pieces(problem, "xla") == Pieces("batch", 1)
    # One image, one group, one output row: nothing to cut, and the tiles do not fit.
    single = plan_for((1, 1, 56, 64), (1, 3, 64, 64), (1, 1), 1)[0].problem
    assert fit_pieces(single, "winograd") is None
    assert fit_pieces(single, "winograd", budget=10.0) == Pieces("batch", 1)


def test_depthwise_row_pieces_read_at_most_twice_their_rows():
    """Stride-1 5x5 and 7x7 layers on small images fit the budget only in row pieces that
    re-read most of their window (1 output row reading 5 input rows; 4 reading 10), so
    they are cut by the batch; strided ones keep their rows (4 rows of stride 2 read 11)."""
    for xs, ws in [((8, 14, 14, 64), (5, 5, 1, 64)), ((8, 28, 28, 32), (7, 7, 1, 32))]:
        problem = plan_for(xs, ws, (1, 1), xs[-1])[0].problem
        row_fit = piece_bytes(problem, REGISTRY["depthwise"], "rows", 14) <= allowed(problem)
        assert row_fit and fit_pieces(problem, "depthwise") == Pieces("batch", 4)
    strided = plan_for((8, 56, 56, 16), (5, 5, 1, 16), (2, 2), 16)[0].problem
    assert fit_pieces(strided, "depthwise") == Pieces("rows", 7)
    piece = sliced(strided, "rows", 7)
    assert (piece.x_shape[1], piece.out_spatial[0]) == (11, 4)


def test_depthwise_single_image_pieces_give_way_to_groups_of_64_channels():
    """Pieces of single images give way to pieces of groups of 64+ channels; with 12
    channels a group piece, the images stay cut (docs/design.md, "Pieces")."""
    problem = plan_for((8, 7, 7, 768), (7, 7, 1, 768), (1, 1), 768)[0].problem
    pieces = fit_pieces(problem, "depthwise")
    assert pieces.axis == "groups" and 768 // pieces.count >= 64, pieces
    depthwise = REGISTRY["depthwise"]
    assert piece_bytes(problem, depthwise, "batch", 8) <= allowed(problem)  # it would fit
    narrow = plan_for((8, 7, 7, 96), (7, 7, 1, 96), (1, 1), 96)[0].problem
    assert fit_pieces(narrow, "depthwise") == Pieces("batch", 8)


CHUNKED = [
    # (x shape, w shape, groups, layout, algorithm, pieces)
    ((4, 9, 9, 6), (3, 3, 1, 12), 6, LAYOUT[4], "depthwise", Pieces("batch", 2)),
    ((1, 9, 9, 6), (3, 3, 1, 12), 6, LAYOUT[4], "depthwise", Pieces("groups", 3)),
    ((2, 6, 9, 9), (12, 2, 3, 3), 3, ("NCHW", "OIHW", "NCHW"), "direct", Pieces("groups", 3)),
    ((4, 6, 9, 9), (5, 6, 3, 3), 1, ("NCHW", "OIHW", "NCHW"), "direct", Pieces("batch", 4)),
    ((2, 20, 4), (7, 1, 4), 4, LAYOUT[3], "fft", Pieces("groups", 2)),
    # Rows: each piece reads its window of input rows, zero beyond the padding.
    ((2, 12, 9, 3), (3, 3, 3, 4), 1, LAYOUT[4], "direct", Pieces("rows", 3)),
    ((2, 3, 12, 9), (4, 3, 3, 3), 1, ("NCHW", "OIHW", "NCHW"), "winograd", Pieces("rows", 3)),
    ((1, 39, 2), (9, 2, 3), 1, LAYOUT[3], "fft", Pieces("rows", 5)),
    ((1, 6, 7, 7, 8), (3, 3, 3, 8, 8), 1, LAYOUT[5], "xla2d", Pieces("rows", 2)),
    ((2, 12, 9, 3), (3, 3, 3, 4), 1, LAYOUT[4], "direct", Pieces("rows", 4)),
]
# Strides, dilation and padding per case (rows cases exercise the windows' edges).
GEOMETRY = {
    5: ((2, 1), ((2, 1), (1, 1)), (2, 1)),
    6: ((1, 1), ((0, 2), (1, 1)), (1, 1)),
    7: ((3,), ((5, 2),), (2,)),
    9: ((1, 1), ((-1, 3), (1, 1)), (1, 1)),  # negative padding crops the first row
}


def _geometry(i, nd):
    return GEOMETRY.get(i, ((1,) * nd, "SAME", (1,) * nd))


@pytest.mark.parametrize("i", range(len(CHUNKED)))
def test_chunked_equals_lax(i):
    xs, ws, groups, dn, name, pieces = CHUNKED[i]
    strides, padding, dilation = _geometry(i, len(xs) - 2)
    cs = conv_spec_of(xs, ws, strides, groups, padding, None, dilation, dn)
    x, w = random(xs, seed=1), random(ws, seed=2)
    want = lax.conv_general_dilated(
        x,
        w,
        strides,
        padding,
        rhs_dilation=dilation,
        dimension_numbers=dn,
        feature_group_count=groups,
        precision="highest",
    )
    assert_close(execute(x, w, cs, Choice(name, pieces)), want, scale=4)


def test_pieces_stay_apart_from_their_update():
    """On CPU each piece is computed behind a conditional (`_pieces._own_fusion`), which
    XLA keeps after optimisation: fused into the in-place update, a piece would run on
    one core."""
    xs, ws, groups, dn, name, pieces = CHUNKED[0]
    cs, _ = plan_for(xs, ws, (1, 1), groups, algorithm=name, dn=dn)
    run = jax.jit(lambda x, w: execute(x, w, cs, Choice(name, pieces)))
    hlo = run.lower(spec(xs), spec(ws)).compile()
    assert jax.default_backend() == "cpu"
    assert " conditional(" in hlo.as_text()


# Groups (depthwise), rows of a 1-D FFT, rows with negative padding; `make test-full`
# adds groups of a channels-first direct conv and strided, dilated rows (slow).
@pytest.mark.parametrize("i", [1, 2, 5, 7, 9] if FULL else [1, 7, 9])
def test_chunked_transforms(i):
    """jvp, grad and grad of grad go through the unchunked algorithm's own rules; vmap
    maps the loop."""
    xs, ws, groups, dn, name, pieces = CHUNKED[i]
    strides, padding, dilation = _geometry(i, len(xs) - 2)
    cs = conv_spec_of(xs, ws, strides, groups, padding, None, dilation, dn, dtype="float64")
    x, w = random(xs, "float64", seed=3), random(ws, "float64", seed=4)

    def f(x, w):
        return execute(x, w, cs, Choice(name, pieces))

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
    batched = jax.vmap(f, in_axes=(None, 0))(x, jnp.stack([w, 2 * w]))
    assert_close(batched[1], 2 * f(x, w), dtype="float64")
