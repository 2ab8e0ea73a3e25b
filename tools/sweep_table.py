"""The summary table of ``docs/exhaustive.md`` from the sweep records.

Usage::

    python -m tools.sweep_table                 # sweeps/ of this repository, impl.functional
    python -m tools.sweep_table --out DIR --impl MODULE
    python -m tools.sweep_table --write docs/exhaustive.md   # replace the table there, in place
                                                             # (and the status and reports between
                                                             # their markers, where the page has them)
    python -m tools.sweep_table --status        # which cases are swept, started, stale, not started

One row per elementwise case of the registry (values) and per first derivative of the
transcendental cases, in registry order: the figures of the case's ``report.json`` (written by
``python -m tools.exhaustive``) when all 256 chunks are recorded, else how many are.  A report
that does not cover every chunk, or whose records were computed with another configuration than
the current one (``tools.exhaustive`` refuses those), is shown as "to do" with the number of
records it would use and the number it would refuse, naming what changed (the machine part of a
configuration, the workers' CPU and ``XLA_FLAGS``, is not compared: ``tools.exhaustive``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools import exhaustive
from tools.registry import by_family

__all__ = ["rows", "status", "status_block", "reports_block", "throughput_block", "write_table", "main"]

N_CHUNKS = 256
_REPO = Path(__file__).resolve().parent.parent
# the first derivatives swept (the eleven transcendental cases)
DERIVATIVES = ("tanh", "sigmoid", "log_sigmoid", "softplus", "silu", "mish", "elu", "celu[alpha=2.0]", "selu",
               "gelu", "gelu[approximate=True]")
HEADER = ("| case | max ulp (normal range) | correctly rounded | not correctly rounded | subnormal class "
          "(flushed by XLA) | nan/inf (mismatches) | decided by mpmath | sweep time |\n"
          "|---|---:|---:|---:|---:|---:|---:|---|")


def cases() -> list[str]:
    values = [c.id for c in by_family("activations")]
    return values + [f"grad:{c}" for c in DERIVATIVES]


def _count(chunks: Path, config: dict) -> tuple[int, int, list[str]]:
    """``(current, stale, changed)``: the chunk records under ``chunks`` that ``tools.exhaustive``
    would use (whole, of the current configuration), those of another configuration, and what
    changed since the first of those was made; unreadable files and other files are neither (read
    only: nothing here is changed)."""
    current, stale, changed = 0, 0, []
    for p in sorted(chunks.glob("[0-9][0-9][0-9].json")) if chunks.is_dir() else []:
        try:
            rec = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if exhaustive._record_problem(rec, int(p.name[:3])) is not None:
            continue
        if exhaustive._code_part(rec.get("config")) == exhaustive._code_part(config):
            current += 1
            continue
        stale += 1
        if not changed:
            changed = (exhaustive._differences(exhaustive._code_part(rec["config"]), exhaustive._code_part(config))
                       if isinstance(rec.get("config"), dict)
                       else ["no configuration (a record of the tool's first version)"])
    return current, stale, changed


def _state(case: str, folder: Path, impl: str):
    """``(report, current, stale, changed)``: the case's ``report.json`` when it covers all chunks
    with the current configuration (else None), and otherwise ``_count`` of its chunk records."""
    config = exhaustive.configuration(case, "float32", impl)
    report = folder / "report.json"
    rep = json.loads(report.read_text()) if report.is_file() else None
    whole = rep is not None and rep.get("chunks") == [0, N_CHUNKS] and rep.get("n") == N_CHUNKS << 24
    if whole and exhaustive._code_part(rep.get("config")) == exhaustive._code_part(config):
        return rep, N_CHUNKS, 0, []
    return (None, *_count(folder / "chunks", config))


def _row(case: str, state) -> str:
    rep, current, stale, changed = state
    if rep is None:
        todo = f"to do: {current} of {N_CHUNKS} chunks recorded"
        if stale:
            todo += f" ({stale} more of another configuration: {', '.join(sorted({d.split(':')[0] for d in changed}))})"
        return f"| {case} | {todo} | | | | | | |"
    not_cr = rep["n_normal"] - rep["n_cr"]
    share = 100.0 * rep["n_cr"] / rep["n_normal"]
    cpu, n_cpu = rep.get("chunk_cpu_seconds", 0.0), rep.get("n_cpu_timed_chunks", 0)
    time = (f"{cpu:.0f} s of worker CPU time over {n_cpu} chunks ({n_cpu * 2**24 / cpu:.2g} inputs per CPU "
            f"second); {rep['chunk_seconds']:.0f} s of worker time" if cpu > 0 and n_cpu else "not timed")
    return (f"| {case} | {rep['max_ulp']:.4f} | {share:.6f}% of {rep['n_normal']:,} | {not_cr:,} | "
            f"{rep['n_subnormal']:,} ({rep['n_flushed']:,}) | {rep['n_nonfinite']:,} "
            f"({rep['n_nonfinite_mismatch']:,}) | {rep['n_mpmath']:,} | {time} |")


def _states(out: Path, impl: str) -> dict:
    return {c: _state(c, out / f"{exhaustive._safe(c)}-float32" / exhaustive._safe(impl), impl) for c in cases()}


def rows(out: Path, impl: str = "impl.functional", states: dict | None = None) -> list[str]:
    """The table's rows for the records under ``out``."""
    return [_row(c, st) for c, st in (states or _states(out, impl)).items()]


