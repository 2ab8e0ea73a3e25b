"""Regenerate the golden data from the references.

What: for every case of the registry and every dtype, the correctly rounded
reference result and its residual (see ``tools/golden.py`` for the layout),
plus the shared input sets.  Why: the stored results are the ground truth the
tests compare implementations with, without recomputing mpmath every run.
How long: about a minute on 2 cores, plus about 30 s for the derivative
cases (``--only 'grad*'``); the fast tier decides almost every
float16/bfloat16/float32 result; float64 results and the few ambiguous ones
go to mpmath in a process pool.

Usage::

    python -m tools.regen_golden                 # regenerate everything
    python -m tools.regen_golden --only 'gelu*'  # cases whose id matches
    python -m tools.regen_golden --check         # regenerate in memory, compare, exit 1 on any difference
    python -m tools.regen_golden --recover       # back to a verified store after a stopped run
    python -m tools.regen_golden --root DIR ...  # another store than the project's golden/
    python -m tools.regen_golden --check --cross-check  # then compare every stored elementwise value with
                                                        # GNU MPFR (tools.mpfr_oracle; needs gmpy2)

Deterministic: the inputs come from an integer hash, the references from
exact rounding, the files from a fixed-format writer, so the same command
gives the same bytes.  Nothing is overwritten silently: every changed file is
reported with its largest differences before the new set is committed.
One run at a time per store: a run holds the store's lock (``tools/golden.py``)
from before it reads the store until its commit is done, so a second run waits
for it (``--lock-timeout``) and then works on the first one's result.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import multiprocessing
import os
import shlex
import sys
import time

import numpy as np

import ml_dtypes
import mpmath
import scipy

from reference import FORMATS
from reference._ziv import GUARD, start_precision
from tools import golden, inputs
from tools.registry import CASES, DTYPES, family_module

__all__ = ["main", "build_meta"]


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def build_meta():
    return {
        "command": golden.REGEN_COMMAND,
        "versions": {"mpmath": mpmath.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "ml_dtypes": ml_dtypes.__version__},
        "reference": {
            "method": "mpmath on the exact inputs, Ziv rounding test, doubling precision; fast tier "
                      "(float64 formulas with a verified relative bound) where its rounding is unambiguous",
            "start_precision_bits": {d: start_precision(FORMATS[d]) for d in DTYPES},
            "guard_bits": GUARD,
            "fast_tier_relative_bounds": "reference.float64.relative_bound, per op",
        },
        "residual": "int16, (exact - rounded) / ulp(exact) in units of 2**-14",
        "cases": {c.id: {"family": c.family, "op": c.op, "kwargs": dict(c.kwargs), "dtypes": list(c.budgets)}
                  for c in CASES},
    }


def _describe_change(rel, old: bytes, new: bytes, dtype) -> str:
    if rel.startswith("inputs/"):
        return f"  {rel}: input set changed ({len(old)} -> {len(new)} bytes)"
    def dec(b):
        with np.load(io.BytesIO(b), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    a, b = dec(old), dec(new)
    if a["rounded"].shape != b["rounded"].shape:
        return f"  {rel}: {a['rounded'].shape[0]} -> {b['rounded'].shape[0]} values (input set changed)"
    ra = golden._from_storage(a["rounded"], dtype).astype(np.float64)
    rb = golden._from_storage(b["rounded"], dtype).astype(np.float64)
    diff_r = ~((ra == rb) | (np.isnan(ra) & np.isnan(rb)))
    dres = np.abs(a["residual"].astype(np.int64) - b["residual"].astype(np.int64))
    lines = [f"  {rel}: {int(diff_r.sum())} rounded values differ, {int((dres > 0).sum())} residuals differ "
             f"(largest residual change {dres.max() / 2**14 if dres.size else 0:.3g} ulp)"]
    for i in np.flatnonzero(diff_r)[:5]:
        lines.append(f"    index {i}: {float(ra[i])!r} -> {float(rb[i])!r}")
    return "\n".join(lines)


LOCK_TIMEOUT = 1800.0  # seconds a run waits for another regeneration of the same store


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.regen_golden", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="PATTERN", help="regenerate only cases whose id matches this glob")
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare; exit 1 on differences")
    ap.add_argument("--root", default=str(golden.ROOT), help="golden folder (default: the project's golden/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for mpmath")
    ap.add_argument("--recover", action="store_true",
                    help="bring the store back to a verified state, then exit: complete (or discard) what an "
                         "interrupted regeneration left, and regenerate the cases of a store that still fails "
                         "verification")
    ap.add_argument("--lock-timeout", type=float, default=LOCK_TIMEOUT, metavar="SECONDS",
                    help="how long to wait for another regeneration or check of the same store, which holds "
                         f"its lock (default {LOCK_TIMEOUT:g} s)")
    ap.add_argument("--cross-check", action="store_true",
                    help="afterwards, compare every stored elementwise value (activations and their "
                         "derivatives) with the independent GNU MPFR oracle, tools.mpfr_oracle (about 4 "
                         "minutes on 2 cores; needs gmpy2); exit 1 on any disagreement")
    args = ap.parse_args(argv)
    if args.cross_check:
        from tools import mpfr_oracle
        if mpfr_oracle.gmpy2 is None:
            ap.error(f"--cross-check needs gmpy2: {mpfr_oracle.INSTALL_HINT}")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    if not args.lock_timeout >= 0:
        ap.error(f"--lock-timeout must be >= 0 seconds, got {args.lock_timeout}")
    if args.recover and (args.check or args.only):
        ap.error("--recover regenerates whatever verification needs; it takes neither --only nor --check")
    selected = [c for c in CASES if not args.only or fnmatch.fnmatchcase(c.id, args.only)]
    if not selected:
        ap.error(f"--only {args.only!r} matches no case; known cases: {', '.join(c.id for c in CASES)}")

    store = golden.Store(args.root)
    try:
        if not args.check:
            store.check_writable()  # now, not after minutes of computing
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(store.lock(args.lock_timeout, shared=args.check, log=_log))
            except OSError as e:
                if not args.check:
                    raise golden.GoldenError(f"cannot lock the golden store {store.root} ({e}); pass --root DIR "
                                             f"with a writable folder") from None
                _log(f"note: cannot lock {store.root} ({e.strerror or e}); checking without the lock")
            rc = _run(args, store, selected)
    except golden.GoldenError as e:
        _log(f"error: {e}")
        return 1
    except OSError as e:  # a full disk, a folder made read-only meanwhile
        if store.interrupted:
            _log(f"error: writing {store.root} failed after its commit point ({e}); complete the commit with: "
                 f"{store.command} --recover")
        else:
            _log(f"error: writing the new golden set to {store.root} failed ({e}); the previous set is unchanged")
        return 1
    if args.cross_check:
        from tools import mpfr_oracle
        rc = max(rc, mpfr_oracle.cross_check(store, args.only, jobs=args.jobs, log=_log))
    return rc


def _held_cases(store):
    """The registry cases the store holds a file of (all of them when its manifest is unreadable)."""
    try:
        listed = set(store.manifest["files"])
    except golden.GoldenError:
        return list(CASES)
    return [c for c in CASES if any(golden.case_path(c.family, d, c.id) in listed for d in c.budgets)]


def _recover(args, store):
    """Complete or discard what a stopped run left; with --recover, the cases to regenerate
    when the store still fails verification (None: nothing to do)."""
    try:
        done = store.recover()
    except golden.GoldenError as e:
        _log(f"note: {str(e).splitlines()[0]}")
        store.discard_staging(abandon=True)
        done = "abandoned"
    if done == "completed":
        _log(f"completed the commit an interrupted regeneration left in {store.root}")
    elif done == "discarded":
        _log(f"removed the staging folder a stopped regeneration left in {store.root}")
    elif done == "abandoned":
        _log(f"discarded the interrupted commit in {store.root}: it could not be completed")
    if not args.recover:
        return None
    problems = store.verify()
    if not problems:
        _log(f"{store.root}: verified, every file matches the manifest")
        return None
    held = _held_cases(store)
    for p in problems[:10]:
        _log(f"  {p}")
    _log(f"{store.root} fails verification ({len(problems)} problems); regenerating the {len(held)} cases it holds")
    return held


def _verdict_after_recovery(store) -> int:
    problems = store.verify()
    if problems:
        for p in problems:
            _log(f"  {p}")
        _log(f"{store.root} still fails verification after regenerating its cases: the problems above are not "
             f"the regeneration's (a file the manifest does not list is not removed: remove it by hand)")
        return 1
    _log(f"{store.root}: verified, every file matches the manifest")
    return 0


def _run(args, store, selected):
    fresh = False  # True: regenerate the selected cases alone, keeping nothing of the old set
    if not args.check:
        held = _recover(args, store)
        if args.recover:
            if held is None:
                return 0
            selected, fresh = held, True
    have_old = (store.root / golden.MANIFEST).exists()
    t0 = time.perf_counter()
    files: dict[str, bytes] = {}
    xs_by_dtype = {d: inputs.golden_inputs(d) for d in DTYPES}
    for d, xs in xs_by_dtype.items():
        files[golden.inputs_path(d)] = golden.Store.encode_inputs(xs)
    # keep every existing case file that is not being regenerated
    if have_old and args.only and not fresh:
        try:
            for rel in store.manifest["files"]:
                if rel not in files:
                    files[rel] = store.read_bytes(rel)
        except golden.GoldenError as e:
            if store.interrupted:
                raise
            raise golden.GoldenError(
                f"{str(e).splitlines()[0]}\nA partial regeneration (--only) keeps the store's other files, so it "
                f"needs them intact; bring the store back with: {store.command} --recover") from None
    jobs = [(c, d) for c in selected for d in DTYPES if d in c.budgets]
    n_mp = 0
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        fmap = lambda f, it: pool.imap(f, it, chunksize=64)  # noqa: E731
        for k, (case, d) in enumerate(jobs, 1):
            t = time.perf_counter()
            fam = family_module(case.family)
            xs = xs_by_dtype[d] if getattr(fam, "SHARED_INPUTS", False) else None
            arrays, nfb = fam.golden_arrays(case, d, xs, fmap)
            n_mp += nfb
            rel = golden.case_path(case.family, d, case.id)
            files[rel] = golden.Store.encode_arrays(arrays)
            n_values = int(np.asarray(next(iter(arrays.values()))).size)
            _log(f"[{k:3d}/{len(jobs)}] {d:8s} {case.id:40s} {n_values:7d} values, "
                 f"{nfb:6d} by mpmath, {time.perf_counter() - t:6.1f} s")
    meta = build_meta()
    elapsed = time.perf_counter() - t0
    _log(f"computed {len(jobs)} case files in {elapsed:.1f} s ({n_mp} results by mpmath, the rest by the fast tier)")

    old_files = {}
    if have_old:
        try:
            listed = list(store.manifest["files"])
        except golden.GoldenError as e:
            _log(f"note: {str(e).splitlines()[0]}")
            listed = []
        for rel in listed:
            try:
                old_files[rel] = store.read_bytes(rel)
            except golden.GoldenError as e:
                _log(f"note: {str(e).splitlines()[0]}")
    changed = [rel for rel in sorted(files) if old_files.get(rel) != files[rel]]
    removed = [rel for rel in sorted(old_files) if rel not in files]
    for rel in changed:
        dtype = rel.split("/")[1] if not rel.startswith("inputs/") else None
        if rel in old_files:
            _log(_describe_change(rel, old_files[rel], files[rel], dtype))
        else:
            _log(f"  {rel}: new file")
    for rel in removed:
        _log(f"  {rel}: no longer generated")
    if args.check:
        problems = store.verify() if have_old else [f"no golden data at {store.root}"]
        if have_old and not problems and store.manifest.get("versions") != meta["versions"]:
            _log(f"note: stored data was made with {store.manifest.get('versions')}, this run uses {meta['versions']}")
        if changed or removed or problems:
            for p in problems:
                _log(f"  {p}")
            _log(f"CHECK FAILED: {len(changed)} files differ, {len(removed)} would be removed, "
                 f"{len(problems)} integrity problems; regenerate with: {store.command}"
                 + (f" --only {shlex.quote(args.only)}" if args.only else ""))
            return 1
        _log(f"check passed: all {len(files)} files identical")
        return 0
    store.commit(files, meta)
    total = sum(len(b) for b in files.values())
    _log(f"wrote {len(files)} files ({total / 2**20:.1f} MiB) to {store.root}; "
         f"{len(changed)} changed, {len(removed)} removed")
    return _verdict_after_recovery(store) if fresh else 0

if __name__ == "__main__":
    sys.exit(main())
