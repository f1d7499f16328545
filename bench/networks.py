"""Whole networks: one training step, flax's layers against the same model after
`jaxconv.nnx.swap`, and optionally PyTorch on the same architecture.

Each network is written once, against a small `ops` interface (convs, norms, pools,
activations, concatenation), and built three ways:
  - "flax": flax nnx with flax's layers and flax.linen's pooling functions;
  - "jaxconv": the same flax model after `jaxconv.nnx.swap(model)`, its pooling calls
    going to jaxconv's drop-in pools (flax has no pooling modules to swap);
  - "torch": PyTorch (CPU, channels_last), where it is installed.
Both JAX variants start from the same parameters. A step is forward, backward and an
SGD-with-momentum update, jitted with its state donated, as a training loop runs it.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time

import jax
import jax.numpy as jnp

# ------------------------------------------------------------------ the networks


class Block:
    """Base of the framework-neutral definitions: `ops.init(self)` first, always."""


class ConvBN(Block):
    def __init__(self, ops, cin, cout, k, stride=1, groups=1, act="relu", dims=2, padding=None):
        ops.init(self)
        self.conv = ops.conv(cin, cout, k, stride, groups, dims=dims, padding=padding)
        self.bn = ops.bn(cout, dims)
        self.act = act

    def __call__(self, x):
        x = self.bn(self.conv(x))
        return x if self.act is None else self.ops.act(self.act, x)


class InvertedResidual(Block):
    """MobileNetV2's block; with `se` and `act="silu"`, EfficientNet's MBConv."""

    def __init__(self, ops, cin, cout, stride, expand, k=3, act="relu6", se=0.0):
        ops.init(self)
        hidden = cin * expand
        self.expand = ops.make(ConvBN, cin, hidden, 1, act=act) if expand != 1 else None
        self.dw = ops.make(ConvBN, hidden, hidden, k, stride, groups=hidden, act=act)
        squeeze = max(1, int(cin * se))
        self.se = ops.seq([ops.linear(hidden, squeeze), ops.linear(squeeze, hidden)] if se else [])
        self.project = ops.make(ConvBN, hidden, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout
        self.act = act

    def __call__(self, x):
        ops = self.ops
        y = x if self.expand is None else self.expand(x)
        y = self.dw(y)
        if len(self.se):
            s = ops.act(self.act, self.se[0](ops.mean(y)))
            y = ops.scale(y, ops.act("sigmoid", self.se[1](s)))
        y = self.project(y)
        return x + y if self.residual else y


class InvertedResidualNet(Block):
    """MobileNetV2 and EfficientNet-B0: stem, inverted-residual blocks, head, pooled fc."""

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.ops.mean(self.head(x)))


class MobileNetV2(InvertedResidualNet):
    CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    CONFIG += [(6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, ops, classes=1000):
        ops.init(self)
        self.stem = ops.make(ConvBN, 3, 32, 3, 2, act="relu6")
        blocks, cin = [], 32
        for t, c, n, s in self.CONFIG:
            for i in range(n):
                blocks.append(ops.make(InvertedResidual, cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = ops.seq(blocks)
        self.head = ops.make(ConvBN, cin, 1280, 1, act="relu6")
        self.fc = ops.linear(1280, classes)


class EfficientNetB0(InvertedResidualNet):
    # (expand, kernel, stride, cin, cout, repeats)
    CONFIG = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2)]
    CONFIG += [(6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4)]
    CONFIG += [(6, 3, 1, 192, 320, 1)]

    def __init__(self, ops, classes=1000):
        ops.init(self)
        self.stem = ops.make(ConvBN, 3, 32, 3, 2, act="silu")
        blocks = []
        for e, k, s, cin, cout, n in self.CONFIG:
            for i in range(n):
                blocks.append(
                    ops.make(
                        InvertedResidual,
                        cin if i == 0 else cout,
                        cout,
                        s if i == 0 else 1,
                        e,
                        k=k,
                        act="silu",
                        se=0.25,
                    )
                )
        self.blocks = ops.seq(blocks)
        self.head = ops.make(ConvBN, 320, 1280, 1, act="silu")
        self.fc = ops.linear(1280, classes)


class ConvNeXtBlock(Block):
    def __init__(self, ops, dim):
        ops.init(self)
        self.dw = ops.conv(dim, dim, 7, 1, dim, bias=True)
        self.norm = ops.ln(dim)
        self.pw1 = ops.conv(dim, 4 * dim, 1, bias=True)
        self.pw2 = ops.conv(4 * dim, dim, 1, bias=True)

    def __call__(self, x):
        y = self.pw2(self.ops.act("gelu", self.pw1(self.norm(self.dw(x)))))
        return x + y


class ConvNeXtT(Block):
    DEPTHS, DIMS = (3, 3, 9, 3), (96, 192, 384, 768)

    def __init__(self, ops, classes=1000):
        ops.init(self)
        self.stem = ops.conv(3, self.DIMS[0], 4, 4, bias=True, padding=0)
        self.stem_norm = ops.ln(self.DIMS[0])
        downs, stages = [], []
        for i, (depth, dim) in enumerate(zip(self.DEPTHS, self.DIMS)):
            if i:
                down = [
                    ops.ln(self.DIMS[i - 1]),
                    ops.conv(self.DIMS[i - 1], dim, 2, 2, bias=True, padding=0),
                ]
                downs.append(ops.seq(down))
            stages.append(ops.seq([ops.make(ConvNeXtBlock, dim) for _ in range(depth)]))
        self.downs, self.stages = ops.seq(downs), ops.seq(stages)
        self.norm = ops.ln(self.DIMS[-1])
        self.fc = ops.linear(self.DIMS[-1], classes)

    def __call__(self, x):
        x = self.stem_norm(self.stem(x))
        for i, stage in enumerate(self.stages):
            if i:
                norm, conv = self.downs[i - 1]
                x = conv(norm(x))
            for block in stage:
                x = block(x)
        return self.fc(self.norm(self.ops.mean(x)))


class BasicBlock(Block):
    expansion = 1

    def __init__(self, ops, cin, planes, stride, dims=2):
        ops.init(self)
        self.c1 = ops.make(ConvBN, cin, planes, 3, stride, dims=dims)
        self.c2 = ops.make(ConvBN, planes, planes, 3, act=None, dims=dims)
        project = stride != 1 or cin != planes
        self.down = (
            ops.make(ConvBN, cin, planes, 1, stride, act=None, dims=dims) if project else None
        )

    def __call__(self, x):
        y = self.c2(self.c1(x))
        return self.ops.act("relu", y + (x if self.down is None else self.down(x)))


class Bottleneck(Block):
    expansion = 4

    def __init__(self, ops, cin, planes, stride, dims=2):
        ops.init(self)
        out = planes * 4
        self.c1 = ops.make(ConvBN, cin, planes, 1, dims=dims)
        self.c2 = ops.make(ConvBN, planes, planes, 3, stride, dims=dims)
        self.c3 = ops.make(ConvBN, planes, out, 1, act=None, dims=dims)
        project = stride != 1 or cin != out
        self.down = ops.make(ConvBN, cin, out, 1, stride, act=None, dims=dims) if project else None

    def __call__(self, x):
        y = self.c3(self.c2(self.c1(x)))
        return self.ops.act("relu", y + (x if self.down is None else self.down(x)))


class ResNet(Block):
    def __init__(self, ops, block, layers, classes=1000, dims=2):
        ops.init(self)
        self.dims = dims
        if dims == 2:
            self.stem = ops.make(ConvBN, 3, 64, 7, 2, padding=3)
        else:  # r3d_18: 3x7x7 stem, stride (1, 2, 2)
            self.stem = ops.make(ConvBN, 3, 64, (3, 7, 7), (1, 2, 2), dims=3, padding=(1, 3, 3))
        blocks, cin = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(n):
                stride = 2 if i and j == 0 else 1
                blocks.append(ops.make(block, cin, planes, stride, dims=dims))
                cin = planes * block.expansion
        self.blocks = ops.seq(blocks)
        self.fc = ops.linear(cin, classes)

    def __call__(self, x):
        x = self.stem(x)
        if self.dims == 2:
            x = self.ops.max_pool(x, 3, 2, 1)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.ops.mean(x))


class DenseLayer(Block):
    def __init__(self, ops, cin, growth=32, bn_size=4):
        ops.init(self)
        self.bn1, self.conv1 = ops.bn(cin), ops.conv(cin, bn_size * growth, 1)
        self.bn2, self.conv2 = ops.bn(bn_size * growth), ops.conv(bn_size * growth, growth, 3)

    def __call__(self, x):
        act = self.ops.act
        y = self.conv1(act("relu", self.bn1(x)))
        y = self.conv2(act("relu", self.bn2(y)))
        return self.ops.cat([x, y])


class DenseNet121(Block):
    BLOCKS, GROWTH = (6, 12, 24, 16), 32

    def __init__(self, ops, classes=1000):
        ops.init(self)
        self.stem = ops.make(ConvBN, 3, 64, 7, 2, padding=3)
        layers, transitions, c = [], [], 64
        for i, n in enumerate(self.BLOCKS):
            block = []
            for _ in range(n):
                block.append(ops.make(DenseLayer, c, self.GROWTH))
                c += self.GROWTH
            layers.append(ops.seq(block))
            if i < len(self.BLOCKS) - 1:
                transitions.append(ops.seq([ops.bn(c), ops.conv(c, c // 2, 1)]))
                c //= 2
        self.layers, self.transitions = ops.seq(layers), ops.seq(transitions)
        self.norm, self.fc = ops.bn(c), ops.linear(c, classes)

    def __call__(self, x):
        ops = self.ops
        x = ops.max_pool(self.stem(x), 3, 2, 1)
        for i, block in enumerate(self.layers):
            for layer in block:
                x = layer(x)
            if i < len(self.transitions):
                norm, conv = self.transitions[i]
                x = ops.avg_pool(conv(ops.act("relu", norm(x))), 2, 2)
        return self.fc(ops.mean(ops.act("relu", self.norm(x))))


class DoubleConv(Block):
    def __init__(self, ops, cin, cout):
        ops.init(self)
        self.c1 = ops.make(ConvBN, cin, cout, 3)
        self.c2 = ops.make(ConvBN, cout, cout, 3)

    def __call__(self, x):
        return self.c2(self.c1(x))


class UNet(Block):
    CHANNELS = (32, 64, 128, 256)

    def __init__(self, ops, out_channels=1):
        ops.init(self)
        chans = self.CHANNELS
        self.down = ops.seq(
            [ops.make(DoubleConv, cin, cout) for cin, cout in zip((3, *chans[:-1]), chans)]
        )
        self.bottom = ops.make(DoubleConv, chans[-1], 2 * chans[-1])
        ups, convs, c = [], [], 2 * chans[-1]
        for skip in reversed(chans):
            ups.append(ops.conv_transpose(c, skip, 2, 2))
            convs.append(ops.make(DoubleConv, 2 * skip, skip))
            c = skip
        self.ups, self.convs = ops.seq(ups), ops.seq(convs)
        self.out = ops.conv(c, out_channels, 1, bias=True)

    def __call__(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.ops.max_pool(x, 2, 2, 0)
        x = self.bottom(x)
        for up, conv, skip in zip(self.ups, self.convs, reversed(skips)):
            x = conv(self.ops.cat([up(x), skip]))
        return self.out(x)


class Wav2Vec2Encoder(Block):
    """wav2vec2-base's feature encoder (7 convs, group norm on the first), its feature
    projection, and its grouped k128 positional conv."""

    CONVS = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2

    def __init__(self, ops):
        ops.init(self)
        convs, cin = [], 1
        for k, s in self.CONVS:
            convs.append(ops.conv(cin, 512, k, s, dims=1, padding=0))
            cin = 512
        self.convs = ops.seq(convs)
        self.gn = ops.gn(512, 512)
        self.norm = ops.ln(512)
        self.project = ops.linear(512, 768, over_channels=True)
        self.pos = ops.conv(768, 768, 128, 1, groups=16, dims=1, bias=True, padding=64)
        self.out_norm = ops.ln(768)

    def __call__(self, x):
        ops = self.ops
        for i, conv in enumerate(self.convs):
            x = conv(x)
            x = ops.act("gelu", self.gn(x) if i == 0 else x)
        x = self.project(self.norm(x))
        pos = ops.crop_last(self.pos(x))  # the padded conv yields one frame more
        return self.out_norm(x + ops.act("gelu", pos))


@dataclasses.dataclass(frozen=True)
class Network:
    """A network of the suite: its definition, its input (channels-last, without the
    channel for audio) and its loss ("classes" or "regression")."""

    name: str
    build: callable
    input: tuple
    loss: str = "classes"
    quick_input: tuple | None = None


NETWORKS = [
    Network("MobileNetV2", MobileNetV2, (8, 112, 112, 3), quick_input=(2, 64, 64, 3)),
    Network("EfficientNet-B0", EfficientNetB0, (8, 112, 112, 3), quick_input=(2, 64, 64, 3)),
    Network("ConvNeXt-T", ConvNeXtT, (4, 112, 112, 3)),
    Network(
        "ResNet-18",
        functools.partial(ResNet, block=BasicBlock, layers=(2, 2, 2, 2)),
        (8, 112, 112, 3),
    ),
    Network(
        "ResNet-50",
        functools.partial(ResNet, block=Bottleneck, layers=(3, 4, 6, 3)),
        (4, 112, 112, 3),
    ),
    Network("wav2vec2 feature encoder", Wav2Vec2Encoder, (2, 16000), loss="regression"),
    Network(
        "3-D ResNet-18",
        functools.partial(ResNet, block=BasicBlock, layers=(2, 2, 2, 2), dims=3),
        (2, 8, 56, 56, 3),
    ),
    Network("U-Net", UNet, (4, 64, 64, 3), loss="regression"),
    Network("DenseNet-121", DenseNet121, (4, 112, 112, 3)),
]


# --------------------------------------------------------------------- flax ops


@dataclasses.dataclass(frozen=True)
class FlaxFns:
    """What the networks' forward passes call, channels-last: a static attribute."""

    max_pool_fn: callable
    avg_pool_fn: callable

    def act(self, name, x):
        fns = {"relu": jax.nn.relu, "relu6": jax.nn.relu6, "silu": jax.nn.silu}
        fns |= {"gelu": jax.nn.gelu, "sigmoid": jax.nn.sigmoid}
        return fns[name](x)

    def max_pool(self, x, k, s, p):
        n = x.ndim - 2
        return self.max_pool_fn(x, (k,) * n, (s,) * n, ((p, p),) * n)

    def avg_pool(self, x, k, s):
        n = x.ndim - 2
        return self.avg_pool_fn(x, (k,) * n, (s,) * n)

    def mean(self, x):
        return x.mean(axis=tuple(range(1, x.ndim - 1)))  # (N, C)

    def cat(self, xs):
        return jnp.concatenate(xs, axis=-1)

    def scale(self, x, s):
        return x * s.reshape(s.shape[0], *(1,) * (x.ndim - 2), s.shape[-1])

    def crop_last(self, x):
        return x[:, :-1]


