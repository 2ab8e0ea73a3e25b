"""Special values as a specification: the expected result of each op at ±0, ±inf, nan,
±largest finite, ±smallest subnormal and at its kinks, with the sign of zero.

One table, data only.  ``tests/test_special_values.py`` turns every row into a
test per dtype and device, with ids that read like sentences
(``gelu(x=-inf) -> -0.0``), and checks that the mpmath references agree with
the table (so the table and the references cannot drift apart).

Tokens: ``max``/``-max`` are the dtype's largest finite values, ``tiny``/``-tiny``
its smallest subnormals, ``x`` means "the input itself", ``ln2`` is log(2)
rounded to the dtype; other entries are floats exact in every dtype.
"""

from __future__ import annotations

import math

__all__ = ["TABLE", "resolve", "SUBNORMAL_TOKENS"]

SUBNORMAL_TOKENS = ("tiny", "-tiny")

_NAN = "nan"
_SAT_ODD = {"-0": -0.0, "0": 0.0, "nan": _NAN}  # odd-at-zero functions keep the sign of zero

TABLE: dict[str, dict[str, object]] = {
    "relu": {"-inf": 0.0, "-max": 0.0, "-tiny": 0.0, "-0": 0.0, "0": 0.0, "tiny": "x", "max": "x",
             "inf": "inf", "nan": _NAN, "-1": 0.0, "1": 1.0},
    "relu6": {"-inf": 0.0, "-max": 0.0, "-0": 0.0, "0": 0.0, "6": 6.0, "max": 6.0, "inf": 6.0,
              "nan": _NAN, "-tiny": 0.0},
    "leaky_relu[negative_slope=0.01]": {"-inf": "-inf", "-0": -0.0, "0": 0.0, "inf": "inf", "max": "x",
                                        "nan": _NAN, "-tiny": -0.0, "tiny": "x"},
    "leaky_relu[negative_slope=0.1]": {"-inf": "-inf", "-0": -0.0, "0": 0.0, "inf": "inf", "max": "x",
                                       "nan": _NAN, "-tiny": -0.0, "tiny": "x"},
    "elu": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": "inf", "max": "x", "tiny": "x", "-tiny": "x"},
    "celu[alpha=2.0]": {"-inf": -2.0, "-max": -2.0, **_SAT_ODD, "inf": "inf", "max": "x", "tiny": "x"},
    "selu": {**_SAT_ODD, "inf": "inf", "max": "inf", "-inf": "selu(-inf)"},
    "gelu": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"},
    "gelu[approximate=True]": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"},
    "silu": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"},
    "mish": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"},
    "sigmoid": {"-inf": 0.0, "-max": 0.0, "-0": 0.5, "0": 0.5, "tiny": 0.5, "-tiny": 0.5, "inf": 1.0,
                "max": 1.0, "nan": _NAN},
    "log_sigmoid": {"-inf": "-inf", "-max": "x", "inf": -0.0, "max": -0.0, "0": "-ln2", "-0": "-ln2",
                    "nan": _NAN},
    "tanh": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0, "tiny": "x", "-tiny": "x"},
    "softplus": {"-inf": 0.0, "-max": 0.0, "inf": "inf", "max": "x", "0": "ln2", "-0": "ln2", "nan": _NAN},
    "hard_sigmoid": {"-inf": 0.0, "-max": 0.0, "-3": 0.0, "-0": 0.5, "0": 0.5, "3": 1.0, "max": 1.0,
                     "inf": 1.0, "nan": _NAN},
    "hard_swish": {"-inf": -0.0, "-max": -0.0, "-3": -0.0, **_SAT_ODD, "3": 3.0, "max": "x", "inf": "inf"},
    "softsign": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0},
}


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
