"""The one registry of conformance cases.

A ``Case`` names an op of the functional contract (``impl.functional`` or any
module passed with ``--impl``), its keyword parameters, its mpmath reference,
its independent float64 formula, and its accuracy budget per dtype.  The tests
(``tests/``), the golden regeneration (``tools.regen_golden``) and the report
(``tools.report``) all iterate over ``CASES``; adding an op is one entry in a
family module here plus its implementation and its reference.

Family modules (``activations``, ...) each define ``CASES`` and
``golden_arrays(case, dtype, fallback_map) -> dict[str, np.ndarray]`` (what
``tools.regen_golden`` stores for that case and dtype); this package collects
every module of the folder, in name order.  A new family is a new module
here; nothing else needs to change to have it regenerated and listed.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

__all__ = ["Budget", "Case", "CASES", "DTYPES", "get", "by_family", "family_module", "FAMILIES"]

DTYPES = ("float32", "bfloat16", "float16", "float64")

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

    def call(self, module, x):
        """Apply the op of ``module`` (an implementation under test) to ``x``."""
        return getattr(module, self.op)(x, **self.params)


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


def get(case_id: str) -> Case:
    for c in CASES:
        if c.id == case_id:
            return c
    raise KeyError(f"no case {case_id!r}; known: {', '.join(c.id for c in CASES)}")


def by_family(family: str):
    return [c for c in CASES if c.family == family]
