"""The one registry of conformance cases.

An ``Op`` is everything the suite knows about one function of the contract
(``vetted_layers_suite.contract``): its mpmath reference and independent
float64 formula, its derivative references, its golden parameter settings,
special values, kinks, parameter sweeps, properties, known failures with
their measured figures, its layer class and the docs page of its
conventions.  A ``Case`` is one op with one parameter set and its accuracy
budget per dtype; the cases of the elementwise activations, of their
derivatives (``grad:``, ``grad2:``), the special-value table and the
parameter sweeps are all derived from the ``Op`` records.  The tests
(``tests/``), the golden regeneration (``tools.regen_golden``) and the report
(``tools.report``) all iterate over ``CASES``; ``tests/test_completeness.py``
names what an op of the contract lacks.

Family modules (``activations``, ...) each define ``CASES`` and
``golden_arrays(case, dtype, xs, fallback_map) -> (dict[str, np.ndarray], n)``
(what ``tools.regen_golden`` stores for that case and dtype, and how many
results needed mpmath); the ones with ``Op`` records define ``OPS`` too.  This
package collects every module of the folder, in name order.  A new family is
a new module here; nothing else needs to change to have it regenerated and
listed.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

from tools.dtypes import DTYPES

__all__ = ["Budget", "Case", "CASES", "DTYPES", "get", "by_family", "family_module", "FAMILIES", "Op", "OPS", "op"]


FAMILIES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


@dataclasses.dataclass(frozen=True)
class Budget:
    """Accuracy target of one case in one dtype.

    ``max_ulp``: largest |error| in ulps of the dtype over results in the
    normal range (and exact zeros).  ``min_cr``: smallest share (percent) of
    those results that must be correctly rounded.  ``why``: the derivation or
    the measurement the numbers come from.  ``known_failure``: when the
    implementation does not meet the budget yet, the measured figure and the
    reason; its tests are marked ``xfail(strict=True)``, so meeting the budget
    later is noticed too.
    """

    max_ulp: float
    min_cr: float
    why: str
    known_failure: str = ""


@dataclasses.dataclass(frozen=True)
class Case:
    """One op with one parameter set (see module docstring)."""

    id: str
    op: str
    kwargs: tuple[tuple[str, Any], ...]
    reference: Callable
    float64_formula: Callable | None
    budgets: dict
    family: str
    doc: str = ""
    extra: tuple[tuple[str, Any], ...] = ()  # family-specific settings (shapes, offsets, ...)

    @property
    def params(self) -> dict:
        return dict(self.kwargs)


@dataclasses.dataclass(frozen=True)
class Op:
    """Everything the suite knows about one op of the contract.

    ``settings``: the golden cases, ``(params, doc)`` each; their ids are
    ``name[k=v,...]`` (``case_id``).  ``derivatives`` and ``float64_derivatives``:
    the mpmath references and the float64 formulas ``(y, amp, exact)`` of the
    derivatives that have golden cases (``grad:`` for the first, ``grad2:`` for
    the second).  ``exact_float64``: the orders (0 the value, 1 the first
    derivative) that the implementation computes exactly in float64 (a
    comparison, a select or one rounded product), so they are budgeted
    correctly rounded there.  ``special_values``: case id -> ``{x token:
    expected token}`` (tokens of ``tools.special_values.resolve``).  ``kinks``:
    where the op or its derivative jumps (each must be one of
    ``tools.inputs.KINKS``, whose neighbours the golden inputs hold).
    ``sweeps``: parameter sets checked against live mpmath, not stored.
    ``properties``: ``"monotone"`` (non-decreasing), ``"odd"``.
    ``known_failures``: case id (``gelu[approximate=True]``,
    ``grad:silu``) -> the measured float64 shortfall and its reason, a
    strict xfail.  ``layer``: the class of ``impl.nn``; ``docs``: the page that
    holds the op's conventions (its kinks, signed zeros and limits).
    ``exempt``: part -> why the op has none (``"reference"``, ``"derivative"``,
    ``"special values"``), which the completeness test accepts in its place.
    """

    name: str
    family: str
    reference: Callable
    float64: Callable | None
    settings: tuple = (({}, ""),)
    derivatives: tuple = ()
    float64_derivatives: tuple = ()
    exact_float64: tuple = ()
    special_values: dict = dataclasses.field(default_factory=dict)
    kinks: tuple = ()
    sweeps: tuple = ()
    properties: frozenset = frozenset()
    known_failures: dict = dataclasses.field(default_factory=dict)
    layer: str | None = None
    docs: str = ""
    exempt: dict = dataclasses.field(default_factory=dict)

    def case_id(self, params: dict) -> str:
        kw = sorted(params.items())
        return self.name if not kw else self.name + "[" + ",".join(f"{k}={v}" for k, v in kw) + "]"


def family_module(family: str):
    if family not in FAMILIES:
        raise KeyError(f"no registry family {family!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{family}")


def _collect():
    cases = []
    for fam in FAMILIES:
        cases.extend(family_module(fam).CASES)
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise RuntimeError(f"duplicate case ids in the registry: {sorted(dup)}")
    return tuple(cases)


CASES = _collect()
OPS = tuple(o for fam in FAMILIES for o in getattr(family_module(fam), "OPS", ()))


def op(name: str) -> Op:
    """The ``Op`` record of ``name``."""
    for o in OPS:
        if o.name == name:
            return o
    raise KeyError(f"no Op record {name!r}; known: {', '.join(o.name for o in OPS)}")


def get(case_id: str) -> Case:
    for c in CASES:
        if c.id == case_id:
            return c
    raise KeyError(f"no case {case_id!r}; known: {', '.join(c.id for c in CASES)}")


def by_family(family: str):
    return [c for c in CASES if c.family == family]
