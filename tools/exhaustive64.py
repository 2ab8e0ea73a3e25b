"""The float64 mode of ``tools.exhaustive``: a stratified sample of float64 inputs, every one judged.

Usage::

    python -m tools.exhaustive gelu --dtype float64                  # 2**28 inputs, all cores
    python -m tools.exhaustive grad:silu --dtype float64 --log2-n 16 --jobs 2

What: 2**64 inputs cannot be swept, so ``--log2-n`` (default 28) inputs are drawn, in chunks of
2**``--chunk-log2`` (default 16), each chunk a stratified sample of its own (fixed seeds: the
same command gives the same inputs and the same report):

* half over every binade of both signs (the 2047 exponents, subnormals included, with
  uniformly random significands), so every order of magnitude is represented alike;
* a quarter uniform on [-800, 800] and an eighth on [-40, 40], where the activations and their
  derivatives change (saturation to their limits, underflow of ``exp`` past -708, gelu's past
  -37);
* an eighth in relative neighbourhoods (``x (1 + d)``, ``|d|`` log-uniform in [2**-52, 2**-8])
  of the points where the op's float64 formula (``tools.registry``) changes sign on a grid of
  [-50, 50] (the cancellation next to a zero: silu' at -1.278, gelu' at -0.752, mish'', ...),
  where its magnitude crosses the smallest normal on a grid of [-800, 800] (the saturation to
  underflow), and of the kinks ``tools.inputs.KINKS``.

Each input is run through the implementation (jitted, float64) and judged against the
correctly rounded float64 value and residual of ``tools.mpfr_oracle``: MPFR interval
arithmetic whose enclosure decides the rounding (it never guesses; an enclosure that still
straddles a rounding boundary at its largest precision goes to mpmath's Ziv loop,
``reference.correctly_rounded``, counted as "decided by mpmath").  So the report is a proof
about the inputs of the sample, not an estimate: their max error in ulps (to the residual's
2**-14 ulp) and the exact share correctly rounded; about the inputs outside it, it is a
stratified sample's statistic (the largest error of 2**28 draws: an error that only 1 input
in 2**40 makes is not likely to be seen).  Subnormal inputs and results are their own class
(XLA on CPU flushes them), counted, never mixed into the normal-range figures.

Cost: the oracle costs 20-350 us per input on one core (gelu's erfc the most), so 2**28
inputs are 1.5-26 hours of worker time per case; ``--chunks START:STOP`` sweeps a part, and
the chunk records (``DIR/<case>-float64/<impl>/chunks/NNNN.json``, written atomically, each
with the configuration that made it) make a stopped run resume; records of another
configuration are recomputed.  The report (``report.md``, ``report.json`` beside them) has the
format of the float32 sweep's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "requested", "sample_chunk", "sweep_chunk"]

RECORD_VERSION = 1
_REPO = Path(__file__).resolve().parent.parent
_NEIGHBOURHOOD = (2.0**-52, 2.0**-8)


def requested(argv) -> bool:
    """Whether ``tools.exhaustive``'s command line asks for float64 (then this module runs it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return "--dtype=float64" in argv or any(a == "--dtype" and b == "float64" for a, b in zip(argv, argv[1:]))


def _case(case_id):
    from tools.exhaustive import case_of

    return case_of(case_id)


def _formula_values(case, x):
    with np.errstate(all="ignore"):
        y = case.float64_formula(x, **case.params)
    return np.asarray(y[0] if isinstance(y, tuple) else y, dtype=np.float64)


def _special_points(case):
    """Where the op's float64 formula changes sign ([-50, 50]) or crosses the smallest normal
    ([-800, 800]), and the kinks: the centres of the fourth stratum."""
    from tools.inputs import KINKS

    g = np.linspace(-50.0, 50.0, 200001)
    y = _formula_values(case, g)
    s = np.signbit(y) & (y != 0)
    zeros = g[:-1][(s[:-1] != s[1:]) & np.isfinite(y[:-1]) & np.isfinite(y[1:])]
    g = np.linspace(-800.0, 800.0, 320001)
    small = np.abs(_formula_values(case, g)) < 2.0**-1022
    edges = g[:-1][small[:-1] != small[1:]]
    pts = np.concatenate([zeros, edges, np.asarray(KINKS, np.float64)])
    return np.unique(pts[pts != 0]) if pts.size else pts


