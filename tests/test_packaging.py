"""The wheel claims only the names it owns, and carries the whole suite.

An installed wheel puts exactly two top-level names into site-packages: ``impl`` (the layers)
and ``vetted_layers_suite`` (the conformance suite: ``suite/`` holds tools, tests, reference,
adapters, the golden data and pytest's settings, laid out as in this repository, for
``vetted-layers-conformance``).  Generic names such as ``tools``, ``tests`` or ``reference``
would shadow, or be shadowed by, anyone else's.  ``import impl`` imports nothing of the suite.

The wheel is built from a copy of this checkout with pip (``pip wheel --no-deps``); where the
build backend cannot be fetched (an offline machine without setuptools and wheel in the
environment) the tests are skipped and say so.

End to end (README, "Vet your own library"): the wheel installed into a fresh virtual
environment, a small adapter written into an empty folder, ``vetted-layers-conformance`` run
there on a subset of the suite, with ``--record-baseline`` and then ``--baseline`` (the same
adapter passes; one op made worse fails).  About two minutes; the installation needs the
dependencies from the package index or pip's cache (skipped, saying so, when neither is there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "vetted_layers_suite"
SUITE = f"{NAMESPACE}/suite"
SUITE_FOLDERS = ("tools", "tests", "reference", "adapters")
# what pip prints when it cannot get the build backend (no index, no network)
_OFFLINE = ("Could not find a version that satisfies the requirement", "No matching distribution found",
            "invalid command 'bdist_wheel'", "Network is unreachable", "Failed to establish a new connection")

pytestmark = pytest.mark.slow


def _offline(p: subprocess.CompletedProcess) -> str:
    """pip's line saying that it could not get the build backend, or ''."""
    lines = (p.stdout + p.stderr).splitlines()
    return next((line.strip() for line in lines if any(s in line for s in _OFFLINE)), "")


