"""Shape and padding math (jaxconv._shapes) against lax's own rules."""

import jax
import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from jax import lax

from jaxconv import _shapes
from tests.util import FULL

EXAMPLES = 400 if FULL else 100


@seed(1)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(
    data=st.data(),
    kind=st.sampled_from(["VALID", "SAME", "SAME_LOWER", "same", "valid"]),
)
def test_padtype_to_pads_matches_lax(data, kind):
    n = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.integers(0, 20)) for _ in range(n))
    window = tuple(data.draw(st.integers(1, 9)) for _ in range(n))
    strides = tuple(data.draw(st.integers(1, 5)) for _ in range(n))
    want = tuple(map(tuple, lax.padtype_to_pads(shape, window, strides, kind)))
    assert _shapes.padtype_to_pads(shape, window, strides, kind) == want


@seed(2)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(data=st.data())
def test_conv_output_shape_matches_lax(data):
    n = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.integers(1, 12)) for _ in range(n))
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(n))
    strides = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    lhs_dil = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    rhs_dil = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    pads = tuple((data.draw(st.integers(-2, 3)), data.draw(st.integers(-2, 3))) for _ in range(n))
    dilated = tuple(map(_shapes.dilate_dim, shape, lhs_dil))
    window = tuple(map(_shapes.dilate_dim, kernel, rhs_dil))
    try:
        want = jax.eval_shape(
            lambda x, w: lax.conv_general_dilated(x, w, strides, pads, lhs_dil, rhs_dil),
            jax.ShapeDtypeStruct((1, 1, *shape), np.float32),
            jax.ShapeDtypeStruct((1, 1, *kernel), np.float32),
        ).shape[2:]
    except ValueError:
        with pytest.raises(ValueError, match="crops more than the input"):
            _shapes.window_output_shape(dilated, window, strides, pads, "conv")
        return
    assert _shapes.window_output_shape(dilated, window, strides, pads, "conv") == want


def test_int_tuple_and_errors():
    assert _shapes.int_tuple(None, 3, "x", "op") == (1, 1, 1)
    assert _shapes.int_tuple(2, 2, "x", "op") == (2, 2)
    assert _shapes.int_tuple(np.array([1, 2]), 2, "x", "op") == (1, 2)
    with pytest.raises(ValueError, match=r"op: `x` \(=\(1, 2\)\) must have 3 entries"):
        _shapes.int_tuple((1, 2), 3, "x", "op")
    with pytest.raises(TypeError, match=r"op: `x` must hold integers, got True"):
        _shapes.int_tuple((True, 2), 2, "x", "op")
    with pytest.raises(TypeError, match=r"op: `x` must be an int or a sequence of ints, got 'ab'"):
        _shapes.int_tuple("ab", 2, "x", "op")
    with pytest.raises(ValueError, match=r"op: `x` \(=\(0,\)\) must be >= 1"):
        _shapes.int_tuple(0, 1, "x", "op")


def test_resolve_padding_errors():
    with pytest.raises(ValueError, match=r"`padding` \(='FULL'\) must be one of"):
        _shapes.resolve_padding("FULL", (4,), (3,), (1,), "op")
    with pytest.raises(ValueError, match=r"must be 2 \(low, high\) pairs"):
        _shapes.resolve_padding(((1, 1),), (4, 4), (3, 3), (1, 1), "op")
    with pytest.raises(TypeError, match=r"`padding` must be a string or a sequence"):
        _shapes.resolve_padding(1, (4,), (3,), (1,), "op")
    assert _shapes.resolve_padding([[1, 2]], (4,), (3,), (1,), "op") == ((1, 2),)


