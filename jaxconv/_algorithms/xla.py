"""The "xla" algorithm: `lax.conv_general_dilated` itself, the oracle and escape hatch."""

from __future__ import annotations

import jax
from jax import lax

from jaxconv._algorithms._base import Algorithm
from jaxconv._algorithms._windows import pad_spatial
from jaxconv._layout import channels_last
from jaxconv._shapes import is_symbolic
from jaxconv._spec import ConvParams


def conv_xla(x, w, p: ConvParams):
    """Delegate to `lax.conv_general_dilated` on the canonical channels-last arrays.

    x (N, *S, G, Ig), w (*K, Ig, G, Og) -> (N, *O, G, Og).
    """
    with jax.named_scope("jaxconv.xla"):
        pads, lhs_dilation = p.pads, p.lhs_dilation
        if is_symbolic(*pads):  # lax takes symbolic pads only from its own strings
            x = pad_spatial(x, pads, lhs_dilation, 0)  # (N, *Sp, G, Ig)
            pads, lhs_dilation = ((0, 0),) * len(pads), (1,) * len(pads)
        n, *spatial, groups, ig = x.shape
        ig_, _, og = w.shape[-3:]
        out = lax.conv_general_dilated(
            x.reshape(n, *spatial, groups * ig),  # (N, *S, G*Ig)
            w.reshape(*w.shape[:-3], ig_, groups * og),  # (*K, Ig, G*Og)
            p.strides,
            pads,
            lhs_dilation,
            p.rhs_dilation,
            channels_last(len(spatial)),
            feature_group_count=groups,
            precision=p.precision,
            preferred_element_type=p.preferred_element_type,
        )  # (N, *O, G*Og)
        return out.reshape(*out.shape[:-1], groups, og).astype(p.out_dtype)  # (N, *O, G, Og)


ALGORITHM = Algorithm(
    name="xla",
    fn=conv_xla,
    summary="`lax.conv_general_dilated` itself",
    dtypes=("bool", "integer", "floating", "complexfloating"),
    piece_axes=(),
)
