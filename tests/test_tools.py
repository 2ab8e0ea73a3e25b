"""The tooling itself: the ulp metric, the input generator, the golden store, the regeneration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from reference import FORMATS
from reference._convert import RESIDUAL_SCALE
from tools import golden, inputs, metric

F32 = FORMATS["float32"]


def _q(r):
    return np.array([round(r * RESIDUAL_SCALE)])


# ---- the ulp metric on hand-made cases ------------------------------------------

def test_ulp_error_simple():
    # exact = 1 + 0.25 ulp; output 1 + 1 ulp -> error 0.75 ulp
    err = metric.ulp_errors([1 + 2**-23], [1.0], _q(0.25), F32)
    assert err[0] == pytest.approx(0.75)


def test_ulp_of_exact_below_power_of_two():
    # exact = 1 - 0.25 * 2**-24 rounds up to 1.0; its ulp is 2**-24 (the binade below), not 2**-23
    u = metric.ulp_of_exact([1.0], _q(-0.25), F32)
    assert u[0] == 2.0**-24
    err = metric.ulp_errors([1.0 - 2**-24], [1.0], _q(-0.25), F32)
    assert err[0] == pytest.approx(-0.75)


def test_ulp_at_zero_and_subnormals():
    assert metric.ulp_of_exact([0.0], [0], F32)[0] == 2.0**-149
    assert metric.ulp_of_exact([2.0**-140], [0], F32)[0] == 2.0**-149


def test_evaluate_classes_and_counts():
    rounded = np.array([1.0, 0.5, 2.0**-130, np.nan, np.inf, -0.0])
    residual = np.array([0, 0, 0, 0, 0, 0])
    got = np.array([1.0, 0.5 + 2**-24, 0.0, np.nan, np.nan, 0.0], dtype=np.float32)
    stats, err, codes = metric.evaluate(got, rounded, residual, "float32", max_ulp=1.0)
    assert list(codes) == [0, 0, 1, 2, 2, 0]
    assert stats.n_normal == 3 and stats.n_subnormal == 1 and stats.n_flushed == 1
    assert stats.n_nonfinite == 2 and stats.n_nonfinite_mismatch == 1  # inf -> nan is a mismatch
    assert stats.max_ulp == pytest.approx(1.0)
    assert stats.n_cr == 1  # 1.0 only: 0.5+ulp is off, +0 is not -0


def test_subnormal_input_is_its_own_class():
    stats, _, codes = metric.evaluate(np.array([0.5], np.float32), [0.5], [0], "float32", 1.0,
                                      x=np.array([1e-40], np.float32))
    assert codes[0] == 1 and stats.n_normal == 0


# ---- inputs ---------------------------------------------------------------------

def test_hash_is_fixed():
    """The golden inputs must not depend on library versions: the hash is pinned.
    Counter 0 gives SplitMix64's published first output for seed 0."""
    h = inputs.splitmix64(np.arange(3, dtype=np.uint64), 0)
    assert int(h[0]) == 0xE220A8397B1DCDAF
    assert [int(v) for v in h[1:]] == [10451216379200822465, 10905525725756348110]


def test_input_sets_cover_what_they_promise():
    x = inputs.float32_inputs().astype(np.float64)
    assert x.size >= 100_000
    fin = x[np.isfinite(x)]
    # every binade, both signs, subnormals included
    e = np.frexp(np.abs(fin[fin != 0]))[1]
    for sign in (1, -1):
        ee = np.frexp(np.abs(fin[(np.sign(fin) == sign)]))[1]
        assert set(range(-148, 129)) <= set(ee.tolist()), "a float32 binade is missing"
    assert e.min() <= -148
    for special in (0.0, np.inf, -np.inf):
        assert np.any((x == special) & (np.signbit(x) == np.signbit(special)))
    assert np.isnan(x).sum() == 1 and np.any((x == 0) & np.signbit(x))
    assert ((x > -20) & (x < -3)).sum() > 3000  # gelu's tail
    bf = inputs.golden_inputs("bfloat16").astype(np.float64)
    assert np.isfinite(bf).sum() == 65280


# ---- the golden store -------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "x\x00"])
def test_case_names_cannot_escape(bad):
    with pytest.raises(golden.GoldenError, match="cannot be a golden"):
        golden.case_path("activations", "float32", bad)


def test_round_trip_and_verification(tmp_path):
    store = golden.Store(tmp_path)
    arrays = {"rounded": np.array([1.0, -0.0, np.nan], np.float32), "residual": np.array([1, -2, 0], np.int16)}
    files = {golden.case_path("fam", "float32", "op[a=1]"): golden.Store.encode_arrays(arrays),
             golden.inputs_path("float32"): golden.Store.encode_inputs(np.array([1, 2, 3], np.float32))}
    store.commit(files, {"command": "test"})
    back = golden.Store(tmp_path).load_case("fam", "float32", "op[a=1]")
    np.testing.assert_array_equal(back["residual"], arrays["residual"])
    assert back["rounded"].tobytes() == arrays["rounded"].tobytes()
    assert golden.Store(tmp_path).verify() == []
    # same data, same bytes
    assert golden.Store.encode_arrays(arrays) == golden.Store.encode_arrays(arrays)
    # a flipped byte is named with the command that regenerates it
    p = tmp_path / golden.case_path("fam", "float32", "op[a=1]")
    data = bytearray(p.read_bytes())
    data[-10] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(golden.GoldenError, match=r"(?s)op--a=1\.npz does not match the manifest.*tools\.regen_golden"):
        golden.Store(tmp_path).load_case("fam", "float32", "op[a=1]")
    # a stray file is reported
    (tmp_path / "fam" / "float32" / "stray.npz").write_bytes(b"x")
    problems = golden.Store(tmp_path).verify()
    assert any("stray.npz is not listed" in m for m in problems) and any("op--a=1.npz" in m for m in problems)


def test_manifest_of_the_project_is_valid():
    m = json.loads((golden.ROOT / golden.MANIFEST).read_text())
    assert m["command"] == golden.REGEN_COMMAND and m["files"]
    total = sum(v["bytes"] for v in m["files"].values())
    assert total <= 25 * 2**20, f"golden/ holds {total / 2**20:.1f} MiB, the limit is 25 MiB"
    assert golden.Store().verify() == []


@pytest.mark.slow
def test_regeneration_is_deterministic(tmp_path):
    """Two regenerations of a case give byte-identical files, and --check agrees."""
    from tools import regen_golden

    root = tmp_path / "g"
    assert regen_golden.main(["--root", str(root), "--only", "relu6", "--jobs", "1"]) == 0
    first = {p.name: p.read_bytes() for p in root.rglob("*.np*")}
    assert regen_golden.main(["--root", str(root), "--only", "relu6", "--jobs", "1", "--check"]) == 0
    # and the files equal the project's
    proj = golden.Store()
    for dtype in ("float32", "bfloat16"):
        rel = golden.case_path("activations", dtype, "relu6")
        assert (root / rel).read_bytes() == proj.read_bytes(rel)
    assert first


@pytest.mark.slow
def test_collection_is_the_same_whatever_the_hash_seed():
    """Test ids come from the registry in a fixed order, never from set or dict order of
    hashed strings: two collections under different PYTHONHASHSEED give the same ids
    (xdist also refuses to run when its workers collect different ids)."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    ids = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              "tests/test_special_values.py"],
                             cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        ids.append([line for line in out.stdout.splitlines() if "::" in line])
    assert len(ids[0]) > 1000 and ids[0] == ids[1], "test ids depend on the hash seed"