def status(out: Path, impl: str = "impl.functional", states: dict | None = None) -> dict:
    """``{"swept": [...], "started": [...], "stale": [...], "not started": [...]}``: the cases whose
    256 chunks are recorded with the current configuration; those with some (``"case (k of 256
    chunks)"``); those with records of another configuration only; those with none."""
    groups = {"swept": [], "started": [], "stale": [], "not started": []}
    for case, (rep, current, stale, _) in (states or _states(out, impl)).items():
        if rep is not None:
            groups["swept"].append(case)
        elif current:
            groups["started"].append(f"{case} ({current} of {N_CHUNKS} chunks)")
        else:
            groups["stale" if stale else "not started"].append(case)
    return groups


STATUS_MARKERS = ("<!-- sweep-status:begin -->", "<!-- sweep-status:end -->")
REPORTS_MARKERS = ("<!-- sweep-reports:begin -->", "<!-- sweep-reports:end -->")
THROUGHPUT_MARKERS = ("<!-- sweep-throughput:begin -->", "<!-- sweep-throughput:end -->")
_STATUS_WORDS = {"swept": "Swept in full, records of the current configuration",
                 "started": "Started, records kept, resumable (`--out sweeps`)",
                 "stale": "Records of another configuration only (`--recompute-stale` sweeps them again)",
                 "not started": "Not started"}


def status_block(out: Path, impl: str = "impl.functional", states: dict | None = None) -> str:
    """The status lists as Markdown bullets."""
    return "\n".join(f"* {_STATUS_WORDS[g]}: " + (", ".join(f"`{n.split(' (')[0]}`" + (f" ({n.split(' (')[1]}"
                                                                                    if " (" in n else "")
                                                            for n in names) or "none") + "."
                     for g, names in status(out, impl, states).items())


def reports_block(out: Path, impl: str = "impl.functional", states: dict | None = None) -> str:
    """Every swept case's ``report.md`` (the configuration, the counts, the error histogram), in
    table order, its title one level down."""
    swept = set(status(out, impl, states)["swept"])
    parts = []
    for case in cases():
        if case in swept:
            md = out / f"{exhaustive._safe(case)}-float32" / exhaustive._safe(impl) / "report.md"
            parts.append("#" + md.read_text().strip("\n") if md.is_file() else
                         f"## `{case}`\n\n(no report.md beside its report.json: rerun `python -m tools.exhaustive "
                         f"{case} --dtype float32 --out {out}`, which computes nothing and writes it)")
    return "\n\n".join(parts)


def throughput_block(out: Path, impl: str = "impl.functional", states: dict | None = None) -> str:
    """Every complete, timed sweep's worker CPU time, inputs per CPU second, that time over two
    workers (a sweep on two idle cores) and the wall time of the run that finished it, cheapest
    first."""
    timed = [(c, rep) for c, (rep, *_) in (states or _states(out, impl)).items()
             if rep is not None and rep.get("n_cpu_timed_chunks") and rep.get("chunk_cpu_seconds", 0) > 0]
    timed.sort(key=lambda cr: cr[1]["chunk_cpu_seconds"])
    lines = ["| case | worker CPU time (s) | inputs per CPU second | two workers, from CPU time (min) | "
             "wall of the run that finished it (min) |", "|---|---:|---:|---:|---:|"]
    for c, rep in timed:
        cpu = rep["chunk_cpu_seconds"]
        lines.append(f"| {c} | {cpu:.0f} | {(N_CHUNKS << 24) / cpu / 1e6:.1f}e+06 | {cpu / 2 / 60:.1f} | "
                     f"{rep['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def _between(lines: list, markers: tuple, body: str, path: Path) -> list:
    try:
        a, b = lines.index(markers[0]), lines.index(markers[1])
    except ValueError:
        return lines
    if b < a:
        raise SystemExit(f"error: {path}: {markers[1]} comes before {markers[0]}")
    return lines[:a + 1] + body.split("\n") + lines[b:]


def write_table(path: Path, out: Path, impl: str = "impl.functional") -> None:
    """Replace the table that starts with ``HEADER``'s first line in the Markdown file ``path``
    (through its last ``|`` line) by the current one, and the text between the status, reports
    and throughput markers (``STATUS_MARKERS``, ``REPORTS_MARKERS``, ``THROUGHPUT_MARKERS``, where
    the page has them) by ``status_block``, ``reports_block`` and ``throughput_block``, atomically;
    a file without the table is an error."""
    lines = path.read_text().split("\n")
    first = HEADER.split("\n")[0]
    try:
        start = lines.index(first)
    except ValueError:
        raise SystemExit(f"error: {path} holds no table starting with {first[:40]!r}...; paste the output of "
                         f"python -m tools.sweep_table there once") from None
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    states = _states(out, impl)
    lines[start:end] = HEADER.split("\n") + rows(out, impl, states)
    lines = _between(lines, STATUS_MARKERS, status_block(out, impl, states), path)
    lines = _between(lines, REPORTS_MARKERS, reports_block(out, impl, states), path)
    lines = _between(lines, THROUGHPUT_MARKERS, throughput_block(out, impl, states), path)
    exhaustive._write_atomic(path, "\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.sweep_table", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(_REPO / "sweeps"), help="the --out folder of the sweeps")
    ap.add_argument("--impl", default="impl.functional")
    ap.add_argument("--write", metavar="FILE", help="replace the table in this Markdown file instead of printing it")
    ap.add_argument("--status", action="store_true", help="print which cases are swept, started, stale or not "
                                                           "started instead of the table")
    args = ap.parse_args(argv)
    if args.status:
        for group, names in status(Path(args.out), args.impl).items():
            print(f"{group}: {', '.join(names) or 'none'}")
    elif args.write:
        write_table(Path(args.write), Path(args.out), args.impl)
        print(f"wrote the table of {len(cases())} cases to {args.write}")
    else:
        print(HEADER)
        print("\n".join(rows(Path(args.out), args.impl)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
