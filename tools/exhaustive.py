"""Exhaustive float32 verification of an elementwise op or its derivative: all 2**32 inputs, on Dask.

Usage::

    python -m tools.exhaustive gelu --dtype float32 [--impl MODULE] [--jobs N] [--out DIR]
    python -m tools.exhaustive grad:tanh                       # the first derivative, jax.grad of the op
    python -m tools.exhaustive 'leaky_relu[negative_slope=0.1]' --chunks 0:16   # a part of the range
    python -m tools.exhaustive gelu --scheduler tcp://HOST:8786   # on an existing Dask cluster

The 2**32 bit patterns are swept in 256 chunks of 2**24 (the chunking of XLA's
exhaustive tests).  The chunks are the tasks of a Dask distributed cluster:
without ``--scheduler`` an embedded ``LocalCluster`` of ``--jobs`` worker
processes (default: all cores, one thread each) is started in-process; with
``--scheduler ADDRESS`` the chunks go to an existing cluster (``dask scheduler`` / ``dask worker``, dask-jobqueue,
Kubernetes), whose scheduler and workers must import this repository (start
them from a checkout, with it on ``PYTHONPATH``).  Dask does the scheduling: a worker that dies
mid-chunk has its chunk computed again elsewhere.  ``dask[distributed]`` is the
optional extra ``.[distributed]``; without it, a sweep that has chunks to compute
stops naming the install command (reports of finished records need nothing).

Cases: the activations family (``gelu``: values) and the gradients family
(``grad:gelu``, ``grad2:gelu``: ``jax.vmap(jax.grad(op))`` of the implementation,
once or twice, against the derivative references).  Each chunk is evaluated by the
implementation (jitted, on the worker's default backend) and by the fast reference
tier: ``reference.float64`` formulas with their verified relative bound for values,
``reference.float64_derivatives`` with the per-element bound ``BOUND * (1 + amp)``
(and its ``exact`` entries) for derivatives.  Where every value within the bound
rounds to the same float32 the rounding is decided; elsewhere mpmath decides
(``reference.correctly_rounded``).  A float64 reference below 2**-1000 in magnitude
(with a bound below 1) thus decides a zero of its sign (|exact| < 2**-999 is far
below float32's smallest subnormal); tests/test_exhaustive.py checks that rule
against mpmath.

A chunk is recorded, in ``DIR/<op>-<dtype>/<impl>/chunks/NNN.json`` (written
atomically by the client), only when its result is complete, so a stopped or
failed sweep resumes where it was, on any cluster: run the same command again.
Progress and an ETA go to stderr.  The report (``report.md`` and ``report.json`` in
the ``<impl>`` folder) gives the max ulp over normal-range results with its input,
counts per ulp bucket, the correctly rounded share, and the subnormal, nan and inf
classes.

Every record carries its configuration (``configuration()``), computed by the
worker that swept the chunk: the case, the implementation (``--impl``, its module
and version; for the project's ``impl``, a hash of the lowered JAX program the sweep
runs, so that an edit to another op leaves the records valid; for another module of
this repository, a hash of its source), the JAX
version and backend, the reference tier (with its bound and a hash of
``reference/``) and this tool's record version and source hash.  A worker whose
configuration differs from the client's (another checkout, another backend) stops
the run, naming the difference.  A report only ever aggregates records of one
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
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import re
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

__all__ = ["main", "sweep_chunk", "configuration", "case_of", "RECORD_VERSION", "FAMILIES"]

RECORD_VERSION = 2  # 1: records without a configuration (before 2026-11-30)
FAMILIES = ("activations", "gradients")  # the registry families a sweep accepts
_REPO = Path(__file__).resolve().parent.parent
_RECORD_NAME = re.compile(r"^\d{3}\.json$")
TIMING_KEYS = ("seconds", "cpu_seconds")  # a record's only fields that differ between two sweeps of a chunk
_RECORD_KEYS = ("chunk", "n", "n_normal", "n_cr", "max_ulp", "buckets", "n_subnormal", "n_flushed", "n_nonfinite",
                "n_nonfinite_mismatch", "n_mpmath", "uncertainty_ulp")
_MISSING_DASK = ("tools.exhaustive runs its chunks on Dask distributed, which is not installed here ({err}); "
                 "install the extra with: pip install -e '.[distributed]'  (or: pip install 'dask[distributed]')")

CHUNK_BITS = 24
N_CHUNKS = 1 << (32 - CHUNK_BITS)
BUCKETS = [("<= 0.5 (correctly rounded)", 0.5), ("(0.5, 1]", 1.0), ("(1, 2]", 2.0), ("(2, 4]", 4.0),
           ("(4, 1e3]", 1e3), ("> 1e3", math.inf)]
_EDGES = np.array([edge for _, edge in BUCKETS])


def _inverse_ulp32(a):
    """1 / ulp of float32 in the binade of |a| (float64 array, 0 or normal in float64): the
    subnormal spacing 2**-149 below 2**-126, and 2**-24 at 0 (the error of a result whose
    exact value is 0 is counted in 2**-24 units).  A power of two, so that multiplying by it
    is the division by the ulp, exactly."""
    e = (a.view(np.int64) >> 52) & 0x7FF  # the biased float64 exponent: |a| in [2**(e-1023), 2**(e-1022))
    inv = np.minimum(2069 - e, 1172) << 52  # 2**-(max(e - 1023, -126) - 23), as float64 bits
    inv[e == 0] = (1023 + 24) << 52
    return inv.view(np.float64)


def _round_decided(y, bound):
    """Round float64 ``y`` to float32, and flag where a value within ``y (1 ± bound)`` could
    round differently (near a tie, or across a binade edge): both ends of the magnitude
    interval are rounded (the 2**-52 added to the bound covers the float64 rounding of the
    ends), and the sign is y's, certain for bounds below 1.  Returns ``(rounded as float64,
    undecided)``; nan or infinite ``y`` and bounds >= 1 are undecided (they go to mpmath)."""
    with np.errstate(all="ignore"):
        a = np.abs(y)
        d = a * (bound + 2.0**-52)
        undecided = ((a - d).astype(np.float32) != (a + d).astype(np.float32)) | ~(np.asarray(bound) < 1)
        return y.astype(np.float32).astype(np.float64), undecided


PIECE_BITS = 20  # numpy work is done in pieces of 2**20 (fewer page faults than 2**24 temporaries)
# a reference value whose relative bound is wider (a derivative next to its zero, where two terms
# cancel) is not used to measure errors, which it would give to +- 2**-6 ulp or worse: mpmath decides
_MAX_BOUND = 2.0**-30


def case_of(case_id: str):
    """The registry case ``case_id`` of a family a sweep accepts (``FAMILIES``), and its
    derivative order (0 for values); ``KeyError`` naming the choices otherwise."""
    from tools.registry import by_family

    for fam in FAMILIES:
        for c in by_family(fam):
            if c.id == case_id:
                return c, dict(c.extra).get("order", 0)
    raise KeyError(case_id)


@functools.lru_cache(maxsize=None)
def _evaluator(case_id: str, impl_name: str):
    """``(case, jitted elementwise function)`` of the implementation, once per process:
    the op, or ``vmap`` of its ``grad`` applied ``order`` times."""
    import jax

    from tools import calls, target

    case, order = case_of(case_id)
    op = target.provided(target.load(impl_name), case.op, impl_name)

    def fn(v):
        return calls.call(op, case.op, {"x": v}, case.params)["y"]

    for _ in range(order):
        fn = jax.grad(fn)
    return case, jax.jit(jax.vmap(fn) if order else fn)


def _reference(case, x64):
    """``(y, bound, exact)``: the fast tier's float64 value, its relative bound (a scalar, or
    per element for derivatives) and where ``y`` is exact (None for values).

    A derivative formula's relative bound does not hold where its float64 value is below
    float64's normal range (its terms underflow; mish' at x = -742 gives +6e-323 for a
    negative derivative): such a value, 0 included, is taken as the zero of the formula's
    exact tail entry on the same side (``x = ±2**100``: its sign), where that tail is a zero
    and ``|x| >= 1``, and left to mpmath elsewhere.  Exact derivatives there are far below
    2**-150, so the float32 result is that zero; tests/test_exhaustive.py checks this against
    mpmath, as it checks the sign of values below 2**-1000."""
    from reference import float64 as F64
    from reference import float64_derivatives as FD

    with np.errstate(all="ignore"):
        if dict(case.extra).get("order", 0) == 0:
            y = np.asarray(case.float64_formula(x64, **case.params), dtype=np.float64)
            return y, F64.relative_bound(case.op, case.params)[0], None
        y, amp, exact = case.float64_formula(x64, **case.params)
        bound = np.where(exact, 0.0, FD.BOUND * (1.0 + amp))
        underflowed = np.flatnonzero(~exact & (np.abs(y) < 2.0**-1022))
        if underflowed.size:
            tail_y, _, tail_exact = case.float64_formula(np.array([-2.0**100, 2.0**100]), **case.params)
            side = (x64[underflowed] > 0).astype(int)
            zero = tail_exact[side] & (tail_y[side] == 0) & (np.abs(x64[underflowed]) >= 1)
            y[underflowed] = np.where(zero, tail_y[side], y[underflowed])
            bound[underflowed] = np.where(zero, 0.0, np.inf)
            exact = exact.copy()
            exact[underflowed] = zero
        return y, bound, exact


def sweep_chunk(args):
    """Sweep chunk ``k`` (2**24 inputs) of ``args = (case_id, impl_name, k)`` on this process;
    returns its statistics as a JSON-able dict, with the configuration of this process."""
    case_id, impl_name, k = args
    import jax
    import jax.numpy as jnp

    t0, c0 = time.perf_counter(), time.process_time()
    case, fn = _evaluator(case_id, impl_name)
    parts = []
    for j in range(1 << (CHUNK_BITS - PIECE_BITS)):
        base = (k << CHUNK_BITS) + (j << PIECE_BITS)
        bits = np.arange(base, base + (1 << PIECE_BITS), dtype=np.uint32)
        x = bits.view(np.float32)
        got = np.asarray(jax.block_until_ready(fn(jnp.asarray(x))))
        with np.errstate(invalid="ignore"):  # signalling nan patterns
            got = got.astype(np.float64)
        parts.append(_sweep_piece(case, x, got))
    out = _aggregate(parts)
    for key in ("n_adopted", "chunk_seconds", "n_timed_chunks", "chunk_cpu_seconds", "n_cpu_timed_chunks"):
        del out[key]  # figures of a report, not of a chunk
    w = out.pop("worst") or {}
    out.update(chunk=k, worst_x=w.get("x"), worst_got=w.get("got"), worst_expected=w.get("expected"),
               seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
               config=_configuration(case_id, "float32", impl_name))
    return out


def _sweep_piece(case, x, got):
    """The statistics of one piece: inputs ``x`` (float32), the implementation's results ``got``
    (float64 array of float32 values)."""
    from reference import FORMATS, correctly_rounded

    fmt = FORMATS["float32"]
    with np.errstate(invalid="ignore"):  # signalling nan patterns
        x64 = x.astype(np.float64)
    y, bound, _ = _reference(case, x64)
    finite_x = np.isfinite(x)
    rounded, undecidable = _round_decided(y, bound)
    undecidable |= bound > _MAX_BOUND
    tiny = np.abs(y) < 2.0**-1000  # decided (a zero of y's sign) where the bound is below 1
    decided = finite_x & ~undecidable & ((x != 0) | tiny)
    nan_in = np.isnan(x)  # 2**24 - 2 nan patterns: the result is nan, no need to ask mpmath
    rounded[nan_in] = np.nan
    decided |= nan_in
    # subnormal inputs and subnormal results are their own class, never judged for
    # correct rounding (counted, and the flushed ones counted); the float64 rounding
    # suffices for that.  Asking mpmath would cost half an hour per chunk where
    # f(x) ~ x/2 (silu, gelu): x/2 of a tiny x with an odd last bit is a tie plus a hair.
    with np.errstate(invalid="ignore"):
        sub_class = finite_x & (x != 0) & ((np.abs(x) < fmt.min_normal) | (np.abs(y) < fmt.min_normal))
    decided |= sub_class & np.isfinite(rounded)
    # everything else (inf inputs, zeros, ambiguous roundings): mpmath
    todo = np.flatnonzero(~decided)
    for i in todo:
        rounded[i] = correctly_rounded(case.reference, float(x64[i]), fmt, case.params)[0]
    # errors against the float64 value (the exact value within bound*|y|), in ulps of float32
    with np.errstate(all="ignore"):
        exact_approx = np.where(decided & ~tiny & ~nan_in, y, rounded)
        abs_exact = np.abs(exact_approx)
        err = np.abs(got - exact_approx) * _inverse_ulp32(abs_exact)
        nonfinite = ~(np.isfinite(rounded) & np.isfinite(got))
        nf_ok = (np.isnan(rounded) & np.isnan(got)) | (np.isinf(rounded) & (got == rounded))
        sub_in = finite_x & (x != 0) & (np.abs(x) < fmt.min_normal)
        exact_sub = (abs_exact < fmt.min_normal) & (exact_approx != 0)
    sub = ~nonfinite & (sub_in | exact_sub)
    normal = ~nonfinite & ~sub
    cr = normal & (got == rounded) & (np.signbit(got) == np.signbit(rounded))
    e_norm = np.where(normal, err, -1.0)
    w = int(np.argmax(e_norm))
    counts = np.bincount(np.searchsorted(_EDGES, err[normal]), minlength=len(BUCKETS) + 1)[:len(BUCKETS)]
    return {
        "n": int(x.size), "n_normal": int(normal.sum()), "n_cr": int(cr.sum()),
        "max_ulp": float(e_norm[w]) if normal.any() else 0.0,
        "worst": {"x": float(x64[w]), "got": float(got[w]), "expected": float(rounded[w])} if normal.any() else None,
        "buckets": [int(c) for c in counts], "n_subnormal": int(sub.sum()),
        "n_flushed": int((sub & (got == 0) & (rounded != 0)).sum()),
        "n_nonfinite": int(nonfinite.sum()), "n_nonfinite_mismatch": int((nonfinite & ~nf_ok).sum()),
        "n_mpmath": int(todo.size),
        "uncertainty_ulp": float(np.max(np.broadcast_to(bound, y.shape), where=decided, initial=0.0) * 2**24),
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


def _program_hash(case_id: str, impl_spec: str, dtype: str) -> str:
    """A hash of the JAX program a chunk runs: the lowered StableHLO (without source locations)
    of the op, or of ``vmap`` of its ``grad``, for a float ``dtype`` vector.  With the JAX and
    jaxlib versions (also in the configuration) it fixes every bit the sweep measures; it changes
    with the op's code, the code it calls and its custom derivatives, and with nothing else."""
    import jax

    _, fn = _evaluator(case_id, impl_spec)
    text = fn.lower(jax.ShapeDtypeStruct((8,), np.dtype(dtype))).as_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    from reference import float64_derivatives as FD
    from tools import target

    case, order = case_of(case_id)
    obj = target.load(impl_spec)
    if target.provided(obj, case.op, impl_spec) is None:
        raise ValueError(f"--impl {impl_spec} does not provide {case.op}; pass a module that defines "
                         f"{case.op}(x, ...) as impl.functional does")
    mod = target.module_of(obj) or importlib.import_module(impl_spec.partition(":")[0])
    impl = {"spec": impl_spec, "module": mod.__name__, "version": _version(mod)}
    if mod.__name__.partition(".")[0] == "impl":
        # The project's layers: what the numbers depend on is the program the sweep runs, so an
        # edit elsewhere in impl/ leaves this op's records valid.
        impl["program_sha256"] = _program_hash(case_id, impl_spec, dtype)
    elif _source_hash(mod):
        impl["source_sha256"] = _source_hash(mod)
    if target.peer(obj):
        impl["peer"] = target.peer(obj)
    if order == 0:
        bound = F64.relative_bound(case.op, case.params)[0]
        tier = "reference.float64 formula with its relative bound"
    else:
        bound = FD.BOUND
        tier = ("reference.float64_derivatives formula with the relative bound BOUND * (1 + amp) per element, "
                "its exact entries as they are")
    return {
        "case": case_id, "dtype": dtype, "impl": impl,
        "jax": {"version": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
                "backend": jax.default_backend()},
        "reference": {"tier": f"{tier}; reference.correctly_rounded (mpmath) where the bound cannot decide the "
                              "rounding",
                      "relative_bound": bound, "source_sha256": _source_hash(reference),
                      "numpy": np.__version__, "mpmath": mpmath.__version__},
        "tool": {"name": "tools.exhaustive", "record_version": RECORD_VERSION,
                 "source_sha256": _hash_files([Path(__file__).resolve()], _REPO)},
    }


