"""`make demo` / `python -m jaxconv.demo`: train a jaxconv CNN on scikit-learn's digits.

The model uses jaxconv.nnx layers (Conv, SeparableConv = depthwise + pointwise,
MaxPool, AdaptiveAvgPool) and trains with optax under `nnx.jit`. The same model
built from flax.nnx.Conv and flax pooling trains from the same parameters
alongside, and the demo prints how closely the two loss curves agree, both
step times, and which algorithm "auto" chose for each convolution.

`--devices N` trains data-parallel over N devices (on CPU it sets
XLA_FLAGS=--xla_force_host_platform_device_count=N) with the batch sharded by a
NamedSharding over a one-axis Mesh, and checks the loss curve against one device.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m jaxconv.demo", description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--devices", type=int, default=1, help="data-parallel devices (CPU: forced host devices)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get(
        "XLA_FLAGS", ""
    ):
        # Must happen before jax initialises its backends.
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import linen, nnx
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from tqdm import tqdm

    import jaxconv
    from jaxconv import nnx as jn

    # ------------------------------------------------------------------ data
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=0.2, random_state=args.seed, stratify=digits.target
    )

    # ----------------------------------------------------------------- model
    class Separable(nnx.Module):  # flax twin of jaxconv.nnx.SeparableConv
        def __init__(self, cin, cout, rngs):
            self.depthwise = nnx.Conv(
                cin, cin, (3, 3), feature_group_count=cin, use_bias=False, rngs=rngs
            )
            self.pointwise = nnx.Conv(cin, cout, (1, 1), rngs=rngs)

        def __call__(self, x):
            return self.pointwise(self.depthwise(x))

    class CNN(nnx.Module):
        """conv 3x3 -> separable 3x3 -> max pool 2 -> conv 3x3 -> adaptive avg pool -> linear."""

        def __init__(self, flavour: str, rngs):
            ours = flavour == "jaxconv"
            conv = jn.Conv if ours else nnx.Conv
            self.c1 = conv(1, 32, (3, 3), rngs=rngs)
            self.c2 = (
                jn.SeparableConv(32, 64, (3, 3), rngs=rngs) if ours else Separable(32, 64, rngs)
            )
            self.c3 = conv(64, 64, (3, 3), rngs=rngs)
            self.head = nnx.Linear(64, 10, rngs=rngs)
            if ours:
                self.pool = jn.MaxPool((2, 2), (2, 2))
                self.gap = jn.AdaptiveAvgPool((1, 1))
            else:
                self.pool = lambda x: linen.max_pool(x, (2, 2), (2, 2))
                self.gap = lambda x: jnp.mean(x, axis=(1, 2), keepdims=True)

        def __call__(self, x):
            x = nnx.relu(self.c1(x))  # (B, 8, 8, 32)
            x = nnx.relu(self.c2(x))  # (B, 8, 8, 64)
            x = self.pool(x)  # (B, 4, 4, 64)
            x = nnx.relu(self.c3(x))  # (B, 4, 4, 64)
            x = self.gap(x).reshape(x.shape[0], -1)  # (B, 64)
            return self.head(x)

    def build(flavour):
        model = CNN(flavour, nnx.Rngs(args.seed))
        optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
        return model, optimizer

    def loss_fn(model, x, y):
        logits = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def accuracy(model, x, y):
        return jnp.mean(jnp.argmax(model(x), -1) == y)

    def batches(epoch):
        order = np.random.default_rng(args.seed + epoch).permutation(len(x_tr))
        usable = len(order) - len(order) % args.batch  # equal batches: no recompiles
        for i in range(0, usable, args.batch):
            idx = order[i : i + args.batch]
            yield x_tr[idx], y_tr[idx]

    def train(flavour, sharding=None, bar=True):
        model, optimizer = build(flavour)
        if flavour != "jaxconv":  # start from exactly the jaxconv model's parameters
            nnx.update(model, nnx.state(build("jaxconv")[0], nnx.Param))
        losses, times = [], []
        steps = args.epochs * (len(x_tr) // args.batch)
        progress = tqdm(total=steps, desc=f"{flavour:8s}", disable=not bar, leave=True)
        for epoch in range(args.epochs):
            for xb, yb in batches(epoch):
                if sharding is not None:
                    xb, yb = jax.device_put(xb, sharding), jax.device_put(yb, sharding)
                start = time.perf_counter()
                loss = float(train_step(model, optimizer, xb, yb))
                times.append(time.perf_counter() - start)
                losses.append(loss)
                progress.update()
            acc = float(accuracy(model, x_te, y_te))
            progress.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}", test_acc=f"{acc:.3f}")
        progress.close()
        return model, np.array(losses), np.median(times[10:]), acc

    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} "
        f"device(s); digits: {len(x_tr)} train / {len(x_te)} test images of 8x8"
    )
    start = time.perf_counter()
    model, ours, t_ours, acc = train("jaxconv")
    _, theirs, t_theirs, acc_flax = train("flax")
    print(f"\njaxconv model: test accuracy {acc:.2%}   (flax model: {acc_flax:.2%})")
    print(
        f"loss curves, jaxconv vs flax: max |difference| = {np.max(np.abs(ours - theirs)):.2e} "
        f"over {len(ours)} steps (first loss {ours[0]:.4f}, last {ours[-1]:.4f})"
    )
    print(f"median train step: jaxconv {t_ours * 1e3:.2f} ms, flax {t_theirs * 1e3:.2f} ms")

    with jaxconv.record_choices() as log:
        jax.eval_shape(lambda x: model(x), jax.ShapeDtypeStruct((args.batch, 8, 8, 1), jnp.float32))
    print('convolutions and what algorithm="auto" chose (forward pass):')
    for name, xs, ws in log:
        print(f"  input (N, *S, G, Ig) = {xs!s:22s} kernel (*K, Ig, G, Og) = {ws!s:18s} -> {name}")

    if args.devices > 1:
        if jax.device_count() < args.devices:
            sys.exit(f"asked for {args.devices} devices, jax sees {jax.device_count()}")
        mesh = jax.make_mesh((args.devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        _, sharded, t_sharded, acc_sharded = train("jaxconv", sharding=sharding)
        print(
            f"\ndata-parallel over {args.devices} devices (batch sharded on mesh axis 'data'): "
            f"test accuracy {acc_sharded:.2%}, median step {t_sharded * 1e3:.2f} ms, "
            f"max |loss - one-device loss| = {np.max(np.abs(sharded - ours)):.2e}"
        )
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    if acc < 0.97:
        sys.exit(f"test accuracy {acc:.2%} is below the 97% target")


if __name__ == "__main__":
    main()