def sample_chunk(case, k: int, size: int) -> np.ndarray:
    """The ``size`` float64 inputs of chunk ``k`` (see module docstring), deterministic."""
    rng = np.random.default_rng([20261130, k])
    n_bin, n_wide, n_mid = size // 2, size // 4, size // 8
    n_near = size - n_bin - n_wide - n_mid
    exps = (np.arange(n_bin) + k * n_bin) % 2047  # 0 (subnormal) .. 2046, cycling over the chunks
    sign = ((np.arange(n_bin) + k * n_bin) // 2047) % 2
    bits = (sign.astype(np.uint64) << np.uint64(63)) | (exps.astype(np.uint64) << np.uint64(52)) | (
        rng.integers(0, 1 << 52, n_bin, dtype=np.uint64))
    parts = [bits.view(np.float64), rng.uniform(-800.0, 800.0, n_wide), rng.uniform(-40.0, 40.0, n_mid)]
    centres = _special_points(case)
    if centres.size:
        d = np.exp2(rng.uniform(*np.log2(_NEIGHBOURHOOD), n_near)) * rng.choice([-1.0, 1.0], n_near)
        parts.append(centres[rng.integers(0, centres.size, n_near)] * (1.0 + d))
    else:
        parts.append(rng.uniform(-50.0, 50.0, n_near))
    return np.concatenate(parts)


def _oracle(case, order, x):
    """Correctly rounded float64 values and residuals of ``x``: MPFR, mpmath where undecided."""
    from reference import FORMATS
    from reference import correctly_rounded as ziv
    from tools import mpfr_oracle

    rounded = np.empty(x.shape, np.float64)
    residual = np.zeros(x.shape, np.int64)
    n_mpmath = 0
    for i, v in enumerate(x.tolist()):
        try:
            rounded[i], residual[i] = mpfr_oracle.correctly_rounded(case.op, v, "float64", order, case.params)
        except mpfr_oracle.Undecided:
            rounded[i], residual[i] = ziv(case.reference, v, FORMATS["float64"], case.params)
            n_mpmath += 1
    return rounded, residual, n_mpmath


def sweep_chunk(args):
    """``(case_id, impl_name, k, size)`` -> the chunk's record (JSON-able), on this process."""
    case_id, impl_name, k, size = args
    import jax
    import jax.numpy as jnp

    from tools import metric
    from tools.sweep_check import BUCKETS, _EDGES, _evaluator

    t0 = time.perf_counter()
    case, order = _case(case_id)
    x = sample_chunk(case, k, size)
    with jax.enable_x64(True):
        _, fn = _evaluator(case_id, impl_name)
        got = np.asarray(jax.block_until_ready(fn(jnp.asarray(x, jnp.float64))), np.float64)
    rounded, residual, n_mpmath = _oracle(case, order, x)
    st, err, codes = metric.evaluate(got, rounded, residual, "float64", 1.0, x)
    normal = codes == 0
    counts = np.bincount(np.searchsorted(_EDGES, np.abs(err[normal])), minlength=len(BUCKETS) + 1)[:len(BUCKETS)]
    w = st.worst_index
    return {"chunk": k, "n": st.n, "n_normal": st.n_normal, "n_cr": st.n_cr, "max_ulp": st.max_ulp,
            "buckets": [int(c) for c in counts], "n_subnormal": st.n_subnormal, "n_flushed": st.n_flushed,
            "n_nonfinite": st.n_nonfinite, "n_nonfinite_mismatch": st.n_nonfinite_mismatch, "n_mpmath": n_mpmath,
            "uncertainty_ulp": 2.0**-15,  # the residual's quantization (2**-14 ulp, rounded to nearest)
            "worst_x": float(x[w]) if w >= 0 else None, "worst_got": float(got[w]) if w >= 0 else None,
            "worst_expected": float(rounded[w]) if w >= 0 else None, "seconds": time.perf_counter() - t0}


def _configuration(case_id, impl_name, log2_n, chunk_log2) -> dict:
    def digest(*paths):
        h = hashlib.sha256()
        for p in paths:
            h.update(Path(p).read_bytes())
        return h.hexdigest()[:16]

    impl_dir = _REPO / impl_name.split(".")[0].split(":")[0]
    impl_src = sorted(impl_dir.glob("*.py")) if impl_dir.is_dir() else []
    return {"case": case_id, "dtype": "float64", "impl": impl_name, "log2_n": log2_n, "chunk_log2": chunk_log2,
            "impl_source_sha256": digest(*impl_src) if impl_src else None,
            "oracle_source_sha256": digest(_REPO / "tools" / "mpfr_oracle.py"),
            # the evaluation (tools.sweep_check._evaluator) and mpmath's fallback (reference/)
            "evaluation_source_sha256": digest(_REPO / "tools" / "sweep_check.py"),
            "reference_source_sha256": digest(*sorted((_REPO / "reference").rglob("*.py"))),
            "tool": {"name": "tools.exhaustive64", "record_version": RECORD_VERSION,
                     "source_sha256": digest(__file__)}}


def _render(case_id, impl, agg, n_chunks, total_chunks, chunk_log2, secs, config):
    pct = 100.0 * agg["n_cr"] / agg["n_normal"] if agg["n_normal"] else 100.0
    w = agg["worst"] or {}
    from tools.exhaustive import BUCKETS

    lines = [f"# Stratified float64 sweep: `{case_id}` ({impl})", "",
             f"- configuration: {json.dumps(config, sort_keys=True)}",
             f"- inputs: {agg['n']} in {n_chunks} of {total_chunks} chunks of 2**{chunk_log2} (every binade of "
             f"both signs, [-800, 800], [-40, 40], the neighbourhoods of zeros, underflow edges and kinks)",
             f"- max error over normal-range results: {agg['max_ulp']:.4f} ulp "
             f"(+- {agg['uncertainty_ulp']:.1e} ulp from the oracle's residual) at x = {w.get('x')!r} "
             f"(got {w.get('got')!r}, correctly rounded {w.get('expected')!r})",
             f"- correctly rounded: {pct:.6f}% of {agg['n_normal']} normal-range results",
             f"- subnormal class (subnormal input or exact result): {agg['n_subnormal']}, "
             f"flushed to zero {agg['n_flushed']}",
             f"- nan/inf: {agg['n_nonfinite']}, mismatches {agg['n_nonfinite_mismatch']}",
             f"- decided by mpmath (MPFR's enclosure undecided): {agg['n_mpmath']}; every other input by MPFR",
             f"- sweep time: {secs:.0f} s wall for the chunks this run computed; "
             f"{agg.get('chunk_seconds', 0.0):.0f} s of worker time over the {agg.get('n_timed_chunks', 0)} chunks",
             "", "| error (ulp) | count |", "|---|---|"]
    lines += [f"| {name} | {c} |" for (name, _), c in zip(BUCKETS, agg["buckets"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from tools.exhaustive import _aggregate, _safe, _write_atomic

    ap = argparse.ArgumentParser(prog="python -m tools.exhaustive CASE --dtype float64",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("case", help="a registry case id of the activations or gradients family")
    ap.add_argument("--dtype", choices=["float64"], required=True)
    ap.add_argument("--impl", default="impl.functional", help="module under test (module or module:ATTRIBUTE)")
    ap.add_argument("--log2-n", type=int, default=28, help="log2 of the number of inputs (default 28)")
    ap.add_argument("--chunk-log2", type=int, default=16, help="log2 of the inputs per chunk (default 16)")
    ap.add_argument("--chunks", default=None, help="range of chunks START:STOP (default all)")
    ap.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    ap.add_argument("--out", default="report/exhaustive")
    args = ap.parse_args(argv)
    try:
        _case(args.case)
    except KeyError:
        ap.error(f"unknown case {args.case!r}; a case id of the activations or gradients family (gelu, grad:gelu)")
    if not 10 <= args.chunk_log2 <= args.log2_n <= 40:
        ap.error(f"need 10 <= --chunk-log2 <= --log2-n <= 40, got {args.chunk_log2} and {args.log2_n}")
    total = 1 << (args.log2_n - args.chunk_log2)
    try:
        start, stop = (int(v) for v in (args.chunks or f"0:{total}").split(":"))
        if not 0 <= start < stop <= total:
            raise ValueError
    except ValueError:
        ap.error(f"--chunks must be START:STOP with 0 <= START < STOP <= {total}, got {args.chunks!r}")
    config = _configuration(args.case, args.impl, args.log2_n, args.chunk_log2)
    out = Path(args.out) / f"{_safe(args.case)}-float64" / _safe(args.impl)
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    done = {}
    for k in range(start, stop):
        p = out / "chunks" / f"{k:04d}.json"
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("config") == config:
            done[k] = rec
    todo = [k for k in range(start, stop) if k not in done]
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(todo) or 1))
    print(f"{args.case} float64 ({args.impl}): {len(done)} chunks done, {len(todo)} to go, {jobs} workers",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    if todo:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold JAX's threads
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            tasks = [(args.case, args.impl, k, 1 << args.chunk_log2) for k in todo]
            for i, rec in enumerate(pool.map(sweep_chunk, tasks), 1):
                rec["config"] = config
                _write_atomic(out / "chunks" / f"{rec['chunk']:04d}.json", json.dumps(rec))
                done[rec["chunk"]] = rec
                el = time.perf_counter() - t0
                print(f"  chunk {rec['chunk']}: {i}/{len(todo)}, {el:.0f} s, ETA "
                      f"{el / i * (len(todo) - i):.0f} s", file=sys.stderr, flush=True)
    secs = time.perf_counter() - t0
    agg = _aggregate([done[k] for k in range(start, stop)])
    agg.update(case=args.case, dtype="float64", impl=args.impl, chunks=[start, stop], seconds=secs, config=config)
    _write_atomic(out / "report.json", json.dumps(agg, indent=1))
    md = _render(args.case, args.impl, agg, stop - start, total, args.chunk_log2, secs, config)
    _write_atomic(out / "report.md", md)
    print(md)
    return 0 if math.isfinite(agg["max_ulp"]) else 1