@functools.lru_cache(maxsize=None)
def _configuration(case_id: str, dtype: str, impl_spec: str) -> dict:
    """``configuration`` once per process (a worker sweeps many chunks of one case)."""
    return configuration(case_id, dtype, impl_spec)


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
    cpu = [p["cpu_seconds"] for p in parts if "cpu_seconds" in p]
    agg["chunk_cpu_seconds"], agg["n_cpu_timed_chunks"] = float(sum(cpu)), len(cpu)
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
             f"that recorded it"
             + (f", {agg['chunk_cpu_seconds']:.0f} s of worker CPU time over the {agg['n_cpu_timed_chunks']} that "
                f"recorded that ({agg['n_cpu_timed_chunks'] * 2**CHUNK_BITS / agg['chunk_cpu_seconds']:.3g} inputs "
                f"per CPU second)" if agg.get("chunk_cpu_seconds") else ""), "",
             "| error (ulp) | count |", "|---|---|"]
    lines += [f"| {name} | {c} |" for (name, _), c in zip(BUCKETS, agg["buckets"])]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in name)


# A sweep runs for hours beside other jobs (at nice 19 too): Dask's default timeouts (30 s for a
# comm, 5 minutes without a worker's heartbeat) took a starved client or worker for a dead one
# and cancelled the sweep (seen on 2 shared cores at a load of 20).
_PATIENCE = {"distributed.comm.timeouts.connect": "600s", "distributed.comm.timeouts.tcp": "1800s",
             "distributed.scheduler.worker-ttl": "60 minutes"}


