"""Correctly rounded reference results per second per core, for both tiers.

Usage::

    python -m benchmarks.reference_throughput [--n-mpmath 3000] [--n-fast 1000000]

mpmath tier: ``reference.correctly_rounded`` (Ziv loop, mpmath on the exact
input) on float32 inputs from the golden strata, one process.  Fast tier:
``reference.fast.correctly_rounded_array`` (float64 formulas, rounding test,
mpmath only for the undecided), one process; the fallback count is printed.
Writes a Markdown table to stdout (and ``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import mpmath
import numpy as np

from reference import FORMATS, correctly_rounded
from reference import fast as fast_tier
from reference.float64 import relative_bound
from tools import inputs
from tools.registry import get

OPS = ["gelu", "tanh", "sigmoid", "silu", "softplus", "elu", "gelu[approximate=True]"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-mpmath", type=int, default=3000)
    ap.add_argument("--n-fast", type=int, default=1_000_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    fmt = FORMATS["float32"]
    pool = inputs.float32_inputs()
    pool = pool[np.isfinite(pool)]
    xs_mp = pool[(inputs.splitmix64(np.arange(args.n_mpmath, dtype=np.uint64), 77) % np.uint64(pool.size)).astype(np.int64)]
    xs_fast = (inputs.uniform(args.n_fast, 78) * 40 - 20).astype(np.float32)
    rows = []
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, mpmath {mpmath.__version__} "
          f"(backend {mpmath.libmp.BACKEND}), {time.strftime('%Y-%m-%d')}")
    print("| op | mpmath tier (results/s/core) | fast tier (results/s/core) | fast tier: sent to mpmath |")
    print("|---|---|---|---|")
    for cid in OPS:
        case = get(cid)
        t = time.perf_counter()
        for v in xs_mp.astype(np.float64):
            correctly_rounded(case.reference, float(v), fmt, case.params)
        mp_rate = args.n_mpmath / (time.perf_counter() - t)
        bound, _ = relative_bound(case.op, case.params)
        t = time.perf_counter()
        _, _, nfb = fast_tier.correctly_rounded_array(case.reference, case.float64_formula,
                                                      xs_fast.astype(np.float64), fmt, case.params, bound=bound)
        fast_rate = args.n_fast / (time.perf_counter() - t)
        rows.append({"op": cid, "mpmath_per_s": mp_rate, "fast_per_s": fast_rate, "fallbacks": nfb})
        print(f"| `{cid}` | {mp_rate:,.0f} | {fast_rate:,.0f} | {nfb} of {args.n_fast} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
