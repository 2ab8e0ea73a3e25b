"""The functional contract itself: names, keyword signatures and defaults of the module under test.

The contract is ``vetted_layers_suite.contract``, a module of signature stubs
with no implementation: every op, its keyword parameters and their defaults.
A module under ``--impl`` that provides an op must accept the same keywords
with the same defaults (a different default, such as
``gelu(approximate=True)``, would silently compare another function with the
reference whenever a case relies on the default).  ``impl.functional`` must
match it exactly: the same functions, parameters, kinds and defaults, so an
accidental change in the implementation is caught here rather than becoming
the contract.
"""

from __future__ import annotations

import inspect

import pytest

import impl.functional
from tools import target
from vetted_layers_suite import contract

CONTRACT = {n: contract.signature(n) for n in contract.OPS}


def _keywords(sig):
    ps = list(sig.parameters.values())
    return {p.name: p.default for p in ps[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_signature_matches_contract(name, impl_op, request, reproduce):
    fn = impl_op(name)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        pytest.skip(f"{name}: the signature of {request.config._impl_name}.{name} cannot be inspected")
    want, got = _keywords(CONTRACT[name]), _keywords(sig)
    first = next(iter(sig.parameters.values()), None)
    assert first is not None and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD), (
        f"{request.config._impl_name}.{name}{sig}: the first parameter must be the array x, positional")
    missing = {k: v for k, v in want.items() if k not in got}
    differ = {k: (want[k], got[k]) for k in want if k in got and not _same(want[k], got[k])}
    assert not missing and not differ, (
        f"{request.config._impl_name}.{name}{sig} does not match the contract {name}"
        f"{CONTRACT[name]}: " + "; ".join(
            [f"missing keyword {k}={v!r}" for k, v in missing.items()]
            + [f"default {k}={g!r}, expected {k}={w!r}" for k, (w, g) in differ.items()])
        + f"; reproduce: {reproduce}")


def _same(a, b):
    """Equal defaults: bools by identity (True is not 1), numbers by value (1 == 1.0), else type and value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def test_provides_at_least_one_op(impl_module, request):
    """A module that provides none of the ops is almost surely the wrong module: every case
    would be skipped and the run would pass having checked nothing."""
    name = request.config._impl_name
    have = [n for n in CONTRACT if target.provided(impl_module, n, name) is not None]
    assert have, (f"--impl {name} provides none of the contract's functions ({', '.join(sorted(CONTRACT))}); "
                  "pass the module (or module:ATTRIBUTE) that defines them")


def _differs(a, b):
    """Parameter names, kinds or defaults differ (annotations are the implementation's own)."""
    pa, pb = list(a.parameters.values()), list(b.parameters.values())
    return len(pa) != len(pb) or any(x.name != y.name or x.kind != y.kind or not _same(x.default, y.default)
                                     for x, y in zip(pa, pb))


def test_impl_functional_is_the_contract():
    """impl.functional has every op of the contract and no other public function, each with the
    contract's parameters, kinds and defaults."""
    public = {n for n, f in vars(impl.functional).items()
              if not n.startswith("_") and callable(f) and not inspect.ismodule(f)}
    assert public == set(CONTRACT), (
        f"impl.functional and the contract differ: only in impl.functional {sorted(public - set(CONTRACT))}, "
        f"only in vetted_layers_suite.contract {sorted(set(CONTRACT) - public)}")
    sigs = {n: inspect.signature(getattr(impl.functional, n)) for n in CONTRACT}
    differ = [f"{n}: impl.functional{sigs[n]}, contract{CONTRACT[n]}" for n in CONTRACT
              if _differs(sigs[n], CONTRACT[n])]
    assert not differ, "impl.functional's signatures differ from the contract:\n" + "\n".join(differ)


def test_contract_is_a_spec_without_implementation():
    """The contract imports nothing of the project and every stub is a signature and a docstring."""
    src = inspect.getsource(contract)
    assert "import impl" not in src and "from impl" not in src and "import jax" not in src
    for n in CONTRACT:
        fn = getattr(contract, n)
        assert fn.__doc__, f"vetted_layers_suite.contract.{n} has no docstring"
        assert fn(*[None] * sum(p.default is p.empty for p in CONTRACT[n].parameters.values())) is None


_README = __import__("pathlib").Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.skipif(not _README.exists(), reason="README.md is not in the installed suite; this check runs in a clone")
def test_readme_names_every_op_of_the_contract():
    """The README's list for adapter authors names every op of the contract (an op added to
    the contract and not to that list would be invisible to them)."""
    text = _README.read_text()
    missing = [n for n in contract.OPS if f"`{n}(" not in text and f"`{n}`" not in text]
    assert not missing, f"README.md (\"The contract, for an adapter author\") does not name {missing}"
