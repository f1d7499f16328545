"""The `Literal` name lists of the public signatures are the registries' names."""

import typing

import jaxconv
from jaxconv import _typing


def test_literals_match_the_registries():
    assert typing.get_args(_typing.Algorithm) == jaxconv.ALGORITHMS
    assert typing.get_args(_typing.TransposeAlgorithm) == jaxconv.TRANSPOSE_ALGORITHMS
    assert typing.get_args(_typing.PoolAlgorithm) == jaxconv.POOL_ALGORITHMS
    assert typing.get_args(_typing.PaddingMode) == jaxconv.PADDING_MODES


def test_public_functions_are_annotated():
    """Every public function annotates every parameter and its return."""
    skip = {"linen", "nnx"}
    for name in jaxconv.__all__:
        obj = getattr(jaxconv, name)
        if name in skip or not callable(obj) or isinstance(obj, type):
            continue
        hints = typing.get_type_hints(obj)
        params = [p for p in __import__("inspect").signature(obj).parameters]
        assert set(params) <= set(hints), (name, set(params) - set(hints))
        assert "return" in hints, name
