"""The verdict row: what one check of the implementation under test found, filled once by the test.

A test measures, decides pass or fail, fills a :class:`Verdict` with that decision and the
figures it came from, records it (the ``record`` fixture) and asserts from it.  The reports
(``tools.reporting``, ``tools.report``, ``tools.leaderboard``) and the baseline comparison
(``tools.baseline``) render and compare these rows; none of them recomputes a budget or parses a
message.

Schema (every row, as JSON: ``Verdict.to_dict()``, the fields below plus ``figures`` flattened):

========== ===============================================================================
field      meaning
========== ===============================================================================
kind       ``value``, ``grad``, ``grad2``, ``vjp``, ``param``, ``running_stats`` (measured
           against exact results); ``special`` (one special-value table entry); ``check``
           (any other test: API, dtype, convention, property); ``skip`` (not run: ``reason``);
           ``warning`` (a warning the implementation under test raised)
case       the registry case id (``leaky_relu[negative_slope=0.1]``), or the test's op
op         the op of the contract the row is about (``leaky_relu``), or ``""``
dtype      ``float32``, ``bfloat16``, ``float16``, ``float64``, or ``""``
device     the device id (``cpu0``), or ``""``
source     ``golden``, ``live``, ``table``, or the test function's name
passed     True / False; None for ``skip`` and ``warning`` rows
cause      ``""`` when passed; else one of :data:`CAUSES`
detail     one line saying what failed (``returned float32 for a float64 input``,
           ``differs from the contract's convention: expected -0.0, got nan``), or ``""``
test       the pytest node id of the test that filled the row
reproduce  the command that reruns that test against this implementation
outcome    pytest's outcome of that test: ``passed``, ``failed``, ``xfailed`` (a known
           failure), ``skipped``
convention True when the check is about a convention of the contract (test marked
           ``convention``), not about accuracy
figures    the measurement, flattened into the row: the fields of ``tools.metric.Stats``,
           ``pct_cr``, ``worst_input``, ``max_abs_ulps`` and ``abs_unit`` (absolute error
           in ulps of a stated unit), ``bound_fraction`` (|error| / an a-priori bound),
           the budget it was judged by (``budget_max_ulp``, ``budget_min_cr``,
           ``budget_max_abs_ulps``, ``budget_text``, ``max_bound_fraction``) and
           ``profile`` (the budget profile, ``tools.profiles``); special rows: ``x``,
           ``expected``, ``got``, ``status``
========== ===============================================================================
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["Verdict", "CAUSES", "op_of", "from_dict", "worst_figure"]

# root causes, in the order the report lists them
CAUSES = {
    "dtype": "a dtype demotion or promotion (the result is not in the input's dtype)",
    "nan/inf": "NaN or infinity where the exact result is finite (or the reverse), e.g. at ±inf",
    "cancellation": "cancellation at large offsets (normalizations, softmax at large scale)",
    "convention": "differs from the contract's convention (kinks, signs of zeros, limits, edge rows)",
    "accuracy": "over the accuracy budget",
    "check": "another check of the contract failed (API, shapes, properties, devices)",
}


def op_of(case: str) -> str:
    """The op of a case id: ``grad:leaky_relu[negative_slope=0.1]`` -> ``leaky_relu``."""
    head, _, rest = case.partition(":")
    base = rest if head in ("grad", "grad2", "vjp") and rest else case
    return base.split("[", 1)[0].split(":", 1)[0]


@dataclasses.dataclass
class Verdict:
    """One row of the report (see the module docstring for the schema)."""

    kind: str
    case: str
    dtype: str = ""
    device: str = ""
    source: str = ""
    passed: bool | None = None
    cause: str = ""
    detail: str = ""
    test: str = ""
    reproduce: str = ""
    outcome: str = ""
    convention: bool = False
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.cause and self.cause not in CAUSES:
            raise ValueError(f"cause={self.cause!r} is not one of {sorted(CAUSES)}")

    @property
    def op(self) -> str:
        return op_of(self.case)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "figures"}
        d["op"] = self.op
        d.update(self.figures)
        return d


_FIELDS = {f.name for f in dataclasses.fields(Verdict)} - {"figures"}


def from_dict(d: dict) -> Verdict:
    """The row back from its JSON form."""
    return Verdict(**{k: v for k, v in d.items() if k in _FIELDS},
                   figures={k: v for k, v in d.items() if k not in _FIELDS and k != "op"})


def worst_figure(r: dict) -> tuple[float, str]:
    """The figure a row is judged and compared by, and its unit: the fraction of an a-priori
    bound, the absolute error where only that is budgeted, else the max ulp."""
    if r.get("bound_fraction") is not None:
        return float(r["bound_fraction"]), "of bound"
    if r.get("budget_max_abs_ulps") is not None and math.isinf(r.get("budget_max_ulp", 0.0)):
        return float(r.get("max_abs_ulps") or 0.0), r.get("abs_unit", "ulp")
    return float(r.get("max_ulp", 0.0)), "ulp"