def _client(scheduler, jobs, stack, log):
    """A Dask client, entered into ``stack``: of the cluster at ``scheduler``, or of an embedded
    ``LocalCluster`` of ``jobs`` single-threaded worker processes; None (with the reason and
    the fix logged) when Dask distributed is not installed or the scheduler does not answer."""
    try:
        import dask
        import distributed
    except ImportError as e:
        log("error: " + _MISSING_DASK.format(err=e))
        return None
    stack.enter_context(dask.config.set(_PATIENCE))
    if scheduler:
        try:
            return stack.enter_context(distributed.Client(scheduler, timeout="60s"))
        except (OSError, TimeoutError) as e:
            log(f"error: no Dask scheduler answers at {scheduler} ({type(e).__name__}: {e}); start one with "
                f"'dask scheduler' and workers with 'PYTHONPATH=<checkout> dask worker ADDRESS', or leave out "
                f"--scheduler for the embedded cluster")
            return None
    import logging

    cluster = stack.enter_context(distributed.LocalCluster(
        n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR))
    return stack.enter_context(distributed.Client(cluster))


def _hint(exc) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return (" (the chunk's task was lost with every worker that ran it, up to distributed's "
                "scheduler.allowed-failures: out of memory? the workers' logs say)")
    if isinstance(exc, ImportError) or "deserializ" in str(exc):
        return (f" (the scheduler or the workers cannot import this repository's tools.exhaustive: start them "
                f"from a checkout of it, PYTHONPATH=<checkout> dask scheduler / dask worker ADDRESS; this client "
                f"runs {_REPO})")
    return ""


