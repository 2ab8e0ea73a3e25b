"""Faults of the golden store's writers, with real processes: nothing lost, nothing stale.

Each scenario works on a copy of a small store (the ``relu`` and ``relu6`` cases,
made by the real tool in a tmp ``--root``) and runs ``python -m tools.regen_golden``
in subprocesses: two regenerations at once (the store's lock serializes them),
a regeneration killed with SIGKILL at each step of its commit (the test hook
``GOLDEN_FAULT_AT`` of ``tools/golden.py``), a write that fails half way (a file
size limit standing in for a full disk), a store that cannot be written.  After
each, the store verifies, or ``--recover`` brings it back to a verified state,
and the result is all of one set of files or all of the other.  The scenarios
that run several regenerations are marked ``slow`` (left out of ``--quick``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools import golden, regen_golden

ROOT = Path(__file__).resolve().parent.parent
REGEN = [sys.executable, "-m", "tools.regen_golden"]
CASES = ("relu", "relu6")


def _files(root) -> dict:
    """Every file of the store but its dot-entries (lock, staging), relative path -> bytes."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)}


def _regen(root, *args, env=None, **kw):
    return subprocess.run([*REGEN, "--root", str(root), "--jobs", "1", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, **kw)


def _spoil(root, case_ids=CASES):
    """Commit a store whose ``case_ids`` files hold a wrong value (valid, but stale): what a
    regeneration of those cases must replace."""
    store = golden.Store(root)
    files = {rel: store.read_bytes(rel) for rel in store.manifest["files"]}
    for cid in case_ids:
        for dtype in ("float32", "bfloat16", "float16", "float64"):
            arrays = store.load_case("activations", dtype, cid)
            arrays["rounded"] = arrays["rounded"].copy()
            arrays["rounded"][5] = 123.0
            files[golden.case_path("activations", dtype, cid)] = golden.Store.encode_arrays(arrays)
    store.commit(files, {k: v for k, v in store.manifest.items() if k != "files"})
    return _files(root)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden") / "g"
    assert regen_golden.main(["--root", str(root), "--only", "relu*", "--jobs", "1"]) == 0
    return root


@pytest.fixture
def stale(pristine, tmp_path):
    """A copy of the small store with stale relu and relu6 float32 files; returns (root, its files)."""
    root = tmp_path / "g"
    shutil.copytree(pristine, root)
    return root, _spoil(root)


class _Holder:
    """Another process holding the store's lock until ``release()``."""

    CODE = ("import sys\nfrom tools import golden\n"
            "with golden.Store(sys.argv[1]).lock():\n    print('locked', flush=True)\n    sys.stdin.read()\n")

    def __init__(self, root):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE, str(root)], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0
        self.proc.stdout.close()


# ---- two regenerations at once -------------------------------------------------------

@pytest.mark.slow
def test_concurrent_regenerations_lose_nothing(stale, pristine):
    """Two regenerations of different cases of one store, started together: the second waits
    for the first (its message names the holder) and then works on its result, so neither
    regeneration is undone by the other; the store verifies and equals a fresh one."""
    root, _ = stale
    holder = _Holder(root)  # both runs start while the store is locked: they cannot miss each other
    runs = [subprocess.Popen([*REGEN, "--root", str(root), "--jobs", "1", "--only", cid], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True) for cid in CASES]
    first = [p.stderr.readline() for p in runs]  # each says it waits before it reads or computes anything
    holder.release()
    assert all(f"waiting for the lock held by pid {holder.proc.pid}" in line for line in first), first
    for p in runs:
        err = p.communicate(timeout=300)[1]
        assert p.returncode == 0, err
    assert golden.Store(root).verify() == []
    assert _files(root) == _files(pristine), "a regeneration was lost: a stale file is back"
    assert not (root / golden.STAGING).exists()


def test_lock_timeout_refuses_with_the_holder(stale):
    root, before = stale
    holder = _Holder(root)
    try:
        r = _regen(root, "--only", "relu", "--lock-timeout", "0.5")
    finally:
        holder.release()
    assert r.returncode == 1
    assert f"waiting for the lock held by pid {holder.proc.pid}" in r.stderr
    assert "gave up after 0.5 s" in r.stderr and "--lock-timeout SECONDS" in r.stderr, r.stderr
    assert "[  1/" not in r.stderr, "it computed before it had the lock"
    assert _files(root) == before


# ---- a kill at each step of the commit ------------------------------------------------

AFTER_COMMIT_POINT = {"staged": False, "marked": True, "moving": True, "manifest": True, "cleaned": True}


