"""pytest configuration for tests/ and the doctests in jaxconv/.

x64 is on (float64 parity and gradient checks), rank promotion raises, and
pyproject turns warnings into errors.
"""

import os

# Four host devices for the sharding tests; must be set before jax initialises.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

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