class FlaxOps:
    """Builds flax nnx layers, channels-last; `pools` are flax's or jaxconv's functions."""

    def __init__(self, rngs, pools):
        from flax import nnx

        self.nnx, self.rngs = nnx, rngs
        self.fns = FlaxFns(pools["max"], pools["avg"])
        self._classes = {}

    def init(self, obj):
        obj.ops = self.fns

    def make(self, cls, *args, **kwargs):
        if isinstance(cls, functools.partial):  # a network's fixed arguments
            return self.make(cls.func, *cls.args, *args, **cls.keywords, **kwargs)
        if cls not in self._classes:
            self._classes[cls] = type(cls.__name__, (cls, self.nnx.Module), {})
        return self._classes[cls](self, *args, **kwargs)

    def seq(self, items):
        return self.nnx.List(items)

    def conv(self, cin, cout, k, stride=1, groups=1, bias=False, dims=2, padding=None):
        k = (k,) * dims if isinstance(k, int) else tuple(k)
        stride = (stride,) * dims if isinstance(stride, int) else tuple(stride)
        padding = tuple(kk // 2 for kk in k) if padding is None else padding
        padding = (padding,) * dims if isinstance(padding, int) else padding
        return self.nnx.Conv(
            cin,
            cout,
            k,
            stride,
            padding=[(p, p) for p in padding],
            feature_group_count=groups,
            use_bias=bias,
            rngs=self.rngs,
        )

    def conv_transpose(self, cin, cout, k, stride):
        nnx = self.nnx
        return nnx.ConvTranspose(
            cin, cout, (k, k), (stride, stride), padding="VALID", rngs=self.rngs
        )

    def bn(self, c, dims=2):
        return self.nnx.BatchNorm(c, momentum=0.9, rngs=self.rngs)

    def ln(self, c):
        return self.nnx.LayerNorm(c, epsilon=1e-6, rngs=self.rngs)

    def gn(self, groups, c):
        return self.nnx.GroupNorm(c, num_groups=groups, rngs=self.rngs)

    def linear(self, cin, cout, over_channels=False):
        return self.nnx.Linear(cin, cout, rngs=self.rngs)

    def data(self, network: Network, shape):
        x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
        return x[..., None] if len(shape) == 2 else x  # audio: (N, T, 1)


# -------------------------------------------------------------------- torch ops


class TorchOps:
    """PyTorch layers, channels-first tensors (channels_last memory for 2-D and 3-D)."""

    def __init__(self):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self._classes = {}

    def init(self, obj):
        self.torch.nn.Module.__init__(obj)
        obj.ops = self

    def make(self, cls, *args, **kwargs):
        if isinstance(cls, functools.partial):  # a network's fixed arguments
            return self.make(cls.func, *cls.args, *args, **cls.keywords, **kwargs)
        if cls not in self._classes:
            self._classes[cls] = type(cls.__name__, (cls, self.torch.nn.Module), {})
        return self._classes[cls](self, *args, **kwargs)

    def seq(self, items):
        return self.torch.nn.ModuleList(items)

    def conv(self, cin, cout, k, stride=1, groups=1, bias=False, dims=2, padding=None):
        k = (k,) * dims if isinstance(k, int) else tuple(k)
        padding = tuple(kk // 2 for kk in k) if padding is None else padding
        cls = {1: self.torch.nn.Conv1d, 2: self.torch.nn.Conv2d, 3: self.torch.nn.Conv3d}[dims]
        return cls(cin, cout, k, stride, padding, groups=groups, bias=bias)

    def conv_transpose(self, cin, cout, k, stride):
        return self.torch.nn.ConvTranspose2d(cin, cout, k, stride)

    def bn(self, c, dims=2):
        nn = self.torch.nn
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](c, momentum=0.1)

    def ln(self, c):
        torch = self.torch

        class ChannelNorm(torch.nn.LayerNorm):
            def forward(self, x):  # over the channel axis (1) of (N, C, ...)
                if x.ndim == 2:
                    return super().forward(x)
                return super().forward(x.movedim(1, -1)).movedim(-1, 1)

        return ChannelNorm(c, eps=1e-6)

    def gn(self, groups, c):
        return self.torch.nn.GroupNorm(groups, c, eps=1e-6)

    def linear(self, cin, cout, over_channels=False):
        torch = self.torch
        layer = torch.nn.Linear(cin, cout)
        if not over_channels:
            return layer

        class ChannelLinear(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = layer

            def forward(self, x):
                return self.linear(x.movedim(1, -1)).movedim(-1, 1)

        return ChannelLinear()

    def act(self, name, x):
        F = self.F
        return {
            "relu": F.relu,
            "relu6": F.relu6,
            "silu": F.silu,
            "gelu": F.gelu,
            "sigmoid": self.torch.sigmoid,
        }[name](x)

    def max_pool(self, x, k, s, p):
        return self.F.max_pool2d(x, k, s, p)

    def avg_pool(self, x, k, s):
        return self.F.avg_pool2d(x, k, s)

    def mean(self, x):
        return x.mean(dim=tuple(range(2, x.ndim)))

    def cat(self, xs):
        return self.torch.cat(xs, dim=1)

    def scale(self, x, s):
        return x * s.reshape(*s.shape, *(1,) * (x.ndim - 2))

    def crop_last(self, x):
        return x[..., :-1]

    def data(self, network: Network, shape):
        torch = self.torch
        if len(shape) == 2:
            return torch.randn(shape[0], 1, shape[1])
        x = torch.randn(shape[0], shape[-1], *shape[1:-1])
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        return x.contiguous(memory_format=fmt)


# ------------------------------------------------------------------- one step

LEARNING_RATE, MOMENTUM = 0.01, 0.9


def _loss(network: Network, out, target):
    if network.loss == "classes":
        logp = jax.nn.log_softmax(out)
        return -jnp.take_along_axis(logp, target[:, None], axis=1).mean()
    return jnp.mean((out - target) ** 2)


def flax_step(network: Network, variant: str, shape):
    """(a jitted, state-donating step, its initial state, its batch) for `variant`
    "flax" or "jaxconv"; both start from the same parameters."""
    import optax
    from flax import linen, nnx

    import jaxconv

    pools = {"max": linen.max_pool, "avg": linen.avg_pool}
    if variant == "jaxconv":
        pools = {"max": jaxconv.max_pool, "avg": jaxconv.avg_pool}
    ops = FlaxOps(nnx.Rngs(0), pools)
    model = ops.make(network.build)
    if variant == "jaxconv":
        jaxconv.nnx.swap(model)
    x = ops.data(network, shape)
    graphdef, whole = nnx.split(model)
    out = jax.eval_shape(lambda state, x: nnx.merge(graphdef, state)(x), whole, x)
    if network.loss == "classes":
        target = jnp.arange(shape[0]) % out.shape[-1]
    else:
        target = jnp.zeros(out.shape, jnp.float32)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(LEARNING_RATE, MOMENTUM)

    def step(params, rest, opt_state, x, target):
        def loss_fn(params, rest):
            model = nnx.merge(graphdef, params, rest, copy=True)
            loss = _loss(network, model(x), target)
            return loss, nnx.state(model, nnx.Not(nnx.Param))

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    state = (params, rest, tx.init(params))
    return jax.jit(step, donate_argnums=(0, 1, 2)), state, (x, target)


@dataclasses.dataclass
class StepTimes:
    compile_s: float
    step_ms: float
    min_ms: float
    peak_mb: float | None


COMPILE_ORDER = ("flax", "jaxconv", "jaxconv", "flax")
"""The order the variants' first calls are timed in: twice each, alternated, from
cleared caches, so that neither pays alone for the process's warm-up or for a busy
moment of the host; the faster of each variant's two counts."""


def time_flax_variants(network: Network, shape, repeats: int) -> dict:
    """Time each JAX variant's first call (`COMPILE_ORDER`), then their steps alternated,
    threading the donated state through: {variant: StepTimes}."""
    runs, compile_s, peak = {}, {}, {}
    for variant in COMPILE_ORDER:
        jax.clear_caches()
        step, state, batch = flax_step(network, variant, shape)
        start = time.perf_counter()
        compiled = step.lower(*state, *batch).compile()
        elapsed = time.perf_counter() - start
        compile_s[variant] = min(compile_s.get(variant, elapsed), elapsed)
        stats = compiled.memory_analysis()
        peak[variant] = None
        if stats is not None:
            total = (
                stats.temp_size_in_bytes
                + stats.argument_size_in_bytes
                + stats.output_size_in_bytes
                - stats.alias_size_in_bytes
            )
            peak[variant] = total / 2**20
        runs[variant] = [compiled, state, batch]
    samples = {v: [] for v in runs}
    for round_ in range(repeats + 2):  # two warm-up rounds
        for variant in ("flax", "jaxconv") if round_ % 2 else ("jaxconv", "flax"):
            compiled, state, batch = runs[variant]
            start = time.perf_counter()
            *state, loss = compiled(*state, *batch)
            jax.block_until_ready(loss)
            if round_ >= 2:
                samples[variant].append(time.perf_counter() - start)
            runs[variant][1] = tuple(state)
    return {
        v: StepTimes(compile_s[v], statistics.median(s) * 1e3, min(s) * 1e3, peak[v])
        for v, s in samples.items()
    }


def time_torch(network: Network, shape, repeats: int) -> StepTimes | None:
    """PyTorch's step on the same architecture (CPU, channels_last), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    ops = TorchOps()
    model = ops.make(network.build)
    x = ops.data(network, shape)
    if x.ndim >= 4:
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        model = model.to(memory_format=fmt)
    with torch.no_grad():
        out = model(x)
    if network.loss == "classes":
        target = torch.arange(shape[0]) % out.shape[-1]
        loss_fn = torch.nn.functional.cross_entropy
    else:
        target = torch.zeros_like(out)
        loss_fn = torch.nn.functional.mse_loss
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        return loss.item()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return StepTimes(first, statistics.median(samples) * 1e3, min(samples) * 1e3, None)


def select_networks(names=None, quick: bool = False) -> list:
    """The networks a run times: those named, else every one; under `quick` only those
    with a `quick_input` (the rest take minutes each at full size)."""
    if names:
        return [n for n in NETWORKS if n.name in names]
    return [n for n in NETWORKS if n.quick_input or not quick]


def run_network(network: Network, repeats: int, quick: bool = False) -> dict:
    """One row of the network table."""
    shape = network.quick_input if quick and network.quick_input else network.input
    times = time_flax_variants(network, shape, repeats)
    torch_times = time_torch(network, shape, repeats)
    row = dict(
        network=network.name,
        input=list(shape),
        **{f"{v}_{k}": val for v, t in times.items() for k, val in dataclasses.asdict(t).items()},
    )
    row["speedup"] = times["flax"].step_ms / times["jaxconv"].step_ms
    row["compile_ratio"] = times["jaxconv"].compile_s / times["flax"].compile_s
    if times["flax"].peak_mb and times["jaxconv"].peak_mb:
        row["peak_ratio"] = times["jaxconv"].peak_mb / times["flax"].peak_mb
    if torch_times is not None:
        row["torch_step_ms"] = torch_times.step_ms
        row["torch_min_ms"] = torch_times.min_ms
        row["vs_torch"] = torch_times.step_ms / times["jaxconv"].step_ms
    # After how many steps the faster step has paid for the slower compile.
    saved = times["flax"].step_ms - times["jaxconv"].step_ms
    extra = (times["jaxconv"].compile_s - times["flax"].compile_s) * 1e3
    row["break_even_steps"] = max(0.0, extra / saved) if saved > 0 else None
    return row
