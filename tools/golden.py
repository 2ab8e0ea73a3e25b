"""The golden store: reading and writing ``golden/``, verified, atomic, pickle-free.

Layout::

    golden/MANIFEST.json              sha256 and size of every file, versions, command
    golden/inputs/<dtype>.npy         the input set of each dtype (shared by all cases)
    golden/<family>/<dtype>/<case>.npz  per case and dtype: ``rounded``, ``residual``

* Loading never executes code: ``np.load(..., allow_pickle=False)`` only, and
  every file is checked against the manifest's sha256 before it is parsed.
* A missing, truncated, corrupted, renamed or extra file, or an edited
  manifest, raises ``GoldenError`` naming the file and the command that
  regenerates it.
* Case ids become file names through ``case_filename``, which allows only
  ``[A-Za-z0-9_.=-]``; any path is resolved and must stay inside the root.
* Writes go to ``<root>/.staging`` first (the complete new set and its
  manifest); only then is a ``COMMITTING`` marker written and the files moved
  into place with ``os.replace``, the manifest last.  A regeneration killed
  before that point (all the computing) leaves the previous set intact and
  valid.  One killed during the moves (milliseconds) leaves the marker: the
  store then refuses to load, naming the command, and the next run of the
  tool (or ``--recover``) completes the moves from the staged copy.  ``.npz`` files are written as
  deterministic zip archives (fixed timestamps, fixed member order), so the
  same data gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np

import ml_dtypes

__all__ = [
    "GoldenError", "ROOT", "REGEN_COMMAND", "case_filename", "case_path", "inputs_path",
    "npz_bytes", "npy_bytes", "Store", "sha256", "MANIFEST",
]

ROOT = Path(__file__).resolve().parent.parent / "golden"
REGEN_COMMAND = "python -m tools.regen_golden"
MANIFEST = "MANIFEST.json"
_SAFE = re.compile(r"^[A-Za-z0-9_.=\-]+$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32, "float64": np.float64}


class GoldenError(RuntimeError):
    """The golden data is missing, damaged or inconsistent."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def case_filename(case_id: str) -> str:
    """``leaky_relu[negative_slope=0.1]`` -> ``leaky_relu--negative_slope=0.1.npz``;
    ``grad:relu`` -> ``grad.relu.npz``."""
    name = case_id.replace("[", "--").replace("]", "").replace(",", "--").replace(":", ".")
    if not _SAFE.match(name) or name in (".", "..") or name.startswith("."):
        raise GoldenError(f"case id {case_id!r} cannot be a golden file name (allowed: letters, digits, _ . = - [ ] , :)")
    return name + ".npz"


def case_path(family: str, dtype: str, case_id: str) -> str:
    for part in (family, dtype):
        if not _SAFE.match(part) or part.startswith("."):
            raise GoldenError(f"{part!r} cannot be a golden folder name")
    return f"{family}/{dtype}/{case_filename(case_id)}"


