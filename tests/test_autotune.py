"""Opt-in autotuning: same results, the rule kept unless clearly beaten, cached winners,
and a cache file that survives corruption, odd paths and concurrent processes."""

import json
import multiprocessing
import os
import stat
import time

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


def want(x, w, groups=1):
    return lax.conv_general_dilated(
        x,
        w,
        (1, 1),
        "SAME",
        dimension_numbers=NHWC,
        feature_group_count=groups,
        precision="highest",
    )


def chosen(fn):
    """The choice recorded by `jax.eval_shape(fn)`."""
    with jaxconv.record_choices() as log:
        fn()
    return log[-1].algorithm


@pytest.fixture
def compiles(monkeypatch):
    """The candidates compiled for timing (the real compiler still runs)."""
    seen = []
    real = _autotune._compiled

    def counting(fn, specs, objective):
        seen.append((fn.keywords.get("choice") or fn.keywords["plan"].algorithm, objective))
        return real(fn, specs, objective)

    monkeypatch.setattr(_autotune, "_compiled", counting)
    return seen


@pytest.fixture
def fake_times(monkeypatch):
    """Candidates that sleep for the seconds `fake_times[(algorithm, objective)]` (else
    `fake_times["default"]`, 1 ms) instead of running."""
    times = {}

    def fake(fn, specs, objective):
        choice = fn.keywords.get("choice")
        name = choice.algorithm if choice is not None else fn.keywords["plan"].algorithm
        delay = times.get((name, objective), times.get("default", 0.001))
        return lambda: time.sleep(delay)

    monkeypatch.setattr(_autotune, "_compiled", fake)
    return times


def test_autotune_matches_untuned_and_caches(tmp_path, compiles):
    path = tmp_path / "tune.json"
    x, w = random((2, 12, 12, 4), seed=1), random((3, 3, 1, 4), seed=2)
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        got = jax.jit(lambda x, w: conv(x, w, 4))(x, w)
        first = len(compiles)
        got_again = conv(x, w, 4)
    assert_close(got, want(x, w, 4), scale=4)
    assert_close(got_again, want(x, w, 4), scale=4)
    assert first >= 3 and compiles[0][0].algorithm == "depthwise"  # the rule's, first
    assert len(compiles) == first  # the second trace used the memo
    entries = json.loads(path.read_text())["entries"]
    (key,) = entries
    assert jax.__version__ in key and jax.default_backend() in key
    assert '["2", "12", "12", "4", "1"]' in key
    assert entries[key]["choice"].split("@")[0] in jaxconv.ALGORITHMS
    # A new process (fresh memo) reads the file instead of timing again.
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        conv(x, w, 4)
    assert len(compiles) == first


def test_the_rule_stays_unless_clearly_beaten(tmp_path, fake_times):
    """Depthwise is the rule's choice; "xla" 5% faster does not replace it, 50% does."""
    x, w = random((1, 10, 10, 4), seed=3), random((3, 3, 1, 4), seed=4)

    def tuned(name):
        with jaxconv.autotune(cache_path=str(tmp_path / name), repeats=3):
            return chosen(lambda: jax.eval_shape(lambda x, w: conv(x, w, 4), x, w))

    fake_times["default"] = 0.040
    fake_times[("depthwise", "forward")] = 0.020
    fake_times[("xla", "forward")] = 0.019
    assert tuned("close.json") == "depthwise"
    fake_times[("xla", "forward")] = 0.010
    assert tuned("clear.json") == "xla"


def test_objectives_cache_apart_and_integers_time_the_forward(tmp_path, fake_times, compiles):
    path = tmp_path / "tune.json"
    x, w = random((1, 8, 8, 1), seed=9), random((3, 3, 1, 5), seed=10)
    fake_times["default"] = 0.020  # milliseconds apart: a busy host delays each sleep
    fake_times[("direct/xla", "forward+backward")] = 0.002
    fake_times[("xla", "forward")] = 0.002
    picks = {}
    for objective in _autotune.OBJECTIVES:
        with jaxconv.autotune(cache_path=str(path), repeats=2, objective=objective):
            picks[objective] = chosen(lambda: jax.eval_shape(lambda x, w: conv(x, w), x, w))
    assert picks == {"forward": "xla", "forward+backward": "direct/xla"}
    keys = json.loads(path.read_text())["entries"]
    assert sorted(json.loads(k)[1] for k in keys) == ["forward", "forward+backward"]
    # Composites repeat another candidate's forward pass; bool and integer convs have no
    # gradient, so only their forward pass is timed.
    xi, wi = jnp.ones((1, 6, 6, 1), jnp.int32), jnp.ones((3, 3, 1, 2), jnp.int32)
    with jaxconv.autotune(cache_path=str(path), repeats=1, objective="forward+backward"):
        conv(xi, wi)
    keys = json.loads(path.read_text())["entries"]
    assert [json.loads(k)[1] for k in keys if "int32" in k] == ["forward"]


