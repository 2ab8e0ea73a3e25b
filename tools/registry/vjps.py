"""Registry entries of the derivatives of the reductions: exact VJPs.

For a few cases ``<id>`` of ``tools/registry/reductions.py`` there is
``vjp:<id>``: the VJP ``J(x)^T g`` of the op with respect to ``x`` at the
case's inputs, for ``len(COTANGENTS)`` fixed cotangents ``g``, each correctly
rounded to the dtype (``reference/reduction_vjps.py``).  Inputs and parameters
are the base case's (``x`` cut to a leading block where ``extra["block"]`` says
so, to keep the golden data small; a group is then still a whole group of the
cut input); a case file stores ``x`` (and ``weight``, ``bias``,
``running_mean``, ``running_var`` as the base case has them), ``g`` of shape
``(k, *x.shape)``, and ``rounded``, ``residual`` and ``term_exp`` of the same
shape.  ``term_exp`` is ``floor(log2 T)`` of the element's scale ``T``: the
largest magnitude among the exact VJP and the terms the textbook VJP adds up
(``r h_i``, ``r mean(h)``, ``r xhat_i mean(h xhat)`` for the normalizations
with ``h = g w``; ``p_j g_j``, ``p_j <p, g>`` for softmax; ``g_j``, ``p_j sum g``
for log_softmax; absolute values, the sums taken of absolute values).

Cotangents (exact in every dtype; ``U`` from ``tools.inputs.uniform`` on a
stream derived from the case id and the rule):

* ``uniform``: ``2U - 1``, rounded to the dtype;
* ``offset``: ``1 + (2U - 1) / 16``, rounded to the dtype: a cotangent
  dominated by its mean, so ``g - <p, g>`` and the normalizations' bracket
  ``h - mean(h) - ...`` cancel by about 16x (more in bfloat16, whose 8 bits
  leave ``g`` on a few values);
* ``sparse``: 1 where ``U < 1/16``, else 0 (label-like; rows of zeros give an
  exact zero VJP).

Budgets (never widened to make a test pass; a miss is a ``known_failure``
with the measured figure).  "abs" is ``|got - exact|`` in ulps, in the dtype,
of ``2**term_exp``; the error in ulps of the result and the correctly rounded
share are reported, not budgeted (``max_ulp = inf``): where the terms cancel the
result is small and a fixed absolute error is many of its ulps.

* float32, bfloat16, float16: abs ``<= 1``.  The implementation evaluates the
  textbook VJP in float64 (sums of ``n <= 512`` terms, each term and the
  result ``<= T``) with an error below ``(n + 8) 2**-53 * 3T < 2**-40 T`` and
  rounds it once to the dtype: ``<= 0.5`` ulp of the result, and the result is
  at most ``T``, so ``<= 0.5 + 2**-16`` ulp of ``T``.  bfloat16/float16 are
  converted through float32 (a double rounding, as the values): ``+ 2**-17``
  resp. ``2**-14`` ulp.  A budget of 1 leaves headroom for nothing else.
* float64: a first-order bound on the implementation's float64 evaluation, in
  units of ``u T`` (``u = 2**-53``; ``u T <= 1`` ulp of ``T``), every rounding at
  its maximum and the sums along a tree of depth ``l = log2 n`` (``l u`` of their
  absolute sums).  Normalizations, ``t = g w r``, ``r = 1/sqrt(var + eps)``:
  ``r`` is within ``(l/2 + 2.5) u`` (the sum of squares ``(l + 3) u``, halved by
  the square root, and the square root and the division), ``xhat`` within
  ``(l/2 + 4.5) u``; the terms ``t_i`` ``(l/2 + 4.5)``, ``mean(t)``
  ``(1.5 l + 5.5)``, ``xhat_i mean(xhat t)`` ``(2.5 l + 16.5)``, the two
  subtractions 3: abs ``<= 29.5 + 4.5 log2 n``.  softmax/log_softmax: ``p`` within
  ``(l + 7.2) u`` (XLA's float64 ``exp`` within 1.3 ulp, measured on CPU; the
  sum; ``1/S``; the product), the terms ``p_j g_j`` ``(l + 8.2)``,
  ``p_j <p, g>`` ``(3 l + 16.4)`` (``p_j sum g``: ``2 l + 8.2``), the
  subtractions 2: abs ``<= 26.6 + 4 log2 n``.  Measured (``docs/reductions.md``):
  at most 5 (normalizations) and 3.6 (softmax family) on the golden cases,
  and 6 on 4096 random float64 layer_norm rows of ``n = 8`` and of ``n = 32``
  (offsets 0 and 1e4, each of the three cotangent rules): the roundings do
  not align.
"""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from reference import FORMATS
from reference import reduction_vjps as RV
from tools.dtypes import NP_DTYPES
from tools.inputs import uniform

