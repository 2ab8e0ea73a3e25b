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
* One regeneration at a time: ``Store.lock()`` holds an exclusive
  ``fcntl.flock`` on ``<root>/.lock`` for the whole run (the OS releases it
  when the process ends, however it ends); a second run prints "waiting for
  the lock held by pid N" and waits, or gives up after its timeout with a
  message naming the holder.  ``--check`` takes the lock shared.
* Writes go to ``<root>/.staging`` first (the complete new set and its
  manifest; a write that fails, a full disk for instance, removes the staging
  folder and leaves the previous set as it was); only then is a
  ``COMMITTING`` marker written (the commit point) and the files moved into
  place with ``os.replace``, the manifest last, then the files the new set
  drops are removed and the marker goes before the rest of the staging
  folder.  A regeneration killed before the marker (all the computing) leaves
  the previous set intact and valid.  One killed after it (milliseconds)
  leaves the marker: the store then refuses to load, naming the command, and
  the next run of the tool (or ``--recover``) completes the moves from the
  staged copy; a staged file that is gone is accepted only when its
  destination already holds its bytes, so nothing is skipped silently.
  ``.npz`` files are written as deterministic zip archives (fixed timestamps,
  fixed member order), so the same data gives the same bytes.
* Test hook: with the environment variable ``GOLDEN_FAULT_AT=<step>`` (one
  of ``FAULT_STEPS``) a commit kills its own process with SIGKILL at that
  step; ``tests/test_faults.py`` uses it to check that ``--recover`` gives a
  verified store after a kill at any step.  Unset, it does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

import ml_dtypes

from tools.dtypes import NP_DTYPES

__all__ = [
    "GoldenError", "ROOT", "REGEN_COMMAND", "case_filename", "case_path", "inputs_path",
    "npz_bytes", "npy_bytes", "Store", "sha256", "MANIFEST", "LOCK", "STAGING", "FAULT_ENV", "FAULT_STEPS",
]

