"""The benchmark's own logic (no timing): the README's tables are generated from the
committed results, the roofline's bytes, which layers are memory-bound, the networks."""

import os

import jax
import jax.numpy as jnp

from bench import layers, networks, report

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_readme_tables_are_generated_from_the_results():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert report.readme_block(os.path.join(ROOT, "bench", "results")) in readme


def test_roofline_bytes_and_memory_bound():
    pool = layers.PoolLayer("p", "max", (8, 112, 112, 64), (3, 3), (2, 2), "SAME")
    out = (8, 56, 56, 64)
    x, y = 8 * 112 * 112 * 64, 8 * 56 * 56 * 64
    # ((read, written) forward, (read, written) of the gradient program)
    assert layers.roofline_bytes(pool, out) == ((4 * x, 4 * y), (4 * (x + y), 4 * x))
    avg = layers.PoolLayer("a", "avg", (8, 112, 112, 64), (3, 3), (2, 2), "SAME")
    assert layers.roofline_bytes(avg, out) == ((4 * x, 4 * y), (4 * y, 4 * x))  # no x
    conv = layers.ConvLayer("c", (8, 112, 112, 64), (3, 3, 1, 64), (2, 2), groups=64)
    w = 3 * 3 * 64
    assert layers.roofline_bytes(conv, out) == (
        (4 * (x + w), 4 * y),
        (4 * (x + w + y), 4 * (x + w)),
    )
    assert layers.memory_bound(pool, out)
    dense = layers.ConvLayer("c", (8, 56, 56, 64), (3, 3, 64, 64), (1, 1))
    assert not layers.memory_bound(dense, (8, 56, 56, 64))
    dw = layers.ConvLayer("d", (8, 56, 56, 64), (3, 3, 1, 64), (1, 1), groups=64)
    assert layers.memory_bound(dw, (8, 56, 56, 64))
    assert layers.flops(dense, (8, 56, 56, 64)) == 2 * 8 * 56 * 56 * 64 * 9 * 64


def test_candidates_use_the_public_api_only():
    layer = layers.ConvLayer("dw", (1, 14, 14, 32), (3, 3, 1, 32), (1, 1), groups=32)
    names = list(layers.candidates(layer))
    assert names[0] == "lax" and names[-1] == "auto:depthwise" and "depthwise" in names
    big = layers.ConvLayer("k31", (1, 14, 14, 8), (31, 31, 1, 8), (1, 1), groups=8)
    assert not set(layers.PER_TAP_ALGORITHMS) & set(layers.candidates(big))


def test_the_flax_and_jaxconv_variants_start_from_the_same_parameters():
    """A network's two bench variants (ResNet-18: convs, batch norm, a max pool) hold
    the same parameter tree and values, so the bench compares the same training (tiny
    inputs; built, not timed)."""
    (net,) = networks.select_networks(["ResNet-18"])
    _, state_flax, batch = networks.flax_step(net, "flax", (1, 32, 32, 3))
    step, state_ours, _ = networks.flax_step(net, "jaxconv", (1, 32, 32, 3))
    assert jax.tree.structure(state_flax[0]) == jax.tree.structure(state_ours[0])
    for a, b in zip(jax.tree.leaves(state_flax[0]), jax.tree.leaves(state_ours[0])):
        assert jnp.array_equal(a, b)
    assert len(networks.NETWORKS) == 9


def test_quick_runs_only_the_networks_with_a_quick_input():
    names = [n.name for n in networks.select_networks(quick=True)]
    assert names == ["MobileNetV2", "EfficientNet-B0"]
    assert len(networks.select_networks()) == len(networks.NETWORKS)
    picked = networks.select_networks(["U-Net", "ResNet-18"], quick=True)
    assert [n.name for n in picked] == ["ResNet-18", "U-Net"]  # named ones run, in suite order


def test_roofline_is_the_faster_bound_and_never_reads_over_100():
    from bench.harness import Timing, roofline_seconds

    def t(s):
        return Timing(0.0, s, s)

    timings = {"roofline read": t(1.0), "roofline write": t(2.0), "roofline copy": t(2.5)}
    assert roofline_seconds(timings) == 2.5
    timings["roofline copy"] = t(4.0)
    assert roofline_seconds(timings) == 3.0
    assert report._pct(99.6) == "100" and report._pct(100.4) == ">100"
