"""The main job (``python -m tools.report``) run as a user runs it: twice in a row, from another
directory, and once with an implementation that cannot be imported.

Regression test: the second run in the same checkout used to fail with "unrecognized arguments:
--impl" (``--report-dir DIR`` went to pytest as two tokens, and an existing DIR was taken for a
test path) and then published the first run's rows as if they were new.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUBSET = ["--", "-k", "relu6", "tests/test_special_values.py"]

pytestmark = pytest.mark.slow


def _copy_repo(dst: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", ".jax_cache", "report", "__pycache__", "*.egg-info",
                                    ".pytest_cache", ".hypothesis", ".staging")
    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def _run(repo: Path, cwd: Path, out: Path, *extra: str):
    env = dict(os.environ, PYTHONPATH=str(repo))
    env.pop("CONFORMANCE_RUN_ID", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    p = subprocess.run([sys.executable, "-m", "tools.report", "--out", str(out), "--no-plots", *extra, *SUBSET],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return p


def _run_id(out: Path) -> str:
    return json.loads((out / "report.json").read_text())["impl.functional"]["header"]["run id"]


def test_main_job_twice_in_a_row_then_a_failed_run_keeps_the_report(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / "raises_on_import.py").write_text("raise RuntimeError('broken on purpose')\n")
    out = tmp_path / "out"  # outside the repository, and existing from the second run on

    ids = []
    for i in range(2):
        p = _run(repo, elsewhere if i else repo, out)
        assert p.returncode == 0, f"run {i + 1}: exit status {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        first_line = p.stdout.splitlines()[0]
        assert first_line.startswith("run "), first_line
        ids.append(_run_id(out))
        assert ids[-1] == first_line.removeprefix("run ").strip(), (ids[-1], first_line)
        assert f"run id: {ids[-1]}" in (out / "report.md").read_text()
    assert ids[0] != ids[1], "the second report must come from the second run"

    before = {f: (out / f).read_bytes() for f in ("report.md", "report.json", "leaderboard.md", "leaderboard.json")}
    p = _run(repo, elsewhere, out, "--impl", "raises_on_import")
    assert p.returncode not in (0, 1), p.stdout[-2000:]
    assert "the suite did not run for raises_on_import" in p.stderr, p.stderr[-2000:]
    assert "broken on purpose" in p.stdout + p.stderr, "the usage error must quote the import error"
    after = {f: (out / f).read_bytes() for f in before}
    assert after == before, "a failed run must leave the previous report untouched"
    assert not list(out.glob(".run-*")), "a failed run must not leave its staging folder behind"
