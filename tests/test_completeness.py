"""Every op of the contract is complete: one test per op naming what it lacks.

An op of ``vetted_layers_suite.contract`` needs an ``Op`` record in the registry
(``tools/registry/``; an elementwise activation's is built from the ``@_checked`` data on
its stub in the contract) with: a reference (mpmath), a derivative reference, special
values (elementwise ops: a row per golden case, with the kinks in the golden
inputs), a layer class in ``impl.nn``, an input rule in ``tests/input_rules.py``
when it takes parameters, and a row in its docs page.  A part an op cannot have
is exempted in its record with the reason (``Op.exempt``).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import impl.nn
from tools import inputs
from tools.registry import OPS, by_family
from vetted_layers_suite import contract

from .input_rules import RULES

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDS = {o.name: o for o in OPS}


def _missing(name: str) -> list[str]:
    o = RECORDS.get(name)
    if o is None:
        return ["an Op record in tools/registry/ (an elementwise activation: @_checked(...) on its stub in "
                "vetted_layers_suite/contract.py; another op: the family module of its cases defines OPS)"]
    miss = []

    def need(part, ok, what):
        if not ok and part not in o.exempt:
            miss.append(what)

    need("reference", o.reference is not None, f"a reference: reference.<module>.{name} in its Op record")
    need("derivative", bool(o.derivatives),
         f"a derivative reference: reference.derivatives.d_{name} (and float64_derivatives.{name})"
         if o.family == "activations" else f"a derivative reference (reference.reduction_vjps.{name}_vjp)")
    if o.family == "activations":
        need("reference", o.float64 is not None, f"a float64 formula: reference.float64.{name}")
        need("derivative", len(o.float64_derivatives) == len(o.derivatives),
             f"float64 derivative formulas beside each derivative reference: reference.float64_derivatives.{name}")
        ids = [c.id for c in by_family("activations") if c.op == name]
        need("special values", ids and set(ids) <= set(o.special_values),
             f"special values for every golden case ({', '.join(ids) or name}) in Op.special_values")
        far = [k for k in o.kinks if k not in inputs.KINKS]
        if far:
            miss.append(f"kinks {far} in tools.inputs.KINKS (the golden inputs hold their neighbours)")
    else:
        need("special values", bool(o.special_values), "special values in Op.special_values")
    if o.layer is None or not hasattr(impl.nn, o.layer):
        miss.append(f"a layer class in impl.nn (Op.layer = {o.layer!r})")
    if contract.defaults(name):
        calls = (f"F.{name}(", f"nn.{o.layer}(")
        if not any(c in r.code for r in RULES for c in calls):
            miss.append(f"an input rule calling F.{name}(...) or nn.{o.layer}(...): ``rejects`` in its @_checked "
                        f"(vetted_layers_suite/contract.py) or a row of tests/input_rules.py")
    page = ROOT / o.docs if o.docs else None
    if page is None:
        miss.append("a docs page (Op.docs)")
    elif page.exists():  # docs/ is not in the installed suite
        rows = [line for line in page.read_text().splitlines() if line.startswith("|")]
        if not any(f"`{name}{end}" in r for r in rows for end in "`'(["):
            miss.append(f"a table row naming `{name}` in {o.docs}")
    return miss


@pytest.mark.parametrize("name", contract.OPS)
def test_op_is_complete(name):
    miss = _missing(name)
    assert not miss, f"{name} lacks: " + "; ".join(miss) + " (README: adding an op)"


@pytest.mark.parametrize("name", contract.ACTIVATIONS)
def test_checked_data_names_real_parameters(name):
    """The golden, sweep and rejected parameter sets of an activation's ``@_checked`` use the
    stub's own parameter names (a misspelt one would reach the op as an unexpected keyword, or be checked
    at a default it never meant), and its properties and kinks are of the known kinds."""
    c = contract.checks(name)
    params = set(contract.defaults(name))
    for params_set, _ in c["golden"]:
        assert set(params_set) <= params, f"{name}: golden parameters {sorted(set(params_set) - params)} are " \
            f"not in the contract's signature ({sorted(params)})"
    for params_set in c["sweeps"]:
        assert set(params_set) <= params, f"{name}: sweep parameters {sorted(set(params_set) - params)} are " \
            f"not in the contract's signature ({sorted(params)})"
    assert c["properties"] <= {"monotone", "odd"}, f"{name}: unknown properties {sorted(c['properties'])}"
    assert all(isinstance(k, float) for k in c["kinks"]), f"{name}: kinks must be floats, got {c['kinks']}"
    assert set(c["exact"]) <= {0, 1}, f"{name}: exact orders are 0 (value) and 1 (derivative), got {c['exact']}"
    o = RECORDS[name]
    assert len(o.derivatives) == len(o.float64_derivatives) == 1 + c["second_order"], (
        f"{name}: second_order={c['second_order']} needs {1 + c['second_order']} derivative references "
        f"(d_{name}{', d2_' + name if c['second_order'] else ''}) and float64 formulas; the record has "
        f"{len(o.derivatives)} and {len(o.float64_derivatives)}")
    for kw, exc, _ in c["rejects"]:
        call = ast.parse(f"f({kw})", mode="eval").body
        names = {k.arg for k in call.keywords}
        assert not call.args and names <= params, f"{name}: rejects {kw!r}: keywords {sorted(names - params)} " \
            f"are not in the contract's signature ({sorted(params)})"
        assert exc in (ValueError, TypeError), f"{name}: rejects {kw!r} with {exc!r}; a bad parameter raises " \
            f"ValueError (a bad value) or TypeError (a bad type)"


def test_checks_of_an_unknown_op_says_which_exist():
    with pytest.raises(KeyError, match="not an elementwise activation of the contract; they are: relu, "):
        contract.checks("softmax")
    with pytest.raises(KeyError, match="'tanhh' is not an op of the contract"):
        contract.checks("tanhh")


def test_every_record_is_an_op_of_the_contract():
    extra = sorted(set(RECORDS) - set(contract.OPS))
    assert not extra, f"Op records without a function in vetted_layers_suite.contract: {extra}"


def test_every_module_of_reference_ops_is_whole():
    """A module of reference/ops/ is an op of the contract with the parts every activation needs
    (reference/ops/__init__.py lists them): a misspelt one would be silently left out."""
    from reference import ops

    for name, m in ops.modules().items():
        assert name in contract.OPS, f"reference/ops/{name}.py names no op of the contract"
        lack = [a for a in ("value", "d1", "float64", "float64_d1") if not callable(getattr(m, a, None))]
        assert not lack, f"reference/ops/{name}.py lacks {lack} (reference/ops/__init__.py lists the parts)"
        known = ("value", "d1", "d2", "float64", "float64_d1", "float64_d2", "FLOAT64_BOUND")
        stray = sorted(a for a, v in vars(m).items() if not a.startswith("_") and a not in known
                       and not isinstance(v, type(pathlib)) and a != "annotations"
                       and (not callable(v) or getattr(v, "__module__", None) == m.__name__))
        assert not stray, f"reference/ops/{name}.py defines {stray}, which no module takes (misspelt?)"


def test_reference_ops_modules_stand_alone():
    """A sweep record's reference hash covers reference/ but the other ops' modules in
    reference/ops/: so no op module may import another, no shared module may call a gathered
    name (it would run another op's module without hashing it), no gathered name may replace one
    a shared module defines, and shared helpers live outside reference/ops/ (a private module
    there would be in no op's hash)."""
    import ast

    import reference
    from reference import ops

    root = pathlib.Path(reference.__file__).resolve().parent
    private = sorted(p.name for p in (root / "ops").glob("_*.py") if p.name != "__init__.py")
    assert not private, f"reference/ops/ holds {private}: shared helpers go in reference/, outside ops/"
    gathered = set()
    for name in ops.modules():
        gathered |= {name, f"d_{name}", f"d2_{name}", f"{name}2"}
        tree = ast.parse((root / "ops" / f"{name}.py").read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    for a in n.names} | {n.module.split(".")[-1] for n in ast.walk(tree)
                                          if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & set(ops.modules()) - {name}, f"reference/ops/{name}.py imports another op's module"
    for shared in ("activations", "derivatives", "float64", "float64_derivatives"):
        tree = ast.parse((root / f"{shared}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not defined & gathered, f"reference/{shared}.py defines {sorted(defined & gathered)}, which an op module replaces"
        used = {n.id for f in tree.body if isinstance(f, ast.FunctionDef) and f.name != "_gather"
                for n in ast.walk(f) if isinstance(n, ast.Name)}
        assert not used & gathered, f"reference/{shared}.py calls {sorted(used & gathered)} of reference/ops/"
