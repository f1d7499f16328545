"""`python -m jaxconv.demo`: a few layers through jaxconv and lax, agreement and time."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxconv
from jaxconv.bench.harness import time_fn

NHWC = ("NHWC", "HWIO", "NHWC")
LAYERS = [
    ("ResNet 3x3 64", (8, 56, 56, 64), (3, 3, 64, 64), 1),
    ("ResNet 1x1 64->256", (8, 56, 56, 64), (1, 1, 64, 256), 1),
    ("MobileNetV2 depthwise 3x3", (8, 112, 112, 32), (3, 3, 1, 32), 32),
]


def main():
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    for name, xs, ws, groups in LAYERS:
        x = jax.random.normal(jax.random.key(0), xs)
        w = jax.random.normal(jax.random.key(1), ws)
        args = ((1, 1), "SAME", None, None, NHWC, groups)
        ours = jax.jit(lambda x, w, args=args: jaxconv.conv_general_dilated(x, w, *args))
        ref = jax.jit(
            lambda x, w, args=args: jax.lax.conv_general_dilated(x, w, *args, precision="highest")
        )
        err = float(jnp.max(jnp.abs(ours(x, w) - ref(x, w))) / jnp.max(jnp.abs(ref(x, w))))
        t_ours, t_ref = time_fn(ours, x, w).median_s, time_fn(ref, x, w).median_s
        chosen = jaxconv.chosen_algorithm(x, w, *args)
        print(
            f"{name:28s} auto={chosen:9s} rel.err={err:.1e}  jaxconv {t_ours * 1e3:7.2f} ms  "
            f"lax {t_ref * 1e3:7.2f} ms  ({t_ref / t_ours:.2f}x)"
        )


if __name__ == "__main__":
    main()
