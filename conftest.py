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
def _doctest_namespace(doctest_namespace):
    import jax.numpy as jnp

    import jaxconv

    doctest_namespace.update(jnp=jnp, jax=jax, jaxconv=jaxconv, np=np)
