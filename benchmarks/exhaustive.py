"""Throughput of ``tools.exhaustive``: its Dask engine against the process pool it replaced, and
one worker against two.

Usage::

    python -m benchmarks.exhaustive                          # relu and grad:tanh, 8 chunks, 2 rounds
    python -m benchmarks.exhaustive --cases gelu --chunks 96:104 --rounds 3

Method: for each case the same chunks are swept, in interleaved rounds, by

* ``pool-2``: a spawn ``multiprocessing.Pool`` of two processes calling ``sweep_chunk``
  (the engine before Dask, with today's chunk code);
* ``dask-1`` and ``dask-2``: ``tools.exhaustive.main`` on its embedded cluster with one and
  two workers (records go to a temporary folder, so every round computes every chunk).

Each run's wall time includes starting its processes (JAX's import and compilation in
each), as a sweep's does; the table gives the median over rounds, and the inputs per CPU
second of a worker (the chunks' ``cpu_seconds``, which do not depend on how busy the machine
is).  A whole sweep is 256 chunks: its time on this machine is about ``256 / chunks`` times
the steady per-chunk rate shown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from tools import exhaustive


def _pool(case, chunks, jobs):
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        recs = list(pool.imap_unordered(exhaustive.sweep_chunk, [(case, "impl.functional", k) for k in chunks]))
    return time.perf_counter() - t0, recs


def _dask(case, chunks, jobs):
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            rc = exhaustive.main([case, "--chunks", f"{chunks[0]}:{chunks[-1] + 1}", "--jobs", str(jobs),
                                  "--out", out])
        wall = time.perf_counter() - t0
        if rc:
            raise RuntimeError(f"tools.exhaustive {case} exited {rc}")
        recs = [json.loads(p.read_text()) for p in Path(out).glob("*/*/chunks/*.json")]
    return wall, recs


ENGINES = {"pool-2": lambda c, k: _pool(c, k, 2), "dask-1": lambda c, k: _dask(c, k, 1),
           "dask-2": lambda c, k: _dask(c, k, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.exhaustive", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="relu,grad:tanh")
    ap.add_argument("--chunks", default="96:104", help="START:STOP, the chunks each run sweeps")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engines", default=",".join(ENGINES))
    args = ap.parse_args(argv)
    start, stop = (int(v) for v in args.chunks.split(":"))
    chunks = list(range(start, stop))
    print(f"| case | engine | wall s (median of {args.rounds}) | chunks/s | inputs per worker CPU s |")
    print("|---|---|---:|---:|---:|")
    for case in args.cases.split(","):
        walls = {e: [] for e in args.engines.split(",")}
        cpu = {e: [] for e in walls}
        for _ in range(args.rounds):
            for e in walls:  # interleaved: each round runs every engine once
                wall, recs = ENGINES[e](case, chunks)
                walls[e].append(wall)
                cpu[e] += [r["cpu_seconds"] for r in recs]
        for e in walls:
            w = statistics.median(walls[e])
            rate = len(cpu[e]) * 2**exhaustive.CHUNK_BITS / sum(cpu[e])
            print(f"| {case} | {e} | {w:.1f} | {len(chunks) / w:.3f} | {rate:.3g} |", flush=True)


if __name__ == "__main__":
    main()