def test_bfloat16_times_the_backward_pass(tmp_path, fake_times):
    x, w = random((1, 8, 8, 4), "bfloat16", seed=5), random((3, 3, 4, 4), "bfloat16", seed=6)
    with jaxconv.autotune(
        cache_path=str(tmp_path / "t.json"), repeats=1, objective="forward+backward"
    ):
        jax.eval_shape(conv, x, w)
    (key,) = json.loads((tmp_path / "t.json").read_text())["entries"]
    assert json.loads(key)[1] == "forward+backward"


def test_forward_backward_timer_runs_the_gradients():
    """A conv whose backward rule notes that it was traced: only the training objective
    may trace (and so time) it."""
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
    specs = (jax.ShapeDtypeStruct((1, 10, 10, 4), "float32"),) + (
        jax.ShapeDtypeStruct((3, 3, 4, 4), "float32"),
    )
    _autotune._compiled(spy, specs, "forward")()
    assert traced == []
    _autotune._compiled(spy, specs, "forward+backward")()
    assert traced == ["bwd"]


def test_queries_inside_autotune_compute_nothing(tmp_path, compiles):
    path = tmp_path / "tune.json"
    x, w = random((1, 8, 8, 3), seed=7), random((3, 3, 3, 5), seed=8)
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        rule = jaxconv.chosen_algorithm(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
        jaxconv.candidate_algorithms(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
        jaxconv.conv_plan(x, w, (1, 1), "SAME", dimension_numbers=NHWC)
    assert rule == "xla" and compiles == [] and not path.exists()


def test_transposed_conv_is_tuned_as_one_unit(tmp_path, compiles):
    x, w = random((2, 8, 8, 8), seed=11), random((4, 4, 8, 4), seed=12)
    with (
        jaxconv.autotune(cache_path=str(tmp_path / "t.json"), repeats=1),
        jaxconv.record_choices() as log,
    ):
        got = jaxconv.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=NHWC)
    assert [entry.op for entry in log] == ["conv_transpose"]
    assert {c[0] for c in compiles} == {"dilated", "subpixel", "xla", "xla/subpixel"}
    assert_close(
        got,
        lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=NHWC, precision="highest"),
        scale=4,
    )


def test_autotune_times_candidates_in_their_pieces(tmp_path, compiles):
    """A depthwise layer over the budget whole: every timed candidate runs as auto would."""
    x, w = random((1, 16, 16, 8), seed=7), random((7, 7, 1, 8), seed=8)
    with jaxconv.autotune(cache_path=str(tmp_path / "t.json"), repeats=1):
        got = conv(x, w, 8)
    assert_close(got, want(x, w, 8), scale=4)
    assert any(choice.pieces.count > 1 for choice, _ in compiles[:1])


def test_symbolic_shapes_take_the_rule_with_a_warning(tmp_path):
    b = jax.export.symbolic_shape("b")[0]
    x, w = (
        jax.ShapeDtypeStruct((b, 8, 8, 4), "float32"),
        jax.ShapeDtypeStruct((3, 3, 1, 4), "float32"),
    )
    with (
        pytest.warns(RuntimeWarning, match="symbolic sizes cannot be timed"),
        jaxconv.autotune(cache_path=str(tmp_path / "t.json"), repeats=1),
    ):
        exported = jax.export.export(jax.jit(lambda x, w: conv(x, w, 4)))(x, w)
    assert exported.out_avals[0].shape[1:] == (8, 8, 4)


# ----------------------------------------------------------------- the cache file

KEY = json.dumps(["conv", "forward", "cpu"])


def test_corrupt_cache_warns_once_and_is_rewritten(tmp_path, fake_times):
    path = tmp_path / "tune.json"
    path.write_text("{not json")
    x, w = random((1, 8, 8, 3), seed=3), random((3, 3, 1, 3), seed=4)
    with pytest.warns(RuntimeWarning) as warned, jaxconv.autotune(cache_path=str(path), repeats=1):
        conv(x, w, 3)
    assert [str(m.message) for m in warned if "unreadable" in str(m.message)] and len(warned) == 1
    assert json.loads(path.read_text())["version"] == _autotune._VERSION


