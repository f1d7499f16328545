"""`jaxconv.nnx.swap` and `jaxconv.linen.swap` on code nobody on this project wrote:
flax's own docstring examples of Conv, ConvTranspose and ConvLocal, and the CNN from
flax's README, read from the installed flax at test time. Swapped, each keeps its
parameter tree and values, its outputs and its gradients."""

import doctest
import functools
import importlib.metadata
import re
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxconv
from tests.util import assert_close, random, same_tree


def _examples(obj):
    """The doctest examples in `obj`'s docstring."""
    return doctest.DocTestParser().get_examples(obj.__doc__)


def _run(examples, after):
    """Run the examples in one namespace, checking each printed value against flax's
    expected output; after each, record `after(namespace, example)`."""
    ns, records, checker = {}, [], doctest.OutputChecker()
    for example in examples:
        shown = []
        hook = sys.displayhook
        sys.displayhook = lambda v, shown=shown: v is None or shown.append(repr(v) + "\n")
        try:
            exec(compile(example.source, "<flax docstring>", "single"), ns)
        finally:
            sys.displayhook = hook
        got = "".join(shown)
        assert checker.check_output(example.want, got, doctest.NORMALIZE_WHITESPACE), (
            example.source,
            example.want,
            got,
        )
        records.append(after(ns, example))
    return records


def _linen_record(ns, example):
    """After an example that initialises a layer: its variables, and its output and
    gradients at them on the example's input."""
    if ".init" not in example.source:
        return None
    (shape,) = re.findall(r"jnp\.ones\(\((.*?)\)\)", example.source)
    x = random(tuple(int(v) for v in shape.split(",") if v.strip()), seed=2)
    layer, variables = ns["layer"], ns["variables"]

    def loss(variables):
        return jnp.sum(jnp.sin(layer.apply(variables, x)))

    return variables, layer.apply(variables, x), jax.grad(loss)(variables)


@pytest.mark.parametrize(
    "layer", [nn.Conv, nn.ConvTranspose, nn.ConvLocal], ids=lambda c: c.__name__
)
def test_linen_swap_runs_flax_docstring_examples_unchanged(layer):
    examples = _examples(layer)
    plain = _run(examples, _linen_record)
    with jaxconv.linen.swap():
        swapped = _run(examples, _linen_record)
    pairs = [(a, b) for a, b in zip(plain, swapped) if a is not None]
    assert len(pairs) == 3  # valid padding, circular with a stride, a mask
    for (va, ya, ga), (vb, yb, gb) in pairs:
        same_tree(vb, va)
        assert_close(yb, ya, scale=4)
        assert jax.tree.structure(gb) == jax.tree.structure(ga)
        for g1, g2 in zip(jax.tree.leaves(gb), jax.tree.leaves(ga)):
            assert_close(g1, g2, scale=8)


@pytest.mark.parametrize("layer", [nnx.Conv, nnx.ConvTranspose], ids=lambda c: c.__name__)
def test_nnx_swap_runs_flax_docstring_examples_unchanged(layer):
    def output(ns, example):
        return ns.get("out") if re.search(r"\bout\s*=", example.source) else None

    def swap_then_output(ns, example):
        if re.search(r"\blayer\s*=", example.source):
            jaxconv.nnx.swap(ns["layer"])  # before the next example calls it
        return output(ns, example)

    examples = _examples(layer)
    plain = _run(examples, output)
    with jaxconv.record_choices() as records:
        swapped = _run(examples, swap_then_output)
    assert len(records) == 3  # each call ran through jaxconv
    pairs = [(a, b) for a, b in zip(plain, swapped) if a is not None]
    assert len(pairs) == 3
    for a, b in pairs:
        assert_close(b, a, scale=4)


def _readme_cnn():
    """The CNN class from flax's README (the installed package's metadata)."""
    readme = importlib.metadata.distribution("flax").read_text("METADATA")
    (source,) = re.findall(r"```py\n(class CNN\(nnx\.Module\):.*?)```", readme, re.S)
    ns = dict(nnx=nnx, partial=functools.partial, jax=jax, jnp=jnp)
    exec(source, ns)
    return ns["CNN"]


def test_nnx_swap_keeps_flax_readme_cnn_parameters_outputs_and_gradients():
    cnn = _readme_cnn()
    theirs, ours = cnn(rngs=nnx.Rngs(0)), cnn(rngs=nnx.Rngs(0))
    assert jaxconv.nnx.swap(ours) is ours
    same_tree(nnx.state(ours), nnx.state(theirs))
    x = random((4, 28, 28, 1), seed=3)
    assert_close(ours(x), theirs(x), scale=8)

    def loss(model, x):
        return jnp.mean(jax.nn.log_softmax(model(x))[:, 3])

    g_ours, g_theirs = nnx.grad(loss)(ours, x), nnx.grad(loss)(theirs, x)
    assert jax.tree.structure(g_ours) == jax.tree.structure(g_theirs)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs)):
        assert_close(a, b, scale=16)
    # jit-compiled, and through jaxconv: the swapped model records its convolutions.
    with jaxconv.record_choices() as records:
        nnx.jit(lambda m, x: m(x))(ours, x)
    assert len(records) == 2
    with jaxconv.record_choices() as records:
        nnx.jit(lambda m, x: m(x))(theirs, x)
    assert not records


def test_swap_switches_algorithm_and_refuses_bad_names():
    cnn = _readme_cnn()
    model = jaxconv.nnx.swap(cnn(rngs=nnx.Rngs(0)), algorithm="direct")
    with jaxconv.record_choices() as records:
        model(jnp.ones((1, 28, 28, 1)))
    assert {r.algorithm for r in records} == {"direct"}
    jaxconv.nnx.swap(model, algorithm="xla")
    with jaxconv.record_choices() as records:
        model(jnp.ones((1, 28, 28, 1)))
    assert {r.algorithm for r in records} == {"xla"}
    with pytest.raises(ValueError, match=r"algorithm.*'fastest'"):
        jaxconv.nnx.swap(model, algorithm="fastest")
    with (
        pytest.raises(ValueError, match=r"algorithm.*'fastest'"),
        jaxconv.linen.swap(algorithm="fastest"),
    ):
        pass