def inputs_path(dtype: str) -> str:
    if dtype not in _DTYPES:
        raise GoldenError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return f"inputs/{dtype}.npy"


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: dict) -> bytes:
    """A deterministic ``.npz``: members in the given order, fixed timestamps, deflate."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy_bytes(arr), compresslevel=9)
    return buf.getvalue()


def _storage_view(arr):
    """bfloat16 is stored as its uint16 bit pattern (a plain .npy has no bfloat16)."""
    if arr.dtype == ml_dtypes.bfloat16:
        return arr.view(np.uint16)
    return arr


def _from_storage(arr, dtype):
    if dtype == "bfloat16":
        return arr.view(ml_dtypes.bfloat16)
    return arr


class Store:
    """A verified view of a golden folder (``ROOT`` by default)."""

    def __init__(self, root: Path | str = ROOT):
        self.root = Path(root).resolve()
        self._manifest = None

    # -- reading -----------------------------------------------------------------
    def _err(self, msg):
        return GoldenError(f"{msg}\nRegenerate with: {REGEN_COMMAND}")

    def _resolve(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root not in p.parents:
            raise GoldenError(f"golden path {rel!r} escapes {self.root}")
        return p

    @property
    def interrupted(self) -> bool:
        return (self.root / ".staging" / "COMMITTING").exists()

    @property
    def manifest(self) -> dict:
        if self.interrupted:
            raise GoldenError(f"golden data in {self.root} was being replaced when a regeneration stopped; "
                              f"complete it with: {REGEN_COMMAND} --recover")
        if self._manifest is None:
            path = self.root / MANIFEST
            if not path.exists():
                raise self._err(f"golden manifest {path} is missing")
            try:
                m = json.loads(path.read_text())
                files = m["files"]
                assert isinstance(files, dict) and all(
                    isinstance(v, dict) and "sha256" in v and "bytes" in v for v in files.values())
            except (ValueError, KeyError, AssertionError) as e:
                raise self._err(f"golden manifest {path} is not a valid manifest ({e})") from None
            self._manifest = m
        return self._manifest

    def read_bytes(self, rel: str) -> bytes:
        entry = self.manifest["files"].get(rel)
        if entry is None:
            raise self._err(f"golden file {rel} is not listed in {self.root / MANIFEST}")
        path = self._resolve(rel)
        if not path.exists():
            raise self._err(f"golden file {path} is missing")
        data = path.read_bytes()
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            raise self._err(
                f"golden file {path} does not match the manifest ({len(data)} bytes, sha256 {sha256(data)[:16]}...; "
                f"expected {entry['bytes']} bytes, sha256 {entry['sha256'][:16]}...): corrupted, truncated or edited"
            )
        return data

    def load_inputs(self, dtype: str) -> np.ndarray:
        arr = np.load(io.BytesIO(self.read_bytes(inputs_path(dtype))), allow_pickle=False)
        return _from_storage(arr, dtype)

    def load_case(self, family: str, dtype: str, case_id: str) -> dict:
        rel = case_path(family, dtype, case_id)
        with np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        for k in out:
            if k == "rounded" or k.endswith("_bf16"):
                out[k] = _from_storage(out[k], dtype if k == "rounded" else "bfloat16")
        return out

    def has_case(self, family: str, dtype: str, case_id: str) -> bool:
        return case_path(family, dtype, case_id) in self.manifest["files"]

    def verify(self) -> list[str]:
        """Every problem with the folder, as messages (empty list: all good)."""
        problems = []
        try:
            listed = set(self.manifest["files"])
        except GoldenError as e:
            return [str(e)]
        for rel in sorted(listed):
            try:
                self.read_bytes(rel)
            except GoldenError as e:
                problems.append(str(e).split("\n")[0])
        present = {
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        }
        for rel in sorted(present - listed - {MANIFEST, "README.md"}):
            problems.append(f"golden file {self.root / rel} is not listed in the manifest (stray or renamed file)")
        return problems

    # -- writing -----------------------------------------------------------------
    @staticmethod
    def encode_arrays(arrays: dict) -> bytes:
        """A case file: named arrays (bfloat16 ones stored as uint16 bit patterns and
        given back as bfloat16 by ``load_case`` when their name is ``rounded`` or
        ends in ``_bf16``)."""
        return npz_bytes({k: _storage_view(np.asarray(v)) for k, v in arrays.items()})

    @staticmethod
    def encode_inputs(x: np.ndarray) -> bytes:
        return npy_bytes(_storage_view(x))

    def commit(self, files: dict[str, bytes], meta: dict) -> None:
        """Replace the whole set by ``files`` (relative path -> bytes), atomically per file,
        manifest last; files of the old set that are not in the new one are removed."""
        staging = self.root / ".staging"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        manifest = dict(meta)
        manifest["files"] = {rel: {"sha256": sha256(b), "bytes": len(b)} for rel, b in sorted(files.items())}
        for rel, data in files.items():
            self._resolve(rel)  # refuses escaping paths before anything is written
            p = staging / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        old = set(self.manifest["files"]) if (self.root / MANIFEST).exists() else set()
        (staging / "OLD_FILES").write_text("\n".join(sorted(old - set(files))))
        (staging / "COMMITTING").write_text("")
        self._finish_commit()

    def recover(self) -> bool:
        """Complete a commit that was interrupted during its moves; True if there was one."""
        if not self.interrupted:
            return False
        self._finish_commit()
        return True

    def _finish_commit(self):
        staging = self.root / ".staging"
        staged = json.loads((staging / MANIFEST).read_text())
        for rel in staged["files"]:
            src, dest = staging / rel, self._resolve(rel)
            if src.exists():  # not yet moved
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
        os.replace(staging / MANIFEST, self.root / MANIFEST)
        for rel in filter(None, (staging / "OLD_FILES").read_text().split("\n")):
            p = self._resolve(rel)
            if p.exists():
                p.unlink()
        shutil.rmtree(staging, ignore_errors=True)
        self._manifest = None
