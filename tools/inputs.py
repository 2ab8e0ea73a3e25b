"""Input sets, generated from bit patterns by a fixed integer hash.

No numpy RNG is used: the stream of ``numpy.random`` may change between numpy
versions, and the golden inputs must not.  ``splitmix64`` below is plain
wrapping uint64 arithmetic, so the same call gives the same values on any
machine and any numpy version.

* bfloat16, float16: every finite value of the format (both zeros) plus
  ``+inf``, ``-inf`` and one nan.
* float32: a stratified sample (``float32_inputs``): every binade from the
  subnormals to the largest finite value, both signs; dense sampling of the
  binades 2**-100 .. 2**13; uniform [-10, 10]; the regions where formulas
  cancel or saturate (``FLOAT32_REGIONS``); the neighbours of every kink; the
  special values.
* float64: the same strata, smaller (``float64_inputs``).
* ``live_sample``: a fresh seeded sample for the live mpmath tests.
"""

from __future__ import annotations

import numpy as np

import ml_dtypes

__all__ = [
    "splitmix64", "uniform", "exhaustive", "float32_inputs", "float64_inputs",
    "golden_inputs", "live_sample", "FLOAT32_REGIONS", "KINKS",
]


def splitmix64(counter: np.ndarray, stream: int) -> np.ndarray:
    """SplitMix64 of ``counter + stream * 2**32`` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = counter.astype(np.uint64) + np.uint64(stream) * np.uint64(1 << 32) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(n: int, stream: int) -> np.ndarray:
    """``n`` float64 values in [0, 1) with 53 random bits each."""
    h = splitmix64(np.arange(n, dtype=np.uint64), stream)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _between(lo, hi, n, stream):
    return lo + (hi - lo) * uniform(n, stream)


def _signs(n, stream, sign):
    if sign:
        return np.full(n, float(sign))
    return np.where(uniform(n, stream + 7919) < 0.5, 1.0, -1.0)


def _log_between(lo, hi, n, stream, sign=1):
    return _signs(n, stream, sign) * np.exp2(_between(np.log2(lo), np.log2(hi), n, stream))


# (description, low, high, count, log-spaced, sign): for log-spaced regions
# low/high are magnitudes; sign 0 means both signs at random
FLOAT32_REGIONS = [
    ("gelu negative tail, erfc form needed", -20.0, -3.0, 4000, False, 1),
    ("silu/sigmoid/softplus negative tail", -104.0, -10.0, 4000, False, 1),
    ("silu/sigmoid positive saturation", 10.0, 30.0, 1500, False, 1),
    ("elu/softplus/celu tiny |x| (expm1, log1p)", 1e-10, 1.0, 3000, True, 0),
    ("softplus large x", 10.0, 100.0, 1500, False, 1),
    ("log_sigmoid very negative", 10.0, 1e4, 2000, True, -1),
    ("log_sigmoid positive tail", 10.0, 104.0, 1000, False, 1),
    ("tanh |x| in [3, 10]", 3.0, 10.0, 4000, False, 0),
    ("relu/leaky_relu near 0", -1e-3, 1e-3, 2000, False, 1),
    ("mish negative tail", -30.0, -5.0, 2000, False, 1),
    ("hard_sigmoid/hard_swish linear part", -4.0, 4.0, 2000, False, 1),
]

# points where some activation has a kink or a branch switch
KINKS = [0.0, 3.0, -3.0, 6.0, 1.0, -1.0]


def exhaustive(dtype) -> np.ndarray:
    """Every finite value of a 16-bit format, then +inf, -inf, nan, ordered by bit pattern."""
    dt = np.dtype(dtype)
    bits = np.arange(1 << 16, dtype=np.uint16)
    vals = bits.view(dt)
    finite = vals[np.isfinite(vals.astype(np.float32))]
    special = np.array([np.inf, -np.inf, np.nan], dtype=np.float32).astype(dt)
    return np.concatenate([finite, special])


def _binade_samples(nbits_exp, nbits_man, bias, per, stream, exp_fields, both_signs=True):
    """Random mantissas in the binades whose biased exponent fields are listed."""
    udt = np.uint32 if nbits_exp + nbits_man < 33 else np.uint64
    e = np.repeat(np.asarray(exp_fields, dtype=np.uint64), per)
    h = splitmix64(np.arange(e.size, dtype=np.uint64), stream)
    man = h & np.uint64((1 << nbits_man) - 1)
    out = [(e << np.uint64(nbits_man)) | man]
    if both_signs:
        out.append(out[0] | np.uint64(1 << (nbits_exp + nbits_man)))
    return np.concatenate(out).astype(udt)


def _subnormal_binades(nbits_man, per, stream):
    """``per`` random values in each binade of the subnormals (leading bit k), both signs."""
    out = []
    for k in range(nbits_man):
        h = splitmix64(np.arange(per, dtype=np.uint64), stream + k)
        low = h & np.uint64((1 << k) - 1) if k else np.zeros(per, dtype=np.uint64)
        out.append(np.uint64(1 << k) | low)
    pos = np.concatenate(out)
    return np.concatenate([pos, pos | np.uint64(1 << (nbits_man + (8 if nbits_man == 23 else 11)))])


def _neighbours(points, dtype, k):
    """``k`` consecutive values of ``dtype`` on each side of each point."""
    dt = np.dtype(dtype)
    udt = {4: np.uint32, 8: np.uint64}[dt.itemsize]
    out = []
    for p in points:
        for s in (1.0, -1.0) if p == 0 else (1.0,):
            base = np.array([p * s], dtype=dt).view(udt)[0]
            steps = np.arange(-k, k + 1, dtype=np.int64)
            if p == 0:
                steps = steps[steps >= 0]
            out.append((base.astype(np.int64) + steps).astype(udt).view(dt))
    return np.concatenate(out)


def _specials(dtype):
    fi = np.finfo(dtype)
    tiny_sub = np.array(1, dtype={4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]).view(dtype)
    vals = [0.0, np.inf, np.nan, float(fi.max), float(fi.tiny), float(tiny_sub), 0.5, 1 - float(fi.eps) / 2]
    vals += list(range(1, 21))
    v = np.array(vals, dtype=dtype)
    return np.concatenate([v, -v])


def _finish(parts, dtype):
    x = np.concatenate([np.asarray(p, dtype=np.float64).astype(dtype) if p.dtype.kind == "f" else p.view(dtype)
                        for p in parts])
    udt = {4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    bits = np.unique(x.view(udt))  # sorted by bit pattern, duplicates removed
    x = bits.view(dtype)
    nan = np.isnan(x)
    return np.concatenate([x[~nan], np.array([np.nan], dtype=dtype)])


def float32_inputs() -> np.ndarray:
    """The float32 golden inputs (about 104k values; see module docstring)."""
    parts = [
        _binade_samples(8, 23, 127, 16, 1, range(1, 255)),          # every normal binade
        _subnormal_binades(23, 8, 200).astype(np.uint32),           # every subnormal binade
        _binade_samples(8, 23, 127, 170, 2, range(27, 141)),        # 2**-100 .. 2**13
        _between(-10.0, 10.0, 30000, 3),
        _specials(np.float32),
        _neighbours(KINKS, np.float32, 64),
    ]
    for i, (_, lo, hi, n, log, sign) in enumerate(FLOAT32_REGIONS):
        s = 100 + i
        parts.append(_log_between(lo, hi, n, s, sign) if log else _between(lo, hi, n, s) * _signs(n, s, sign))
    return _finish(parts, np.float32)


def float64_inputs() -> np.ndarray:
    """The float64 golden inputs (about 12k values)."""
    parts = [
        _binade_samples(11, 52, 1023, 1, 11, range(1, 2047)),       # every normal binade, both signs
        _subnormal_binades(52, 1, 300),                             # every subnormal binade
        _binade_samples(11, 52, 1023, 25, 12, range(1023 - 60, 1023 + 11)),
        _between(-10.0, 10.0, 2000, 13),
        _between(-40.0, -3.0, 600, 14),
        _between(-750.0, -10.0, 600, 15),
        _specials(np.float64),
        _neighbours(KINKS, np.float64, 16),
    ]
    return _finish(parts, np.float64)


def golden_inputs(dtype_name: str) -> np.ndarray:
    """The golden input set of a dtype, in that dtype."""
    if dtype_name in ("bfloat16", "float16"):
        return exhaustive(ml_dtypes.bfloat16 if dtype_name == "bfloat16" else np.float16)
    if dtype_name == "float32":
        return float32_inputs()
    if dtype_name == "float64":
        return float64_inputs()
    raise ValueError(f"no golden inputs for dtype {dtype_name!r}; use bfloat16, float16, float32 or float64")


def live_sample(dtype_name: str, n: int, stream: int) -> np.ndarray:
    """A fresh sample for live mpmath checks: ``n`` values drawn from the golden
    set's strata by a hash of ``stream`` (not the golden values themselves)."""
    if dtype_name in ("bfloat16", "float16"):
        pool = golden_inputs(dtype_name)
        idx = (splitmix64(np.arange(n, dtype=np.uint64), 5000 + stream) % np.uint64(pool.size)).astype(np.int64)
        return pool[idx]
    dt = np.float32 if dtype_name == "float32" else np.float64
    half = n // 2
    a = _between(-20.0, 20.0, half, 6000 + stream)
    b = _log_between(1e-12, 1e4, n - half, 7000 + stream, 0)
    return np.concatenate([a, b]).astype(dt)