def test_every_step_is_covered():
    assert set(AFTER_COMMIT_POINT) == set(golden.FAULT_STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("step", golden.FAULT_STEPS)
def test_kill_during_commit_then_recover(stale, pristine, step):
    """SIGKILL at each step of a regeneration's commit; ``--recover`` then gives a verified store
    holding all of the new set (killed after the commit point) or all of the old one."""
    root, before = stale
    r = _regen(root, "--only", "relu*", env={golden.FAULT_ENV: step})
    assert r.returncode == -9, r.stderr
    if AFTER_COMMIT_POINT[step] and step != "cleaned":
        with pytest.raises(golden.GoldenError, match=rf"--root {root} --recover"):
            golden.Store(root).load_case("activations", "float32", "relu")
    rec = _regen(root, "--recover")
    assert rec.returncode == 0, rec.stderr
    assert golden.Store(root).verify() == []
    assert _files(root) == (_files(pristine) if AFTER_COMMIT_POINT[step] else before)
    assert not (root / golden.STAGING).exists()


_COMMIT = """import json, sys
from tools import golden
root, drop = sys.argv[1], sys.argv[2]
s = golden.Store(root)
files = {rel: s.read_bytes(rel) for rel in s.manifest['files'] if rel != drop}
rel = golden.case_path('activations', 'float16', 'relu')
files[rel] = golden.Store.encode_arrays({'rounded': golden.np.ones(3, golden.np.float16),
                                         'residual': golden.np.zeros(3, golden.np.int16)})
s.commit(files, {k: v for k, v in s.manifest.items() if k != 'files'})
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", golden.FAULT_STEPS)
def test_kill_during_commit_that_drops_a_file(stale, step, tmp_path):
    """A commit that changes one file and drops another, killed at each step: all or nothing."""
    root, before = stale
    drop = golden.case_path("activations", "bfloat16", "relu6")
    done = tmp_path / "done"
    shutil.copytree(root, done)
    assert subprocess.run([sys.executable, "-c", _COMMIT, str(done), drop], cwd=ROOT).returncode == 0
    after = _files(done)
    assert drop not in after and set(after) | {drop} == set(before)
    r = subprocess.run([sys.executable, "-c", _COMMIT, str(root), drop], cwd=ROOT, capture_output=True,
                       env={**os.environ, golden.FAULT_ENV: step})
    assert r.returncode == -9, r.stderr
    rec = _regen(root, "--recover")
    assert rec.returncode == 0, rec.stderr
    assert golden.Store(root).verify() == []
    assert _files(root) == (after if AFTER_COMMIT_POINT[step] else before)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["marked", "moving"])
def test_recover_without_the_staged_manifest(stale, pristine, step):
    """Killed after the commit point, then ``.staging/MANIFEST.json`` lost: --recover cannot
    complete the moves.  Killed before any move, the old set is intact and stays; killed after
    one, the store fails verification and --recover regenerates the cases it holds."""
    root, before = stale
    assert _regen(root, "--only", "relu*", env={golden.FAULT_ENV: step}).returncode == -9
    (root / golden.STAGING / golden.MANIFEST).unlink()
    rec = _regen(root, "--recover")
    assert rec.returncode == 0, rec.stderr
    assert golden.Store(root).verify() == []
    assert _files(root) == (before if step == "marked" else _files(pristine))
    assert ("regenerating the 2 cases it holds" in rec.stderr) == (step == "moving"), rec.stderr


@pytest.mark.slow
def test_recover_never_skips_a_lost_staged_file(stale, pristine):
    """A staged file gone after the commit point: completing the commit would leave a file
    that does not match the new manifest; --recover refuses to skip it and ends verified."""
    root, before = stale
    assert _regen(root, "--only", "relu*", env={golden.FAULT_ENV: "marked"}).returncode == -9
    rel = golden.case_path("activations", "float32", "relu")
    (root / golden.STAGING / rel).unlink()
    rec = _regen(root, "--recover")
    assert rec.returncode == 0, rec.stderr
    assert "could not be completed" in rec.stderr and "is missing" in rec.stderr
    assert golden.Store(root).verify() == []
    assert _files(root) == before  # nothing had moved: the old set, intact


def test_recover_removes_leftover_staging(stale):
    root, before = stale
    assert _regen(root, "--only", "relu", env={golden.FAULT_ENV: "staged"}).returncode == -9
    assert (root / golden.STAGING).exists()
    rec = _regen(root, "--recover")
    assert rec.returncode == 0 and "removed the staging folder" in rec.stderr, rec.stderr
    assert not (root / golden.STAGING).exists() and _files(root) == before


# ---- a write that fails, a store that cannot be written ----------------------------------

_LIMITED = ("import resource, runpy, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))\n"
            "sys.argv[0] = 'regen_golden'\n"
            "runpy.run_module('tools.regen_golden', run_name='__main__', alter_sys=True)\n")


@pytest.mark.slow
def test_failed_write_leaves_the_old_set_and_no_staging(stale):
    """A write of the new set that fails half way (a file size limit: EFBIG, as a full disk
    gives ENOSPC) is a one-line error; the staging folder is removed, the old set intact."""
    root, before = stale
    r = subprocess.run([sys.executable, "-c", _LIMITED, "--root", str(root), "--jobs", "1", "--only", "relu"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "error: writing the new golden set" in r.stderr and "the previous set is unchanged" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (root / golden.STAGING).exists()
    assert _files(root) == before and golden.Store(root).verify() == []


def test_unwritable_store_is_refused_before_computing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = _regen(blocker / "g", "--only", "relu")
    assert r.returncode == 1
    assert f"the golden store {blocker / 'g'} is not writable" in r.stderr and "--root DIR" in r.stderr, r.stderr
    assert "[  1/" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_subfolder_is_refused_before_computing(stale):
    root, _ = stale
    sub = root / "activations" / "float32"
    sub.chmod(0o555)
    try:
        r = _regen(root, "--only", "relu")
    finally:
        sub.chmod(0o755)
    assert r.returncode == 1 and f"folder {sub} is not writable" in r.stderr, r.stderr


# ---- hints name the store ------------------------------------------------------------------

def test_hints_name_the_root_of_a_store_that_is_not_the_default(stale):
    root, _ = stale
    assert golden.command_for(golden.ROOT) == golden.REGEN_COMMAND
    m = json.loads((root / golden.MANIFEST).read_text())
    m["files"][golden.case_path("activations", "float32", "relu")]["sha256"] = "0" * 64
    (root / golden.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(golden.GoldenError, match=rf"Regenerate with: python -m tools.regen_golden --root {root}$"):
        golden.Store(root).load_case("activations", "float32", "relu")
    r = _regen(root, "--only", "relu6")
    assert r.returncode == 1 and f"python -m tools.regen_golden --root {root} --recover" in r.stderr, r.stderr