ROOT = Path(__file__).resolve().parent.parent / "golden"
REGEN_COMMAND = "python -m tools.regen_golden"
MANIFEST = "MANIFEST.json"
LOCK = ".lock"
STAGING = ".staging"
_MARKER = "COMMITTING"
_OLD_FILES = "OLD_FILES"
FAULT_ENV = "GOLDEN_FAULT_AT"
# the steps of a commit where the test hook can kill the process (module docstring):
# staged: the new set written to .staging, no marker yet; marked: the marker written;
# moving: one file moved; manifest: the manifest moved; cleaned: the dropped files removed
FAULT_STEPS = ("staged", "marked", "moving", "manifest", "cleaned")
_SAFE = re.compile(r"^[A-Za-z0-9_.=\-]+$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class GoldenError(RuntimeError):
    """The golden data is missing, damaged or inconsistent."""


def _fault_point(step: str) -> None:
    """Test hook (module docstring): SIGKILL this process here when ``GOLDEN_FAULT_AT`` names ``step``."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def command_for(root) -> str:
    """The regeneration command for the store at ``root``, with ``--root`` unless it is the default."""
    root = Path(root).resolve()
    return REGEN_COMMAND if root == ROOT else f"{REGEN_COMMAND} --root {shlex.quote(str(root))}"


# locks this process holds: root -> [fd, depth, shared]; lock() is re-entrant within a process
# (flock locks of two descriptors of one process would block each other)
_HELD: dict = {}


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
    if dtype not in NP_DTYPES:
        raise GoldenError(f"unknown dtype {dtype!r}; use one of {sorted(NP_DTYPES)}")
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
        self.command = command_for(self.root)
        self._manifest = None

    # -- reading -----------------------------------------------------------------
    def _err(self, msg):
        return GoldenError(f"{msg}\nRegenerate with: {self.command}")

    def _resolve(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root not in p.parents:
            raise GoldenError(f"golden path {rel!r} escapes {self.root}")
        return p

    @property
    def interrupted(self) -> bool:
        return (self.root / STAGING / _MARKER).exists()

    @property
    def manifest(self) -> dict:
        if self.interrupted:
            raise GoldenError(f"golden data in {self.root} was being replaced when a regeneration stopped; "
                              f"complete it with: {self.command} --recover")
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

    # -- locking -----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None, *, shared: bool = False, log=None):
        """Hold the store's lock (``fcntl.flock`` on ``<root>/.lock``) for the ``with`` block.

        Exclusive by default (a regeneration), ``shared=True`` for readers that
        must not see a commit half done (``--check``).  When another process
        holds it, ``log`` (default: stderr) gets "waiting for the lock held by
        pid N" and the call waits, at most ``timeout`` seconds (``None``:
        without limit), then raises ``GoldenError`` naming the holder.  The lock
        file holds the pid of an exclusive holder, for that message only: the
        lock itself is the OS's, released when the holder ends, even by SIGKILL.
        Re-entrant within a process.
        """
        held = _HELD.get(self.root)
        if held is not None:
            if held[2] and not shared:
                raise GoldenError(f"this process holds a shared lock on {self.root}; it cannot take it exclusive")
            held[1] += 1
            try:
                yield
            finally:
                held[1] -= 1
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd, path, timeout, shared, log or (lambda m: print(m, file=sys.stderr, flush=True)))
            if not shared:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[self.root] = [fd, 1, shared]
            try:
                yield
            finally:
                del _HELD[self.root]
                if not shared:
                    os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _acquire(fd, path, timeout, shared, log):
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        try:
            fcntl.flock(fd, mode)
            return
        except BlockingIOError:
            pass
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        who = f"pid {holder}" if holder.isdigit() else "another process (a --check holds it shared)"
        limit = "without limit" if timeout is None else f"at most {timeout:g} s"
        log(f"waiting for the lock held by {who} on {path} ({limit}) ...")
        t0 = time.monotonic()
        while True:
            time.sleep(0.05)
            try:
                fcntl.flock(fd, mode)
                log(f"got the lock on {path} after {time.monotonic() - t0:.1f} s")
                return
            except BlockingIOError:
                if timeout is not None and time.monotonic() - t0 >= timeout:
                    raise GoldenError(
                        f"the golden store {path.parent} is locked by {who} (another regeneration or check "
                        f"of the same store); gave up after {timeout:g} s. Let it finish and run again, or "
                        f"pass --lock-timeout SECONDS to wait longer") from None

    def check_writable(self) -> None:
        """Raise ``GoldenError`` now, before minutes of computing, unless the store can be written:
        its folder created, a file created in it, and every existing sub-folder writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise GoldenError(f"the golden store {self.root} is not writable ({e.strerror or e}); pass --root DIR "
                              f"with a writable folder, or fix the folder's permissions") from None
        for d in [self.root, *(p for p in self.root.rglob("*") if p.is_dir())]:
            if not os.access(d, os.W_OK | os.X_OK):
                raise GoldenError(f"the golden store's folder {d} is not writable; fix its permissions "
                                  f"(chmod u+w), or pass --root DIR with a writable folder")

    # -- writing -----------------------------------------------------------------
    def commit(self, files: dict[str, bytes], meta: dict) -> None:
        """Replace the whole set by ``files`` (relative path -> bytes), all or nothing
        (module docstring): staged, then moved into place under the lock, manifest
        last; files of the old set that are not in the new one are removed."""
        with self.lock():
            self._commit(files, meta)

    def _commit(self, files, meta):
        staging = self.root / STAGING
        if self.interrupted:
            self._finish_commit()  # an earlier commit first: it is past its commit point
        self.discard_staging()
        self._manifest = None  # read the manifest as it is now, under the lock
        manifest = dict(meta)
        manifest["files"] = {rel: {"sha256": sha256(b), "bytes": len(b)} for rel, b in sorted(files.items())}
        try:
            old = set(self.manifest["files"]) if (self.root / MANIFEST).exists() else set()
        except GoldenError:
            old = set()  # an unreadable manifest: only the files of the new set are known
        try:
            staging.mkdir(parents=True)
            for rel, data in files.items():
                self._resolve(rel)  # refuses escaping paths before anything is written
                p = staging / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            (staging / _OLD_FILES).write_text("\n".join(sorted(old - set(files))))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # a failed run (a full disk) leaves nothing behind
            raise
        _fault_point("staged")
        (staging / _MARKER).write_text("")  # the commit point
        _fault_point("marked")
        self._finish_commit()

    def discard_staging(self, *, abandon: bool = False) -> bool:
        """Remove a staging folder that holds no commit (no marker): what a run that stopped
        while staging left; with ``abandon=True`` also one past its commit point that
        cannot be completed (the store is then regenerated).  True if there was one."""
        staging = self.root / STAGING
        if not staging.exists() or (self.interrupted and not abandon):
            return False
        (staging / _MARKER).unlink(missing_ok=True)
        shutil.rmtree(staging)
        self._manifest = None
        return True

    def recover(self) -> str | None:
        """Complete a commit that was interrupted after its commit point, or remove the staging
        folder of a run that stopped before it.  Returns what was done ("completed",
        "discarded") or None; raises ``GoldenError`` when a staged commit cannot be completed."""
        with self.lock():
            if self.interrupted:
                self._finish_commit()
                return "completed"
            return "discarded" if self.discard_staging() else None

    def _finish_commit(self):
        staging = self.root / STAGING
        staged_manifest = staging / MANIFEST
        if staged_manifest.exists():
            try:
                staged = json.loads(staged_manifest.read_text())["files"]
            except (ValueError, KeyError, TypeError) as e:
                raise GoldenError(f"the staged manifest {staged_manifest} of an interrupted commit is unreadable "
                                  f"({e}); bring the store back with: {self.command} --recover") from None
            # every file first: staged, or moved already (its destination holds its bytes);
            # a commit that cannot be completed moves nothing
            for rel, entry in staged.items():
                src, dest = staging / rel, self._resolve(rel)
                if not src.exists() and not (dest.exists() and sha256(dest.read_bytes()) == entry["sha256"]):
                    raise GoldenError(f"the staged file {src} of an interrupted commit is missing and {dest} does "
                                      f"not hold its bytes, so the commit cannot be completed; bring the store back "
                                      f"with: {self.command} --recover")
            for rel in staged:
                src, dest = staging / rel, self._resolve(rel)
                if src.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dest)
                    _fault_point("moving")
            os.replace(staged_manifest, self.root / MANIFEST)
            _fault_point("manifest")
        # else the manifest was moved already (it moves after every file), or lost: then the
        # manifest in place decides, and a dropped file it still lists is kept
        old_files = staging / _OLD_FILES
        if old_files.exists():
            try:
                listed = set(json.loads((self.root / MANIFEST).read_text())["files"])
            except (OSError, ValueError, KeyError, TypeError):
                listed = set()
            for rel in filter(None, old_files.read_text().split("\n")):
                p = self._resolve(rel)
                if p.exists() and rel not in listed:
                    p.unlink()
        _fault_point("cleaned")
        (staging / _MARKER).unlink(missing_ok=True)  # done: the rest of the folder is leftovers
        shutil.rmtree(staging, ignore_errors=True)
        self._manifest = None
