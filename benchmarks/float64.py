"""Speed of the float64 activations against jax.nn's float64 ops: ratio ranges over rounds.

Usage::

    python -m benchmarks.float64                          # every elementwise op, 2**18 and 2**22
    python -m benchmarks.float64 --only gelu,tanh --rounds 5 --repeats 15 --modes forward,grad

Method: as ``benchmarks.layers`` (the same ops, peers, inputs and ``grad`` mode), under
``jax.enable_x64``: the vetted op and jax.nn's are compiled, then called interleaved (one call
each, round robin) ``--repeats`` times; a round gives the ratio of the medians (vetted / jax.nn).
The rounds are repeated ``--rounds`` times, interleaved over ops as well, and the table gives
each ratio's range (min-max) and median over rounds: on a shared, noisy machine one round can
be off by tens of percent.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import jax
import jax.numpy as jnp

from . import layers as L


def _calls(name, mode, k):
    vetted = L._vetted_elementwise(name)
    peer = dict(L._peers_elementwise(name)).get("jax.nn")
    if vetted is None or peer is None:
        return None
    x = L._input((1 << k,), jnp.float64)
    wrap = L._grad if mode == "grad" else (lambda f: f)
    return [lambda f=jax.jit(wrap(g)): f(x) for g in (vetted, peer)]


def run(only=None, sizes=(18, 22), modes=("forward", "grad"), rounds=5, repeats=15):
    """``{(op, mode, k): [ratio of each round]}``."""
    ratios = {}
    with jax.enable_x64(True):
        keys = [(n, m, k) for n in L.ELEMENTWISE if not only or n in only for m in modes for k in sizes]
        calls = {key: _calls(*key) for key in keys}
        for r in range(rounds):
            for key, c in calls.items():
                if c is None:
                    continue
                t_vetted, t_peer = L.median_times(c, repeats)
                ratios.setdefault(key, []).append(t_vetted / t_peer)
            print(f"round {r + 1}/{rounds} done", flush=True)
    return ratios


def markdown(ratios):
    out = ["| op | mode | 2**k | ratio to jax.nn (median) | range over rounds |", "|---|---|---|---|---|"]
    for (name, mode, k), rs in ratios.items():
        out.append(f"| {name} | {mode} | {k} | {statistics.median(rs):.2f} | {min(rs):.2f}-{max(rs):.2f} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated op names")
    ap.add_argument("--sizes", default="18,22", help="comma-separated log2 element counts")
    ap.add_argument("--modes", default="forward,grad", help="forward, grad")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args(argv)
    ratios = run(a.only.split(",") if a.only else None, tuple(int(s) for s in a.sizes.split(",")),
                 tuple(a.modes.split(",")), a.rounds, a.repeats)
    print(f"float64, {platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"{a.rounds} rounds x {a.repeats} interleaved calls")
    print(markdown(ratios))


if __name__ == "__main__":
    main()
