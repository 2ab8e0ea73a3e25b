"""The main job: run the conformance suite and write the tolerance report and the leaderboard.

Usage::

    python -m tools.report                      # impl.functional, report in ./report
    python -m tools.report --out DIR --impl MODULE [--impl MODULE2 ...] [-- extra pytest args]
    python -m tools.report --peers              # impl.functional and every adapter in adapters/
    python -m tools.report --impl MODULE --profile faithful --baseline FILE   # see below

``MODULE`` is anything ``pytest --impl`` accepts (``package.module`` or
``package.module:ATTRIBUTE``).  ``--profile`` (``strict``, ``faithful``, ``torch``:
``tools/profiles.py``), ``--record-baseline FILE`` and ``--baseline FILE``
(``tools/baseline.py``) go to pytest; with several implementations a baseline file is per
implementation, so those two take one ``--impl``.

``DIR/report.md`` opens with the verdict of each implementation (a matrix of ops x dtypes, ✓ or ✗
with the worst figure, the failures grouped by root cause with a command that reproduces each),
then the detail tables; ``DIR/report.html`` is the same report as one self-contained page with
the plots inline.

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

Each run has an id (printed, and in every report header as ``run id``); pytest
writes into ``DIR/.run-<id>/`` and the report is published (folders and files
moved into place by rename) only when every suite ran (pytest exit status 0 or
1) and wrote a report carrying this run's id.  When pytest fails before running
tests (usage error, collection error, an ``--impl`` that cannot be imported),
the job says so in one line, exits non-zero and leaves the previous report in
``DIR`` untouched.

Exit status: 0 when every suite passed, else the first non-zero pytest status.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "PEERS"]

PEERS = ["impl.functional", "adapters.jax_nn", "adapters.flax_nnx", "adapters.equinox_nn",
         "adapters.brainstate_nn", "adapters.torch_functional"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


REPO = Path(__file__).resolve().parent.parent

# pytest's exit statuses after which its report rows are a real run's: 0 (all passed), 1 (some
# tests failed).  Everything else (2 interrupted or collection errors, 3 internal error, 4 usage
# error, 5 no tests collected) means the suite did not run, and nothing of it is published.
RAN = (0, 1)
_PYTEST_STATUS = {2: "interrupted or collection errors", 3: "internal error", 4: "usage error",
                  5: "no tests collected"}


def run_suite(impl: str, out: Path, extra: list[str], run_id: str) -> tuple[int, float]:
    """Run the suite for ``impl`` with its report written to ``out``; ``(exit status, seconds)``.

    Every option goes to pytest as ONE token (``--report-dir=DIR``): as two tokens, an existing
    ``DIR`` is taken for a test path, pytest's rootdir moves there and ``tests/conftest.py``,
    which defines the options, is never loaded.  pytest runs in the repository root with
    ``--rootdir`` set, so the run is the same from any working directory."""
    # the project's own checks (references, golden store, tools) do not depend on the implementation
    # under test: they run once, with impl.functional, not again for every other implementation
    only = [] if impl == "impl.functional" else ["--impl-tests-only"]
    cmd = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
           f"--rootdir={REPO}", f"--impl={impl}", f"--report-dir={out}"] + only + extra
    print(f"$ {' '.join(cmd)}", flush=True)
    env = dict(os.environ, CONFORMANCE_RUN_ID=run_id)
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=REPO, env=env)
    return rc, time.perf_counter() - t


def _read_fresh(report: Path, run_id: str):
    """The report written by THIS run (its header carries ``run_id``), else None."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("header", {}).get("run id") == run_id else None


