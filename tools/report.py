"""The main job: run the conformance suite and write the tolerance report and the leaderboard.

Usage::

    python -m tools.report                      # impl.functional, report in ./report
    python -m tools.report --out DIR --impl MODULE [--impl MODULE2 ...] [-- extra pytest args]
    python -m tools.report --peers              # impl.functional and every adapter in adapters/

``MODULE`` is anything ``pytest --impl`` accepts (``package.module`` or
``package.module:ATTRIBUTE``).

For each implementation it runs ``pytest -n auto --impl MODULE --report-dir
DIR/<module>`` (the whole conformance suite; for implementations other than
impl.functional with ``--impl-tests-only``, since the project's own checks do
not depend on them), then writes ``DIR/report.md`` and
``DIR/report.json`` (one table per implementation: per op x dtype x device,
n, max ulp over normal-range results, p99, % correctly rounded, subnormal
results flushed, nan/inf mismatches, budget, headroom) and, when matplotlib
is installed, ``DIR/plots/<implementation>/<case>.png``: the ulp error of every
golden input against the input, float32 and bfloat16.  It also writes the
comparison of all the implementations run (``tools.leaderboard``):
``DIR/leaderboard.md``, ``DIR/leaderboard.json`` and bar charts
``DIR/leaderboard-<family>-<dtype>.png``.

Exit status: 0 when every suite passed, else the first non-zero pytest status
(the report is written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "PEERS"]

PEERS = ["impl.functional", "adapters.jax_nn", "adapters.flax_nnx", "adapters.equinox_nn",
         "adapters.brainstate_nn", "adapters.torch_functional"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def run_suite(impl: str, out: Path, extra: list[str]) -> tuple[int, float]:
    # the project's own checks (references, golden store, tools) do not depend on the implementation
    # under test: they run once, with impl.functional, not again for every other implementation
    only = [] if impl == "impl.functional" else ["--impl-tests-only"]
    cmd = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
           "--impl", impl, "--report-dir", str(out)] + only + extra
    print(f"$ {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=Path(__file__).resolve().parent.parent)
    return rc, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--impl", action="append",
                    help="module (or module:ATTRIBUTE) under test (repeatable; default impl.functional)")
    ap.add_argument("--peers", action="store_true",
                    help="test impl.functional and every adapter of adapters/ (needs the [peers] extra)")
    ap.add_argument("--out", default="report", help="output folder (default ./report)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    impls = (args.impl or []) + ([p for p in PEERS if p not in (args.impl or [])] if args.peers else [])
    impls = impls or ["impl.functional"]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    status, sections = 0, []
    for impl in impls:
        d = out / _slug(impl)
        rc, secs = run_suite(impl, d, args.pytest_args)
        status = status or rc
        report = d / "report.json"
        if not report.exists():
            print(f"no report from the run of {impl} (pytest exit status {rc})", file=sys.stderr)
            continue
        data = json.loads(report.read_text())
        data["header"]["suite wall time"] = f"{secs:.1f} s (pytest -n auto, exit status {rc})"
        sections.append((impl, data, rc, secs))
    from tools import leaderboard, reporting

    md = []
    for impl, data, _, _ in sections:
        lines = [f"{k}: {v}" for k, v in data["header"].items()]
        md.append(reporting.render_markdown(data["rows"], lines).replace(
            "# Conformance tolerance report", f"# Conformance tolerance report: `{impl}`"))
    (out / "report.md").write_text("\n".join(md))
    (out / "report.json").write_text(json.dumps({impl: data for impl, data, _, _ in sections}, indent=1) + "\n")
    print(f"report written to {out / 'report.md'} and {out / 'report.json'}")
    board = leaderboard.write(out, [{"impl": impl, "header": data["header"], "rows": data["rows"], "exit_status": rc,
                                     "wall_s": secs} for impl, data, rc, secs in sections],
                              plots=not args.no_plots)
    print(f"leaderboard written to {out / 'leaderboard.md'} and {out / 'leaderboard.json'}")
    print(leaderboard.render_summary(board))
    if not args.no_plots:
        try:
            from tools import plots
        except ImportError as e:  # matplotlib is optional
            print(f"plots skipped: {e} (pip install matplotlib)")
        else:
            for impl in impls:
                paths = plots.plot_all(impl, out / "plots" / _slug(impl))
                print(f"{len(paths)} plots written to {out / 'plots' / _slug(impl)}")
    return status


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
