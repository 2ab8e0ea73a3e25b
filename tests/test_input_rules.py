"""Every input rule of tests/input_rules.py raises its exception with its message,
docs/input_rules.md is the table's rendering, and impl/ checks user input with
exceptions, never with ``assert`` (which ``python -O`` removes)."""

from __future__ import annotations

import ast
import pathlib

import pytest

import impl
from tests.input_rules import RULES, SECTIONS, render, run

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS_PAGE = ROOT / "docs" / "input_rules.md"


@pytest.mark.parametrize("rule", RULES, ids=[r.what for r in RULES])
def test_bad_input_gets_a_clear_error(rule):
    with pytest.raises(rule.exception, match=rule.match) as info:
        run(rule)
    # the message says what to do, not only what went wrong
    message = str(info.value)
    assert any(w in message for w in ("pass ", "use ", "expects", "expected", "must", "needs")), (
        f"{rule.what}: message {message!r} names no fix; reproduce: {rule.code}")


def test_rule_names_are_unique_and_sections_known():
    names = [r.what for r in RULES]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)
    assert {r.section for r in RULES} <= set(SECTIONS)


@pytest.mark.skipif(not DOCS_PAGE.exists(), reason="docs/ is not in the installed suite; this check runs in a clone")
def test_docs_page_is_the_rendered_table():
    page = DOCS_PAGE.read_text()
    assert page == render(), "docs/input_rules.md is out of date; run: python -m tests.input_rules"


def test_impl_never_asserts_on_input():
    found = []
    paths = sorted(pathlib.Path(impl.__file__).parent.glob("*.py"))
    assert paths, f"no .py files beside {impl.__file__}"
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, f"assert statements in impl/ (removed by python -O; raise ValueError/TypeError): {found}"
