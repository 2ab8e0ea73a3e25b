"""What a float32 activation evaluated in float64 costs on XLA's CPU backend, part by part.

Usage::

    python -m benchmarks.kernels                      # sizes 2**14, 2**18, 2**20, 2**22
    python -m benchmarks.kernels --sizes 18 --repeats 61

The vetted float32 activations evaluate a float64 formula on vectorizable kernels
(``impl/_fast64.py``) and round once.  This benchmark takes one of them, tanh, apart, to say
where its time goes and which redesigns could pay:

* ``jnp.tanh (peer)``, ``jnp.exp float32``: XLA's float32 functions, the peers' cost;
* ``float64 floor``: ``(x.astype(float64) * 1.5).astype(float32)``, the least a float64 loop
  over a float32 array costs (two conversions and one multiply an element);
* ``exp (kernel, fitted degree 11)``: ``_fast64.exp`` itself, whose polynomial is a Chebyshev
  interpolant of degree 11 (``python -m tools.fit_expm1``; the kernel's since 2026-12-01);
* ``exp, degree D``: ``_fast64.exp``'s Cody-Waite reduction and a Taylor polynomial of degree
  D (13 was the kernel's until 2026-12-01; fewer terms lose accuracy, printed beside: a lower
  degree stands for what a polynomial fitted to the float32 rounding intervals, as RLIBM does,
  could save);
* ``exp, 64-entry table``: reduction by ``ln2/64``, ``2**(j/64)`` from a table (an XLA
  gather) and a degree-5 polynomial: the classic table-driven design;
* ``tanh (impl)``: the float32 tanh of ``impl.functional``;
* ``tanh, this formula``: its formula, ``-q / (2 + q)`` with ``q = expm1(-2|x|)`` and the sign,
  written out here (the baseline of the two below);
* ``tanh, no division``: the same with its one float64 division replaced by a product
  (wrong values: it prices the division);
* ``tanh, reciprocal by Newton``: the division as a float32 reciprocal refined by two float64
  Newton steps.

Each size is one interleaved run (every variant compiled first, then called round robin,
``block_until_ready`` after each); the table gives medians in ms and the ratio to
``jnp.tanh``.  Relative errors of the exp variants are measured against ``np.longdouble``
(64-bit significand on x86) on 10**6 points of [-700, 700].
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from impl import _fast64
from impl import functional as F

_ROUNDER = 6755399441055744.0  # 1.5 * 2**52
_TABLE_N = 64


def _exp_degree(degree: int):
    inv = [1.0 / math.factorial(n) for n in range(2, degree + 1)]

    def exp(t):
        _, r, two_k = _fast64._reduce(t)
        p = inv[-1]
        for c in reversed(inv[:-1]):
            p = p * r + c
        return (1.0 + r * (1.0 + r * p)) * two_k
    return exp


def _exp_table(t):
    """exp with ``t = (64 k + j) ln2/64 + r``: ``2**k * 2**(j/64) * (1 + p(r))``."""
    table = jnp.asarray(np.array([2.0 ** (j / _TABLE_N) for j in range(_TABLE_N)]))
    t = jnp.clip(t, -708.0, 709.0)
    u = t * (_TABLE_N / math.log(2))
    kk = lax.round(u, lax.RoundingMethod.TO_NEAREST_EVEN)
    hi = 6.93147180369123816490e-01 / _TABLE_N  # fdlibm's ln2 split, scaled
    lo = 1.90821492927058770002e-10 / _TABLE_N
    r = (t - kk * hi) - kk * lo
    bits = lax.bitcast_convert_type(u + _ROUNDER, jnp.int64)
    two_k = lax.bitcast_convert_type(((bits >> 6) + 1023) << 52, jnp.float64)
    p = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120)))))
    tj = table[bits & (_TABLE_N - 1)]
    return (tj + tj * p) * two_k


def _newton_reciprocal(d):
    r = (1.0 / d.astype(jnp.float32)).astype(jnp.float64)  # 2**-24; tanh's d = 2 + q is in (1, 2]
    r = r + r * (1.0 - d * r)
    return r + r * (1.0 - d * r)


def _tanh_variant(kind: str):
    def f(x):
        t = x.astype(jnp.float64)
        q = _fast64.expm1(-2.0 * jnp.abs(t))
        d = 2.0 + q
        y = {"division": q / d, "product": q * d, "newton": q * _newton_reciprocal(d)}[kind]
        return (y * jnp.where(jnp.signbit(t), 1.0, -1.0)).astype(jnp.float32)
    return f


def _x64(fn):
    def f(x):
        with jax.enable_x64(True):
            return fn(x)
    return f


def _in64(fn):
    """``fn`` of the float64 widening of a float32 ``x``, converted back to float32."""
    return _x64(lambda x: fn(x.astype(jnp.float64)).astype(jnp.float32))


def variants() -> dict:
    out = {"jnp.tanh (peer)": jnp.tanh, "jnp.exp float32": jnp.exp,
           "float64 floor": _in64(lambda t: t * 1.5)}
    out["exp (kernel, fitted degree 11)"] = _in64(_fast64.exp)
    for d in (13, 10, 7):
        out[f"exp, degree {d}"] = _in64(_exp_degree(d))
    out["exp, 64-entry table"] = _in64(_exp_table)
    out["tanh (impl)"] = F.tanh
    out["tanh, this formula"] = _x64(_tanh_variant("division"))
    out["tanh, no division"] = _x64(_tanh_variant("product"))
    out["tanh, reciprocal by Newton"] = _x64(_tanh_variant("newton"))
    return out


def exp_errors() -> dict:
    """Max relative error of each exp variant on 10**6 points of [-700, 700] (np.longdouble)."""
    with jax.enable_x64(True):
        t = np.linspace(-700.0, 700.0, 10**6)
        exact = np.exp(t.astype(np.longdouble))
        out = {}
        for name, fn in (("kernel, fitted degree 11", _fast64.exp), ("degree 13", _exp_degree(13)),
                         ("degree 10", _exp_degree(10)),
                         ("degree 7", _exp_degree(7)), ("64-entry table", _exp_table)):
            got = np.asarray(jax.jit(fn)(jnp.asarray(t))).astype(np.longdouble)
            out[name] = float(np.max(np.abs(got - exact) / exact))
    return out


def run(sizes, repeats: int, seed: int = 0) -> dict:
    fns = variants()
    rows = {}
    for k in sizes:
        x = jnp.asarray((np.random.default_rng(seed).standard_normal(2**k) * 3).astype(np.float32))
        jitted = {n: jax.jit(f) for n, f in fns.items()}
        for f in jitted.values():
            f(x).block_until_ready()
        times = {n: [] for n in jitted}
        for _ in range(repeats):
            for n, f in jitted.items():
                t0 = time.perf_counter()
                f(x).block_until_ready()
                times[n].append(time.perf_counter() - t0)
        rows[k] = {n: statistics.median(v) * 1e3 for n, v in times.items()}
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="14,18,20,22", help="log2 element counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=41)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = run(sizes, args.repeats)
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {jax.devices()[0].platform}, "
          f"jax {jax.__version__}, median of {args.repeats} interleaved calls; ms (ratio to jnp.tanh)\n")
    print("| variant | " + " | ".join(f"2**{k}" for k in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name in next(iter(rows.values())):
        cells = [f"{rows[k][name]:.4f} ({rows[k][name] / rows[k]['jnp.tanh (peer)']:.2f}x)" for k in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nexp kernels, max relative error on [-700, 700]: " +
          ", ".join(f"{n}: 2**{math.log2(e):.1f}" for n, e in exp_errors().items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