def main(argv=None, prog: str = "python -m tools.report") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--impl", action="append",
                    help="module (or module:ATTRIBUTE) under test (repeatable; default impl.functional)")
    ap.add_argument("--peers", action="store_true",
                    help="test impl.functional and every adapter of adapters/ (needs the [peers] extra)")
    ap.add_argument("--out", default="report", help="output folder (default ./report)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--profile", help="budget profile: strict (default), faithful, torch (tools/profiles.py)")
    ap.add_argument("--record-baseline", metavar="FILE", help="write every test's outcome and figures to FILE")
    ap.add_argument("--baseline", metavar="FILE",
                    help="fail only on what got worse than FILE (tools/baseline.py); list improvements")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    impls = (args.impl or []) + ([p for p in PEERS if p not in (args.impl or [])] if args.peers else [])
    impls = impls or ["impl.functional"]
    if (args.baseline or args.record_baseline) and len(impls) > 1:
        ap.error("--baseline and --record-baseline take one implementation (a baseline file is per "
                 f"implementation); got {len(impls)}: {', '.join(impls)}")
    passed = [f"--{k.replace('_', '-')}={os.path.abspath(v) if k != 'profile' else v}"
              for k, v in (("profile", args.profile), ("record_baseline", args.record_baseline),
                           ("baseline", args.baseline)) if v]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_id = f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%S}Z-{secrets.token_hex(4)}"
    staged = out / f".run-{run_id}"
    print(f"run {run_id}", flush=True)
    status, sections, failed = 0, [], []
    for impl in impls:
        d = staged / _slug(impl)
        rc, secs = run_suite(impl, d, passed + args.pytest_args, run_id)
        status = status or rc
        data = _read_fresh(d / "report.json", run_id) if rc in RAN else None
        if data is None:
            why = _PYTEST_STATUS.get(rc, "no report from this run")
            failed.append(f"{impl}: pytest exit status {rc} ({why})")
            continue
        data["header"]["suite wall time s"] = round(secs, 1)
        data["header"]["pytest exit status"] = rc
        sections.append((impl, data, rc, secs))
    if failed:
        shutil.rmtree(staged, ignore_errors=True)
        for f in failed:
            print(f"tools.report: the suite did not run for {f}; the previous report in {out} is left "
                  "as it was (nothing published)", file=sys.stderr)
        return status or 2
    from tools import html_report, leaderboard, reporting

    md = "\n".join(reporting.render_markdown(data["rows"], [f"{k}: {v}" for k, v in data["header"].items()],
                                             title=f"Conformance report: `{impl}`",
                                             sections=data.get("sections"))
                   for impl, data, _, _ in sections)
    # the staging folder is this run's own: plain writes, published below by rename
    (staged / "report.md").write_text(md)
    (staged / "report.json").write_text(json.dumps({impl: data for impl, data, _, _ in sections}, indent=1) + "\n")
    board = leaderboard.write(staged, [{"impl": impl, "header": data["header"], "rows": data["rows"],
                                        "exit_status": rc, "wall_s": secs} for impl, data, rc, secs in sections],
                              plots=not args.no_plots)
    plot_dirs = []
    if not args.no_plots:
        try:
            from tools import plots
        except ImportError as e:  # matplotlib is optional
            print(f"plots skipped: {e} (pip install matplotlib, or the project's [plots] extra)")
        else:
            for impl in impls:
                paths = plots.plot_all(impl, staged / "plots" / _slug(impl))
                plot_dirs.append(_slug(impl))
                print(f"{len(paths)} plots written for {impl}")
    images = {f"{impl}: ulp error against the input": sorted((staged / "plots" / _slug(impl)).glob("*.png"))
              for impl in impls}
    images["leaderboard"] = sorted(staged.glob("leaderboard*.png"))
    html_report.write(staged / "report.html", md, images)  # one page, the plots inline
    # publish: per-implementation folders and plots first, the summary files last, each by rename
    for impl in impls:
        _publish_one(staged / _slug(impl), out / _slug(impl))
    for name in plot_dirs:
        (out / "plots").mkdir(exist_ok=True)
        _publish_one(staged / "plots" / name, out / "plots" / name)
    for f in sorted(staged.glob("leaderboard*")) + [staged / name for name in ("report.json", "report.html",
                                                                               "report.md")]:
        os.replace(f, out / f.name)
    shutil.rmtree(staged, ignore_errors=True)
    print(f"report written to {out / 'report.md'}, {out / 'report.html'} and {out / 'report.json'} (run {run_id})")
    print(f"leaderboard written to {out / 'leaderboard.md'} and {out / 'leaderboard.json'}")
    print(leaderboard.render_summary(board))
    return status


def _publish_one(src: Path, dst: Path) -> None:
    """Put the folder ``src`` in place of ``dst``; the old ``dst`` is removed only once ``src`` is in."""
    if not src.exists():
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