from . import Case
from . import reductions as _red

__all__ = ["CASES", "COTANGENTS", "golden_arrays", "cotangents", "case_arrays", "base_case", "load_arrays",
           "VjpBudget", "BASES"]

COTANGENTS = ("uniform", "offset", "sparse")

# (base case id, the leading block of its input kept: ``k`` or ``(k1, k2, ...)`` keeps
# ``x[:k1, :k2, ...]``, None all of it).  Offsets 0 and 1e4 for the normalizations,
# softmax at logit scales 1 and 100 (the latter's p spans hundreds of binades: a wide dynamic range)
BASES = (
    ("layer_norm[mu=0,width=256]", 1),
    ("layer_norm[mu=1e4,width=16]", None),
    ("layer_norm[mu=1e4,sigma=100,width=256]", 1),
    ("layer_norm[affine,mu=1e4,width=256]", 1),
    ("rms_norm[mu=0,width=256]", 1),
    ("rms_norm[mu=1e4,width=256]", 1),
    ("batch_norm[train,tutorial,mu=10,sigma=5,shape=32x10]", None),
    ("batch_norm[train,nlc,mu=1e3,shape=8x16x4]", None),
    ("group_norm[groups=4,mu=1e4,shape=2x8x8x16]", (1, 4, 4)),
    ("group_norm[tutorial,groups=4,shape=2x8x8x16]", (1, 4, 4)),
    ("instance_norm[mu=1e4,shape=2x64x8]", (1, 32)),
    ("instance_norm[affine,mu=0,shape=2x8x8x4]", 1),
    ("softmax[scale=1,width=256]", 1),
    ("softmax[scale=100,width=256]", 1),
    ("softmax[axis=0,scale=10,shape=16x8]", None),
    ("log_softmax[scale=1,width=256]", 1),
    ("log_softmax[scale=100,width=256]", 1),
    ("log_softmax[axis=0,scale=10,shape=16x8]", None),
)


@dataclasses.dataclass(frozen=True)
class VjpBudget(_red.ReductionBudget):
    """``max_abs_ulps``: the largest ``|got - exact|`` in ulps of ``2**term_exp`` (module docstring)."""


_WHY_NARROW = ("abs <= 1 ulp of the largest term: textbook VJP in float64 (< 2**-40 T) rounded once, <= 0.5 ulp "
               "of a result <= T (+2**-17 / 2**-14 for the double rounding of bfloat16 / float16)")
_WHY_S64 = ("abs <= 26.6 + 4 log2(n) ulps of the largest term: first-order bound, p within (log2(n) + 7.2)u (XLA's "
            "float64 exp <= 1.3 ulp, measured on CPU), p_j g_j and p_j <p, g> with tree sums, two subtractions")
_WHY_N64 = ("abs <= 29.5 + 4.5 log2(n) ulps of the largest term: first-order bound, r within (log2(n)/2 + 2.5)u, "
            "xhat (log2(n)/2 + 4.5)u, the terms t_i, mean(t), xhat_i mean(xhat t) with tree sums, two subtractions")

# measured shortfalls of impl.functional: "vjp:<id>" -> {dtype: figure and reason}
_KNOWN: dict = {}