def test_deeply_nested_cache_warns(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    cache = _autotune._Cache(str(path))
    with pytest.warns(RuntimeWarning, match="RecursionError"):
        assert cache.get(KEY) is None


def test_stale_entry_is_retuned_with_a_warning(tmp_path, fake_times):
    path = tmp_path / "tune.json"
    x, w = random((1, 8, 8, 3), seed=5), random((1, 1, 3, 5), seed=6)
    with jaxconv.autotune(cache_path=str(path), repeats=1):
        conv(x, w)
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["choice"] = "winograd9000"
    path.write_text(json.dumps(data))
    with (
        pytest.warns(RuntimeWarning, match="stale cache entry"),
        jaxconv.autotune(cache_path=str(path), repeats=1),
    ):
        got = conv(x, w)
    assert_close(got, jnp.einsum("nhwc,co->nhwo", x, w[0, 0], precision="highest"), scale=4)
    assert "winograd9000" not in path.read_text()


def _writer(path, worker, count):
    cache = _autotune._Cache(path)
    for i in range(count):
        cache.put(json.dumps([worker, i]), {"choice": "xla", "seconds": {}})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.json")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, k, 25)) for k in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    with open(path) as f:
        entries = json.load(f)["entries"]
    assert len(entries) == 4 * 25
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_writes_keep_permissions_and_symlinks(tmp_path):
    target = tmp_path / "real.json"
    target.write_text(json.dumps({"version": _autotune._VERSION, "entries": {}}))
    os.chmod(target, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    _autotune._Cache(str(link)).put(KEY, {"choice": "xla"})
    assert link.is_symlink() and KEY in json.loads(target.read_text())["entries"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_a_directory_path_warns_and_leaves_no_temporary_file(tmp_path):
    folder = tmp_path / "cache.json"
    folder.mkdir()
    with pytest.warns(RuntimeWarning, match="cache.json"):
        _autotune._Cache(str(folder)).put(KEY, {"choice": "xla"})
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_default_path_expands_home_and_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXCONV_AUTOTUNE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _autotune.default_cache_path() == str(tmp_path / "xdg" / "jaxconv" / "autotune.json")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _autotune.default_cache_path() == str(tmp_path / "home" / ".cache/jaxconv/autotune.json")
    monkeypatch.setenv("JAXCONV_AUTOTUNE_CACHE", "~/tune.json")
    assert _autotune.default_cache_path() == str(tmp_path / "home" / "tune.json")


def test_no_usable_home_keeps_the_cache_in_memory(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXCONV_AUTOTUNE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "relative/home")
    monkeypatch.chdir(tmp_path)
    assert _autotune.default_cache_path() is None
    cache = _autotune._Cache(None)
    cache.put(KEY, {"choice": "xla"})
    assert cache.get(KEY) == {"choice": "xla"} and os.listdir(tmp_path) == []


def test_set_autotune_setting(tmp_path):
    path = tmp_path / "tune.json"
    jaxconv.set_autotune(True, cache_path=str(path), repeats=1)
    try:
        conv(random((1, 6, 6, 2), seed=7), random((3, 3, 1, 2), seed=8), 2)
        assert path.exists()
    finally:
        jaxconv.set_autotune(False)
    assert _autotune.active() is None


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"objective": "backward"}, ValueError, r"`objective` \(='backward'\)"),
        ({"repeats": 0}, ValueError, r"`repeats` \(=0\)"),
        ({"repeats": 2.5}, ValueError, r"`repeats` \(=2.5\)"),
        (
            {"cache_path": 3},
            TypeError,
            r"`cache_path` must be None, a str or an os.PathLike, got 3",
        ),
    ],
)
def test_bad_autotune_arguments(kwargs, error, match):
    with pytest.raises(error, match=match), jaxconv.autotune(**kwargs):
        pass
    with pytest.raises(error, match=match):
        jaxconv.set_autotune(True, **kwargs)
    with pytest.raises(TypeError, match=r"`enabled` must be a bool, got 1"):
        jaxconv.set_autotune(1)
    assert _autotune.active() is None


def test_numpy_data_is_concrete_inside_jit(tmp_path, compiles):
    x, w = random((1, 6, 6, 2), seed=13), random((3, 3, 2, 2), seed=14)
    with jaxconv.autotune(cache_path=str(tmp_path / "t.json"), repeats=1):
        got = jax.jit(lambda x, w: conv(x, w) * 2)(x, w)
    np.testing.assert_allclose(got, 2 * want(x, w), rtol=1e-4, atol=1e-4)
