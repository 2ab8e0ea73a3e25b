"""The golden store cannot rot silently: corrupted copies are caught, interruptions are safe.

Every scenario works on a copy of a small golden folder (made by the real
tool) and checks that the error names the file and the regeneration command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools import golden, regen_golden

ROOT = Path(__file__).resolve().parent.parent
CASE = ("activations", "float32", "relu6")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden") / "g"
    assert regen_golden.main(["--root", str(root), "--only", "relu6", "--jobs", "1"]) == 0
    return root


@pytest.fixture
def copy(pristine, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(pristine, dst)
    return dst


def _case_file(root):
    return root / golden.case_path(*CASE)


def _expect(root, match):
    with pytest.raises(golden.GoldenError, match=match) as e:
        golden.Store(root).load_case(*CASE)
    assert "python -m tools.regen_golden" in str(e.value), "the error must name the regeneration command"


def test_pristine_copy_loads(copy):
    assert golden.Store(copy).verify() == []
    assert golden.Store(copy).load_case(*CASE)["rounded"].size > 100_000


def test_flipped_bit(copy):
    p = _case_file(copy)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))
    _expect(copy, r"relu6\.npz does not match the manifest")


def test_truncated(copy):
    p = _case_file(copy)
    p.write_bytes(p.read_bytes()[:-100])
    _expect(copy, r"relu6\.npz does not match the manifest \(\d+ bytes")


def test_deleted(copy):
    _case_file(copy).unlink()
    _expect(copy, r"relu6\.npz is missing")


def test_renamed(copy):
    p = _case_file(copy)
    p.rename(p.with_name("relu7.npz"))
    _expect(copy, r"relu6\.npz is missing")
    assert any("relu7.npz is not listed in the manifest" in m for m in golden.Store(copy).verify())


def test_stray_file(copy):
    (copy / "activations" / "float32" / "extra.npz").write_bytes(b"PK")
    problems = golden.Store(copy).verify()
    assert len(problems) == 1 and "extra.npz is not listed in the manifest" in problems[0]


def test_edited_manifest_hash(copy):
    m = json.loads((copy / "MANIFEST.json").read_text())
    rel = golden.case_path(*CASE)
    m["files"][rel]["sha256"] = "0" * 64
    (copy / "MANIFEST.json").write_text(json.dumps(m))
    _expect(copy, r"relu6\.npz does not match the manifest")


def test_manifest_entry_removed(copy):
    m = json.loads((copy / "MANIFEST.json").read_text())
    del m["files"][golden.case_path(*CASE)]
    (copy / "MANIFEST.json").write_text(json.dumps(m))
    _expect(copy, r"relu6\.npz is not listed in")


def test_manifest_not_json(copy):
    (copy / "MANIFEST.json").write_text("{not json")
    _expect(copy, r"is not a valid manifest")


def test_manifest_missing(copy):
    (copy / "MANIFEST.json").unlink()
    _expect(copy, r"manifest .* is missing")


def test_pickle_is_never_loaded(copy):
    """A case file replaced by a pickled object array fails the hash check; and even with a
    matching manifest entry numpy refuses it (allow_pickle=False)."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    rel = golden.case_path(*CASE)
    payload = golden.npz_bytes({"rounded": np.zeros(1)})[:0] + buf.getvalue()
    (copy / rel).write_bytes(payload)
    _expect(copy, r"does not match the manifest")
    m = json.loads((copy / "MANIFEST.json").read_text())
    m["files"][rel] = {"sha256": golden.sha256(payload), "bytes": len(payload)}
    (copy / "MANIFEST.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="allow_pickle"):
        golden.Store(copy).load_case(*CASE)


@pytest.mark.slow
def test_kill_during_regeneration_leaves_previous_data(copy):
    """SIGKILL while the tool computes: the previous golden data is intact and valid."""
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != golden.LOCK}
    proc = subprocess.Popen([sys.executable, "-m", "tools.regen_golden", "--root", str(copy), "--jobs", "1",
                             "--only", "gelu*"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    # wait for the first progress line: it is computing, nothing committed yet
    line = proc.stderr.readline()
    assert line.startswith("["), line
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    # the data, not the lock file (it names the killed holder) nor the staging folder
    after = {p: p.read_bytes() for p in copy.rglob("*")
             if p.is_file() and p.name != golden.LOCK and golden.STAGING not in p.parts}
    assert after == before
    assert golden.Store(copy).verify() == []


def test_interrupted_commit_is_refused_then_recovered(copy, monkeypatch):
    """A stop during the file moves leaves a marker: loading refuses, --recover completes it."""
    store = golden.Store(copy)
    files = {rel: store.read_bytes(rel) for rel in store.manifest["files"]}
    rel = golden.case_path(*CASE)
    files[rel] = golden.Store.encode_arrays({"rounded": np.ones(3, np.float32), "residual": np.zeros(3, np.int16)})
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped during the moves")
        return real_replace(src, dst)

    monkeypatch.setattr(golden.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        store.commit(files, dict(store.manifest, files=None))
    monkeypatch.setattr(golden.os, "replace", real_replace)
    _expect_interrupted = pytest.raises(golden.GoldenError, match=r"--recover")
    with _expect_interrupted:
        golden.Store(copy).load_case(*CASE)
    assert regen_golden.main(["--root", str(copy), "--recover"]) == 0
    s = golden.Store(copy)
    assert s.verify() == [] and s.load_case(*CASE)["rounded"].size == 3


@pytest.mark.slow
def test_same_command_same_bytes(pristine, tmp_path):
    other = tmp_path / "g2"
    assert regen_golden.main(["--root", str(other), "--only", "relu6", "--jobs", "2"]) == 0
    a = {p.relative_to(pristine): p.read_bytes() for p in pristine.rglob("*") if p.is_file()}
    b = {p.relative_to(other): p.read_bytes() for p in other.rglob("*") if p.is_file()}
    assert a == b


def test_check_names_changed_files(copy, capsys):
    """--check regenerates and names a file whose stored content differs, with its differences."""
    rel = golden.case_path(*CASE)
    store = golden.Store(copy)
    arrays = store.load_case(*CASE)
    arrays["rounded"] = arrays["rounded"].copy()
    arrays["rounded"][5] = np.float32(123.0)
    files = {r: store.read_bytes(r) for r in store.manifest["files"]}
    files[rel] = golden.Store.encode_arrays(arrays)
    store.commit(files, {k: v for k, v in store.manifest.items() if k != "files"})
    assert regen_golden.main(["--root", str(copy), "--only", "relu6", "--jobs", "1", "--check"]) == 1
    err = capsys.readouterr().err
    assert "float32/relu6.npz: 1 rounded values differ" in err and "index 5: 123.0 ->" in err
