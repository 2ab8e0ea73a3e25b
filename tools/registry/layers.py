"""Registry entries of the linear and pooling layers: linear, conv2d, max_pool2d, avg_pool2d.

Each case stores its own inputs (``x``, and ``weight``/``bias`` for the linear
maps) in its golden file, next to the exact results rounded to the dtype
(``rounded``, ``residual``) and, for the linear maps, ``abs_sum`` = ``sum |w x| + |b|``
per output.  Inputs are values on the grid ``k * 2**-p`` (``p`` the dtype's
significand bits, ``|k| < 2**p``), so they are exactly representable in their
dtype; ``k`` comes from ``tools.inputs.uniform`` with a stream derived from the
case id, never from numpy's RNG.  "wide" inputs are also scaled by random
powers of two (``2**-20 .. 2**20``; ``2**-4 .. 2**4`` for float16).

Budgets (never widened to make a test pass):

* linear, conv2d: a-priori bound, not ulps (cancellation makes the error in
  ulps of the output unbounded).  With ``m`` accumulated terms (``n``
  products per output, plus one for the bias) and the accumulation's unit
  roundoff ``u`` (``2**-24``: float32 accumulation for float16, bfloat16 and
  float32; ``2**-53`` for float64), any summation order with or without FMA
  gives ``|fl(s) - s| <= gamma_m * (sum |w x| + |b|)``, ``gamma_m = m u / (1 - m u)``
  (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5).
  float16/bfloat16 round that float32 sum once more:
  ``+ u_out * (|s| + gamma_m * (sum |w x| + |b|)) + min_subnormal / 2`` with
  ``u_out = 2**-11`` (float16) or ``2**-8`` (bfloat16).  The tests require
  every output within the bound and report the largest error both in ulps of
  the output and as a fraction of the bound.
* max_pool2d: exact (the result is one of the inputs).
* avg_pool2d: correctly rounded (exact window sum by floating-point
  expansions, exact remainder tests; see ``impl._pooling``).
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

import ml_dtypes

from reference import FORMATS
from reference import linear as RL
from reference import pooling as RP
from tools.dtypes import NP_DTYPES
from tools.inputs import uniform

from . import Budget, Case, Op

__all__ = ["CASES", "OPS", "golden_arrays", "BoundBudget", "error_bound", "stored_inputs", "n_products", "INPUT_NAMES"]

INPUT_NAMES = ("x", "weight", "bias")


@dataclasses.dataclass(frozen=True)
class BoundBudget(Budget):
    """An a-priori error bound (module docstring) instead of an ulp budget.

    ``acc_unit``: unit roundoff of the accumulation; ``out_unit``: unit roundoff
    of a final rounding to a narrower format (0 when there is none);
    ``out_min_subnormal``: that format's smallest subnormal (the absolute error
    of its rounding below the normal range is at most half of it);
    ``max_bound_fraction``: the largest allowed ``|error| / bound``.
    """

    acc_unit: float = 2.0**-24
    out_unit: float = 0.0
    out_min_subnormal: float = 0.0
    max_bound_fraction: float = 1.0


def error_bound(budget: BoundBudget, abs_sum, exact, n_products: int, has_bias: bool):
    """The bound of the module docstring, per output (float64 arrays in, out)."""
    m = n_products + (1 if has_bias else 0)
    mu = m * budget.acc_unit
    gamma = mu / (1.0 - mu)
    acc = gamma * np.asarray(abs_sum, dtype=np.float64)
    return acc + budget.out_unit * (np.abs(exact) + acc) + 0.5 * budget.out_min_subnormal


_WHY_F32 = "gamma_m (sum|wx| + |b|), u = 2**-24: float32 accumulation at full precision"
_WHY_F64 = "gamma_m (sum|wx| + |b|), u = 2**-53: float64 accumulation"
_WHY_B16 = ("float32 accumulation, gamma_m (sum|wx| + |b|) with u = 2**-24, then one rounding to bfloat16: "
            "+ 2**-8 (|s| + that) + 2**-134")
_WHY_H16 = ("float32 accumulation, gamma_m (sum|wx| + |b|) with u = 2**-24, then one rounding to float16: "
            "+ 2**-11 (|s| + that) + 2**-25")
_BOUND = {
    "float32": BoundBudget(math.inf, 0.0, _WHY_F32),
    "bfloat16": BoundBudget(math.inf, 0.0, _WHY_B16, out_unit=2.0**-8, out_min_subnormal=2.0**-133),
    "float16": BoundBudget(math.inf, 0.0, _WHY_H16, out_unit=2.0**-11, out_min_subnormal=2.0**-24),
    "float64": BoundBudget(math.inf, 0.0, _WHY_F64, acc_unit=2.0**-53),
}
_EXACT = {d: Budget(0.5, 100.0, "exact: the result is one of the inputs") for d in NP_DTYPES}
_CR = {d: Budget(0.5, 100.0, "correctly rounded: exact window sum (float64 expansion), exact remainder tests")
       for d in NP_DTYPES}


def _id(op, **parts):
    return op + "[" + ",".join(f"{k}={v}" for k, v in parts.items()) + "]"


def _shape_str(shape):
    return "x".join(str(s) for s in shape)


def _linear(batch, n_in, n_out, bias=True, inputs="unit"):
    cid = _id("linear", x=_shape_str((*batch, n_in)), out=n_out, bias=int(bias), inputs=inputs)
    extra = (("x_shape", (*batch, n_in)), ("w_shape", (n_in, n_out)), ("bias", bias), ("inputs", inputs))
    return Case(cid, "linear", (), RL.linear, None, dict(_BOUND), "layers",
                f"x {(*batch, n_in)} @ w {(n_in, n_out)}" + (" + b" if bias else ""), extra)


def _conv(x_shape, kernel, c_out, stride=(1, 1), padding="SAME", dilation=(1, 1), groups=1, bias=True):
    kh, kw = kernel
    c_in = x_shape[-1]
    w_shape = (kh, kw, c_in // groups, c_out)
    cid = _id("conv2d", x=_shape_str(x_shape), w=_shape_str(w_shape), stride=_shape_str(stride), padding=padding,
              dilation=_shape_str(dilation), groups=groups, bias=int(bias))
    kwargs = (("dilation", dilation), ("groups", groups), ("padding", padding), ("stride", stride))
    extra = (("x_shape", x_shape), ("w_shape", w_shape), ("bias", bias), ("inputs", "unit"))
    return Case(cid, "conv2d", kwargs, RL.conv2d, None, dict(_BOUND), "layers",
                f"NHWC {x_shape} * HWIO {w_shape}", extra)


def _pool(op, x_shape, kernel, strides, padding, inputs="unit"):
    cid = _id(op, x=_shape_str(x_shape), k=_shape_str(kernel), strides=_shape_str(strides), padding=padding,
              inputs=inputs)
    kwargs = (("kernel_size", kernel), ("padding", padding), ("strides", strides))
    ref = RP.max_pool2d if op == "max_pool2d" else RP.avg_pool2d
    budgets = dict(_EXACT if op == "max_pool2d" else _CR)
    extra = (("x_shape", x_shape), ("inputs", inputs))
    return Case(cid, op, kwargs, ref, None, budgets, "layers", f"{op} over {x_shape}", extra)


CASES = [
    _linear((8,), 64, 32),
    _linear((4,), 300, 16, bias=False),
    _linear((2, 3), 17, 5),
    _linear((2,), 2048, 8),
    _linear((6,), 96, 12, inputs="wide"),
    _conv((2, 8, 8, 3), (3, 3), 8),
    _conv((2, 9, 9, 4), (3, 3), 6, stride=(2, 2), padding="VALID", bias=False),
    _conv((1, 10, 10, 4), (3, 3), 4, dilation=(2, 2)),
    _conv((2, 8, 8, 4), (3, 3), 6, groups=2),
    _conv((1, 7, 9, 5), (2, 4), 3, stride=(2, 1)),
    _conv((1, 4, 4, 64), (3, 3), 8),
    _pool("max_pool2d", (2, 8, 8, 3), (2, 2), (2, 2), "VALID"),
    _pool("max_pool2d", (2, 7, 7, 3), (3, 3), (2, 2), "SAME"),
    _pool("max_pool2d", (1, 9, 8, 2), (3, 2), (1, 2), "VALID"),
    _pool("avg_pool2d", (2, 8, 8, 3), (2, 2), (2, 2), "VALID"),
    _pool("avg_pool2d", (2, 7, 7, 3), (3, 3), (1, 1), "SAME"),
    _pool("avg_pool2d", (2, 9, 9, 3), (3, 3), (2, 2), "VALID", inputs="wide"),
    _pool("avg_pool2d", (1, 8, 10, 4), (2, 3), (2, 3), "SAME", inputs="wide"),
]


def _stream(case_id: str, dtype: str, name: str) -> int:
    return zlib.crc32(f"{case_id}/{dtype}/{name}".encode()) & 0x7FFFFFFF


def _grid(shape, dtype: str, stream: int, kind: str) -> np.ndarray:
    """Values ``k * 2**-p`` (exact in ``dtype``), optionally scaled by powers of two (module docstring)."""
    n = int(np.prod(shape))
    p = FORMATS[dtype].p
    top = 2**p - 1
    k = np.floor(uniform(n, stream) * (2 * top + 1)) - top
    v = np.ldexp(k, -p)
    if kind == "wide":
        span = 4 if dtype == "float16" else 20
        e = np.floor(uniform(n, stream + 1) * (2 * span + 1)).astype(np.int64) - span
        v = np.ldexp(v, e)
    out = v.reshape(shape).astype(NP_DTYPES[dtype])
    if not np.array_equal(out.astype(np.float64), v.reshape(shape)):
        raise RuntimeError(f"grid values not exact in {dtype}: the generator is broken")
    return out


def _inputs(case, dtype):
    ex = dict(case.extra)
    arrays = {"x": _grid(ex["x_shape"], dtype, _stream(case.id, dtype, "x"), ex["inputs"])}
    if case.op in ("linear", "conv2d"):
        arrays["weight"] = _grid(ex["w_shape"], dtype, _stream(case.id, dtype, "weight"), "unit")
        if ex["bias"]:
            arrays["bias"] = _grid((ex["w_shape"][-1],), dtype, _stream(case.id, dtype, "bias"), "unit")
    return arrays


def golden_arrays(case, dtype, xs=None, fallback_map=map):
    """The case's inputs, exact results rounded to ``dtype`` (``rounded``, ``residual``)
    and, for linear maps, ``abs_sum``; plus the number of results computed exactly
    (all of them: this family has no fast tier)."""
    ins = _inputs(case, dtype)
    f64 = {k: v.astype(np.float64) for k, v in ins.items()}
    if case.op == "linear":
        ref = RL.linear(f64["x"], f64["weight"], f64.get("bias"), dtype)
    elif case.op == "conv2d":
        ref = RL.conv2d(f64["x"], f64["weight"], f64.get("bias"), dtype, **case.params)
    elif case.op == "max_pool2d":
        ref = RP.max_pool2d(f64["x"], **case.params)
    else:
        ref = RP.avg_pool2d(f64["x"], fmt=dtype, **case.params)
    out = {"rounded": ref["rounded"].astype(NP_DTYPES[dtype]), "residual": ref["residual"].astype(np.int16)}
    if "abs_sum" in ref:
        out["abs_sum"] = ref["abs_sum"].astype(np.float64)
    out.update(ins)
    return out, int(out["rounded"].size)


def stored_inputs(stored: dict, dtype: str) -> dict:
    """The inputs of a loaded case file in ``dtype`` (bfloat16 ones are stored as uint16 bits)."""
    out = {}
    for k in INPUT_NAMES:
        if k in stored:
            a = stored[k]
            out[k] = a.view(ml_dtypes.bfloat16) if dtype == "bfloat16" and a.dtype == np.uint16 else a
    return out


def n_products(case) -> int:
    """Products accumulated per output of a linear map."""
    ws = dict(case.extra)["w_shape"]
    return int(np.prod(ws[:-1]))

_NO_GRAD = "no derivative reference: the suite checks these layers' values, not their gradients"
_NO_SPECIAL = "sums and windows of their inputs: no special values of their own"
_BY_CONSTRUCTION = "exact by construction, checked so in tests/test_layers_model.py (no rounding to judge)"
OPS = [Op("linear", "layers", RL.linear, None, settings=(), layer="Linear", docs="docs/layers.md",
          exempt={"derivative": _NO_GRAD, "special values": _NO_SPECIAL}),
       Op("conv2d", "layers", RL.conv2d, None, settings=(), layer="Conv2d", docs="docs/layers.md",
          exempt={"derivative": _NO_GRAD, "special values": _NO_SPECIAL}),
       Op("max_pool2d", "layers", RP.max_pool2d, None, settings=(), layer="MaxPool2d", docs="docs/layers.md",
          exempt={"derivative": _NO_GRAD, "special values": _NO_SPECIAL}),
       Op("avg_pool2d", "layers", RP.avg_pool2d, None, settings=(), layer="AvgPool2d", docs="docs/layers.md",
          exempt={"derivative": _NO_GRAD, "special values": _NO_SPECIAL}),
       Op("flatten", "layers", None, None, settings=(), layer="Flatten", docs="docs/layers.md",
          exempt={"reference": _BY_CONSTRUCTION, "derivative": _NO_GRAD, "special values": _NO_SPECIAL}),
       Op("dropout", "layers", None, None, settings=(), layer="Dropout", docs="docs/layers.md",
          exempt={"reference": "random: its law, mask and scaling are checked in tests/test_layers_model.py",
                  "derivative": _NO_GRAD, "special values": _NO_SPECIAL})]
