"""Registry entries of the reductions: the softmax family and the normalization layers.

Every case carries its own inputs (stored in its golden file next to the
results): Gaussian samples ``mu + sigma * z`` with ``z`` from Box-Muller on
``tools.inputs.uniform`` (evaluated by mpmath at 53 bits, so the same bits on
every machine), rounded to the case's dtype.  The offset sweeps use the same
``z`` at every ``mu``, so the only thing that changes along a sweep is the
offset.  Parameters (``weight``, ``bias``, running statistics) are float32
(float64 for float64 cases); batch norm's new running statistics are
compared in that dtype.

Budgets (targets, never widened to make a test pass; a miss is recorded as
``known_failure`` with the measured figure and its tests are strict xfails).
``u = 2**-53``; ``n`` is the number of elements a statistic is taken over.
"abs" is ``|y - exact|`` in units of ``ulp(1.0)`` of the dtype (``2**(1-p)``):

* Normalization, float32 (``_nb``): abs ``<= 4`` (the project's target) and
  ``<= 1`` ulp of the output with ``>= 99.9 %`` correctly rounded.
  Derivation: the corrected two-pass algorithm in float64 gives every
  deviation ``x_i - mean`` with a relative error of 2u plus ``u |c| / |d_i|``
  (``c`` the tiny mean correction), independent of ``|mean| / std``; the
  variance has a relative error below ``(n + 4) u`` even for the worst
  summation order (``(log2 n + 4) u`` along a tree); the quotient adds 2u.  For
  ``n <= 4096`` that is ``< 2**-40`` relative, so the one rounding to float32
  is correct except within ``2**-40`` of a midpoint (a share of about
  ``2**-16``): ``<= 0.5 ulp(y)``, i.e. abs ``<= 2`` for ``|y| < 8`` (and ``<= 4``
  for ``|y| < 16``, which covers the affine cases).  The error grows like
  ``n u`` at worst, so this holds up to ``n ~ 2**24``.
* Normalization, bfloat16/float16: the same (target ``<= 1`` ulp, ``>= 99.9 %``
  correctly rounded).  The float64 result is converted through float32 (a
  double rounding, chosen for speed: ``impl._reductions._in64``), which is
  the correct rounding unless the float32 value lands exactly on a midpoint
  of the narrow format (about ``2**-16`` of bfloat16 and ``2**-13`` of float16
  outputs) and is then within ``0.5 + 2**-17`` (bfloat16) or ``0.5 + 2**-14``
  (float16) ulp: half a float32 ulp in units of the narrow format's.
* Normalization, float64: abs ``<= 16``; output ulps reported, not budgeted
  (``max_ulp = inf``).  The mean correction ``c`` carries an absolute error
  of about ``(log2 n) u sigma``, so outputs near 0 have a large *relative*
  error that no float64 algorithm without extra precision avoids; the
  absolute error is ``(log2 n + 1) 2u sigma / s + (log2 n / 2 + 4) u |y|``,
  within 16 ulp(1.0) for ``|y| < 6``, ``n <= 4096``.  rms_norm (no centring)
  is relative: ``<= 2 + log2(n) / 4`` ulp.
* Running statistics (``STATS_BUDGETS``), float32: within 1 ulp of the exact
  update (target); one rounding of a float64 value good to ``< 2**-40``.  No
  correct-rounding share is claimed: with momentum 0.1 (not a binary
  fraction) the exact update of "round" statistics often lies within
  ``2**-53`` of a float32 midpoint.  float64: ``<= 8`` ulp of
  ``max(|old|, |new|)`` (the update can cancel).
* softmax/log_softmax, float32: ``<= 1`` ulp, ``>= 99.9 %`` correctly rounded
  (target).  ``x - max`` is kept exact (TwoSum), exp is within 1.3 ulp of
  float64, the sum of ``n`` terms within ``n u``: ``< (n + 4) u`` relative.
* softmax/log_softmax, bfloat16 and float16: correctly rounded (target), by
  the same bound and round-to-odd (log_softmax hands a round-to-odd float64
  value over, so ``s_j`` on a midpoint minus a tiny ``log1p(r)`` rounds right).
* softmax/log_softmax, float64: ``<= 2.5 + log2(n) / 2`` ulp: XLA's float64
  exp (<= 1.3 ulp) and log1p (<= 1.9 ulp), measured on CPU; one correction,
  one division or subtraction; the row's tree sum ``(log2 n) / 2``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib

import ml_dtypes
import mpmath
import numpy as np

from reference import FORMATS
from reference import float64_reductions as F64
from reference import reduction_vjps as RV
from reference import reductions as R
from tools.dtypes import NP_DTYPES, PARAM_DTYPE
from tools.inputs import uniform

from . import Budget, Case, Op

__all__ = ["CASES", "OPS", "golden_arrays", "ReductionBudget", "STATS_BUDGETS", "normal", "case_inputs",
           "load_arrays"]


@dataclasses.dataclass(frozen=True)
class ReductionBudget(Budget):
    """A ``Budget`` plus ``max_abs_ulps``: the largest ``|got - exact|`` in ulps of the
    row's scale, or ``None`` where not budgeted.  The scale is 1.0 for normalized
    outputs and softmax (so the unit is ``ulp(1.0) = 2**(1 - p)`` of the dtype) and
    ``max(|old|, |exact new|)`` for running statistics.  ``max_ulp = inf`` means the
    error in ulps of the output is reported, not budgeted (see the module docstring)."""

    max_abs_ulps: float | None = None


_WHY_N32 = ("target |y-exact| <= 4 ulp(1.0), <= 1 ulp, >= 99.9% CR: corrected two-pass in float64 is good to "
            "(n + 6)u relative at any offset (< 2**-40 for n <= 4096), then one rounding")
_WHY_N16 = ("target <= 1 ulp, >= 99.9% CR, <= 4 ulp(1.0): float64 statistics, rounded through float32 (double "
            "rounding: wrong only on a float32 value that is a midpoint, ~2**-16 of bfloat16 / 2**-13 of float16 "
            "outputs, then <= 0.5 + 2**-17 / 0.5 + 2**-14 ulp)")
_WHY_N64 = ("<= 16 ulp(1.0) absolute: mean correction (log2 n + 1)u * 2 sigma, scaling (log2 n / 2 + 4)u |y|, "
            "tree sums' errors ~sqrt(log2 n); output ulps not budgeted (near-zero outputs carry the mean's "
            "absolute error)")
_WHY_R64 = ("target <= 2 + log2(n)/4 ulp: sum of squares (log2 n)/2 ulp along a tree, halved by sqrt; XLA "
            "compiles x / sqrt(v) as x * rsqrt(v): rsqrt <= 1.17 ulp (measured, CPU) and the product 0.5; the "
            "mean's division, eps and the weight add up to about 1.25 ulp more at worst, so the target assumes "
            "these errors do not all reach their bounds at once (max 2.20 ulp on the golden inputs, 2026-12-02)")
_WHY_S32 = "target <= 1 ulp, >= 99.9% CR: float64 evaluation with exact x - max, (n + 4)u relative, one rounding"
_WHY_S16 = "target: correctly rounded (float64 evaluation, (n + 4)u relative, round-to-odd)"
_WHY_S64 = ("<= 2.5 + log2(n)/2 ulp: XLA's float64 exp <= 1.3 ulp and log1p <= 1.9 ulp (measured on CPU), one "
            "correction and one division or subtraction, the row's tree sum (log2 n)/2")
INF = math.inf


def _nb(dtype, op, n, known=""):
    """Normalization budget for ``dtype``; ``n``: elements per statistic."""
    if dtype == "float32":
        return ReductionBudget(1.0, 99.9, _WHY_N32, known, 4.0)
    if dtype == "float64":
        if op == "rms_norm":
            return ReductionBudget(2.0 + math.log2(n) / 4, 0.0, _WHY_R64, known, 16.0)
        return ReductionBudget(INF, 0.0, _WHY_N64, known, 16.0)
    return ReductionBudget(1.0, 99.9, _WHY_N16, known, 4.0)


def _sb(dtype, n, known=""):
    if dtype == "float32":
        return ReductionBudget(1.0, 99.9, _WHY_S32, known)
    if dtype == "float64":
        return ReductionBudget(2.5 + math.log2(n) / 2, 0.0, _WHY_S64, known)
    return ReductionBudget(0.5, 100.0, _WHY_S16, known)


# running statistics, in their own dtype (float32 for every input dtype but float64)
STATS_BUDGETS = {
    "float32": ReductionBudget(1.0, 0.0, "target: within 1 ulp of the exact update (float64 evaluation, one "
                               "rounding; exact values on a float32 midpoint, frequent with decimal momentum, may "
                               "round either way, so no correct-rounding share is claimed)"),
    "float64": ReductionBudget(INF, 0.0, "<= 8 ulp of max(|old|, |new|): the mean's absolute error (log2 n)u "
                               "sigma and 3 roundings; the update can cancel, so output ulps are not budgeted",
                               max_abs_ulps=8.0),
}


# ---- inputs --------------------------------------------------------------------------

def normal(n: int, stream: int) -> np.ndarray:
    """``n`` standard normal float64 values by Box-Muller from ``tools.inputs.uniform``,
    evaluated by mpmath at 53 bits (deterministic bits, independent of the platform's libm)."""
    return _normal(n, stream).copy()


@functools.lru_cache(maxsize=64)
def _normal(n: int, stream: int) -> np.ndarray:
    m = (n + 1) // 2
    u = uniform(2 * m, stream)
    out = np.empty(2 * m)
    with mpmath.workprec(53):
        two_pi = 2 * mpmath.pi
        for i in range(m):
            r = mpmath.sqrt(-2 * mpmath.log(1 - mpmath.mpf(float(u[2 * i]))))
            a = two_pi * mpmath.mpf(float(u[2 * i + 1]))
            out[2 * i] = float(r * mpmath.cos(a))
            out[2 * i + 1] = float(r * mpmath.sin(a))
    return out[:n]


def _stream(key: str) -> int:
    return 1000 + zlib.crc32(key.encode()) % 100000


def _dt(dtype):
    return np.dtype(NP_DTYPES[dtype])


# ---- the cases -------------------------------------------------------------------------

_MUS = (("0", 0.0), ("10", 10.0), ("1e3", 1e3), ("1e4", 1e4), ("1e5", 1e5))


def _fmt_shape(shape):
    return "x".join(map(str, shape))


def _dtypes_for(mu):
    # float16 cannot hold 1e5 (its largest finite value is 65504)
    return ("float32", "bfloat16", "float16", "float64") if abs(mu) < 6e4 else ("float32", "bfloat16", "float64")


def _stat_size(op, kwargs, shape):
    if op in ("layer_norm", "rms_norm"):
        return math.prod(kwargs["normalized_shape"])
    if op == "batch_norm":
        return math.prod(shape[:-1])
    if op == "instance_norm":
        return math.prod(shape[1:-1])
    return math.prod(shape[1:-1]) * shape[-1] // kwargs["num_groups"]  # group_norm


def _norm_case(op, cid, kwargs, shape, mu=0.0, sigma=1.0, affine=False, dtypes=None, known=None, doc="",
               zkey=None, **extra):
    known = known or {}
    dtypes = dtypes or _dtypes_for(mu if np.isscalar(mu) else max(abs(m) for m in mu))
    n = _stat_size(op, kwargs, shape)
    budgets = {d: _nb(d, op, n, known.get(d, "")) for d in dtypes}
    ex = dict(shape=tuple(shape), mu=mu, sigma=sigma, affine=affine, zkey=zkey or f"{op}:{_fmt_shape(shape)}")
    ex.update(extra)
    return Case(cid, op, tuple(sorted(kwargs.items())), getattr(R, op), F64.FORMULAS[op], budgets, "reductions",
                doc, tuple(sorted(ex.items())))


def _softmax_case(op, cid, kwargs, shape, scale=1.0, special=False, known=None, doc=""):
    known = known or {}
    n = shape[kwargs["axis"]]
    budgets = {d: _sb(d, n, known.get(d, "")) for d in ("float32", "bfloat16", "float16", "float64")}
    ex = dict(shape=tuple(shape), scale=scale, special=special, zkey=f"softmax:{_fmt_shape(shape)}")
    return Case(cid, op, tuple(sorted(kwargs.items())), getattr(R, op), F64.FORMULAS[op], budgets, "reductions",
                doc, tuple(sorted(ex.items())))


def _cases():
    cs = []
    # layer_norm offset sweep: N(mu, 1), widths 16, 256, 4096, no affine (the absolute target applies)
    for name, mu in _MUS:
        for rows, width in ((8, 16), (4, 256), (2, 4096)):
            cs.append(_norm_case("layer_norm", f"layer_norm[mu={name},width={width}]",
                                 {"normalized_shape": (width,), "eps": 1e-5}, (rows, width), mu,
                                 doc=f"N({name}, 1) rows of {width}"))
    cs += [
        _norm_case("layer_norm", "layer_norm[mu=1e4,sigma=100,width=256]", {"normalized_shape": (256,), "eps": 1e-5},
                   (4, 256), 1e4, 100.0, doc="offset 100 sigma: not collapsed to a few values in bfloat16/float16"),
        _norm_case("layer_norm", "layer_norm[affine,mu=1e4,width=256]", {"normalized_shape": (256,), "eps": 1e-5},
                   (4, 256), 1e4, affine=True, doc="weight in [0.5, 1.5), bias in [-0.5, 0.5)"),
        _norm_case("layer_norm", "layer_norm[tutorial,shape=10]", {"normalized_shape": (10,), "eps": 1e-5},
                   (10,), 3.0, 2.0, affine=True, doc="the tutorial: LayerNorm(normalized_shape=(10,)) on one sample"),
        _norm_case("layer_norm", "layer_norm[normalized_shape=4x8,mu=10]", {"normalized_shape": (4, 8), "eps": 1e-5},
                   (3, 4, 8), 10.0, affine=True, doc="two normalized axes"),
        _norm_case("layer_norm", "layer_norm[constant,eps=0]", {"normalized_shape": (16,), "eps": 0.0},
                   (3, 16), 7.25, 0.0, affine=True, doc="variance 0 and eps 0: exactly bias, never NaN"),
    ]
    # batch_norm, training: statistics over the batch
    bn = {"training": True, "momentum": 0.1, "eps": 1e-5}
    for name, mu in _MUS:
        cs.append(_norm_case("batch_norm", f"batch_norm[train,mu={name},shape=128x16]", bn, (128, 16), mu,
                             running=(mu - 0.25, 1.5), doc=f"N({name}, 1), batch 128, 16 features"))
    cs += [
        _norm_case("batch_norm", "batch_norm[train,tutorial,mu=10,sigma=5,shape=32x10]", bn, (32, 10), 10.0, 5.0,
                   affine=True, running=(0.0, 1.0), doc="the tutorial: BatchNorm1d(num_features=10), fresh"),
        _norm_case("batch_norm", "batch_norm[train,tutorial,mu=50_-5,sigma=10_2,shape=1000x2]", bn, (1000, 2),
                   (50.0, -5.0), (10.0, 2.0), running=(0.0, 1.0),
                   doc="the tutorial's two distributions N(50, 10) and N(-5, 2), 1000 samples each"),
        _norm_case("batch_norm", "batch_norm[train,nlc,mu=1e3,shape=8x16x4]", bn, (8, 16, 4), 1e3, affine=True,
                   running=(1e3, 2.0), doc="BatchNorm1d on (N, L, C)"),
        _norm_case("batch_norm", "batch_norm[train,batch=1,nhwc,mu=10,shape=1x4x4x8]", bn, (1, 4, 4, 8), 10.0,
                   affine=True, running=(0.0, 1.0), doc="BatchNorm2d on NHWC, batch size 1: statistics over H, W"),
        _norm_case("batch_norm", "batch_norm[train,constant,shape=32x10]", bn, (32, 10), -3.5, 0.0, affine=True,
                   running=(0.0, 1.0), doc="variance 0: exactly bias; unbiased variance 0 in the update"),
        _norm_case("batch_norm", "batch_norm[eval,mu=10,shape=32x10]", {"training": False, "eps": 1e-5},
                   (32, 10), 10.0, 5.0, affine=True, running=(9.75, 23.5), doc="eval mode: running statistics"),
    ]
    cs += [
        _norm_case("group_norm", "group_norm[tutorial,groups=4,shape=2x8x8x16]", {"num_groups": 4, "eps": 1e-5},
                   (2, 8, 8, 16), 0.0, affine=True, doc="the tutorial: GroupNorm(num_groups=4, num_channels=16)"),
        _norm_case("group_norm", "group_norm[groups=4,mu=1e4,shape=2x8x8x16]", {"num_groups": 4, "eps": 1e-5},
                   (2, 8, 8, 16), 1e4, doc="offset 1e4"),
        _norm_case("group_norm", "group_norm[groups=4,mu=1e5,shape=2x8x8x16]", {"num_groups": 4, "eps": 1e-5},
                   (2, 8, 8, 16), 1e5, doc="offset 1e5"),
        _norm_case("instance_norm", "instance_norm[mu=1e4,shape=2x64x8]", {"eps": 1e-5}, (2, 64, 8), 1e4,
                   doc="InstanceNorm1d, offset 1e4"),
        _norm_case("instance_norm", "instance_norm[affine,mu=0,shape=2x8x8x4]", {"eps": 1e-5}, (2, 8, 8, 4), 0.0,
                   affine=True, doc="InstanceNorm2d with affine"),
        _norm_case("rms_norm", "rms_norm[mu=0,width=256]", {"normalized_shape": (256,), "eps": 1e-6}, (8, 256),
                   0.0, affine=True, doc="weight only"),
        _norm_case("rms_norm", "rms_norm[mu=1e4,width=256]", {"normalized_shape": (256,), "eps": 1e-6}, (8, 256),
                   1e4, doc="offset 1e4 (no centring: the output is ~1)"),
        _norm_case("rms_norm", "rms_norm[zeros,width=256]", {"normalized_shape": (256,), "eps": 1e-6}, (8, 256),
                   0.0, 0.0, affine=True, doc="all zeros: zeros, never NaN"),
    ]
    for op in ("softmax", "log_softmax"):
        for name, scale in (("1", 1.0), ("100", 100.0), ("1e4", 1e4)):
            cs.append(_softmax_case(op, f"{op}[scale={name},width=256]", {"axis": -1}, (8, 256), scale,
                                    doc=f"logits {name} * N(0, 1)"))
        cs.append(_softmax_case(op, f"{op}[axis=0,scale=10,shape=16x8]", {"axis": 0}, (16, 8), 10.0,
                                doc="along axis 0"))
        cs.append(_softmax_case(op, f"{op}[special]", {"axis": -1}, (len(_SPECIAL_ROWS), 4), special=True,
                                doc="rows with -inf, +inf, all -inf, NaN, huge and tiny logits"))
    return cs


_I, _N = math.inf, math.nan
_SPECIAL_ROWS = [
    [0.0, -18.7, -30.0, -40.0],      # log_softmax of the largest logit ~ -7.6e-9
    [1.0, -_I, 2.0, -_I],            # -inf entries
    [-_I, -_I, -_I, -_I],            # all -inf: uniform
    [_I, 1.0, _I, -_I],              # two +inf: 1/2 each
    [_I, 0.0, 0.0, 0.0],             # one +inf: 1
    [1.0, _N, 2.0, 3.0],             # NaN: NaN row
    [3.0e4, 3.0e4, -3.0e4, 0.0],     # huge logits, a tie at the maximum
    [1e-30, -1e-30, 0.0, 5e-31],     # tiny logits: ~uniform
    [88.0, -88.0, 0.0, 87.5],
    [-1e4, -1e4 - 1.0, -1e4 - 2.0, -1e4 - 100.0],
]


def _by_mu(mu, shape):
    """``mu`` per feature (a tuple gives one value per feature on the last axis)."""
    return np.broadcast_to(np.asarray(mu, dtype=np.float64), shape)


def case_inputs(case, dtype: str) -> dict:
    """The case's input arrays in ``dtype`` (``x``) and the parameters' dtype."""
    ex = dict(case.extra)
    shape = ex["shape"]
    dt, pdt = _dt(dtype), _dt(PARAM_DTYPE[dtype])
    n = math.prod(shape)
    out = {}
    if "scale" in ex:  # softmax
        if ex["special"]:
            x = np.array(_SPECIAL_ROWS, dtype=np.float64)
            if dtype == "float16":  # keep the rows in float16's range
                x = np.where(np.isfinite(x) & (np.abs(x) > 6e4), np.sign(x) * 6e4, x)
        else:
            x = ex["scale"] * normal(n, _stream(ex["zkey"])).reshape(shape)
        out["x"] = x.astype(dt)
        return out
    z = normal(n, _stream(ex["zkey"])).reshape(shape)
    x = _by_mu(ex["mu"], shape) + _by_mu(ex["sigma"], shape) * z
    out["x"] = x.astype(dt)
    C = shape[-1]
    pshape = tuple(dict(case.kwargs).get("normalized_shape", (C,)))
    m = math.prod(pshape)
    if ex["affine"]:
        out["weight"] = (0.5 + uniform(m, _stream(case.id + ":w"))).reshape(pshape).astype(pdt)
        if case.op != "rms_norm":
            out["bias"] = (uniform(m, _stream(case.id + ":b")) - 0.5).reshape(pshape).astype(pdt)
    if "running" in ex:
        rm0, rv0 = ex["running"]
        out["running_mean"] = (rm0 + 0.5 * (uniform(C, _stream(case.id + ":rm")) - 0.5)).astype(pdt)
        out["running_var"] = (rv0 * (0.75 + 0.5 * uniform(C, _stream(case.id + ":rv")))).astype(pdt)
    return out


def _ref_kwargs(case, arrays):
    kw = dict(case.kwargs)
    for k in ("weight", "bias", "running_mean", "running_var"):
        if k in arrays:
            kw[k] = arrays[k]
    return kw


def golden_arrays(case, dtype, xs=None, fallback_map=map):
    """``(arrays, n_mpmath)``: the case's inputs and the exact results, correctly rounded,
    with their residuals; every result comes from the exact reference."""
    arrays = case_inputs(case, dtype)
    fmt = FORMATS[dtype]
    kw = _ref_kwargs(case, arrays)
    if case.op == "batch_norm":
        res = case.reference(arrays["x"], fmt, stats_fmt=FORMATS[PARAM_DTYPE[dtype]], fallback_map=fallback_map,
                             **kw)
        (r, q) = res["y"]
        out = dict(arrays, rounded=r.astype(_dt(dtype)), residual=q)
        if "running_mean" in arrays:
            for k in ("running_mean", "running_var"):
                rr, qq = res[k]
                out[f"{k}_rounded"] = rr.astype(_dt(PARAM_DTYPE[dtype]))
                out[f"{k}_residual"] = qq
    else:
        r, q = case.reference(arrays["x"], fmt, fallback_map=fallback_map, **kw)
        out = dict(arrays, rounded=r.astype(_dt(dtype)), residual=q)
    return out, int(r.size)


def load_arrays(store, case, dtype: str) -> dict:
    """The stored arrays of a case, with ``x`` back in ``dtype`` (bfloat16 is stored as bits)."""
    arrays = store.load_case(case.family, dtype, case.id)
    if dtype == "bfloat16" and arrays["x"].dtype == np.uint16:
        arrays["x"] = arrays["x"].view(ml_dtypes.bfloat16)
    return arrays


CASES = _cases()

_SPECIAL = "the special rows of the softmax cases (±inf, nan, huge offsets) stand for the special values"
_NO_SPECIAL = "statistics over many elements: special values of a row are covered by the input rules"
OPS = [Op(op, "reductions", getattr(R, op), F64.FORMULAS[op], settings=(), derivatives=(getattr(RV, f"{op}_vjp"),),
          layer=layer, docs="docs/reductions.md",
          exempt={"special values": _SPECIAL if op.endswith("softmax") else _NO_SPECIAL})
       for op, layer in (("softmax", "Softmax"), ("log_softmax", "LogSoftmax"), ("layer_norm", "LayerNorm"),
                         ("rms_norm", "RMSNorm"), ("group_norm", "GroupNorm"), ("instance_norm", "InstanceNorm2d"),
                         ("batch_norm", "BatchNorm2d"))]
