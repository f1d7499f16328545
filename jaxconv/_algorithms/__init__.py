"""The convolution algorithms, one file each, and the registry "auto" chooses from.

Each module defines an `Algorithm` (`_base`): its canonical function, x (N, *S, G, Ig),
w (*K, Ig, G, Og), `ConvParams` -> (N, *O, G, Og), and everything selection needs to
know of it. Composites pair one algorithm's forward pass with another's gradients.
"""

from __future__ import annotations

from jaxconv._algorithms import depthwise, direct, fft, im2col, pointwise, winograd, xla, xla2d
from jaxconv._algorithms._base import Algorithm, pair

_COMPOSITES = (
    pair(direct.ALGORITHM, xla.ALGORITHM, "per-tap forward, XLA's gradients"),
    pair(xla.ALGORITHM, fft.ALGORITHM, "XLA's forward, FFT gradients"),
    pair(xla.ALGORITHM, xla2d.ALGORITHM, "XLA's forward, the 2-D convs' gradients"),
    pair(xla.ALGORITHM, pointwise.ALGORITHM, "XLA's forward, the GEMM's gradients"),
    pair(xla.ALGORITHM, im2col.ALGORITHM, "XLA's forward, the patch matrix GEMMs' gradients"),
)

REGISTRY: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        direct.ALGORITHM,
        im2col.ALGORITHM,
        pointwise.ALGORITHM,
        depthwise.ALGORITHM,
        fft.ALGORITHM,
        winograd.WINOGRAD,
        winograd.WINOGRAD4,
        xla.ALGORITHM,
        xla2d.ALGORITHM,
        *_COMPOSITES,
    )
}
"""Every algorithm `conv_general_dilated(algorithm=...)` accepts, by name."""
