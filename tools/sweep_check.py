"""What a sweep record of ``tools.exhaustive`` holds, and what its numbers depend on.

This module is the part of an exhaustive sweep that makes a chunk's record: the inputs of a
chunk, the implementation's results (``_evaluator``), the reference tier and the judgement of
every result (``_reference``, ``_sweep_piece``), the sum of pieces (``_aggregate``), and the
configuration a record names (``configuration``).  The configuration hashes this file as "the
tool", so an edit here makes every record stale, and an edit to the engine, the reports or the
command line (``tools.exhaustive``) does not.  The reference tier is hashed per op: the
shared modules of ``reference/`` (everything but ``reference/ops/``), the op's own module in
``reference/ops/`` when it has one (``reference/ops/__init__.py``, shared, counts for every op),
and the names of the two reference functions the registry case uses with its parameters; so a new
op's file leaves the other ops' records valid.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

RECORD_VERSION = 3  # 1: no configuration (before 2026-11-30); 2: reference/ hashed as a whole
FAMILIES = ("activations", "gradients")  # the registry families a sweep accepts
_REPO = Path(__file__).resolve().parent.parent

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
    of the op, or of ``vmap`` of its ``grad``, for a float ``dtype`` vector.  It changes with the
    op's code, the code it calls and its custom derivatives (and with JAX's ``jax_enable_x64``,
    which changes the types of some constants).  What else decides the bits, XLA's compilation of
    the program, is named beside it in the configuration: the JAX and jaxlib versions, the
    backend, ``XLA_FLAGS`` and the host CPU's vector features (``_host``)."""
    import jax

    _, fn = _evaluator(case_id, impl_spec)
    text = fn.lower(jax.ShapeDtypeStruct((8,), np.dtype(dtype))).as_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _host() -> dict:
    """What of the machine can change the compiled program's results: the architecture and, on
    Linux, the CPU's floating-point vector features (XLA's CPU compiler contracts multiplies and
    adds into FMAs where the CPU has them, and picks the vector width from the features)."""
    import platform

    features = []
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        features = sorted(set(flags) & {"fma", "avx", "avx2", "avx512f", "avx512bw", "avx512vl", "sse4_2"})
    except OSError:
        pass
    return {"machine": platform.machine(), "features": features}


def _reference_hash(case) -> str:
    """The reference tier of ``case`` (module docstring): the shared modules of ``reference/``,
    the op's module in ``reference/ops/`` if any, and the case's functions and parameters."""
    import reference

    root = Path(reference.__file__).resolve().parent
    files = [f for f in root.rglob("*.py")
             if f.relative_to(root).parts[:-1] != ("ops",) or f.name == "__init__.py"]
    own = root / "ops" / f"{case.op}.py"
    files += [own] if own.is_file() else []
    h = hashlib.sha256(_hash_files(files, root.parent).encode())
    for fn in (case.reference, case.float64_formula):
        h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}\0".encode())
    h.update(repr(sorted(case.params.items())).encode())
    return h.hexdigest()[:16]


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
                "backend": jax.default_backend(), "x64": bool(jax.config.jax_enable_x64),
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "host": _host()},
        "reference": {"tier": f"{tier}; reference.correctly_rounded (mpmath) where the bound cannot decide the "
                              "rounding",
                      "relative_bound": bound, "source_sha256": _reference_hash(case),
                      "numpy": np.__version__, "mpmath": mpmath.__version__},
        "tool": {"name": "tools.exhaustive", "record_version": RECORD_VERSION,
                 "source_sha256": _hash_files([Path(__file__).resolve()], _REPO)},
    }


@functools.lru_cache(maxsize=None)
def _configuration(case_id: str, dtype: str, impl_spec: str) -> dict:
    """``configuration`` once per process (a worker sweeps many chunks of one case)."""
    return configuration(case_id, dtype, impl_spec)


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
