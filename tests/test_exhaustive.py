"""The exhaustive float32 tool: its shortcuts are checked against mpmath, and it resumes.

The tests of its Dask engine on a real cluster (a scheduler and workers started as
processes) are in tests/test_exhaustive_cluster.py."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from tools import exhaustive, inputs
from tools.registry import by_family

ROOT = Path(__file__).resolve().parents[1]

CASES = by_family("activations")
needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="sweeping through main() needs Dask distributed: pip install -e '.[distributed]'")
# the derivatives swept (first derivatives; grad2 cases sweep the same way)
GRAD_CASES = [c for c in by_family("gradients") if dict(c.extra)["order"] == 1]


@pytest.mark.parametrize("case", CASES + GRAD_CASES, ids=[c.id for c in CASES + GRAD_CASES])
def test_tiny_float64_results_round_to_a_zero_of_their_sign(case):
    """Where the fast tier gives |y| < 2**-1000 with a bound below 1, the exact result rounds
    to a float32 zero with y's sign: the tool decides those, checked here against mpmath."""
    x = inputs.float32_inputs().astype(np.float64)
    y, bound, _ = exhaustive._reference(case, x)
    bound = np.broadcast_to(bound, y.shape)
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (np.abs(y) < 2.0**-1000) & (x != 0) & (bound < 1))
    for i in idx[:: max(1, idx.size // 100)]:
        r, _ = correctly_rounded(case.reference, float(x[i]), FORMATS["float32"], case.params)
        assert r == 0 and math.copysign(1, r) == math.copysign(1, y[i]), \
            f"{case.id}({x[i]!r}): fast tier gives {y[i]!r}, exact rounds to {r!r}"


def _piece_against_mpmath(case_id, first, n):
    """The tool's verdicts on ``n`` consecutive float32 inputs from ``first`` against an
    mpmath-only evaluation: the correctly rounded count and the normal-range count."""
    case, fn = exhaustive._evaluator(case_id, "impl.functional")
    start = np.array([first], np.float32).view(np.uint32)[0]
    x = np.arange(start, start + n, dtype=np.uint32).view(np.float32)
    got = np.asarray(fn(x)).astype(np.float64)
    res = exhaustive._sweep_piece(case, x, got)
    exact = np.array([correctly_rounded(case.reference, float(v), FORMATS["float32"], case.params)[0]
                      for v in x.astype(np.float64)])
    normal = np.abs(exact) >= 2.0**-126
    n_cr = int(np.sum((got == exact) & (np.signbit(got) == np.signbit(exact)) & normal))
    return res, n_cr, int(normal.sum())


def test_piece_verdicts_match_mpmath():
    """On a piece around gelu's tail the tool's verdicts equal an mpmath-only evaluation."""
    res, n_cr, n_normal = _piece_against_mpmath("gelu", -13.0, 4096)
    assert (res["n_cr"], res["n_normal"]) == (n_cr, n_normal)


def test_derivative_piece_verdicts_match_mpmath():
    """Next to the zero x = -1.27846 of silu', where the fast tier's per-element bound
    widens (two terms cancel) and mpmath takes over: the verdicts equal mpmath's."""
    res, n_cr, n_normal = _piece_against_mpmath("grad:silu", -1.2784645, 2048)
    assert (res["n_cr"], res["n_normal"]) == (n_cr, n_normal)
    assert res["n_mpmath"] > 0 and res["uncertainty_ulp"] <= 2.0**-30 * 2**24


# ---- records: resumable, one configuration per report, corrupt ones named -------------------

ARGS = ["relu", "--chunks", "255:256", "--jobs", "1"]


@pytest.fixture(scope="module")
def swept():
    """The record of relu's last chunk, as a sweep writes it (swept in this process, so that
    these tests need no Dask)."""
    return exhaustive.sweep_chunk(("relu", "impl.functional", 255))


def _chunks(out, impl="impl.functional"):
    d = out / "relu-float32" / impl / "chunks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_record_names_its_configuration(swept):
    c = swept["config"]
    assert c["case"] == "relu" and c["dtype"] == "float32"
    assert c["impl"]["module"] == "impl.functional" and c["impl"]["version"] and c["impl"]["program_sha256"]
    assert "mpmath" in c["reference"]["tier"] and c["reference"]["source_sha256"]
    assert c["tool"] == {"name": "tools.exhaustive", "record_version": exhaustive.RECORD_VERSION,
                         "source_sha256": c["tool"]["source_sha256"]}
    assert c == exhaustive.configuration("relu", "float32", "impl.functional")


def test_resume(swept, tmp_path, capsys):
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(swept))
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 0
    assert "1 chunks already done, 0 to go" in capsys.readouterr().err
    rep = json.loads((tmp_path / "relu-float32" / "impl.functional" / "report.json").read_text())
    assert rep["n"] == 1 << 24 and rep["n_nonfinite_mismatch"] == 0 and rep["max_ulp"] == 0.0
    assert rep["config"] == swept["config"]


def test_unknown_implementation_is_an_error_even_with_records(swept, tmp_path, capsys):
    """--impl of a module that does not exist used to report the records of impl.functional
    under its name and exit 0."""
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(swept))
    with pytest.raises(SystemExit) as e:
        exhaustive.main([*ARGS, "--out", str(tmp_path), "--impl", "nonexistent_module"])
    assert e.value.code == 2
    assert "--impl nonexistent_module: cannot import 'nonexistent_module'" in capsys.readouterr().err
    assert not (tmp_path / "relu-float32" / "nonexistent_module").exists()


