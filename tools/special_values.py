"""Special values as a specification: the expected result of each op at ±0, ±inf, nan,
±largest finite, ±smallest subnormal and at its kinks, with the sign of zero.

One table, data only, gathered from the ``special_values`` of the registry's ``Op``
records, keyed by case id (an activation's row is the ``special`` of its ``@_checked``
in ``vetted_layers_suite/contract.py``, for each golden parameter set).
``tests/test_special_values.py`` turns every row into a
test per dtype and device, with ids that read like sentences
(``gelu(x=-inf) -> -0.0``), and checks that the mpmath references agree with
the table (so the table and the references cannot drift apart).

Tokens: ``max``/``-max`` are the dtype's largest finite values, ``tiny``/``-tiny``
its smallest subnormals, ``x`` means "the input itself", ``ln2`` is log(2)
rounded to the dtype; other entries are floats exact in every dtype.
"""

from __future__ import annotations

import math

from tools.registry import OPS

__all__ = ["TABLE", "resolve", "SUBNORMAL_TOKENS"]

SUBNORMAL_TOKENS = ("tiny", "-tiny")

TABLE: dict[str, dict[str, object]] = {cid: row for o in OPS for cid, row in o.special_values.items()}


def resolve(token, finfo_max: float, tiny: float, x: float | None = None, special=None) -> float:
    """A token of the table as a float (``x`` for "x"); ``special(name)`` answers named
    values like ``selu(-inf)`` that are not exact in every dtype."""
    if isinstance(token, float):
        return token
    t = str(token)
    table = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan, "max": finfo_max, "-max": -finfo_max,
             "tiny": tiny, "-tiny": -tiny, "-0": -0.0, "0": 0.0, "ln2": math.log(2), "-ln2": -math.log(2)}
    if t == "x":
        return x
    if t in table:
        return table[t]
    try:
        return float(t)
    except ValueError:
        if special is None:
            raise
        return special(t)
