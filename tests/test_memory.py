"""The memory budget: workspace estimates, chunked execution, and auto's forward peak."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import jaxconv
from jaxconv import _conv, _memory
from jaxconv._chunk import Chunks
from tests.util import FULL, assert_close, random

LAYOUT = {3: ("NWC", "WIO", "NWC"), 4: ("NHWC", "HWIO", "NHWC"), 5: ("NDHWC", "DHWIO", "NDHWC")}


def spec(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


def plan_for(xs, ws, strides, groups, algorithm="auto", padding="SAME", dn=None, dtype=jnp.float32):
    dn = dn or LAYOUT[len(xs)]
    x, w = spec(xs, dtype), spec(ws, dtype)
    return _conv._plan(
        x, w, strides, padding, None, None, dn, groups, 1, None, None, algorithm, "t"
    )


def compiled_memory(fn, *args):
    """(temp, peak) bytes of the compiled `fn`, as `make bench` reports them."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    temp = stats.temp_size_in_bytes
    peak = temp + stats.argument_size_in_bytes + stats.output_size_in_bytes
    return temp, peak - stats.alias_size_in_bytes


# (x shape, w shape, strides, groups, padding): layers where "auto" picks an algorithm
# with a workspace, cut down to compile quickly.
LAYERS = [
    ((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1, "SAME"),  # winograd4, in batch chunks
    ((4, 56, 56, 32), (3, 3, 1, 32), (1, 1), 32, "SAME"),  # depthwise, bands padded per tap
    ((2, 56, 56, 32), (7, 7, 1, 32), (1, 1), 32, "SAME"),  # depthwise, bands copied
    ((4, 28, 28, 64), (5, 5, 1, 64), (2, 2), 64, "SAME"),  # strided depthwise 5x5
    ((1, 14, 14, 128), (7, 7, 1, 128), (1, 1), 128, "SAME"),  # depthwise copy, group chunks
    ((2, 14, 14, 128), (31, 31, 1, 128), (1, 1), 128, "SAME"),  # fft, group chunks
    ((2, 2048, 32), (128, 1, 32), (1,), 32, "SAME"),  # 1-D fft
    ((2, 4096, 64), (128, 4, 64), (1,), 16, "SAME"),  # grouped 1-D fft, group chunks
    ((2, 112, 112, 3), (16, 16, 3, 192), (16, 16), 1, "VALID"),  # pointwise patches
    ((1, 8, 56, 56, 3), (3, 3, 3, 3, 32), (1, 1, 1), 1, "SAME"),  # xla2d, taps folded
    ((8, 4, 14, 14, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "SAME"),  # xla2d, batch chunks
    ((1, 8, 28, 28, 64), (3, 3, 3, 64, 64), (1, 1, 1), 1, "SAME"),  # xla2d, row chunks
    ((1, 8, 14, 14, 128), (3, 3, 3, 128, 256), (2, 2, 2), 1, "SAME"),  # xla2d, strided
]


@pytest.mark.parametrize("xs, ws, strides, groups, padding", LAYERS)
def test_auto_forward_peak_within_budget_of_lax(xs, ws, strides, groups, padding):
    plan, problem = plan_for(xs, ws, strides, groups, padding=padding)
    assert plan.algorithm != "xla", "the table should exercise algorithms with a workspace"
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
    assert auto_peak <= _memory.MEMORY_BUDGET * lax_peak, (plan.algorithm, plan.chunks)


@pytest.mark.parametrize("xs, ws, strides, groups, padding", LAYERS)
def test_workspace_estimate_matches_memory_analysis(xs, ws, strides, groups, padding):
    """The estimate that decides chunking tracks what XLA allocates (unchunked)."""
    plan, problem = plan_for(xs, ws, strides, groups, padding=padding)
    name = plan.algorithm
    dn = LAYOUT[len(xs)]
    temp, _ = compiled_memory(
        lambda x, w: jaxconv.conv_general_dilated(
            x, w, strides, padding, dimension_numbers=dn, feature_group_count=groups, algorithm=name
        ),
        spec(xs),
        spec(ws),
    )
    estimate = _memory.workspace_bytes(problem, name)
    assert 0.6 * estimate - 2**16 <= temp <= 1.3 * estimate + 2**16, (name, temp, estimate)


@pytest.mark.parametrize("xs, ws, strides", [LAYERS[-2][:3], LAYERS[-1][:3]])
def test_xla2d_estimate_counts_float32_copies_of_16bit_inputs(xs, ws, strides):
    """XLA:CPU converts bfloat16 x and w to float32, whole, for its convs."""
    plan, problem = plan_for(xs, ws, strides, 1, algorithm="xla2d", dtype=jnp.bfloat16)
    x, w = spec(xs, jnp.bfloat16), spec(ws, jnp.bfloat16)
    temp, _ = compiled_memory(lambda x, w: _conv._run(x, w, plan), x, w)
    estimate = _memory.workspace_bytes(problem, "xla2d")
    assert 0.6 * estimate <= temp <= 1.3 * estimate, (temp, estimate)


def test_chunks_shrink_the_measured_workspace():
    xs, ws = (8, 28, 28, 64), (3, 3, 64, 64)
    plan, _ = plan_for(xs, ws, (1, 1), 1, algorithm="winograd4")
    temps = {}
    for count in (1, 4):
        chunked = dataclasses.replace(plan, chunks=Chunks("batch", count))
        temps[count], _ = compiled_memory(
            lambda x, w, chunked=chunked: _conv._run(x, w, chunked), spec(xs), spec(ws)
        )
    assert temps[4] < 0.4 * temps[1], temps


def test_fit_chunks_picks_fewest_dividing_chunks():
    _, problem = plan_for((8, 56, 56, 64), (3, 3, 64, 64), (1, 1), 1)
    chunks = _memory.fit_chunks(problem, "winograd4")
    # One group: the output rows are cut first (56 of them), not the batch.
    assert chunks.axis == "rows" and 56 % chunks.count == 0
    allowed = (_memory.MEMORY_BUDGET - 1) * _memory.io_bytes(problem)
    counts = [k for k in range(2, 57) if 56 % k == 0]
    fits = [_memory._chunk_bytes(problem, "winograd4", "rows", k) <= allowed for k in counts]
    assert _memory.workspace_bytes(problem, "winograd4") > allowed
    assert chunks.count == counts[fits.index(True)]
    assert _memory.fit_chunks(problem, "xla") == Chunks("batch", 1)
    # One image, one group, one output row: nothing to cut, and the tiles do not fit.
    _, single = plan_for((1, 1, 56, 64), (1, 3, 64, 64), (1, 1), 1)
    assert _memory.fit_chunks(single, "winograd") is None
    assert _memory.fit_chunks(single, "winograd", budget=10.0) == Chunks("batch", 1)


def test_depthwise_row_pieces_read_at_most_twice_their_rows():
    """Stride-1 5x5 and 7x7 layers on small images fit the budget only in row pieces that
    re-read most of their window (1 output row reading 5 input rows; 4 reading 10), so
    they are cut by the batch; strided ones keep their rows (4 rows of stride 2 read 11)."""
    for xs, ws in [((8, 14, 14, 64), (5, 5, 1, 64)), ((8, 28, 28, 32), (7, 7, 1, 32))]:
        _, problem = plan_for(xs, ws, (1, 1), xs[-1])
        allowed = (_memory.MEMORY_BUDGET - 1) * _memory.io_bytes(problem)
        row_fit = _memory._chunk_bytes(problem, "depthwise", "rows", 14) <= allowed
        assert row_fit and _memory.fit_chunks(problem, "depthwise") == Chunks("batch", 4)
    _, strided = plan_for((8, 56, 56, 16), (5, 5, 1, 16), (2, 2), 16)
    assert _memory.fit_chunks(strided, "depthwise") == Chunks("rows", 7)
    piece = _memory.sliced(strided, "rows", 7)
    assert (piece.x_shape[1], piece.out_spatial[0]) == (11, 4)


def test_depthwise_single_image_pieces_give_way_to_groups_of_64_channels():
    """ConvNeXt's 7x7 7x7x768 in 8 pieces of one image ran 13.6-17.5x lax forward, in
    pieces of groups 21-30x; with 12 channels a group piece, the images stay cut."""
    _, problem = plan_for((8, 7, 7, 768), (7, 7, 1, 768), (1, 1), 768)
    chunks = _memory.fit_chunks(problem, "depthwise")
    assert chunks.axis == "groups" and 768 // chunks.count >= 64, chunks
    allowed = (_memory.MEMORY_BUDGET - 1) * _memory.io_bytes(problem)
    assert _memory._chunk_bytes(problem, "depthwise", "batch", 8) <= allowed  # it would fit
    _, narrow = plan_for((8, 7, 7, 96), (7, 7, 1, 96), (1, 1), 96)
    assert _memory.fit_chunks(narrow, "depthwise") == Chunks("batch", 8)


CHUNKED = [
    # (x shape, w shape, groups, layout, algorithm, chunks)
    ((4, 9, 9, 6), (3, 3, 1, 12), 6, LAYOUT[4], "depthwise", Chunks("batch", 2)),
    ((1, 9, 9, 6), (3, 3, 1, 12), 6, LAYOUT[4], "depthwise", Chunks("groups", 3)),
    ((2, 6, 9, 9), (12, 2, 3, 3), 3, ("NCHW", "OIHW", "NCHW"), "direct", Chunks("groups", 3)),
    ((4, 6, 9, 9), (5, 6, 3, 3), 1, ("NCHW", "OIHW", "NCHW"), "direct", Chunks("batch", 4)),
    ((2, 20, 4), (7, 1, 4), 4, LAYOUT[3], "fft", Chunks("groups", 2)),
    # Rows: each piece reads its window of input rows, zero beyond the padding.
    ((2, 12, 9, 3), (3, 3, 3, 4), 1, LAYOUT[4], "direct", Chunks("rows", 3)),
    ((2, 3, 12, 9), (4, 3, 3, 3), 1, ("NCHW", "OIHW", "NCHW"), "im2col", Chunks("rows", 3)),
    ((1, 39, 2), (9, 2, 3), 1, LAYOUT[3], "fft", Chunks("rows", 5)),
    ((1, 6, 7, 7, 8), (3, 3, 3, 8, 8), 1, LAYOUT[5], "xla2d", Chunks("rows", 2)),
    ((2, 12, 9, 3), (3, 3, 3, 4), 1, LAYOUT[4], "direct", Chunks("rows", 4)),
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
    xs, ws, groups, dn, name, chunks = CHUNKED[i]
    strides, padding, dilation = _geometry(i, len(xs) - 2)
    plan, _ = _conv._plan(
        spec(xs), spec(ws), strides, padding, None, dilation, dn, groups, 1, None, None, name, "t"
    )
    plan = dataclasses.replace(plan, chunks=chunks)
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
    assert_close(_conv._run(x, w, plan), want, scale=4)


def test_pieces_stay_apart_from_their_update():
    """On CPU each piece is computed behind a conditional (`_chunk._own_fusion`), which
    XLA keeps after optimisation: fused into the in-place update, a piece would run on
    one core."""
    xs, ws, groups, dn, name, chunks = CHUNKED[0]
    plan, _ = plan_for(xs, ws, (1, 1), groups, algorithm=name, dn=dn)
    plan = dataclasses.replace(plan, chunks=chunks)
    hlo = jax.jit(lambda x, w: _conv._run(x, w, plan)).lower(spec(xs), spec(ws)).compile()
    assert jax.default_backend() == "cpu"
    assert " conditional(" in hlo.as_text()


# Groups (depthwise), rows of a 1-D FFT, rows with negative padding; `make test-full`
# adds groups of a channels-first direct conv and strided, dilated rows (16 s and 12 s).
@pytest.mark.parametrize("i", [1, 2, 5, 7, 9] if FULL else [1, 7, 9])
def test_chunked_transforms(i):
    """jvp, grad and grad of grad go through the unchunked algorithm's own rules; vmap
    maps the loop."""
    xs, ws, groups, dn, name, chunks = CHUNKED[i]
    strides, padding, dilation = _geometry(i, len(xs) - 2)
    plan, _ = _conv._plan(
        spec(xs), spec(ws), strides, padding, None, dilation, dn, groups, 1, None, None, name, "t"
    )
    plan = dataclasses.replace(plan, chunks=chunks)
    x, w = random(xs, "float64", seed=3), random(ws, "float64", seed=4)
    plan64 = dataclasses.replace(
        plan, params=dataclasses.replace(plan.params, out_dtype=np.dtype("float64"))
    )

    def f(x, w):
        return _conv._run(x, w, plan64)

    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
    batched = jax.vmap(f, in_axes=(None, 0))(x, jnp.stack([w, 2 * w]))
    assert_close(batched[1], 2 * f(x, w), dtype="float64")


@pytest.mark.parametrize("chunks", [Chunks("rows", 5), Chunks("groups", 2), Chunks("batch", 2)])
def test_chunked_algorithm_on_canonical_arrays(chunks):
    """What autotuning times: an algorithm in pieces, on canonical (N, *S, G, Ig) arrays."""
    from jaxconv._algorithms import REGISTRY
    from jaxconv._chunk import chunked_algorithm

    xs, ws = (2, 8, 9, 4), (3, 3, 1, 4)
    plan, _ = _conv._plan(
        spec(xs),
        spec(ws),
        (2, 1),
        ((1, 2), (1, 1)),
        None,
        None,
        LAYOUT[4],
        4,
        1,
        None,
        None,
        "depthwise",
        "t",
    )
    x, w = random(xs, seed=5), random(ws, seed=6)
    xc, wc = (
        x.reshape(2, 8, 9, 4, 1),
        w.reshape(3, 3, 1, 4, 1),
    )  # (N, H, W, G, 1), (kh, kw, 1, G, 1)
    fn = chunked_algorithm(REGISTRY["depthwise"], chunks)
    got = fn(xc, wc, plan.params).reshape(plan.out_shape)
    want = lax.conv_general_dilated(
        x,
        w,
        (2, 1),
        ((1, 2), (1, 1)),
        dimension_numbers=LAYOUT[4],
        feature_group_count=4,
        precision="highest",
    )
    assert_close(got, want)


def test_autotune_times_candidates_in_their_chunks(tmp_path):
    """A depthwise layer over the budget whole: every timed candidate runs as auto would."""
    x, w = random((1, 16, 16, 8), seed=7), random((7, 7, 1, 8), seed=8)
    _, problem = plan_for(x.shape, w.shape, (1, 1), 8)
    assert _memory.workspace_bytes(problem, "depthwise") > 0.5 * _memory.io_bytes(problem)
    with jaxconv.autotune(cache_path=str(tmp_path / "t.json"), repeats=1):
        got = jaxconv.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=LAYOUT[4], feature_group_count=8
        )
    want = lax.conv_general_dilated(
        x,
        w,
        (1, 1),
        "SAME",
        dimension_numbers=LAYOUT[4],
        feature_group_count=8,
        precision="highest",
    )
    assert_close(got, want, scale=4)


@pytest.mark.parametrize(
    "xs, ws",
    [((8, 8, 8, 64), (4, 4, 64, 32)), ((4, 28, 28, 32), (2, 2, 32, 16))],  # DCGAN, U-Net
)
def test_conv_transpose_auto_forward_peak_within_budget(xs, ws):
    def run(fn):
        return compiled_memory(
            lambda x, w: fn(x, w, (2, 2), "SAME", dimension_numbers=LAYOUT[4]), spec(xs), spec(ws)
        )[1]

    assert run(jaxconv.conv_transpose) <= _memory.MEMORY_BUDGET * run(lax.conv_transpose)


def test_subpixel_budget_decides_transpose_auto():
    from jaxconv._transpose import _auto

    # DCGAN 4x4/2 128->64 at batch 16: phase outputs of 2x the output do not fit 1.5x.
    args = ((16, 32, 32, 128), (4, 4, 128, 64), (64, 64), 4)
    assert not _memory.subpixel_fits(*args)
    assert _auto((4, 4), (2, 2), (1, 1), phases_ok=False) == "xla/subpixel"
    try:
        jaxconv.set_memory_budget(4)
        assert _memory.subpixel_fits(*args)
    finally:
        jaxconv.set_memory_budget()
    assert _auto((4, 4), (2, 2), (1, 1), phases_ok=True) == "subpixel"
