"""Speed of the vetted layers against jax.nn, flax.nnx and equinox on the same inputs.

Usage::

    python -m benchmarks.layers                       # full table, float32 and bfloat16
    python -m benchmarks.layers --only gelu,layer_norm --dtypes float32 --repeats 30
    python -m benchmarks.layers --json out.json       # also write JSON
    python -m benchmarks.layers --baseline old.json   # show the change against a saved run

Method: every implementation of one op is jitted and compiled first, then all
of them are timed interleaved (one call each, round robin) ``--repeats`` times
on the same device-resident input, each call followed by
``block_until_ready``; the table gives the median.  Ratio = vetted time /
fastest peer's time (<= 1.25 is the target).  For memory-bound ops the
achieved bandwidth (bytes read + written per second) is given as a fraction
of a measured copy (``x + 0`` in the same dtype, same bytes) on the same device.

Shapes (from the project's performance issue): elementwise on 2**24
elements; softmax (4096, 1000); layer_norm and rms_norm (4096, 1024);
batch_norm and group_norm (64, 32, 32, 64) NHWC.  Peers that are not
installed, and ops the vetted package does not have yet, are left out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import impl.functional as F

ELEMENTWISE = ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "softplus",
               "log_sigmoid", "mish", "selu", "hard_swish", "softsign"]
MEMORY_BOUND = {"relu", "leaky_relu", "layer_norm", "rms_norm", "batch_norm", "group_norm", "softmax"}


def _peers_elementwise(name):
    """(label, function) of the peers for an elementwise op."""
    nn = jax.nn
    table = {
        "relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.01), "elu": nn.elu,
        "gelu": lambda x: nn.gelu(x, approximate=False), "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
        "silu": nn.silu, "sigmoid": nn.sigmoid, "tanh": jnp.tanh, "softplus": nn.softplus,
        "log_sigmoid": nn.log_sigmoid, "mish": getattr(nn, "mish", None), "selu": nn.selu,
        "hard_swish": nn.hard_swish, "softsign": nn.soft_sign,
    }
    out = []
    if table.get(name) is not None:
        out.append(("jax.nn", table[name]))
    try:
        from flax import nnx

        fn = {"gelu": lambda x: nnx.gelu(x, approximate=False), "gelu_tanh": lambda x: nnx.gelu(x, approximate=True),
              "leaky_relu": lambda x: nnx.leaky_relu(x, 0.01), "tanh": nnx.tanh}.get(name, getattr(nnx, name, None))
        if fn is not None:
            out.append(("flax.nnx", fn))
    except ImportError:
        pass
    return out


def _vetted_elementwise(name):
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate=True)
    if name == "gelu":
        return lambda x: F.gelu(x)
    fn = getattr(F, name, None)
    return (lambda x: fn(x)) if fn is not None else None


def _norm_entries():
    """(op, shape, vetted, peers) for the reductions that exist in impl.functional."""
    out = []
    if hasattr(F, "softmax"):
        out.append(("softmax", (4096, 1000), lambda x: F.softmax(x, axis=-1),
                    [("jax.nn", lambda x: jax.nn.softmax(x, axis=-1))]))
    if hasattr(F, "layer_norm"):
        peers = [("jax.nn.standardize", lambda x: jax.nn.standardize(x, axis=-1, epsilon=1e-5))]
        try:
            import equinox as eqx

            ln = eqx.nn.LayerNorm(1024, use_weight=False, use_bias=False)
            peers.append(("equinox", jax.vmap(ln)))
        except ImportError:
            pass
        try:
            from flax import nnx

            fl = nnx.LayerNorm(1024, use_scale=False, use_bias=False, epsilon=1e-5, rngs=nnx.Rngs(0))
            peers.append(("flax.nnx", lambda x, m=fl: m(x)))
        except ImportError:
            pass
        out.append(("layer_norm", (4096, 1024), lambda x: F.layer_norm(x, (1024,)), peers))
    if hasattr(F, "rms_norm"):
        peers = []
        try:
            from flax import nnx

            rm = nnx.RMSNorm(1024, use_scale=False, epsilon=1e-6, rngs=nnx.Rngs(0))
            peers.append(("flax.nnx", lambda x, m=rm: m(x)))
        except ImportError:
            pass
        out.append(("rms_norm", (4096, 1024), lambda x: F.rms_norm(x, (1024,)), peers))
    if hasattr(F, "batch_norm"):
        c = 64
        rm, rv = jnp.zeros(c, jnp.float32), jnp.ones(c, jnp.float32)
        # flax's BatchNorm mutates its running statistics, which a plain jax.jit cannot do;
        # its training-mode arithmetic is the batch standardization timed here
        peers = []
        peers.append(("jax.nn.standardize", lambda x: jax.nn.standardize(x, axis=(0, 1, 2), epsilon=1e-5)))
        out.append(("batch_norm", (64, 32, 32, c), lambda x: F.batch_norm(x, rm, rv, training=True)[0], peers))
    if hasattr(F, "group_norm"):
        peers = []
        try:
            from flax import nnx

            gn = nnx.GroupNorm(64, num_groups=4, use_scale=False, use_bias=False, epsilon=1e-5, rngs=nnx.Rngs(0))
            peers.append(("flax.nnx", lambda x, m=gn: m(x)))
        except ImportError:
            pass
        out.append(("group_norm", (64, 32, 32, 64), lambda x: F.group_norm(x, 4), peers))
    return out


def median_times(calls, repeats):
    """Median seconds of each zero-argument call: each is run twice first (compilation,
    warm-up), then all are called round robin ``repeats`` times, ``block_until_ready``
    after each."""
    for c in calls:
        jax.block_until_ready(c())
        jax.block_until_ready(c())
    times = [[] for _ in calls]
    for _ in range(repeats):
        for i, c in enumerate(calls):
            t = time.perf_counter()
            jax.block_until_ready(c())
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def _time_interleaved(fns, x, repeats):
    return median_times([lambda f=jax.jit(f): f(x) for f in fns], repeats)


def _input(shape, dtype, stream=1):
    from tools.inputs import uniform

    n = int(np.prod(shape))
    v = (uniform(n, stream) * 8 - 4).reshape(shape)
    return jax.device_put(jnp.asarray(v, dtype=dtype))


def run(only=None, dtypes=("float32", "bfloat16"), repeats=20):
    rows = []
    entries = [(n, (1 << 24,), _vetted_elementwise(n), _peers_elementwise(n)) for n in ELEMENTWISE]
    entries += _norm_entries()
    for name, shape, vetted, peers in entries:
        if vetted is None or (only and name not in only):
            continue
        for dt in dtypes:
            x = _input(shape, jnp.dtype(dt))
            labels = ["vetted"] + [p for p, _ in peers] + ["copy"]
            fns = [vetted] + [f for _, f in peers] + [lambda v: v + jnp.zeros((), v.dtype)]
            try:
                ts = _time_interleaved(fns, x, repeats)
            except Exception as e:  # a peer that cannot run this dtype/shape
                print(f"{name} {dt}: skipped ({type(e).__name__}: {e})")
                continue
            res = dict(zip(labels, ts))
            fastest_peer = min((res[p] for p, _ in peers), default=float("nan"))
            row = {"op": name, "dtype": dt, "shape": list(shape), "times_ms": {k: v * 1e3 for k, v in res.items()},
                   "ratio_to_fastest_peer": res["vetted"] / fastest_peer if peers else None}
            if name in MEMORY_BOUND:
                row["fraction_of_copy_bandwidth"] = res["copy"] / res["vetted"]
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _format_row(r):
    t = r["times_ms"]
    peers = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k not in ("vetted", "copy"))
    ratio = "-" if r["ratio_to_fastest_peer"] is None else f"{r['ratio_to_fastest_peer']:.2f}x"
    bw = f", {100 * r['fraction_of_copy_bandwidth']:.0f}% of copy bandwidth" if "fraction_of_copy_bandwidth" in r else ""
    return f"{r['op']:12s} {r['dtype']:9s} vetted {t['vetted']:8.2f} ms | {peers} | ratio {ratio}{bw}"


def markdown(rows, meta):
    out = [f"Measured {meta['date']} on {meta['machine']} ({meta['devices']}), {meta['versions']}; "
           f"median of {meta['repeats']} interleaved runs.", "",
           "| op | dtype | vetted (ms) | peers (ms) | ratio to fastest peer | % of copy bandwidth |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        t = r["times_ms"]
        peers = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k not in ("vetted", "copy"))
        ratio = "-" if r["ratio_to_fastest_peer"] is None else f"{r['ratio_to_fastest_peer']:.2f}"
        bw = f"{100 * r['fraction_of_copy_bandwidth']:.0f}" if "fraction_of_copy_bandwidth" in r else "-"
        out.append(f"| `{r['op']}` | {r['dtype']} | {t['vetted']:.2f} | {peers} | {ratio} | {bw} |")
    return "\n".join(out) + "\n"


def compare(rows, baseline):
    base = {(r["op"], r["dtype"]): r for r in baseline["rows"]}
    print("\nchange against the baseline (vetted time):")
    for r in rows:
        b = base.get((r["op"], r["dtype"]))
        if b:
            old, new = b["times_ms"]["vetted"], r["times_ms"]["vetted"]
            print(f"  {r['op']:12s} {r['dtype']:9s} {old:8.2f} -> {new:8.2f} ms ({100 * (new / old - 1):+.0f}%)")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.layers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated op names")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    ap.add_argument("--markdown", default=None, help="write the table as Markdown here")
    ap.add_argument("--baseline", default=None, help="a JSON from an earlier run to compare with")
    args = ap.parse_args(argv)
    import jaxlib

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "devices": ", ".join(str(d) for d in jax.devices()), "repeats": args.repeats,
            "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}",
            "command": "python -m benchmarks.layers"}
    rows = run(set(args.only.split(",")) if args.only else None, tuple(args.dtypes.split(",")), args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(rows, meta))
    if args.baseline:
        with open(args.baseline) as f:
            compare(rows, json.load(f))


if __name__ == "__main__":
    main()