def test_implementation_without_the_op_is_an_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        exhaustive.main([*ARGS, "--out", str(tmp_path), "--impl", "tests._fake_impls:NOTHING"])
    assert "does not provide relu" in capsys.readouterr().err


def test_records_of_another_configuration_are_refused(swept, tmp_path, capsys):
    rec = json.loads(json.dumps(swept))
    rec["config"]["impl"]["program_sha256"] = "0123456789abcdef"
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(rec))
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "1 chunk records in" in err and "255.json first" in err and "another configuration" in err
    assert f"impl.program_sha256: '0123456789abcdef' -> '{swept['config']['impl']['program_sha256']}'" in err
    assert "--recompute-stale" in err
    assert not (tmp_path / "relu-float32" / "impl.functional" / "report.json").exists()


def test_each_implementation_has_its_own_records(swept, tmp_path):
    """A record of impl.functional is never taken for another implementation's: that one's
    folder is empty, so its run would sweep (here: nothing of impl.functional is read)."""
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(swept))
    other = exhaustive.configuration("relu", "float32", "tests._fake_impls:PARTIAL")
    assert other["impl"]["spec"] == "tests._fake_impls:PARTIAL" and other != swept["config"]
    rec = dict(swept, config=other)
    (_chunks(tmp_path, "tests._fake_impls_PARTIAL") / "255.json").write_text(json.dumps(rec))
    assert exhaustive.main([*ARGS, "--out", str(tmp_path), "--impl", "tests._fake_impls:PARTIAL"]) == 0
    rep = json.loads((tmp_path / "relu-float32" / "tests._fake_impls_PARTIAL" / "report.json").read_text())
    assert rep["impl"] == "tests._fake_impls:PARTIAL" and rep["config"] == other
    assert json.loads((tmp_path / "relu-float32" / "impl.functional" / "chunks" / "255.json").read_text()) == swept


@pytest.mark.parametrize("content,why", [
    ("{}", "fields missing: chunk, n,"),
    ('{"n": 16777216, "n_cr"', "not valid JSON"),
    ("[1, 2]", "a JSON list, not an object"),
])
def test_unreadable_record_is_named_and_not_used(content, why, tmp_path, capsys):
    d = _chunks(tmp_path)
    (d / "254.json").write_text(content)
    (d / "notes.json").write_text('{"note": "mine"}')
    assert exhaustive._read_records(d, lambda m: print(m, file=sys.stderr)) == {}
    err = capsys.readouterr().err
    assert f"chunk record {d / '254.json'} cannot be used ({why}" in err and "recomputes and replaces it" in err
    assert f"ignoring {d / 'notes.json'}: not a chunk record" in err


