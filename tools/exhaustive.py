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
this repository, a hash of its source), the JAX and jaxlib versions, the backend,
the x64 flag, ``XLA_FLAGS`` and the worker's CPU (architecture and vector features:
FMA contraction and vector width change XLA's bits), the reference tier (with its
bound and a hash of the op's references: ``reference/`` but for the other ops'
modules in ``reference/ops/``) and the record version with a hash of
``tools/sweep_check.py``, the code that makes a record (editing this engine leaves
the records valid).  A worker whose configuration differs from the client's in
anything but its machine part (``XLA_FLAGS`` and the CPU: another checkout, another
backend, other versions) stops the run, naming the difference; the machine part is
the worker's own (a cluster's workers may run on other machines than the client), and
a report only aggregates records of one machine kind.  A report only ever aggregates records of one
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
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

__all__ = ["main", "sweep_chunk", "configuration", "case_of", "RECORD_VERSION", "FAMILIES"]

# what a record holds and depends on (an edit there makes the records stale; here it does not)
from tools.sweep_check import (BUCKETS, CHUNK_BITS, FAMILIES, N_CHUNKS, RECORD_VERSION,  # noqa: F401
                               _REPO, _aggregate, _configuration, _evaluator, _reference, _sweep_piece,
                               case_of, configuration, sweep_chunk)

_RECORD_NAME = re.compile(r"^\d{3}\.json$")
TIMING_KEYS = ("seconds", "cpu_seconds")  # a record's only fields that differ between two sweeps of a chunk
_RECORD_KEYS = ("chunk", "n", "n_normal", "n_cr", "max_ulp", "buckets", "n_subnormal", "n_flushed", "n_nonfinite",
                "n_nonfinite_mismatch", "n_mpmath", "uncertainty_ulp")
_MISSING_DASK = ("tools.exhaustive runs its chunks on Dask distributed, which is not installed here ({err}); "
                 "install the extra with: pip install -e '.[distributed]'  (or: pip install 'dask[distributed]')")

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


def _describe(config) -> str:
    i, j, r, t = config["impl"], config["jax"], config["reference"], config["tool"]
    src = (f", program {i['program_sha256']}" if "program_sha256" in i
           else f", source {i['source_sha256']}" if "source_sha256" in i else "")
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


# The parts of a configuration that describe the machine that compiled and ran a chunk (its CPU's
# vector features and XLA_FLAGS): taken from the workers, which may run on other machines than the
# client (a login node, a scheduler host); the rest (the code, the versions) must match the client's.
_MACHINE_KEYS = ("host", "xla_flags")


def _code_part(config):
    """``config`` without the machine part (``_MACHINE_KEYS`` of its ``jax`` entry)."""
    if not isinstance(config, dict) or not isinstance(config.get("jax"), dict):
        return config
    return dict(config, jax={k: v for k, v in config["jax"].items() if k not in _MACHINE_KEYS})


def _machine_part(config):
    return {k: config["jax"].get(k) for k in _MACHINE_KEYS} if isinstance(config, dict) else None


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
            if _code_part(worker_config) != _code_part(config):
                diff = _differences(_code_part(config), _code_part(worker_config))
                log(f"\nerror: a worker swept chunk {k} with another configuration than this client's "
                    f"({'; '.join(diff[:4])}); start the workers from the same checkout and environment "
                    f"(chunk {k} is not recorded)")
                return 1
            res["config"] = worker_config  # with the machine part of the worker that computed it
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


def _parser() -> argparse.ArgumentParser:
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
    return ap


def _checked_args(ap: argparse.ArgumentParser, argv):
    """The parsed arguments, the chunk range and the configuration; a bad one exits through
    ``ap.error`` with the value and the fix."""
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
    return args, start, stop, config


def _records_in(case_dir: Path, out: Path, config: dict, adopt_legacy: bool, log) -> dict:
    """The chunk records of ``out`` (after adopting the first version's records of ``case_dir``
    when asked; a note when they are there and not adopted)."""
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    records = _read_records(out / "chunks", log)
    legacy_dir = case_dir / "chunks"
    legacy = _read_records(legacy_dir, log) if legacy_dir.is_dir() else {}
    if legacy and adopt_legacy:
        _adopt_legacy(legacy, legacy_dir, out / "chunks", config, log)
        records = _read_records(out / "chunks", log)
    elif legacy:
        log(f"note: {len(legacy)} chunk records in {legacy_dir} name no configuration (written by the first "
            f"version of this tool); they are not used. If this implementation, reference and tool made them, "
            f"adopt them with --adopt-legacy; otherwise remove that folder")
    return records


def _write_report(args, start: int, stop: int, parts: list, secs: float, config: dict, out: Path, log) -> int:
    """``report.json`` and ``report.md`` of the chunk records ``parts`` (refused, 2, when they were
    computed on machines that compile differently)."""
    machines = {json.dumps(_machine_part(p["config"]), sort_keys=True): p["chunk"] for p in parts}
    if len(machines) > 1:
        (m0, k0), (m1, k1) = sorted(machines.items(), key=lambda kv: kv[1])[:2]
        log(f"error: the records of chunks {k0} and {k1} were computed on machines that compile differently "
            f"({m0} and {m1}); a report never mixes them. Sweep on workers of one kind (or recompute the "
            f"others with --recompute-stale after removing them), or pass another --out")
        return 2
    agg = _aggregate(parts)
    config = parts[0]["config"] if parts else config  # the workers' machine part
    agg.update(case=args.case, dtype=args.dtype, impl=args.impl, chunks=[start, stop], seconds=secs, config=config)
    _write_atomic(out / "report.json", json.dumps(agg, indent=1))
    md = _render(args.case, args.impl, agg, len(parts), secs, config)
    _write_atomic(out / "report.md", md)
    print(md)
    return 0


def main(argv=None) -> int:
    from tools import exhaustive64

    if exhaustive64.requested(argv):  # float64: a stratified sample judged by MPFR (tools/exhaustive64.py)
        return exhaustive64.main(argv)
    args, start, stop, config = _checked_args(_parser(), argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    case_dir = Path(args.out) / f"{_safe(args.case)}-{args.dtype}"
    out = case_dir / _safe(args.impl)
    records = _records_in(case_dir, out, config, args.adopt_legacy, log)
    in_range = {k: r for k, r in records.items() if start <= k < stop}
    stale = {k: r for k, r in in_range.items() if _code_part(r.get("config")) != _code_part(config)}
    if stale and not args.recompute_stale:
        k0 = min(stale)
        diff = _differences(_code_part(stale[k0].get("config")), _code_part(config))
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
    return _write_report(args, start, stop, [done[k] for k in range(start, stop)], secs, config, out, log)


if __name__ == "__main__":
    sys.exit(main())
