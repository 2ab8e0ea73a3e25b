"""``--impl``: resolving the implementation, what "provides" means, capabilities, and the skips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import target

ROOT = Path(__file__).resolve().parent.parent


def test_load_module_and_attribute():
    import impl.functional

    from . import _fake_impls

    assert target.load("impl.functional") is impl.functional
    assert target.load("tests._fake_impls:PARTIAL") is _fake_impls.PARTIAL
    assert target.load("impl:functional.relu") is impl.functional.relu  # dotted attribute paths


@pytest.mark.parametrize("spec,match", [
    ("no_such_module_anywhere", r"cannot import 'no_such_module_anywhere'"),
    ("impl.functional:nope", r"impl.functional has no attribute 'nope'; names it has: avg_pool2d, batch_norm, celu"),
    (":relu", r"the module part before ':' is empty"),
    ("impl.functional:a-b", r"'a-b' is not an attribute path"),
    ("tests._fake_impls:BAD_CAPABILITY", r"unknown capabilities \['jit'\].*known: jax_transforms"),
])
def test_load_errors_name_the_fix(spec, match):
    with pytest.raises(ValueError, match=match):
        target.load(spec)


def test_capabilities_and_provided():
    from . import _fake_impls

    p = _fake_impls.PARTIAL
    assert target.capabilities(p) == {"jax_transforms": False}
    assert target.capabilities(target.load("impl.functional")) == {"jax_transforms": True}
    assert target.provided(p, "relu") is not None
    assert target.provided(p, "sigmoid") is None  # None means "not provided"
    assert target.provided(p, "gelu") is None
    with pytest.raises(TypeError, match=r"relu is a int, not a function"):
        target.provided(_fake_impls.NOT_CALLABLE, "relu", "tests._fake_impls:NOT_CALLABLE")
    assert target.peer(p) == "a partial test double"


@pytest.mark.slow
def test_suite_against_a_partial_implementation(tmp_path):
    """End to end: not provided -> skip; NotImplementedError -> skip with its reason; a declared
    capability -> the jit/vmap/grad tests skip; the module is named in the report; a case it
    runs is measured as usual; a module providing nothing fails loudly."""
    spec = "tests._fake_impls:PARTIAL"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-rs",
           "--impl", spec, "--devices", "cpu0", "--report-dir", str(tmp_path),
           "tests/test_activations_golden.py", "tests/test_activations_api.py", "tests/test_contract.py",
           "-k", "relu6 or sigmoid and not log and not hard or provides"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"relu6 by {spec}: not implemented for this case: this library has no bfloat16 relu6" in out, out
    assert f"sigmoid not provided by {spec}" in out, out
    assert f"{spec} declares CONFORMANCE_CAPABILITIES['jax_transforms'] = False" in out, out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["header"]["implementation"] == spec
    assert rep["header"]["peer"] == "a partial test double"
    kinds = {(r["kind"], r["case"], r["dtype"]) for r in rep["rows"]}
    assert ("value", "relu6", "float32") in kinds and ("skip", "relu6", "bfloat16") in kinds
    assert ("skip", "sigmoid", "float32") in kinds


def test_a_module_that_provides_nothing_fails():
    import types

    from . import _fake_impls
    from .test_contract import test_provides_at_least_one_op

    request = types.SimpleNamespace(config=types.SimpleNamespace(_impl_name="tests._fake_impls:NOTHING"))
    with pytest.raises(AssertionError, match=r"provides none of the contract's functions \(avg_pool2d, batch_norm"):
        test_provides_at_least_one_op(_fake_impls.NOTHING, request)


@pytest.mark.slow
def test_warnings_of_the_implementation_are_recorded_not_raised(tmp_path):
    """``filterwarnings = error`` is for the project's own code: a warning of the implementation
    under test becomes a "warning" row of the report, and its result is judged as usual."""
    spec = "tests._fake_impls:WARNS"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "--impl", spec,
           "--devices", "cpu0", "--report-dir", str(tmp_path), "tests/test_activations_golden.py",
           "-k", "relu and float32 and not relu6 and not leaky"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert {(w["case"], w["detail"]) for w in rows if w["kind"] == "warning"} == {
        ("relu", "UserWarning: relu of this library is deprecated")}
    assert [r["passed"] for r in rows if r["kind"] == "value"] == [True]
    assert "relu of this library is deprecated" in (tmp_path / "report.md").read_text()