@pytest.mark.slow
@needs_dask
def test_unreadable_record_is_recomputed(swept, tmp_path, capsys):
    d = _chunks(tmp_path)
    (d / "255.json").write_text("{}")
    (d / "notes.json").write_text('{"note": "mine"}')
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 0
    assert "0 chunks already done, 1 to go" in capsys.readouterr().err
    rec = json.loads((d / "255.json").read_text())
    timing = exhaustive.TIMING_KEYS
    assert {k: v for k, v in rec.items() if k not in timing} == {k: v for k, v in swept.items() if k not in timing}
    assert (d / "notes.json").exists()  # not ours: left alone


def test_records_of_the_first_version_are_adopted_on_request(swept, tmp_path, capsys):
    """Records written before they named a configuration (DIR/<op>-<dtype>/chunks/) are not
    used silently: a note names the fix, and --adopt-legacy moves them in, said in the report."""
    legacy = tmp_path / "relu-float32" / "chunks"
    legacy.mkdir(parents=True)
    old = {k: v for k, v in swept.items() if k != "config"}
    (legacy / "255.json").write_text(json.dumps(old))
    # without the flag (a current record present, so nothing is swept): a note, the record unused
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(swept))
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"1 chunk records in {legacy} name no configuration" in err and "--adopt-legacy" in err
    (_chunks(tmp_path) / "255.json").unlink()
    assert exhaustive.main([*ARGS, "--out", str(tmp_path), "--adopt-legacy"]) == 0
    err = capsys.readouterr().err
    assert f"adopted 1 chunk records of {legacy}" in err and "1 chunks already done, 0 to go" in err
    assert not legacy.exists()
    rec = json.loads((_chunks(tmp_path) / "255.json").read_text())
    assert rec["config"] == swept["config"] and "--adopt-legacy" in rec["adopted"]
    md = (tmp_path / "relu-float32" / "impl.functional" / "report.md").read_text()
    assert "1 chunks adopted from records that named no configuration" in md


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        exhaustive.main(["no_such_op"])
    assert "choose one of: relu, " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        exhaustive.main(["relu", "--chunks", "5:3"])
    with pytest.raises(SystemExit):
        exhaustive.main(["relu", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"])
    assert "--jobs sizes the embedded cluster" in capsys.readouterr().err


def test_records_follow_the_program_not_the_folder():
    """The project's impl is fingerprinted by the program a sweep runs: one per op, parameter
    and derivative order, the same in another process (so an edit to one op leaves the records
    of the others valid); another module of this repository by its source."""
    keys = ("relu", "relu6", "leaky_relu[negative_slope=0.01]", "leaky_relu[negative_slope=0.1]", "tanh",
            "grad:tanh", "grad2:tanh")
    here = {k: exhaustive.configuration(k, "float32", "impl.functional")["impl"]["program_sha256"]
            for k in keys}
    assert len(set(here.values())) == len(keys)
    code = ("from tools import exhaustive as e; import json; print(json.dumps({k: e.configuration(k, "
            f"'float32', 'impl.functional')['impl']['program_sha256'] for k in {keys!r}}}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == here
    fake = exhaustive.configuration("relu", "float32", "tests._fake_impls:PARTIAL")["impl"]
    assert "source_sha256" in fake and "program_sha256" not in fake


def test_derivative_and_value_cases_are_sweepable():
    assert exhaustive.case_of("grad:gelu[approximate=True]")[1] == 1
    assert exhaustive.case_of("grad2:tanh")[1] == 2 and exhaustive.case_of("tanh")[1] == 0
    c = exhaustive.configuration("grad:tanh", "float32", "impl.functional")
    assert "float64_derivatives" in c["reference"]["tier"] and c["case"] == "grad:tanh"


def test_without_dask_a_sweep_names_the_extra(tmp_path, capsys, monkeypatch):
    """Records need no Dask; computing chunks does, and the message names the install."""
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "runs its chunks on Dask distributed, which is not installed" in err
    assert "pip install -e '.[distributed]'" in err


def test_sweep_table_rows_come_from_current_reports(tmp_path):
    """docs/exhaustive.md's table: a complete report of the current configuration gives its
    figures, one of another configuration or a partial one says what is left to do."""
    from tools import sweep_table

    config = exhaustive.configuration("relu", "float32", "impl.functional")
    folder = tmp_path / "relu-float32" / "impl.functional"
    (folder / "chunks").mkdir(parents=True)
    rep = {"chunks": [0, 256], "n": 1 << 32, "n_normal": 1000, "n_cr": 998, "max_ulp": 1.0, "n_subnormal": 7,
           "n_flushed": 3, "n_nonfinite": 5, "n_nonfinite_mismatch": 0, "n_mpmath": 11,
           "chunk_cpu_seconds": 100.0, "n_cpu_timed_chunks": 128, "chunk_seconds": 150.0, "config": config}
    (folder / "report.json").write_text(json.dumps(rep))
    six = tmp_path / "relu6-float32" / "impl.functional" / "chunks"
    six.mkdir(parents=True)
    (six / "000.json").write_text("{}")  # not a record
    record = {"chunk": 1, "n": 1 << 24, "n_normal": 1, "n_cr": 1, "max_ulp": 0.0, "buckets": [1, 0, 0, 0, 0, 0],
              "n_subnormal": 0, "n_flushed": 0, "n_nonfinite": 0, "n_nonfinite_mismatch": 0, "n_mpmath": 0,
              "uncertainty_ulp": 0.0, "config": exhaustive.configuration("relu6", "float32", "impl.functional")}
    (six / "001.json").write_text(json.dumps(record))
    stale = json.loads(json.dumps(dict(record, chunk=2)))
    stale["config"]["reference"]["source_sha256"] = "0123456789abcdef"
    (six / "002.json").write_text(json.dumps(stale))
    rows = dict(zip(sweep_table.cases(), sweep_table.rows(tmp_path)))
    assert rows["relu"].startswith("| relu | 1.0000 | 99.800000% of 1,000 | 2 | 7 (3) | 5 (0) | 11 | 100 s of worker "
                                   "CPU time over 128 chunks (2.1e+07 inputs per CPU second)")
    assert rows["relu6"] == ("| relu6 | to do: 1 of 256 chunks recorded (1 more of another configuration: "
                             "reference.source_sha256) | | | | | | |")
    assert "grad:gelu[approximate=True]" in rows and rows["elu"].startswith("| elu | to do: 0 of 256")
    (folder / "report.json").write_text(json.dumps(dict(rep, seconds=120.0)))
    assert sweep_table.throughput_block(tmp_path).split("\n")[2:] == ["| relu | 100 | 42.9e+06 | 0.8 | 2.0 |"]
    assert "(no report.md beside its report.json: rerun `python -m tools.exhaustive relu" in \
        sweep_table.reports_block(tmp_path)
    (folder / "report.md").write_text("# Exhaustive float32 sweep: `relu`\n\n- figures\n")
    assert sweep_table.reports_block(tmp_path) == "## Exhaustive float32 sweep: `relu`\n\n- figures"
    (folder / "report.json").write_text(json.dumps(dict(rep, chunk_cpu_seconds=0.0, n_cpu_timed_chunks=0)))
    assert sweep_table.rows(tmp_path)[0].endswith("| 11 | not timed |")  # records adopted without times
    rep["config"]["impl"]["program_sha256"] = "0123456789abcdef"  # a report of another configuration
    (folder / "report.json").write_text(json.dumps(rep))
    assert sweep_table.rows(tmp_path)[0] == "| relu | to do: 0 of 256 chunks recorded | | | | | | |"
    groups = sweep_table.status(tmp_path)
    assert groups["started"] == ["relu6 (1 of 256 chunks)"] and "relu" in groups["not started"]
    assert groups["swept"] == [] and groups["stale"] == []
    (six / "001.json").unlink()  # relu6 left with a record of another configuration only
    assert sweep_table.status(tmp_path)["stale"] == ["relu6"]


def test_sweep_table_writes_its_table_in_place(tmp_path):
    """``--write FILE`` replaces the table in a Markdown page and leaves the rest as it was; a page
    without the table is refused, saying what to do."""
    from tools import sweep_table

    page = tmp_path / "page.md"
    page.write_text("# Title\n\nBefore.\n\n" + sweep_table.HEADER + "\n| old | row |\n| another | one |\n\nAfter.\n")
    assert sweep_table.main(["--out", str(tmp_path / "none"), "--write", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\nBefore.\n\n" + sweep_table.HEADER + "\n| relu | to do: 0 of 256")
    assert text.endswith("| grad:gelu[approximate=True] | to do: 0 of 256 chunks recorded | | | | | | |\n\nAfter.\n")
    assert "| old | row |" not in text and text.count("\n|") == len(sweep_table.cases()) + 2
    marked = tmp_path / "marked.md"
    marked.write_text("\n".join([sweep_table.HEADER, "| old |", "", sweep_table.STATUS_MARKERS[0], "stale text",
                                  sweep_table.STATUS_MARKERS[1], "kept", sweep_table.REPORTS_MARKERS[0], "old report",
                                  sweep_table.REPORTS_MARKERS[1], ""]))
    sweep_table.write_table(marked, tmp_path / "none")
    text = marked.read_text()
    assert "stale text" not in text and "old report" not in text and "\nkept\n" in text
    assert "* Not started: `relu`, `relu6`," in text and "* Swept in full, records of the current configuration: none." in text
    assert text.endswith(sweep_table.REPORTS_MARKERS[0] + "\n\n" + sweep_table.REPORTS_MARKERS[1] + "\n")
    bare = tmp_path / "bare.md"
    bare.write_text("no table here\n")
    with pytest.raises(SystemExit, match="holds no table starting with"):
        sweep_table.main(["--out", str(tmp_path / "none"), "--write", str(bare)])
    assert bare.read_text() == "no table here\n"


def test_reference_hash_is_per_op(tmp_path, monkeypatch):
    """A record's reference hash covers reference/ but the other ops' modules in reference/ops/:
    a new op's module leaves the records of the others valid, and its own edits do not."""
    import shutil

    import reference
    from tools import sweep_check

    root = Path(reference.__file__).resolve().parent
    copy = tmp_path / "reference"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(reference, "__file__", str(copy / "__init__.py"))
    relu, _ = exhaustive.case_of("relu")
    tanh, _ = exhaustive.case_of("tanh")
    before = {c.op: sweep_check._reference_hash(c) for c in (relu, tanh)}
    (copy / "ops").mkdir(exist_ok=True)
    (copy / "ops" / "tanh.py").write_text("# the references of tanh\n")
    assert sweep_check._reference_hash(relu) == before["relu"]
    assert sweep_check._reference_hash(tanh) != before["tanh"]
    (copy / "_convert.py").write_text((copy / "_convert.py").read_text() + "\n# a shared module\n")
    assert sweep_check._reference_hash(relu) != before["relu"]


def test_configuration_names_what_decides_the_compilation(monkeypatch):
    """The x64 flag, XLA_FLAGS and the host's CPU are part of a record's configuration."""
    import jax

    from tools import sweep_check

    base = sweep_check.configuration("relu", "float32", "impl.functional")
    assert base["jax"]["host"] == sweep_check._host() and base["jax"]["host"]["machine"]
    assert base["jax"]["host"]["features"] == sorted(base["jax"]["host"]["features"])
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    flagged = sweep_check.configuration("relu", "float32", "impl.functional")
    assert flagged["jax"]["xla_flags"] == "--xla_cpu_enable_fast_math=false" and flagged != base
    monkeypatch.delenv("XLA_FLAGS")
    with jax.enable_x64(True):
        assert sweep_check.configuration("relu", "float32", "impl.functional")["jax"]["x64"] is True


def test_records_of_another_machine_resume_but_never_mix(swept, tmp_path, capsys):
    """The machine part of a configuration (CPU features, XLA_FLAGS) is the worker's: a record made
    on another kind of machine is not stale (a cluster's workers need not match the client's
    machine), but one report never aggregates records of two kinds."""
    other = json.loads(json.dumps(swept))
    other["config"]["jax"]["host"] = {"machine": "other", "features": ["fma"]}
    (_chunks(tmp_path) / "255.json").write_text(json.dumps(other))
    assert exhaustive.main([*ARGS, "--out", str(tmp_path)]) == 0
    assert "1 chunks already done, 0 to go" in capsys.readouterr().err
    rep = json.loads((tmp_path / "relu-float32" / "impl.functional" / "report.json").read_text())
    assert rep["config"]["jax"]["host"]["machine"] == "other"
    (_chunks(tmp_path) / "254.json").write_text(json.dumps(dict(swept, chunk=254)))
    assert exhaustive.main(["relu", "--chunks", "254:256", "--jobs", "1", "--out", str(tmp_path)]) == 2
    assert "computed on machines that compile differently" in capsys.readouterr().err
