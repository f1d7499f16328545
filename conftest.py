"""pytest configuration for tests/ and the doctests in jaxconv/.

x64 is on (float64 parity and gradient checks), rank promotion raises, and
pyproject turns warnings into errors. XLA_FLAGS are set before jax initialises.
"""

import os


def _add_xla_flag(name, value):
    """Append --name=value to XLA_FLAGS unless the caller set it (before jax starts)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if name not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --{name}={value}".strip()


# Four host devices for the sharding tests.
_add_xla_flag("xla_force_host_platform_device_count", 4)
# The quick suite compiles its thousands of small programs with LLVM at -O0, since
# compiling is most of its time. The tests check what the programs compute, which
# XLA's HLO passes (fusion, simplification) decide at every level, up to where LLVM
# contracts multiply-adds, within every tolerance. `make test-full` runs at the default
# level, as users do.
if os.environ.get("JAXCONV_FULL") != "1":
    _add_xla_flag("xla_backend_optimization_level", 0)

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