def _sweep(client, case_id, impl, todo, config, chunks, done, log) -> int:
    """Compute the chunks ``todo`` on ``client``'s cluster, recording each as it completes;
    0, or 1 after naming a chunk that failed or a worker of another configuration."""
    from distributed import as_completed

    from tools.exhaustive import sweep_chunk as task  # by its module's name, also when this is __main__
    run = uuid.uuid4().hex[:8]  # task keys of this run: a rerun never meets a killed run's tasks
    keys = {f"exhaustive-{_safe(case_id)}-{k:03d}-{run}": k for k in todo}
    futures = [client.submit(task, (case_id, impl, k), key=key) for key, k in keys.items()]
    t0 = time.perf_counter()
    try:
        for i, fut in enumerate(as_completed(futures), 1):
            k = keys[fut.key]
            try:
                res = fut.result()
            except Exception as e:
                log(f"\nerror: chunk {k} failed on the cluster: {type(e).__name__}: {e}{_hint(e)}; the chunks "
                    f"recorded so far are kept, and the same command resumes after them")
                return 1
            worker_config = res.pop("config")
            if worker_config != config:
                diff = _differences(config, worker_config)
                log(f"\nerror: a worker swept chunk {k} with another configuration than this client's "
                    f"({'; '.join(diff[:4])}); start the workers from the same checkout and environment "
                    f"(chunk {k} is not recorded)")
                return 1
            res["config"] = config
            _write_atomic(chunks / f"{k:03d}.json", json.dumps(res))
            done[k] = res
            el = time.perf_counter() - t0
            eta = el / i * (len(todo) - i)
            print(f"\r  chunk {k:3d}: {i}/{len(todo)} done, max so far "
                  f"{max(d['max_ulp'] for d in done.values()):.3f} ulp, {el:.0f} s elapsed, ETA {eta:.0f} s   ",
                  end="", file=sys.stderr, flush=True)
    finally:
        client.cancel(futures)
    print(file=sys.stderr)
    return 0


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # unwinds main's ExitStack: the client and the embedded cluster close


