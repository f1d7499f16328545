"""`make demo`: train a small inverted-residual network on scikit-learn's digits with
jaxconv, swapped into a flax model in one line, and compare with flax's own layers.

The 8x8 digits are upsampled to 32x32, so that the network's depthwise layers (the ones
XLA runs slowly on CPU) do real work. The model is plain flax nnx; `jaxconv.nnx.swap`
makes its convolutions run through jaxconv, with the same parameters. The demo trains
it to the end, then times the flax twin (the same model, unswapped, from the same
parameters) for a few steps: step time, compile time, and the step at which jaxconv's
longer compile has paid off. It exits non-zero below 97% test accuracy (the default
run's bar; `--epochs 2` only reports).

`--devices N` trains data-parallel over N devices (on CPU it sets
XLA_FLAGS=--xla_force_host_platform_device_count=N), the batch sharded over a mesh.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ACCURACY_BAR = 0.97


def parse(argv):
    parser = argparse.ArgumentParser(prog="examples/demo.py", description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="side the digits are upsampled to")
    parser.add_argument("--devices", type=int, default=1, help="data-parallel devices")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get(
        "XLA_FLAGS", ""
    ):  # before jax initialises its backends
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import jaxconv

    # ------------------------------------------------------------------ data
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
    images = np.asarray(
        jax.image.resize(images, (len(images), args.size, args.size, 1), "linear")
    )  # (1797, S, S, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target
    )

    # ----------------------------------------------------------------- model
    class InvertedResidual(nnx.Module):
        """1x1 expand, 3x3 depthwise, 1x1 project (MobileNetV2), plain flax layers."""

        def __init__(self, cin, cout, stride, rngs):
            hidden = 4 * cin
            self.expand = nnx.Conv(cin, hidden, (1, 1), use_bias=False, rngs=rngs)
            self.dw = nnx.Conv(
                hidden,
                hidden,
                (3, 3),
                stride,
                feature_group_count=hidden,
                use_bias=False,
                rngs=rngs,
            )
            self.project = nnx.Conv(hidden, cout, (1, 1), use_bias=False, rngs=rngs)
            self.norms = nnx.List(
                [nnx.BatchNorm(c, momentum=0.9, rngs=rngs) for c in (hidden, hidden, cout)]
            )
            self.residual = stride == 1 and cin == cout

        def __call__(self, x):
            y = nnx.relu6(self.norms[0](self.expand(x)))
            y = nnx.relu6(self.norms[1](self.dw(y)))
            y = self.norms[2](self.project(y))
            return x + y if self.residual else y

    class Net(nnx.Module):
        """stem 3x3 -> inverted residuals at S, S/2, S/4 -> global average -> linear."""

        def __init__(self, rngs):
            self.stem = nnx.Conv(1, 16, (3, 3), rngs=rngs)
            cfg = [(16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 48, 2), (48, 48, 1)]
            self.blocks = nnx.List([InvertedResidual(*c, rngs=rngs) for c in cfg])
            self.head = nnx.Linear(48, 10, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu6(self.stem(x))  # (B, S, S, 16)
            for block in self.blocks:
                x = block(x)  # ... (B, S/4, S/4, 48)
            return self.head(x.mean(axis=(1, 2)))  # (B, 10)

    def build(swap: bool):
        model = Net(nnx.Rngs(args.seed))
        if swap:
            jaxconv.nnx.swap(model)  # the one line: flax's convs now run through jaxconv
        steps = args.epochs * (len(x_tr) // args.batch)
        schedule = optax.cosine_decay_schedule(3e-3, steps)  # settles on the last epochs
        return model, nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

    def loss_fn(model, x, y):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def make_step():
        @nnx.jit
        def train_step(model, optimizer, x, y):
            loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
            optimizer.update(model, grads)
            return loss

        return train_step

    @nnx.jit
    def predict(model, x):
        return jnp.argmax(model(x), -1)

    def accuracy(model, x, y):
        model.eval()  # batch norm from its running statistics
        acc = float(jnp.mean(predict(model, x) == y))
        model.train()
        return acc

    def batches(epoch):
        order = np.random.default_rng(args.seed + epoch).permutation(len(x_tr))
        usable = len(order) - len(order) % args.batch  # equal batches: no recompiles
        for i in range(0, usable, args.batch):
            idx = order[i : i + args.batch]
            yield x_tr[idx], y_tr[idx]

    sharding = None
    if args.devices > 1:
        if jax.device_count() < args.devices:
            sys.exit(f"asked for {args.devices} devices, jax sees {jax.device_count()}")
        mesh = jax.make_mesh((args.devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

    def put(*arrays):
        return arrays if sharding is None else tuple(jax.device_put(a, sharding) for a in arrays)

    def run(swap: bool, steps: int | None = None):
        """Train (all epochs, or `steps` steps): (model, losses, first-call s, step times)."""
        model, optimizer = build(swap)
        step = make_step()
        losses, times, first = [], [], None
        for epoch in range(args.epochs):
            for xb, yb in batches(epoch):
                xb, yb = put(xb, yb)
                start = time.perf_counter()
                loss = float(step(model, optimizer, xb, yb))
                elapsed = time.perf_counter() - start
                if first is None:
                    first = elapsed
                else:
                    times.append(elapsed)
                losses.append(loss)
                if steps is not None and len(losses) == steps:
                    return model, np.array(losses), first, np.array(times)
            if steps is None:
                acc = accuracy(model, *put(x_te, y_te))
                print(f"  epoch {epoch + 1:2d}: loss {np.mean(losses[-10:]):.4f}, test {acc:.2%}")
        return model, np.array(losses), first, np.array(times)

    print(
        f"jax {jax.__version__}, {jax.default_backend()}, {jax.device_count()} device(s); digits "
        f"upsampled to {args.size}x{args.size}: {len(x_tr)} train / {len(x_te)} test images"
    )
    start = time.perf_counter()
    print("jaxconv (flax model + jaxconv.nnx.swap):")
    model, ours, first_ours, t_ours = run(swap=True)
    acc = accuracy(model, *put(x_te, y_te))
    probe = min(len(ours), 8)
    _, theirs, first_flax, t_flax = run(swap=False, steps=probe)
    step_ours, step_flax = np.median(t_ours) * 1e3, np.median(t_flax) * 1e3
    compile_ours = first_ours - step_ours / 1e3
    compile_flax = first_flax - step_flax / 1e3
    print(f"\ntest accuracy: {acc:.2%}")
    print(
        f"same model with flax's layers, from the same parameters: first {probe} losses agree "
        f"to {np.max(np.abs(ours[:probe] - theirs)):.1e}"
    )
    print(
        f"train step:   jaxconv {step_ours:6.1f} ms   flax {step_flax:6.1f} ms   "
        f"({step_flax / step_ours:.1f}x)"
    )
    print(
        f"first call:   jaxconv {compile_ours:6.1f} s    flax {compile_flax:6.1f} s    "
        f"(compile, {compile_ours / compile_flax:.2f}x)"
    )
    saved = step_flax - step_ours
    if saved > 0:
        even = max(0.0, (compile_ours - compile_flax) * 1e3 / saved)
        print(
            f"break-even:   jaxconv is ahead after {even:.0f} steps (this run: {len(ours)} steps)"
        )
    graphdef, state = nnx.split(model)
    with jaxconv.record_choices() as log:  # tracing is enough: nothing runs
        jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x_tr[:1])
    picks = sorted({r.algorithm for r in log})
    print(f'what "auto" runs: {", ".join(picks)}')
    print(f"total {time.perf_counter() - start:.1f} s")
    if args.epochs >= parse([]).epochs and acc < ACCURACY_BAR:
        sys.exit(f"test accuracy {acc:.2%} is below the {ACCURACY_BAR:.0%} bar")


if __name__ == "__main__":
    main()