@pytest.mark.parametrize(
    "size, window, stride, pads, want",
    [
        # PyTorch: out = ceil((L + 2p - k) / s) + 1, minus 1 if the last window starts
        # in the right padding.
        (6, 3, 2, (0, 0), (0, 1)),  # 3 windows; the last one hangs over by 1
        (5, 3, 2, (0, 0), (0, 0)),  # already exact
        (5, 2, 2, (1, 1), (1, 1)),  # ceil would start a window at 6 >= 5 + 1: dropped
        (7, 3, 3, (1, 1), (1, 1)),  # floor and ceil agree: 3 windows
        (8, 3, 3, (0, 0), (0, 1)),  # a third window starting at 6 < 8
        (1, 3, 1, (1, 1), (1, 1)),
    ],
)
def test_ceil_mode_pads_by_hand(size, window, stride, pads, want):
    assert _shapes.ceil_mode_pads((size,), (window,), (stride,), (pads,)) == (want,)


def test_adaptive_bins_by_hand():
    assert _shapes.adaptive_bins(5, 3) == ((0, 2), (1, 4), (3, 5))
    assert _shapes.adaptive_bins(4, 4) == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert _shapes.adaptive_bins(2, 3) == ((0, 1), (0, 2), (1, 2))  # output larger than input
    assert _shapes.adaptive_bins(7, 1) == ((0, 7),)


def test_resolve_padding_ints_for_pools():
    assert _shapes.resolve_padding(1, (8, 8), (3, 3), (2, 2), "op", allow_int=True) == (
        (1, 1),
        (1, 1),
    )
    with pytest.raises(TypeError, match=r"must hold integers, got 1.5"):
        _shapes.resolve_padding(((1.5, 1),), (8,), (3,), (1,), "op")


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 2), (0, 1))])
def test_transpose_pads_match_lax_shapes(padding):
    x, w = (
        jax.ShapeDtypeStruct((1, 5, 6, 2), np.float32),
        jax.ShapeDtypeStruct((3, 4, 2, 3), np.float32),
    )
    want = jax.eval_shape(
        lambda x, w: lax.conv_transpose(
            x, w, (2, 3), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        ),
        x,
        w,
    ).shape[1:3]
    pads = _shapes.transpose_pads((3, 4), (2, 3), padding, False, "op")
    dilated = (_shapes.dilate_dim(5, 2), _shapes.dilate_dim(6, 3))
    assert _shapes.output_shape(dilated, (3, 4), (1, 1), pads) == want
    with pytest.raises(TypeError, match=r"`padding` must hold integers, got 1.0"):
        _shapes.transpose_pads((3,), (2,), ((1.0, 1),), False, "op")


def test_output_size_with_symbolic_sizes():
    b, h = jax.export.symbolic_shape("b, h")
    assert _shapes.output_size(b + 6, 3, 1) == b + 4
    assert _shapes.output_size(8, 3, 2, 1, 1) == 4
    assert str(_shapes.output_size(h, 3, 2, 1, 1)) == str(_shapes.output_size(h, 3, 2, 1, 1))
    assert _shapes.is_symbolic((1, b)) and not _shapes.is_symbolic((1, 2))
    assert _shapes.definitely(lambda: b >= 1) and not _shapes.definitely(lambda: b >= 2)


def test_flatten_batch_round_trips():
    x = np.zeros((2, 3, 5, 6, 4))
    flat, batch = _shapes.flatten_batch(x, 2, "op")
    assert flat.shape == (6, 5, 6, 4) and _shapes.unflatten_batch(flat, batch).shape == x.shape
    one, batch = _shapes.flatten_batch(x[0, 0], 2, "op")  # unbatched: a batch of one
    assert one.shape == (1, 5, 6, 4) and _shapes.unflatten_batch(one, batch).shape == (5, 6, 4)
    same, batch = _shapes.flatten_batch(x[0], 2, "op")
    assert same is x[0] or same.shape == (3, 5, 6, 4)
    with pytest.raises(ValueError, match=r"op: `inputs` of shape \(6, 4\) has fewer dimensions"):
        _shapes.flatten_batch(np.zeros((6, 4)), 2, "op")
