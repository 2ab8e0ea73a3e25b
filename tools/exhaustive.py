"""Exhaustive float32 verification of an elementwise op: all 2**32 inputs, on demand.

Usage::

    python -m tools.exhaustive gelu --dtype float32 [--impl MODULE] [--jobs N] [--out DIR]
    python -m tools.exhaustive 'leaky_relu[negative_slope=0.1]' --chunks 0:16   # a part of the range

The 2**32 bit patterns are swept in 256 chunks of 2**24 (the chunking of XLA's
exhaustive tests), by ``--jobs`` worker processes (default: all cores).  Each
chunk is evaluated by the implementation (jitted, on the CPU) and by the fast
reference tier (``reference.float64`` formulas with their verified relative
bound); where the bound cannot decide the correct rounding, mpmath decides
(``reference.correctly_rounded``).  Results of the float64 formula that are 0
or below 2**-1000 in magnitude are results whose exact value rounds to a zero
of the formula's sign (|exact| < 2**-1000 (1 + bound) is far below float32's
smallest subnormal); tests/test_exhaustive.py checks that sign rule against
mpmath.

Finished chunks are recorded in ``DIR/<op>-<dtype>/<impl>/chunks/NNN.json``
(written atomically), so a stopped sweep resumes where it was: run the same
command again.  Progress and an ETA go to stderr.  The report (``report.md``
and ``report.json`` in the ``<impl>`` folder) gives the max ulp over
normal-range results with its input, counts per ulp bucket, the correctly
rounded share, and the subnormal, nan and inf classes.

Every record carries its configuration (``configuration()``): the case, the
implementation (``--impl``, its module and version, and a hash of its source
when it lives in this repository), the JAX version and backend, the reference
tier (with its bound and a hash of ``reference/``) and this tool's record
version and source hash.  A report only ever aggregates records of one
configuration: each implementation has its own folder, and records of another
configuration there (stale ones: the implementation, the reference or the tool
changed since) stop the run with a message naming the fix
(``--recompute-stale``).  A record that cannot be read (not JSON, ``{}``,
truncated) is named in a warning and recomputed; a file that is not a chunk
record is named and ignored.  Records of the first version (``DIR/<op>-<dtype>/
chunks/``, without a configuration) are not used unless ``--adopt-legacy``
moves them into this configuration's folder, which the report then states.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "sweep_chunk", "configuration", "RECORD_VERSION"]

RECORD_VERSION = 2  # 1: records without a configuration (before 2026-11-30)
_REPO = Path(__file__).resolve().parent.parent
_RECORD_NAME = re.compile(r"^\d{3}\.json$")
_RECORD_KEYS = ("chunk", "n", "n_normal", "n_cr", "max_ulp", "buckets", "n_subnormal", "n_flushed", "n_nonfinite",
                "n_nonfinite_mismatch", "n_mpmath", "uncertainty_ulp")

CHUNK_BITS = 24
N_CHUNKS = 1 << (32 - CHUNK_BITS)
BUCKETS = [("<= 0.5 (correctly rounded)", 0.5), ("(0.5, 1]", 1.0), ("(1, 2]", 2.0), ("(2, 4]", 4.0),
           ("(4, 1e3]", 1e3), ("> 1e3", math.inf)]


def _ulp32(a):
    """ulp of float32 in the binade of |a| (float64 array), subnormal spacing below 2**-126."""
    _, e2 = np.frexp(a)
    q = np.maximum(e2 - 1, -126) - 23
    return np.ldexp(1.0, q)


def _round_decided(y, bound):
    """Round float64 ``y`` to float32 in one pass, and flag where ``y(1 ± bound)`` could
    round differently: near a tie, or near a binade edge where both ends are rounded
    explicitly (saturated results such as tanh(x) = 1 - tiny sit on an edge).  Flagged
    elements go to mpmath."""
    with np.errstate(all="ignore"):
        _, e2 = np.frexp(y)
        q = np.maximum(e2 - 1, -126) - 23
        n = np.ldexp(y, -q)
        rn = np.rint(n)
        margin = bound * np.abs(n)
        near_tie = np.abs(0.5 - np.abs(n - rn)) <= margin
        rounded = np.ldexp(rn, q)
        rounded = np.where(np.abs(rounded) > 3.4028234663852886e38, np.copysign(np.inf, y), rounded)
        edge = np.flatnonzero((np.abs(n) - margin < 2.0**23) & (q > -149) & ~near_tie)
        if edge.size:
            ye = y[edge]
            lo = ye * (1 - bound)
            hi = ye * (1 + bound)
            same = (lo.astype(np.float32) == rounded[edge]) & (hi.astype(np.float32) == rounded[edge])
            near_tie[edge[~same]] = True
    return rounded, near_tie


PIECE_BITS = 20  # numpy work is done in pieces of 2**20 (fewer page faults than 2**24 temporaries)


def sweep_chunk(args):
    """Sweep one chunk of 2**24 inputs; returns its statistics as a JSON-able dict."""
    case_id, impl_name, k = args
    import jax
    import jax.numpy as jnp

    from reference import float64 as F64
    from tools.registry import get

    from tools import target

    t0 = time.perf_counter()
    case = get(case_id)
    op = target.provided(target.load(impl_name), case.op, impl_name)
    fn = jax.jit(lambda v: op(v, **case.params))
    bound, _ = F64.relative_bound(case.op, case.params)
    parts = []
    for j in range(1 << (CHUNK_BITS - PIECE_BITS)):
        base = (k << CHUNK_BITS) + (j << PIECE_BITS)
        bits = (np.arange(1 << PIECE_BITS, dtype=np.uint64) + np.uint64(base)).astype(np.uint32)
        x = bits.view(np.float32)
        got = np.asarray(jax.block_until_ready(fn(jnp.asarray(x)))).astype(np.float64)
        parts.append(_sweep_piece(case, bound, x, got))
    out = _aggregate(parts)
    w = out.pop("worst") or {}
    out.update(chunk=k, worst_x=w.get("x"), worst_got=w.get("got"), worst_expected=w.get("expected"),
               seconds=time.perf_counter() - t0)
    return out


def _sweep_piece(case, bound, x, got):
    from reference import FORMATS, correctly_rounded

    x64 = x.astype(np.float64)
    with np.errstate(all="ignore"):
        y = np.asarray(case.float64_formula(x64, **case.params), dtype=np.float64)
    fmt = FORMATS["float32"]
    finite_x = np.isfinite(x64)
    tiny = finite_x & np.isfinite(y) & (np.abs(y) < 2.0**-1000)
    rounded, undecidable = _round_decided(y, bound)
    decided = finite_x & np.isfinite(y) & ~undecidable & ~tiny & (x64 != 0)
    rounded = np.where(tiny, np.copysign(0.0, y), rounded)
    decided |= tiny
    nan_in = np.isnan(x64)  # 2**24 - 2 nan patterns: the result is nan, no need to ask mpmath
    rounded = np.where(nan_in, np.nan, rounded)
    decided |= nan_in
    # subnormal inputs and subnormal results are their own class, never judged for
    # correct rounding (counted, and the flushed ones counted); the float64 rounding
    # suffices for that.  Asking mpmath would cost half an hour per chunk where
    # f(x) ~ x/2 (silu, gelu): x/2 of a tiny x with an odd last bit is a tie plus a hair.
    min_normal = FORMATS["float32"].min_normal
    sub_class = finite_x & (x64 != 0) & ((np.abs(x64) < min_normal) | (np.abs(y) < min_normal))
    decided |= sub_class & np.isfinite(rounded)
    # everything else (inf inputs, zeros, ambiguous roundings): mpmath
    todo = np.flatnonzero(~decided)
    for i in todo:
        rounded[i] = correctly_rounded(case.reference, float(x64[i]), fmt, case.params)[0]
    # errors against the float64 value (the exact value within bound*|y|), in ulps of float32
    with np.errstate(all="ignore"):
        exact_approx = np.where(decided & ~tiny & ~nan_in, y, rounded)
        err = np.abs(got - exact_approx) / _ulp32(np.abs(exact_approx))
    nonfinite = ~np.isfinite(rounded) | ~np.isfinite(got)
    nf_ok = (np.isnan(rounded) & np.isnan(got)) | (np.isinf(rounded) & (got == rounded))
    sub_in = finite_x & (np.abs(x64) > 0) & (np.abs(x64) < fmt.min_normal)
    exact_sub = ~nonfinite & (np.abs(exact_approx) < fmt.min_normal) & (exact_approx != 0)
    sub = ~nonfinite & (sub_in | exact_sub)
    normal = ~nonfinite & ~sub
    cr = normal & (got == rounded) & (np.signbit(got) == np.signbit(rounded))
    e_norm = np.where(normal, err, -1.0)
    w = int(np.argmax(e_norm))
    counts, prev = [], None
    for _, edge in BUCKETS:
        counts.append(int(np.sum(normal & (err <= edge) & ((err > prev) if prev is not None else True))))
        prev = edge
    return {
        "n": int(x.size), "n_normal": int(normal.sum()), "n_cr": int(cr.sum()),
        "max_ulp": float(e_norm[w]) if normal.any() else 0.0,
        "worst": {"x": float(x64[w]), "got": float(got[w]), "expected": float(rounded[w])} if normal.any() else None,
        "buckets": counts, "n_subnormal": int(sub.sum()),
        "n_flushed": int((sub & (got == 0) & (rounded != 0)).sum()),
        "n_nonfinite": int(nonfinite.sum()), "n_nonfinite_mismatch": int((nonfinite & ~nf_ok).sum()),
        "n_mpmath": int(todo.size), "uncertainty_ulp": float(bound * 2**24),
    }


# ---- the configuration of a sweep and its records ---------------------------------------

def _hash_files(files, base) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(base).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _source_hash(module):
    """A hash of the .py files of ``module``'s top-level package (or module) when it lives in
    this repository, where its version number does not follow its edits, or is the project's
    ``impl`` (installed from the wheel, beside the suite's folder); None elsewhere."""
    top = sys.modules[module.__name__.partition(".")[0]]
    path = Path(getattr(top, "__file__", None) or "/").resolve()
    if _REPO not in path.parents and top.__name__ != "impl":
        return None
    if path.name == "__init__.py":
        return _hash_files(path.parent.rglob("*.py"), path.parent.parent)
    return _hash_files([path], path.parent)


def _version(module) -> str:
    top = module.__name__.partition(".")[0]
    v = getattr(module, "__version__", None) or getattr(sys.modules[top], "__version__", None)
    if v:
        return str(v)
    dists = importlib.metadata.packages_distributions().get(top) or []
    for d in dists:
        return f"{d} {importlib.metadata.version(d)}"
    return "unknown"


def configuration(case_id: str, dtype: str, impl_spec: str) -> dict:
    """What a chunk record's numbers depend on (module docstring); equal dicts, same numbers.
    ``ValueError`` naming the fix when ``impl_spec`` cannot be loaded or lacks the op."""
    import jax
    import mpmath

    import reference
    from reference import float64 as F64
    from tools import target
    from tools.registry import get

    case = get(case_id)
    obj = target.load(impl_spec)
    if target.provided(obj, case.op, impl_spec) is None:
        raise ValueError(f"--impl {impl_spec} does not provide {case.op}; pass a module that defines "
                         f"{case.op}(x, ...) as impl.functional does")
    mod = target.module_of(obj) or importlib.import_module(impl_spec.partition(":")[0])
    impl = {"spec": impl_spec, "module": mod.__name__, "version": _version(mod)}
    if _source_hash(mod):
        impl["source_sha256"] = _source_hash(mod)
    if target.peer(obj):
        impl["peer"] = target.peer(obj)
    bound, _ = F64.relative_bound(case.op, case.params)
    return {
        "case": case_id, "dtype": dtype, "impl": impl,
        "jax": {"version": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
                "backend": jax.default_backend()},
        "reference": {"tier": "reference.float64 formula with its relative bound; reference.correctly_rounded "
                              "(mpmath) where the bound cannot decide the rounding",
                      "relative_bound": bound, "source_sha256": _source_hash(reference),
                      "numpy": np.__version__, "mpmath": mpmath.__version__},
        "tool": {"name": "tools.exhaustive", "record_version": RECORD_VERSION,
                 "source_sha256": _hash_files([Path(__file__).resolve()], _REPO)},
    }


def _differences(old, new, prefix="") -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{prefix or 'configuration'}: {old!r} -> {new!r}"]
    out = []
    for k in sorted(set(old) | set(new)):
        out += _differences(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
    return out


def _record_problem(rec, k):
    """Why ``rec`` (read from ``NNN.json``) is not a chunk record of chunk ``k``; None if it is."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    missing = [key for key in _RECORD_KEYS if key not in rec]
    if missing:
        return f"fields missing: {', '.join(missing)}"
    if rec["chunk"] != k:
        return f"it records chunk {rec['chunk']!r}, its name says {k}"
    if rec["n"] != 1 << CHUNK_BITS or not isinstance(rec["buckets"], list) or len(rec["buckets"]) != len(BUCKETS):
        return "its counts are not those of a whole chunk"
    return None


def _read_records(folder: Path, log):
    """The chunk records of ``folder``: {chunk: record}; unreadable ones and stray files are
    named in a warning and left out (unreadable chunks are then recomputed)."""
    out = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.name.endswith(".json.tmp"):  # an interrupted atomic write: its chunk was not recorded
            p.unlink()
            continue
        if not _RECORD_NAME.match(p.name) or int(p.name[:3]) >= N_CHUNKS:
            log(f"warning: ignoring {p}: not a chunk record (records are NNN.json, 000 to {N_CHUNKS - 1:03d}); "
                f"move it out of {folder}")
            continue
        k = int(p.name[:3])
        try:
            rec = json.loads(p.read_text())
            problem = _record_problem(rec, k)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            problem = f"not valid JSON: {e}"
        if problem:
            log(f"warning: chunk record {p} cannot be used ({problem}); chunk {k} counts as not done, and a "
                f"sweep over it recomputes and replaces it")
            continue
        out[k] = rec
    return out


def _adopt_legacy(legacy: dict, legacy_dir: Path, chunks: Path, config: dict, log) -> int:
    """Move the records of the first version into this configuration's folder, stamped with
    it and marked as adopted; returns how many."""
    n = 0
    for k, rec in sorted(legacy.items()):
        dest = chunks / f"{k:03d}.json"
        if not dest.exists():
            rec = dict(rec, config=config, adopted=f"record version 1 from {legacy_dir}, by --adopt-legacy")
            _write_atomic(dest, json.dumps(rec))
            n += 1
        (legacy_dir / f"{k:03d}.json").unlink()
    if not any(legacy_dir.iterdir()):
        legacy_dir.rmdir()
    log(f"adopted {n} chunk records of {legacy_dir} as records of this configuration")
    return n


def _write_atomic(path: Path, text: str):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _aggregate(parts):
    agg = {"n": 0, "n_normal": 0, "n_cr": 0, "max_ulp": 0.0, "buckets": [0] * len(BUCKETS), "n_subnormal": 0,
           "n_flushed": 0, "n_nonfinite": 0, "n_nonfinite_mismatch": 0, "n_mpmath": 0, "worst": None}
    for p in parts:
        for k in ("n", "n_normal", "n_cr", "n_subnormal", "n_flushed", "n_nonfinite", "n_nonfinite_mismatch",
                  "n_mpmath"):
            agg[k] += p[k]
        agg["buckets"] = [a + b for a, b in zip(agg["buckets"], p["buckets"])]
        w = p.get("worst") or ({"x": p["worst_x"], "got": p["worst_got"], "expected": p["worst_expected"]}
                               if "worst_x" in p else None)
        if w is not None and (agg["worst"] is None or p["max_ulp"] > agg["max_ulp"]):
            agg["max_ulp"] = p["max_ulp"]
            agg["worst"] = w
    agg["uncertainty_ulp"] = max((p["uncertainty_ulp"] for p in parts), default=0.0)
    agg["n_adopted"] = sum(1 for p in parts if p.get("adopted"))
    timed = [p["seconds"] for p in parts if "seconds" in p]
    agg["chunk_seconds"], agg["n_timed_chunks"] = float(sum(timed)), len(timed)
    return agg


def _describe(config) -> str:
    i, j, r, t = config["impl"], config["jax"], config["reference"], config["tool"]
    src = f", source {i['source_sha256']}" if "source_sha256" in i else ""
    return (f"{i['module']} {i['version']}{src}; jax {j['version']} ({j['backend']}); reference source "
            f"{r['source_sha256']}, bound {r['relative_bound']:.3g}; {t['name']} record version "
            f"{t['record_version']}, source {t['source_sha256']}")


def _render(case_id, impl, agg, n_chunks, secs, config=None):
    pct = 100.0 * agg["n_cr"] / agg["n_normal"] if agg["n_normal"] else 100.0
    w = agg["worst"] or {}
    lines = [f"# Exhaustive float32 sweep: `{case_id}` ({impl})", ""]
    if config is not None:
        lines.append(f"- configuration: {_describe(config)}")
    if agg.get("n_adopted"):
        lines.append(f"- {agg['n_adopted']} chunks adopted from records that named no configuration "
                     f"(--adopt-legacy)")
    lines += [f"- inputs: {agg['n']} bit patterns in {n_chunks} of {N_CHUNKS} chunks of 2**{CHUNK_BITS}",
             f"- max error over normal-range results: {agg['max_ulp']:.4f} ulp "
             f"(+- {agg['uncertainty_ulp']:.1e} ulp from the reference bound) at x = {w.get('x')!r} "
             f"(got {w.get('got')!r}, correctly rounded {w.get('expected')!r})",
             f"- correctly rounded: {pct:.6f}% of {agg['n_normal']} normal-range results",
             f"- subnormal class (subnormal input or exact result): {agg['n_subnormal']}, "
             f"flushed to zero {agg['n_flushed']}",
             f"- nan/inf: {agg['n_nonfinite']}, mismatches {agg['n_nonfinite_mismatch']}",
             f"- decided by mpmath: {agg['n_mpmath']}",
             f"- sweep time: {secs:.0f} s wall for the chunks this run computed; "
             f"{agg.get('chunk_seconds', 0.0):.0f} s of worker time over the {agg.get('n_timed_chunks', 0)} chunks "
             f"that recorded it", "", "| error (ulp) | count |", "|---|---|"]
    lines += [f"| {name} | {c} |" for (name, _), c in zip(BUCKETS, agg["buckets"])]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.exhaustive", description=__doc__.split("\n\n")[0])
    ap.add_argument("case", help="a registry case id of the activations family, e.g. gelu")
    ap.add_argument("--dtype", default="float32", choices=["float32"],
                    help="float32 (bfloat16 and float16 are exhaustive in the default test run)")
    ap.add_argument("--impl", default="impl.functional", help="module under test (module or module:ATTRIBUTE)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="report/exhaustive")
    ap.add_argument("--chunks", default=f"0:{N_CHUNKS}", help="range of chunks START:STOP (default all)")
    ap.add_argument("--recompute-stale", action="store_true",
                    help="recompute (and replace) the records of this implementation's folder that another "
                         "configuration wrote, instead of stopping")
    ap.add_argument("--adopt-legacy", action="store_true",
                    help="take the records of the first version (DIR/<op>-<dtype>/chunks/, no configuration) as "
                         "this configuration's: only when this implementation, reference and tool made them")
    args = ap.parse_args(argv)
    from tools.registry import by_family

    ids = [c.id for c in by_family("activations")]
    if args.case not in ids:
        ap.error(f"unknown case {args.case!r}; choose one of: {', '.join(ids)}")
    try:
        start, stop = (int(v) for v in args.chunks.split(":"))
        if not 0 <= start < stop <= N_CHUNKS:
            raise ValueError
    except ValueError:
        ap.error(f"--chunks must be START:STOP with 0 <= START < STOP <= {N_CHUNKS}, got {args.chunks!r}")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    try:
        config = configuration(args.case, args.dtype, args.impl)
    except (ValueError, TypeError) as e:
        ap.error(str(e))

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    case_dir = Path(args.out) / f"{_safe(args.case)}-{args.dtype}"
    out = case_dir / _safe(args.impl)
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    records = _read_records(out / "chunks", log)
    legacy_dir = case_dir / "chunks"
    legacy = _read_records(legacy_dir, log) if legacy_dir.is_dir() else {}
    if legacy and args.adopt_legacy:
        _adopt_legacy(legacy, legacy_dir, out / "chunks", config, log)
        records = _read_records(out / "chunks", log)
    elif legacy:
        log(f"note: {len(legacy)} chunk records in {legacy_dir} name no configuration (written by the first "
            f"version of this tool); they are not used. If this implementation, reference and tool made them, "
            f"adopt them with --adopt-legacy; otherwise remove that folder")
    in_range = {k: r for k, r in records.items() if start <= k < stop}
    stale = {k: r for k, r in in_range.items() if r.get("config") != config}
    if stale and not args.recompute_stale:
        k0 = min(stale)
        diff = _differences(stale[k0].get("config"), config)
        log(f"error: {len(stale)} chunk records in {out / 'chunks'} ({k0:03d}.json first) were computed with "
            f"another configuration ({'; '.join(diff[:4])}); a report never mixes configurations. Recompute "
            f"them with --recompute-stale (they are replaced), or pass another --out for this configuration")
        return 2
    done = {k: r for k, r in in_range.items() if k not in stale}
    todo = [k for k in range(start, stop) if k not in done]
    log(f"{args.case} {args.dtype} ({args.impl}): {len(done)} chunks already done, {len(todo)} to go, "
        f"{args.jobs} workers" + (f"; {len(stale)} stale records recomputed" if stale else ""))
    t0 = time.perf_counter()
    if todo:
        with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(todo))) as pool:
            for i, res in enumerate(pool.imap_unordered(sweep_chunk, [(args.case, args.impl, k) for k in todo]), 1):
                res["config"] = config
                _write_atomic(out / "chunks" / f"{res['chunk']:03d}.json", json.dumps(res))
                done[res["chunk"]] = res
                el = time.perf_counter() - t0
                eta = el / i * (len(todo) - i)
                print(f"\r  chunk {res['chunk']:3d}: {i}/{len(todo)} done, max so far "
                      f"{max(d['max_ulp'] for d in done.values()):.3f} ulp, {el:.0f} s elapsed, ETA {eta:.0f} s   ",
                      end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    secs = time.perf_counter() - t0
    parts = [done[k] for k in range(start, stop)]
    agg = _aggregate(parts)
    agg.update(case=args.case, dtype=args.dtype, impl=args.impl, chunks=[start, stop], seconds=secs, config=config)
    _write_atomic(out / "report.json", json.dumps(agg, indent=1))
    md = _render(args.case, args.impl, agg, len(parts), secs, config)
    _write_atomic(out / "report.md", md)
    print(md)
    return 0

if __name__ == "__main__":
    sys.exit(main())
