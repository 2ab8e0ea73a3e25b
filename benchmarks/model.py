"""The tutorial's ModernCNN, forward pass and a jitted training step, against the
same network written with flax.nnx (when installed), at batch 64 and 8 on 32x32x3 images.

Usage::

    python -m benchmarks.model                      # float32 and bfloat16
    python -m benchmarks.model --dtypes float32 --repeats 10 --json out.json
    python -m benchmarks.model --baseline out.json   # the change against a saved run

Network (examples/tutorial.py): Conv2d(3, 64, 3, SAME) - BatchNorm2d - GELU -
MaxPool 2x2 - Conv2d(64, 128, 3, SAME) - BatchNorm2d - GELU - MaxPool 2x2 -
Flatten - Linear(8192, 256) - LayerNorm - GELU - Dropout(0.5) - Linear(256, 10).
Forward: eval mode (running statistics, no dropout).  Training step: batch
statistics and dropout, softmax cross-entropy, ``jax.value_and_grad`` and a
plain SGD update of every parameter, all in one ``jax.jit``; BatchNorm's
running statistics are updated as part of the step.  Both networks hold their
parameters in the benchmark dtype.  Method as in ``benchmarks.layers``:
compiled first, then interleaved calls, median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import impl.nn as inn
from benchmarks.layers import median_times

BATCH, NUM_CLASSES, LR = 64, 10, 1e-3


def _vetted_model(dtype, inn=inn):
    model = inn.Sequential(
        inn.Conv2d(3, 64, kernel_size=(3, 3), padding="SAME", key=jax.random.key(1)), inn.BatchNorm2d(64), inn.GELU(),
        inn.MaxPool2d(kernel_size=(2, 2), strides=(2, 2)),
        inn.Conv2d(64, 128, kernel_size=(3, 3), padding="SAME", key=jax.random.key(2)), inn.BatchNorm2d(128),
        inn.GELU(), inn.MaxPool2d(kernel_size=(2, 2), strides=(2, 2)),
        inn.Flatten(), inn.Linear(128 * 8 * 8, 256, key=jax.random.key(3)), inn.LayerNorm((256,)), inn.GELU(),
        inn.Dropout(p=0.5), inn.Linear(256, NUM_CLASSES, key=jax.random.key(4)))
    return jax.tree_util.tree_map(lambda v: v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v, model)


def _cross_entropy(logits, labels):
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def _vetted_fns(dtype, inn=inn):
    model = _vetted_model(dtype, inn)
    eval_model = jax.tree_util.tree_map(lambda v: v, model).eval()  # a copy: .eval() switches in place

    def forward(x):
        return eval_model(x)

    def step(m, x, labels, key):
        def loss(m):
            logits, new_m = inn.functional_call(m, x, key=key)
            return _cross_entropy(logits, labels), new_m

        (value, new_m), grads = jax.value_and_grad(loss, has_aux=True)(m)
        # SGD on the parameters; the running statistics come from the forward pass
        params = jax.tree_util.tree_map(lambda p, g: p - jnp.asarray(LR, p.dtype) * g, new_m, grads)
        return value, params

    return forward, jax.jit(step), model.train()


def _flax_fns(dtype):
    from flax import nnx

    class ModernCNN(nnx.Module):
        def __init__(self, rngs):
            kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
            self.conv1 = nnx.Conv(3, 64, (3, 3), padding="SAME", **kw)
            self.bn1 = nnx.BatchNorm(64, momentum=0.9, epsilon=1e-5, **kw)
            self.conv2 = nnx.Conv(64, 128, (3, 3), padding="SAME", **kw)
            self.bn2 = nnx.BatchNorm(128, momentum=0.9, epsilon=1e-5, **kw)
            self.fc1 = nnx.Linear(128 * 8 * 8, 256, **kw)
            self.ln = nnx.LayerNorm(256, epsilon=1e-5, **kw)
            self.dropout = nnx.Dropout(0.5, rngs=rngs)
            self.fc2 = nnx.Linear(256, NUM_CLASSES, **kw)

        def __call__(self, x):
            x = nnx.max_pool(nnx.gelu(self.bn1(self.conv1(x)), approximate=False), (2, 2), (2, 2))
            x = nnx.max_pool(nnx.gelu(self.bn2(self.conv2(x)), approximate=False), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = self.dropout(nnx.gelu(self.ln(self.fc1(x)), approximate=False))
            return self.fc2(x)

    model = ModernCNN(nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def forward(x, graphdef=graphdef, state=state):
        m = nnx.merge(graphdef, state)
        m.eval()
        return m(x)

    def step(state, x, labels, key):
        m = nnx.merge(graphdef, state)
        m.train()

        def loss(m):
            return _cross_entropy(m(x), labels)

        value, grads = nnx.value_and_grad(loss)(m)
        params = nnx.state(m, nnx.Param)
        new = jax.tree_util.tree_map(lambda p, g: p - jnp.asarray(LR, p.dtype) * g, params, grads)
        nnx.update(m, new)
        return value, nnx.state(m)

    return forward, jax.jit(step), state


def run(dtypes=("float32", "bfloat16"), repeats=10, batches=(BATCH,), other=None):
    rows = []
    for dt, batch in [(d, b) for d in dtypes for b in batches]:
        dtype = jnp.dtype(dt)
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((batch, 32, 32, 3)), dtype)
        labels = jnp.asarray(rng.integers(0, NUM_CLASSES, batch))
        key = jax.random.key(7)
        impls = {"vetted": _vetted_fns(dtype)}
        try:
            impls["flax.nnx"] = _flax_fns(dtype)
        except ImportError:
            pass
        if other is not None:
            impls["other"] = _vetted_fns(dtype, other)
        for what in ("forward", "train_step"):
            calls = []
            for fwd, step, state in impls.values():
                if what == "forward":
                    calls.append(lambda f=jax.jit(fwd): f(x))
                else:
                    calls.append(lambda s=step, st=state: s(st, x, labels, key))
            ts = dict(zip(impls, (1e3 * t for t in median_times(calls, repeats))))
            peers = [v for k, v in ts.items() if k not in ("vetted", "other")]
            row = {"op": f"ModernCNN {what}", "dtype": dt, "mode": what, "batch": batch,
                   "shape": [batch, 32, 32, 3], "times_ms": ts,
                   "ratio_to_fastest_peer": ts["vetted"] / min(peers) if peers else None}
            if "other" in ts and peers:
                row["other_ratio_to_fastest_peer"] = ts["other"] / min(peers)
            rows.append(row)
            others = ", ".join(f"{k} {v:.1f}" for k, v in ts.items() if k != "vetted")
            ratio = "-" if row["ratio_to_fastest_peer"] is None else f"{row['ratio_to_fastest_peer']:.2f}x"
            if "other_ratio_to_fastest_peer" in row:
                ratio += f" (other {row['other_ratio_to_fastest_peer']:.2f}x)"
            print(f"{row['op']:22s} {dt:9s} batch {batch:3d} vetted {ts['vetted']:8.1f} ms | {others} | ratio {ratio}",
                  flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.model", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batches", default="64,8", help="comma-separated batch sizes (default 64,8)")
    ap.add_argument("--other", default=None, metavar="MODULE",
                    help="another build of impl.nn (e.g. an earlier impl/ copied to impl_before/: "
                         "impl_before.nn) timed in the same interleaved run")
    ap.add_argument("--json", default=None, help="write the results as JSON here (same format as benchmarks.layers)")
    ap.add_argument("--baseline", default=None, help="a JSON from an earlier run to compare with")
    args = ap.parse_args(argv)
    import jaxlib

    other = None
    if args.other:
        import importlib

        other = importlib.import_module(args.other)
    rows = run(tuple(args.dtypes.split(",")), args.repeats, tuple(int(b) for b in args.batches.split(",")), other)
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}",
                "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}", "repeats": args.repeats,
                "command": "python -m benchmarks.model"}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if args.baseline:
        from benchmarks.layers import compare

        with open(args.baseline) as f:
            compare(rows, json.load(f))


if __name__ == "__main__":
    main()