def _pip_wheel(src: Path, out: Path, isolated: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    return subprocess.run(cmd + ([] if isolated else ["--no-build-isolation"]), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / NAMESPACE / "conformance.py").is_file():
        pytest.skip("builds the wheel from a clone; the installed suite has no sources to build")
    src = tmp_path_factory.mktemp("src") / "vetted-layers"
    ignore = shutil.ignore_patterns(".git", ".venv", ".jax_cache", "report", "__pycache__", "*.egg-info", "build",
                                    "dist", ".pytest_cache", ".hypothesis", ".staging", ".lock", "tutorial_plots")
    shutil.copytree(ROOT, src, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    p = _pip_wheel(src, out, isolated=True)  # the backend pyproject.toml asks for, from the package index
    if p.returncode != 0 and _offline(p):
        p = _pip_wheel(src, out, isolated=False)  # the backend of this environment, if it has one
        if p.returncode != 0 and _offline(p):
            pytest.skip(f"the build backend (setuptools>=68, wheel) is neither installed nor reachable "
                        f"(pip: {_offline(p)})")
    assert p.returncode == 0, f"pip wheel failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    (whl,) = out.glob("*.whl")
    return whl


def _names(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        return z.namelist()


def test_wheel_claims_only_impl_and_the_suite_namespace(wheel):
    tops = {n.split("/")[0] for n in _names(wheel)}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1 and tops - dist_info == {"impl", NAMESPACE}, sorted(tops)
    with zipfile.ZipFile(wheel) as z:
        (di,) = dist_info
        scripts = z.read(f"{di}/entry_points.txt").decode()
    assert "vetted-layers-conformance = vetted_layers_suite.conformance:main" in scripts, scripts


def test_wheel_carries_every_module_of_the_suite(wheel):
    """A folder added to tools/ or tests/ and not to pyproject.toml's packages would be missing."""
    names = set(_names(wheel))
    here = sorted(p.relative_to(ROOT).as_posix() for d in SUITE_FOLDERS for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)
    missing = [p for p in here if f"{SUITE}/{p}" not in names]
    assert not missing, f"not in the wheel (add their packages to pyproject.toml): {missing}"
    assert f"{SUITE}/pyproject.toml" in names, "pytest's settings are not in the wheel"
    impl_here = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "impl").glob("*.py"))
    assert [p for p in impl_here if p not in names] == []


def test_wheel_carries_the_golden_data_and_its_manifest(wheel):
    names = set(_names(wheel))
    assert f"{SUITE}/golden/MANIFEST.json" in names
    with zipfile.ZipFile(wheel) as z:
        manifest = json.loads(z.read(f"{SUITE}/golden/MANIFEST.json"))
    assert manifest == json.loads((ROOT / "golden" / "MANIFEST.json").read_text())
    files = manifest["files"]
    missing = sorted(f for f in files if f"{SUITE}/golden/{f}" not in names)
    assert files and not missing, f"golden files listed in the manifest but not in the wheel: {missing[:10]}"
    stray = sorted(n for n in names if n.startswith(f"{SUITE}/golden/") and (".lock" in n or ".staging" in n))
    assert not stray, stray


def test_import_impl_imports_no_suite_module(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import impl, impl.functional, impl.nn; "
            "print(impl.__file__); "
            f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {(NAMESPACE, *SUITE_FOLDERS)!r}))")
    p = subprocess.run([sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    where, suite_modules = p.stdout.splitlines()[-2:]
    assert Path(where).resolve().is_relative_to(site.resolve()), where
    assert suite_modules == "[]", f"import impl imported suite modules: {suite_modules}"


# ---- the installed suite, as a maintainer of another library runs it ----------------------------

ADAPTER = '''"""A small adapter: two ops of jax.numpy behind the contract."""
import jax
import jax.numpy as jnp

CONFORMANCE_PEER = "jax.numpy (a small adapter)"


def relu(x):
    return jax.nn.relu(x)


def tanh(x):
    return jnp.tanh(x)
'''
# the same adapter with tanh made worse: evaluated in bfloat16 and cast back
WORSE = ADAPTER.replace("    return jnp.tanh(x)\n", "    return jnp.tanh(x.astype(jnp.bfloat16)).astype(x.dtype)\n")
# a subset of the suite, for speed: tanh and relu in float32 on one device, values and special values
SUBSET = ["--no-plots", "--", "--devices=cpu0", "-k", "(tanh or relu) and float32 and not relu6",
          "tests/test_activations_golden.py", "tests/test_special_values.py"]


def _venv(tmp: Path, whl: Path) -> Path:
    """A fresh virtual environment with the wheel and its test extra installed."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{whl}[test]"], capture_output=True, text=True,
                       timeout=900)
    if p.returncode != 0 and _offline(p):
        pytest.skip(f"the wheel's dependencies are neither cached nor reachable (pip: {_offline(p)})")
    assert p.returncode == 0, f"pip install of the wheel failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return venv


def _conformance(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONFORMANCE_RUN_ID", "IMPL_MODULE",
                                                            "PYTEST_XDIST_WORKER", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", XDG_CACHE_HOME=str(cwd.parent / "cache"))
    return subprocess.run([str(venv / "bin" / "vetted-layers-conformance"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_installed_suite_from_an_empty_folder_with_a_baseline(wheel, tmp_path):
    """The documented command, in a fresh environment and an empty folder: the report opens with the
    verdict; a recorded baseline passes on the same adapter and fails once one op is made worse."""
    venv = _venv(tmp_path, wheel)
    here = tmp_path / "work"
    here.mkdir()
    (here / "small_adapter.py").write_text(ADAPTER)
    cmd = ["--impl", "small_adapter", "--out", "report"]

    p = _conformance(venv, here, *cmd, "--record-baseline", "baseline.json", *SUBSET)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-4000:]  # jax.numpy's float32 tanh is over budget (4.06 ulp)
    first = (here / "report" / "report.md").read_text().splitlines()[:14]
    assert first[0] == "# Conformance report: `small_adapter`", first
    assert first[2].startswith("**profile: strict"), first
    assert "## Verdict" in first and "| op | float32 |" in first, first
    assert any(line.startswith("| `tanh` | ✗ 4.058") for line in first), first
    assert any(line.startswith("| `relu` | ✓ 0") for line in first), first
    assert "= verdict =" in out and "baseline written to" in out, out[-4000:]
    assert sorted(f.name for f in here.iterdir()) == ["baseline.json", "report", "small_adapter.py"], \
        "the suite wrote into the caller's folder (JAX's cache belongs in the user's cache folder)"
    assert (here / "report" / "report.html").read_text().count("<h2>Verdict</h2>") == 1

    p = _conformance(venv, here, *cmd, "--baseline", "baseline.json", *SUBSET)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "as in the baseline" in p.stdout + p.stderr

    (here / "small_adapter.py").write_text(WORSE)
    p = _conformance(venv, here, *cmd, "--baseline", "baseline.json", *SUBSET)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-4000:]
    assert "worse than the baseline: tanh float32 cpu0" in out, out[-4000:]
