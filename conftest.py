"""pytest configuration for tests/ and the doctests in jaxconv/.

x64 is on (float64 parity and gradient checks), rank promotion raises, and
pyproject turns warnings into errors.
"""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    """Doctests run as a user would: default 32-bit types, with jnp/jax/jaxconv imported."""
    import jax.numpy as jnp

    import jaxconv

    doctest_namespace.update(jnp=jnp, jax=jax, jaxconv=jaxconv, np=np)
    if isinstance(request.node, pytest.DoctestItem):
        with jax.enable_x64(False):
            yield
    else:
        yield
