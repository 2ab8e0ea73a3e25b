"""Speed of the vetted layers against jax.nn, flax.nnx and equinox on the same inputs,
at several sizes, forward and gradient, alone and fused after a matmul.

Usage::

    python -m benchmarks.layers                       # full matrix, float32 and bfloat16
    python -m benchmarks.layers --only gelu,layer_norm --dtypes float32 --repeats 30
    python -m benchmarks.layers --sizes 18,22 --modes forward,grad
    python -m benchmarks.layers --json out.json       # also write JSON
    python -m benchmarks.layers --baseline old.json   # show the change against a saved run

Method: for each (op, dtype, size, mode) every implementation is jitted and
compiled first, then all of them are timed interleaved (one call each, round
robin, the order reversed every other round) ``--repeats`` times on the same
device-resident input, each call followed by ``block_until_ready``; the table
gives the median.  Ratio =
vetted time / fastest peer's time.  The summary gives each op's WORST ratio
over sizes and modes: a single large size hides the compute cost behind page
faults and memory bandwidth, a small one behind dispatch.

Sizes (``--sizes``, log2 of the element count; default 14, 18, 22, 24):
elementwise ops on a flat array of ``2**k`` elements; softmax, layer_norm and
rms_norm on ``(2**k / 1024, 1024)`` rows; batch_norm, group_norm and max_pool2d
(2 x 2 windows) on NHWC ``(2**k / 4096, 8, 8, 64)``.  Modes (``--modes``):

* ``forward``: ``f(x)``;
* ``grad``: ``jax.grad(lambda x: f(x).sum())``, the backward pass alone;
* ``train``: ``y, vjp = jax.vjp(f, x); return y, vjp(ct)``: the value and the
  backward product in one jit, as a training step needs both (the forward
  value feeds the next layer, the derivative waits for the cotangent);
* ``fused`` (elementwise only): ``f(a @ w)`` in one jit, ``a`` of shape
  ``(2**k / 256, 256)`` and ``w`` ``(256, 256)``: the activation where a model
  applies it, after a matmul whose output XLA may fuse it into.

Peers that are not installed are left out.

The fixed cost of a call.  Every row also times ``floor``, ``-x`` jitted on
the same input (``-a @ w`` when fused): what any jitted program of that size
costs at least.  On the CPU it is not small: XLA's PjRt client runs a
program whose cost analysis counts fewer than 1000 flops on the calling
thread, and hands every other one to its thread pool (30-60 us on this
project's 2-core machine), and it splits a loop it judges compute-heavy into
tasks for several threads.  So at 2**14 elements ``jnp.tanh`` (one
transcendental op: zero flops to the cost analysis, run inline) takes 5-10 us
and ``-x`` 35-90 us; a vetted op of several operations pays the hand-off that
``jnp.tanh`` does not.  ``--dispatch sync`` sets
``jax_cpu_enable_async_dispatch`` to False, which runs every program on the
calling thread, so the small sizes measure the arithmetic; the default
(``async``) is JAX's own setting.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import impl.functional as F

ELEMENTWISE = ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "softplus",
               "log_sigmoid", "mish", "selu", "hard_swish", "softsign"]


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


def _vetted_elementwise(name, F=F):
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate=True)
    if name == "gelu":
        return lambda x: F.gelu(x)
    fn = getattr(F, name, None)
    return (lambda x: fn(x)) if fn is not None else None


def _norm_entries(F=F):
    """(op, shape, vetted, peers) for the reductions that exist in impl.functional (or ``F``)."""
    out = []
    if hasattr(F, "softmax"):
        out.append(("softmax", (4096, 1000), lambda x: F.softmax(x, axis=-1),
                    [("jax.nn", lambda x: jax.nn.softmax(x, axis=-1))]))
    if hasattr(F, "log_softmax"):
        out.append(("log_softmax", (4096, 1000), lambda x: F.log_softmax(x, axis=-1),
                    [("jax.nn", lambda x: jax.nn.log_softmax(x, axis=-1))]))
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
    if hasattr(F, "max_pool2d"):
        # 2 x 2 windows, stride 2, as the tutorial's ModernCNN pools
        peers = [("jax.lax", lambda x: lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, 2, 2, 1),
                                                         (1, 2, 2, 1), "VALID"))]
        try:
            from flax import nnx

            peers.append(("flax.nnx", lambda x: nnx.max_pool(x, (2, 2), (2, 2))))
        except ImportError:
            pass
        out.append(("max_pool2d", (64, 32, 32, 64), lambda x: F.max_pool2d(x, 2), peers))
    return out


def median_times(calls, repeats):
    """Median seconds of each zero-argument call: each is run twice first (compilation,
    warm-up), then all are called round robin ``repeats`` times, ``block_until_ready``
    after each, in reverse order every other round, so that no call always follows the
    same one (a call right after another program's can find its caches and the thread
    pool in another state: 0-9 % between two copies of one program in a fixed order here)."""
    for c in calls:
        jax.block_until_ready(c())
        jax.block_until_ready(c())
    times = [[] for _ in calls]
    for r in range(repeats):
        order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            t = time.perf_counter()
            jax.block_until_ready(calls[i]())
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def _input(shape, dtype, stream=1):
    from tools.inputs import uniform

    n = int(np.prod(shape))
    v = (uniform(n, stream) * 8 - 4).reshape(shape)
    return jax.device_put(jnp.asarray(v, dtype=dtype))


def _shape(name, k):
    """The input shape of ``name`` at ``2**k`` elements (see module docstring)."""
    n = 1 << k
    if name in ("softmax", "log_softmax", "layer_norm", "rms_norm"):
        return (max(n // 1024, 1), 1024)
    if name in ("batch_norm", "group_norm", "max_pool2d"):
        return (max(n // 4096, 1), 8, 8, 64)
    return (n,)


def _grad(f):
    return jax.grad(lambda v: jnp.sum(f(v).astype(jnp.float32)))


def _train(f):
    def step(v, ct):
        y, vjp = jax.vjp(f, v)
        return y, vjp(ct)[0]
    return step


def _entries(extra=None):
    """(name, vetted, peers, other) of every op benchmarked; shapes come from ``_shape``.
    ``other``: the same op from ``extra`` (another build of the functional API), or None."""
    out = [(n, _vetted_elementwise(n), _peers_elementwise(n), _vetted_elementwise(n, extra) if extra else None)
           for n in ELEMENTWISE]
    others = {e[0]: e[2] for e in _norm_entries(extra)} if extra else {}
    for name, _shape0, vetted, peers in _norm_entries():
        out.append((name, vetted, peers, others.get(name)))
    return out


def run(only=None, dtypes=("float32", "bfloat16"), repeats=20, sizes=(14, 18, 22, 24),
        modes=("forward", "grad", "train", "fused"), extra=None):
    rows = []
    for name, vetted, peers, other in _entries(extra):
        if vetted is None or (only and name not in only):
            continue
        for dt in dtypes:
            for mode in modes:
                if mode == "fused" and name not in ELEMENTWISE:
                    continue
                for k in sizes:
                    row = _measure(name, vetted, peers, jnp.dtype(dt), mode, k, repeats, other)
                    if row is not None:
                        rows.append(row)
                        print(_format_row(row), flush=True)
    return rows


def _floor(v):
    return -v


def _measure(name, vetted, peers, dtype, mode, k, repeats, other=None):
    labels = ["vetted"] + [p for p, _ in peers] + (["other"] if other is not None else []) + ["floor"]
    fns = [vetted] + [f for _, f in peers] + ([other] if other is not None else []) + [_floor]
    if mode == "fused":
        m = max((1 << k) // 256, 1)
        a, w = _input((m, 256), dtype, 1), _input((256, 256), dtype, 2) * jnp.asarray(1 / 16, dtype)
        calls = [lambda f=jax.jit(lambda a, w, g=g: g(a @ w)): f(a, w) for g in fns]
        shape = (m, 256)
    else:
        shape = _shape(name, k)
        x = _input(shape, dtype)
        if mode == "train":
            ct = _input(jax.eval_shape(fns[0], x).shape, dtype, 3)  # the output's shape (pooling)
            calls = [lambda f=jax.jit(_train(g)): f(x, ct) for g in fns[:-1]]
        else:
            wrap = _grad if mode == "grad" else (lambda f: f)
            calls = [lambda f=jax.jit(wrap(g)): f(x) for g in fns[:-1]]
        calls.append(lambda f=jax.jit(_floor): f(x))  # the floor is -x in every mode
    try:
        ts = median_times(calls, repeats)
    except Exception as e:  # a peer that cannot run this dtype/shape
        print(f"{name} {dtype.name} {mode} 2**{k}: skipped ({type(e).__name__}: {e})")
        return None
    res = dict(zip(labels, ts))
    floor = res.pop("floor")
    fastest_peer = min((res[p] for p, _ in peers), default=float("nan"))
    row = {"op": name, "dtype": dtype.name, "mode": mode, "log2_size": k, "shape": list(shape),
           "times_ms": {kk: v * 1e3 for kk, v in res.items()}, "floor_ms": floor * 1e3,
           "ratio_to_fastest_peer": res["vetted"] / fastest_peer if peers else None}
    if other is not None:
        row["other_ratio_to_fastest_peer"] = res["other"] / fastest_peer if peers else None
    return row


def summary(rows, key="ratio_to_fastest_peer"):
    """Per (op, dtype, mode): the worst ``key`` ratio over sizes, and at which size."""
    worst = {}
    for r in rows:
        if r.get(key) is None:
            continue
        k = (r["op"], r["dtype"], r["mode"])
        if k not in worst or r[key] > worst[k][0]:
            worst[k] = (r[key], r["log2_size"])
    return worst


def summary_markdown(rows, other_label=None):
    """The worst ratio over sizes per op, dtype and mode; with ``other_label``, the other build's
    worst ratio beside it (``other -> vetted``)."""
    worst = summary(rows)
    before = summary(rows, "other_ratio_to_fastest_peer") if other_label else {}
    modes = [m for m in ("forward", "grad", "train", "fused") if any(k[2] == m for k in worst)]
    head = "worst {} ratio (at 2**k)" if not before else "worst {} ratio, " + other_label + " -> now"
    out = ["| op | dtype | " + " | ".join(head.format(m) for m in modes) + " |",
           "|---|---|" + "---|" * len(modes)]
    seen = []
    for op, dt, _ in worst:
        if (op, dt) not in seen:
            seen.append((op, dt))
    for op, dt in seen:
        cells = []
        for m in modes:
            w, b = worst.get((op, dt, m)), before.get((op, dt, m))
            cell = "-" if w is None else f"{w[0]:.2f} ({w[1]})"
            if b is not None:
                cell = f"{b[0]:.2f} ({b[1]}) -> {cell}"
            cells.append(cell)
        out.append(f"| `{op}` | {dt} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _format_row(r):
    t = r["times_ms"]
    peers = ", ".join(f"{k} {v:.3f}" for k, v in t.items() if k != "vetted")
    ratio = "-" if r["ratio_to_fastest_peer"] is None else f"{r['ratio_to_fastest_peer']:.2f}x"
    if r.get("other_ratio_to_fastest_peer") is not None:
        ratio += f" (other {r['other_ratio_to_fastest_peer']:.2f}x)"
    floor = f" | floor {r['floor_ms']:.3f}" if "floor_ms" in r else ""
    return (f"{r['op']:12s} {r['dtype']:9s} {r['mode']:7s} 2**{r['log2_size']:<2d} vetted {t['vetted']:9.3f} ms | "
            f"{peers}{floor} | ratio {ratio}")


def markdown(rows, meta):
    out = [f"Measured {meta['date']} on {meta['machine']} ({meta['devices']}), {meta['versions']}, "
           f"{meta.get('dispatch', 'async')} dispatch; "
           f"median of {meta['repeats']} interleaved runs; command: `{meta['command']}`.", "",
           "Worst ratio to the fastest peer over the sizes:", "",
           summary_markdown(rows, meta.get("other")),
           "Every row:", "",
           "| op | dtype | mode | size | vetted (ms) | peers (ms) | floor, -x (ms) | ratio to fastest peer |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["times_ms"]
        peers = ", ".join(f"{k} {v:.3f}" for k, v in t.items() if k != "vetted")
        ratio = "-" if r["ratio_to_fastest_peer"] is None else f"{r['ratio_to_fastest_peer']:.2f}"
        floor = f"{r['floor_ms']:.3f}" if "floor_ms" in r else "-"
        out.append(f"| `{r['op']}` | {r['dtype']} | {r['mode']} | 2**{r['log2_size']} | {t['vetted']:.3f} | "
                   f"{peers} | {floor} | {ratio} |")
    return "\n".join(out) + "\n"


def compare(rows, baseline):
    key = lambda r: (r["op"], r["dtype"], r.get("mode", "forward"), r.get("log2_size"), r.get("batch"))
    base = {key(r): r for r in baseline["rows"]}
    print("\nchange against the baseline (ratio to the fastest peer, and vetted time):")
    for r in rows:
        b = base.get(key(r))
        if b and b.get("ratio_to_fastest_peer") and r.get("ratio_to_fastest_peer"):
            old, new = b["times_ms"]["vetted"], r["times_ms"]["vetted"]
            print(f"  {r['op']:12s} {r['dtype']:9s} {r.get('mode', ''):10s} {r.get('log2_size', r.get('batch', ''))!s:4s} ratio "
                  f"{b['ratio_to_fastest_peer']:5.2f} -> {r['ratio_to_fastest_peer']:5.2f}; "
                  f"{old:8.3f} -> {new:8.3f} ms")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.layers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated op names")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sizes", default="14,18,22,24", help="comma-separated log2 element counts")
    ap.add_argument("--modes", default="forward,grad,train,fused", help="forward, grad, train, fused")
    ap.add_argument("--other", default=None, metavar="MODULE",
                    help="another build of the functional API timed in the same interleaved run, e.g. an "
                         "earlier impl/ copied to impl_before/ (impl_before.functional); its worst ratio is "
                         "shown beside the vetted one")
    ap.add_argument("--json", default=None, help="write the results as JSON here")
    ap.add_argument("--markdown", default=None, help="write the table as Markdown here")
    ap.add_argument("--baseline", default=None, help="a JSON from an earlier run to compare with")
    ap.add_argument("--dispatch", choices=("async", "sync"), default="async",
                    help="sync: every program on the calling thread (jax_cpu_enable_async_dispatch=False), so "
                         "small sizes measure the arithmetic rather than the thread pool's hand-off (module docstring)")
    args = ap.parse_args(argv)
    import jaxlib

    if args.dispatch == "sync":
        jax.config.update("jax_cpu_enable_async_dispatch", False)

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
            "devices": ", ".join(str(d) for d in jax.devices()), "repeats": args.repeats,
            "versions": f"jax {jax.__version__}, jaxlib {jaxlib.__version__}", "dispatch": args.dispatch,
            "command": "python -m benchmarks.layers " + " ".join(argv if argv is not None else sys.argv[1:])}
    extra = None
    if args.other:
        import importlib

        extra = importlib.import_module(args.other)
        meta["other"] = args.other
    rows = run(set(args.only.split(",")) if args.only else None, tuple(args.dtypes.split(",")), args.repeats,
               tuple(int(k) for k in args.sizes.split(",")), tuple(args.modes.split(",")), extra)
    print("\nworst ratio to the fastest peer over the sizes:\n" + summary_markdown(rows, args.other))
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