def _budgets(base, n):
    known = _KNOWN.get(f"vjp:{base.id}", {})
    out = {}
    for d in base.budgets:
        if d == "float64" and base.op in ("softmax", "log_softmax"):
            out[d] = VjpBudget(math.inf, 0.0, _WHY_S64, known.get(d, ""), 26.6 + 4 * math.log2(n))
        elif d == "float64":
            out[d] = VjpBudget(math.inf, 0.0, _WHY_N64, known.get(d, ""), 29.5 + 4.5 * math.log2(n))
        else:
            out[d] = VjpBudget(math.inf, 0.0, _WHY_NARROW, known.get(d, ""), 1.0)
    return out


def _group_size(base, block):
    """Elements per statistic (per softmax row) of the base case's input cut to ``block``."""
    shape = list(dict(base.extra)["shape"])
    for i, k in enumerate(block or ()):
        shape[i] = min(shape[i], k)
    if base.op in ("softmax", "log_softmax"):
        return shape[dict(base.kwargs)["axis"]]
    return _red._stat_size(base.op, dict(base.kwargs), shape)


def _vjp_case(base_id, block):
    base = next(c for c in _red.CASES if c.id == base_id)
    block = (block,) if isinstance(block, int) else block
    ex = (("block", block), ("of", base.id))
    doc = f"VJP w.r.t. x of {base.id} ({base.doc})" + (f", on x[{', '.join(f':{k}' for k in block)}]"
                                                        if block else "")
    return Case(f"vjp:{base.id}", base.op, base.kwargs, getattr(RV, base.op + "_vjp"), None,
                _budgets(base, _group_size(base, block)), "vjps", doc, ex)


CASES = [_vjp_case(b, r) for b, r in BASES]


def base_case(case):
    """The reductions case whose op, parameters and inputs ``case`` differentiates."""
    return next(c for c in _red.CASES if c.id == dict(case.extra)["of"])


def case_arrays(case, dtype):
    """The base case's inputs in ``dtype``, ``x`` cut to the case's leading block."""
    arrays = _red.case_inputs(base_case(case), dtype)
    block = dict(case.extra)["block"]
    if block is not None:
        arrays["x"] = np.ascontiguousarray(arrays["x"][tuple(slice(k) for k in block)])
    return arrays


def cotangents(case, dtype, shape) -> np.ndarray:
    """The ``len(COTANGENTS)`` cotangents of the case, exact values of ``dtype``, shape ``(k, *shape)``."""
    n = math.prod(shape)
    out = []
    for rule in COTANGENTS:
        u = uniform(n, 1000 + zlib.crc32(f"{case.id}:{rule}".encode()) % 100000).reshape(shape)
        g = {"uniform": 2 * u - 1, "offset": 1 + (2 * u - 1) / 16, "sparse": (u < 1 / 16).astype(np.float64)}[rule]
        out.append(g.astype(NP_DTYPES[dtype]))
    return np.stack(out)


def _reference_kwargs(case, arrays):
    kw = dict(case.kwargs)
    kw.pop("training", None)
    kw.pop("momentum", None)
    if "weight" in arrays:
        kw["weight"] = arrays["weight"]
    return kw


def golden_arrays(case, dtype, xs=None, fallback_map=map):
    """``(arrays, n_values)``: the inputs, the cotangents and the exact VJPs rounded to ``dtype``."""
    arrays = case_arrays(case, dtype)
    x = arrays["x"]
    g = cotangents(case, dtype, x.shape)
    fmt = FORMATS[dtype]
    kw = _reference_kwargs(case, arrays)
    res = [case.reference(x, gk, fmt, fallback_map=fallback_map, **kw) for gk in g]
    rounded = np.stack([r for r, _, _ in res]).astype(NP_DTYPES[dtype])
    out = dict(arrays, g=g, rounded=rounded, residual=np.stack([q for _, q, _ in res]),
               term_exp=np.stack([t for _, _, t in res]))
    return out, int(rounded.size)


def load_arrays(store, case, dtype: str) -> dict:
    """The stored arrays of a case, ``x`` and ``g`` back in ``dtype`` (bfloat16 is stored as bits)."""
    arrays = store.load_case(case.family, dtype, case.id)
    if dtype == "bfloat16":
        for k in ("x", "g"):
            if arrays[k].dtype == np.uint16:
                arrays[k] = arrays[k].view(NP_DTYPES["bfloat16"])
    return arrays
