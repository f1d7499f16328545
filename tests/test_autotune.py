"""Opt-in autotuning: same results, cached winners, corrupt/stale caches tolerated."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxconv
from jaxconv import _autotune
from tests.util import assert_close, random

NHWC = ("NHWC", "HWIO", "NHWC")


def conv(x, w, groups=1):
    return jaxconv.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=groups
    )


@pytest.fixture
def timings(monkeypatch):
    """Count the candidates timed (the real timer still runs)."""
    calls = []
    real = _autotune.time_candidate

    def counting(fn, x, w, params, repeats, objective="forward"):
        calls.append(fn.__name__)
        return real(fn, x, w, params, repeats, objective)

    monkeypatch.setattr(_autotune, "time_candidate", counting)
    return calls


def test_autotune_matches_untuned_and_caches(tmp_path, timings):
    path = tmp_path / "tune.json"
    x, w = random((2, 12, 12, 4), seed=1), random((3, 3, 1, 4), seed=2)
    want = lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=4, precision="highest"
    )
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        got = jax.jit(lambda x, w: conv(x, w, 4))(x, w)
        first = len(timings)
        got_again = conv(x, w, 4)
    assert_close(got, want, scale=4)
    assert_close(got_again, want, scale=4)
    assert first >= 3  # depthwise, direct, fft, xla, ... were timed
    assert len(timings) == first  # the second trace used the memo
    entries = json.loads(path.read_text())["entries"]
    (key,) = entries
    assert jax.__version__ in key and jax.default_backend() in key and "[2, 12, 12, 4, 1]" in key
    assert entries[key]["algorithm"] in jaxconv.ALGORITHMS
    # A new process (fresh memo) reads the file instead of timing again.
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        conv(x, w, 4)
    assert len(timings) == first


def test_corrupt_cache_is_ignored_with_a_warning(tmp_path, timings):
    path = tmp_path / "tune.json"
    path.write_text("{not json")
    x, w = random((1, 8, 8, 3), seed=3), random((3, 3, 3, 5), seed=4)
    with (
        pytest.warns(RuntimeWarning, match="ignoring unreadable cache"),
        jaxconv.autotune(cache_path=str(path), repeats=1),
    ):
        got = conv(x, w)
    assert_close(
        got,
        lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC, precision="highest"),
        scale=4,
    )
    assert json.loads(path.read_text())["version"] == 1  # rewritten cleanly


def test_stale_entry_is_retuned_with_a_warning(tmp_path, timings):
    path = tmp_path / "tune.json"
    x, w = random((1, 8, 8, 3), seed=5), random((1, 1, 3, 5), seed=6)
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        conv(x, w)
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["algorithm"] = "winograd9000"
    path.write_text(json.dumps(data))
    timed = len(timings)
    with (
        pytest.warns(RuntimeWarning, match="stale cache entry"),
        jaxconv.autotune(cache_path=str(path), repeats=1),
    ):
        got = conv(x, w)
    assert len(timings) > timed
    assert_close(got, jnp.einsum("nhwc,co->nhwo", x, w[0, 0], precision="highest"), scale=4)


def test_set_autotune_setting(tmp_path):
    path = tmp_path / "tune.json"
    jaxconv.set_autotune(True, cache_path=str(path), repeats=1)
    try:
        conv(random((1, 6, 6, 2), seed=7), random((3, 3, 2, 2), seed=8))
        assert path.exists()
    finally:
        jaxconv.set_autotune(False)
    assert _autotune.active() is None


def test_objective_picks_per_objective_and_caches_apart(tmp_path, monkeypatch):
    """Fake timings: xla wins the forward pass, direct wins forward+backward."""
    seen, timed = [], []

    def fake(fn, x, w, params, repeats, objective="forward"):
        seen.append(objective)
        timed.append((objective, fn.__name__))
        fast = "conv_xla" if objective == "forward" else "conv_direct"
        return 1.0 if fn.__name__ == fast else 2.0

    monkeypatch.setattr(_autotune, "time_candidate", fake)
    path = tmp_path / "tune.json"
    # One input channel: "direct" fits the memory budget (its per-tap GEMM outputs do not).
    x, w = random((1, 8, 8, 1), seed=9), random((3, 3, 1, 5), seed=10)
    picks = {}
    for objective in _autotune.OBJECTIVES:
        with (
            jaxconv.autotune(cache_path=str(path), repeats=1, objective=objective),
            jaxconv.record_choices() as log,
        ):
            got = conv(x, w)
        picks[objective] = log[0][0]
        assert_close(
            got,
            lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=NHWC, precision="highest"
            ),
            scale=4,
        )
    assert picks == {"forward": "xla", "forward+backward": "direct"}
    # Composites repeat another candidate's forward: only the training objective times them.
    composites = {"conv_xla_direct", "conv_direct_xla", "conv_xla_fft"}
    assert not composites & {name for obj, name in timed if obj == "forward"}
    assert composites <= {name for obj, name in timed if obj == "forward+backward"}
    assert set(seen) == set(_autotune.OBJECTIVES)
    keys = json.loads(path.read_text())["entries"]
    assert sorted(json.loads(k)[0] for k in keys) == ["forward", "forward+backward"]
    # Integer convs have no gradient: their forward pass is timed.
    seen.clear()
    xi, wi = jnp.ones((1, 6, 6, 2), jnp.int32), jnp.ones((3, 3, 2, 2), jnp.int32)
    with jaxconv.autotune(cache_path=str(path), repeats=1, objective="forward+backward"):
        conv(xi, wi)
    assert seen and set(seen) == {"forward"}


def test_forward_backward_timer_runs_the_gradients():
    """A conv whose backward rule notes that it was traced: only the training
    objective may trace (and so time) it."""
    traced = []

    @jax.custom_vjp
    def spy(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC)

    def spy_fwd(x, w):
        return spy(x, w), (x, w)

    def spy_bwd(res, ct):
        traced.append("bwd")
        _, vjp = jax.vjp(
            lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC),
            *res,
        )
        return vjp(ct)

    spy.defvjp(spy_fwd, spy_bwd)
    x, w = np.asarray(random((1, 10, 10, 4), seed=11)), np.asarray(random((3, 3, 4, 4), seed=12))
    assert _autotune.time_candidate(lambda x, w, p: spy(x, w), x, w, None, 2, "forward") > 0
    assert traced == []
    assert (
        _autotune.time_candidate(lambda x, w, p: spy(x, w), x, w, None, 2, "forward+backward") > 0
    )
    assert traced == ["bwd"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"objective": "backward"}, r"`objective` \(='backward'\)"),
        ({"repeats": 0}, r"`repeats` \(=0\)"),
        ({"repeats": 2.5}, r"`repeats` \(=2.5\)"),
    ],
)
def test_bad_autotune_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match), jaxconv.autotune(**kwargs):
        pass
    with pytest.raises(ValueError, match=match):
        jaxconv.set_autotune(True, **kwargs)
    assert _autotune.active() is None