def main(argv=None) -> int:
    from tools import exhaustive64

    if exhaustive64.requested(argv):  # float64: a stratified sample judged by MPFR (tools/exhaustive64.py)
        return exhaustive64.main(argv)
    ap = argparse.ArgumentParser(prog="python -m tools.exhaustive", description=__doc__.split("\n\n")[0])
    ap.add_argument("case", help="a registry case id of the activations family (gelu) or of the gradients "
                                 "family (grad:gelu, grad2:gelu)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="float32 (bfloat16 and float16 are exhaustive in the default test run); float64: "
                         "a stratified sample, see tools/exhaustive64.py")
    ap.add_argument("--impl", default="impl.functional", help="module under test (module or module:ATTRIBUTE)")
    ap.add_argument("--scheduler", metavar="ADDRESS",
                    help="the address of a running Dask scheduler (tcp://HOST:8786); default: an embedded "
                         "local cluster")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes of the embedded cluster (default: all cores)")
    ap.add_argument("--out", default="report/exhaustive")
    ap.add_argument("--chunks", default=f"0:{N_CHUNKS}", help="range of chunks START:STOP (default all)")
    ap.add_argument("--recompute-stale", action="store_true",
                    help="recompute (and replace) the records of this implementation's folder that another "
                         "configuration wrote, instead of stopping")
    ap.add_argument("--adopt-legacy", action="store_true",
                    help="take the records of the first version (DIR/<op>-<dtype>/chunks/, no configuration) as "
                         "this configuration's: only when this implementation, reference and tool made them")
    args = ap.parse_args(argv)
    try:
        case_of(args.case)
    except KeyError:
        from tools.registry import by_family

        ids = [c.id for fam in FAMILIES for c in by_family(fam)]
        ap.error(f"unknown case {args.case!r}; choose one of: {', '.join(ids)}")
    try:
        start, stop = (int(v) for v in args.chunks.split(":"))
        if not 0 <= start < stop <= N_CHUNKS:
            raise ValueError
    except ValueError:
        ap.error(f"--chunks must be START:STOP with 0 <= START < STOP <= {N_CHUNKS}, got {args.chunks!r}")
    if args.jobs is not None and args.scheduler:
        ap.error("--jobs sizes the embedded cluster; with --scheduler the cluster's workers do the work "
                 "(add workers to it instead)")
    if args.jobs is not None and args.jobs < 1:
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
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():  # SIGTERM closes the cluster as Ctrl-C does
            stack.callback(signal.signal, signal.SIGTERM, signal.signal(signal.SIGTERM, _terminated))
        client = None
        if todo:
            client = _client(args.scheduler, min(args.jobs or os.cpu_count() or 1, len(todo)), stack, log)
            if client is None:
                return 2
        where = (f"{len(client.scheduler_info()['workers'])} workers of "
                 f"{args.scheduler or 'an embedded local cluster'}" if client else "no cluster needed")
        log(f"{args.case} {args.dtype} ({args.impl}): {len(done)} chunks already done, {len(todo)} to go, "
            f"{where}" + (f"; {len(stale)} stale records recomputed" if stale else ""))
        if todo and _sweep(client, args.case, args.impl, todo, config, out / "chunks", done, log):
            return 1
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
