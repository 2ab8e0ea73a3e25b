"""Mutation check of the conformance suite: does it catch deliberately broken implementations?

Usage::

    python -m tools.mutate                 # every variant of tools/mutants.py
    python -m tools.mutate --only gelu_one_plus_erf,relu_grad_at_zero --jobs 2
    python -m tools.mutate --list

For each variant it runs the suite, targeted, against
``--impl tools.mutants:VARIANTS.<name> --impl-tests-only``: the conformance
test files with ``-k`` on the op it breaks (other ops whose names
contain it excluded) and ``-x`` (stop at the first failure).  The variant is
caught when pytest fails (exit status 1); the first failing test is the one
that caught it.  A variant that passes is MISSED: a hole in the suite, closed
by adding a test, never by removing the variant.

Writes ``mutation.md`` and ``mutation.json`` to ``--out`` (default
``report/mutation``).  Exit status: 0 when every variant is caught, 1 when
one is missed or its run errs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "TEST_FILES", "k_expression", "run_one"]

ROOT = Path(__file__).resolve().parent.parent

# the conformance tests that judge an implementation's ops, cheapest and most telling first;
# files that do not exist (yet) are left out
TEST_FILES = [
    "tests/test_contract.py",
    "tests/test_special_values.py",
    "tests/test_activations_golden.py",
    "tests/test_parameters.py",
    "tests/test_activations_api.py",
    "tests/test_activations_live.py",
    "tests/test_properties.py",
    "tests/test_devices.py",
    "tests/test_derivative_conventions.py",
]
# test files added by other families/features are picked up by pattern
TEST_PATTERNS = ["tests/test_*grad*.py", "tests/test_reductions*.py", "tests/test_norm*.py", "tests/test_softmax*.py",
                 "tests/test_layers*.py"]


def test_files():
    files = [f for f in TEST_FILES if (ROOT / f).exists()]
    for pat in TEST_PATTERNS:
        files += sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(pat) if str(p.relative_to(ROOT)) not in files)
    return files


def k_expression(op: str, all_ops) -> str:
    """``-k`` selecting tests that name ``op`` and not another op whose name contains it."""
    others = sorted(o for o in all_ops if o != op and op in o)
    return op + "".join(f" and not {o}" for o in others)


def _contract_ops():
    from tools.mutants import _PUBLIC
    return list(_PUBLIC)


def run_one(m, files, all_ops, timeout=1800):
    spec = f"tools.mutants:VARIANTS.{m.name}"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "-n", "0",
           "--impl", spec, "--impl-tests-only", *files, "-k", k_expression(m.op, all_ops)]
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"timed out after {timeout} s\n{e.stdout or ''}"
    secs = time.perf_counter() - t
    failed = re.findall(r"^FAILED (.+?)(?: - .*)?$", out, re.M)
    verdict = {1: "caught", 0: "MISSED"}.get(rc, "ERROR")
    summary = re.findall(r"^=* ?(\d+ (?:passed|failed).*?) ?=*$", out, re.M)
    reason = ""
    if failed:
        m2 = re.search(r"^E\s+(?:AssertionError: )?(.+)$", out, re.M)
        reason = m2.group(1).strip()[:300] if m2 else ""
    return {"name": m.name, "op": m.op, "bug": m.bug, "verdict": verdict, "exit_status": rc,
            "caught_by": failed[0] if failed else "", "message": reason,
            "pytest_summary": summary[-1] if summary else "", "seconds": round(secs, 1),
            "command": " ".join(cmd[2:]) if rc != 1 else "",
            "output_tail": out[-3000:] if verdict != "caught" else ""}


def render_markdown(results, files):
    n_caught = sum(r["verdict"] == "caught" for r in results)
    out = ["# Mutation check of the conformance suite", "",
           f"{n_caught} of {len(results)} variants caught.  Tests run: {', '.join(files)} "
           "(`-x`, `-k` on the op the variant breaks).", "",
           "| variant | op | bug | verdict | caught by | first failure | s |", "|---|---|---|---|---|---|---|"]
    for r in results:
        msg = r["message"].replace("|", "\\|")
        out.append(f"| `{r['name']}` | `{r['op']}` | {r['bug'].replace('|', '/')} | {r['verdict']} | "
                   f"`{r['caught_by']}` | {msg[:160]} | {r['seconds']:.0f} |")
    missed = [r for r in results if r["verdict"] != "caught"]
    for r in missed:
        out += ["", f"## {r['verdict']}: `{r['name']}`", "", "```", r["output_tail"].strip()[-2000:], "```"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    from tools import mutants

    ap = argparse.ArgumentParser(prog="python -m tools.mutate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the variants and exit")
    ap.add_argument("--jobs", type=int, default=1, help="variants run at once (default 1)")
    ap.add_argument("--out", default="report/mutation", help="output folder (default report/mutation)")
    args = ap.parse_args(argv)
    if args.list:
        for m in mutants.MUTANTS:
            print(f"{m.name:34s} {m.op:12s} {m.bug}")
        return 0
    chosen = mutants.MUTANTS
    if args.only:
        try:
            chosen = [mutants.by_name(n.strip()) for n in args.only.split(",") if n.strip()]
        except KeyError as e:
            ap.error(str(e.args[0]))
    files, ops = test_files(), _contract_ops()
    results = [None] * len(chosen)
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futs = {pool.submit(run_one, m, files, ops): i for i, m in enumerate(chosen)}
        for f in concurrent.futures.as_completed(futs):
            r = results[futs[f]] = f.result()
            print(f"{r['verdict']:7s} {r['name']:34s} {r['seconds']:6.1f} s  {r['caught_by']}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mutation.json").write_text(json.dumps({"test_files": files, "results": results}, indent=1) + "\n")
    (out / "mutation.md").write_text(render_markdown(results, files))
    n_caught = sum(r["verdict"] == "caught" for r in results)
    print(f"{n_caught} of {len(results)} variants caught; written to {out / 'mutation.md'}")
    return 0 if n_caught == len(results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
