"""leaky_relu's float32 product on the CPU: ``float32(float64(x) * s)``, two roundings, is taken
only for slopes whose trace-time proof (``impl._activations._rounds_once_on_cpu``) says it
equals the correctly rounded ``x * s`` on every float32 input; the other slopes keep the exact
path (a TwoProduct rounded to odd).  These tests check the proof's predicate against an
independent search with exact rational arithmetic, and the op's results on the inputs where two
roundings go wrong.  (The whole claim, every float32 input of the swept slopes, is the
exhaustive sweep's: docs/exhaustive.md.)"""

from __future__ import annotations

import platform
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F
from impl._activations import _rounds_once_on_cpu
from reference import FORMATS
from reference._convert import round_fraction

from .helpers import x64_for

# A window of significands where slope 0.33 has double-rounding cases (m * 0.33 crosses 2**22
# there and meets float32 midpoints every 50 significands), and a random window.
WINDOWS = [np.arange(12710001, 12710001 + 4000, 2),
           np.random.default_rng(20261201).integers(2**23, 2**24, 2000) | 1]


def _rn32(q: Fraction) -> np.float32:
    """``q`` correctly rounded to float32 (the reference's exact rational rounding)."""
    return np.float32(round_fraction(q, FORMATS["float32"])[0])


def _double_rounding_witnesses(s: float):
    found = []
    for window in WINDOWS:
        for m in window.tolist():
            exact = Fraction(m) * Fraction(s)
            twice = np.float32(float(m) * s)  # float64 product, then float32
            if twice != _rn32(exact):
                found.append(m)
    return found


@pytest.mark.parametrize("slope", [0.01, 0.1, 0.2, 0.33])
def test_predicate_agrees_with_an_exact_search(slope):
    witnesses = _double_rounding_witnesses(slope)
    proved = _rounds_once_on_cpu(slope)
    if proved:
        assert witnesses == [], (f"slope {slope}: proved safe, but float32(float64(m) * s) is not "
                                 f"the correctly rounded product for m in {witnesses[:5]}")
    else:
        assert witnesses, f"slope {slope}: no double-rounding case found in the windows"
    # the slopes the docstring names: 0.01, 0.1, 0.2 pass, 0.33 does not
    assert proved == (slope != 0.33), f"slope {slope}: _rounds_once_on_cpu gave {proved}"


def test_leaky_relu_is_correctly_rounded_where_two_roundings_are_not():
    slope = 0.33
    ms = _double_rounding_witnesses(slope)[:20]
    for scale in (2.0**-30, 1.0, 2.0**60):
        x = np.array([-m * scale for m in ms], np.float32)
        got = np.asarray(F.leaky_relu(jnp.asarray(x), slope))
        want = np.array([_rn32(Fraction(float(v)) * Fraction(slope)) for v in x], np.float32)
        twice = (x.astype(np.float64) * slope).astype(np.float32)
        assert np.any(twice != want)
        bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
        assert bad.size == 0, (f"leaky_relu(x, {slope}) at x = {x[bad[:3]]}: got {got[bad[:3]]}, "
                               f"expected {want[bad[:3]]} (correctly rounded)")


@pytest.mark.parametrize("slope", [0.01, -0.5, 1.5])
def test_leaky_relu_float32_matches_exact_products(slope):
    rng = np.random.default_rng(7)
    x = -np.abs(np.concatenate([rng.standard_normal(500), np.exp(rng.uniform(-80, 80, 500))])).astype(np.float32)
    got = np.asarray(F.leaky_relu(jnp.asarray(x), slope))
    want = np.array([_rn32(Fraction(float(v)) * Fraction(slope)) for v in x], np.float32)
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, (f"leaky_relu(x, {slope}) at x = {x[bad[:3]]}: got {got[bad[:3]]}, "
                           f"expected {want[bad[:3]]} (correctly rounded)")


def _check_against_exact(x, slope):
    """``leaky_relu(x, slope)`` in float32 against exact rational products; where the input is
    subnormal or the exact value below 2**-126 the result may also be ±0 of the same sign (a
    device that reads subnormal inputs as 0 or flushes results, as XLA's CPU backend does)."""
    got = np.asarray(F.leaky_relu(jnp.asarray(x), slope))
    wrong = []
    for xi, gi in zip(x.tolist(), got.tolist()):
        want = _rn32(Fraction(xi) * Fraction(slope))
        if gi == want and np.signbit(gi) == np.signbit(want):
            continue
        tiny = abs(xi) < 2.0**-126 or abs(Fraction(xi) * Fraction(slope)) < Fraction(2.0**-126)
        if tiny and gi == 0 and np.signbit(gi) == np.signbit(want):
            continue  # a subnormal input read as 0, or an exact value below the normal range flushed
        wrong.append((xi, gi, float(want)))
    assert not wrong, f"leaky_relu(x, {slope}): {len(wrong)} inputs wrong, e.g. (x, got, expected) {wrong[:3]}"


@pytest.mark.parametrize("slope", [0.01, 0.3, 1.2])
def test_leaky_relu_float32_near_the_smallest_normal_and_overflow(slope):
    # where the two-rounding path meets float32's limits: results from 2**-128 to 2**-124, and
    # (slope > 1) products near float32's maximum, which must overflow exactly when x s does
    if platform.machine() in ("x86_64", "AMD64"):
        assert _rounds_once_on_cpu(slope), f"slope {slope} no longer takes the two-rounding path"
    rng = np.random.default_rng(11)
    m = rng.integers(2**23, 2**24, 3000).astype(np.float64)
    parts = [-np.ldexp(m, e) / slope for e in (-151, -150, -149, -148, -147)]
    if slope > 1:
        top = np.float64(np.finfo(np.float32).max)
        parts.append(-(top / slope) * (1 + rng.uniform(-2.0**-20, 2.0**-20, 3000)))
    x = np.concatenate(parts).astype(np.float32)
    _check_against_exact(x[np.isfinite(x)], slope)


def test_the_proof_rejects_slopes_it_does_not_cover():
    assert _rounds_once_on_cpu(0.0)
    assert not _rounds_once_on_cpu(2.0**70)
    assert not _rounds_once_on_cpu(2.0**-70)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64])
@pytest.mark.parametrize("slope", [0.01, 0.33, 0.5, 1.5, -0.01, -0.33, -2.0])
def test_leaky_relu_at_minus_infinity_is_the_limit(dtype, slope):
    # -inf * slope: +-inf, never NaN (the exact path's split product once gave inf - inf for
    # negative slopes and inf * 0 for slopes of 26 bits or fewer)
    with x64_for(jnp.dtype(dtype).name):
        got = np.asarray(F.leaky_relu(jnp.array([-np.inf, np.inf], dtype), slope)).astype(np.float64)
    want = [-np.inf * slope, np.inf]
    assert got.tolist() == want, f"leaky_relu([-inf, inf], {slope}) in {jnp.dtype(dtype).name}: got {got}, expected {want}"


# ---- bfloat16: a float32 formula proved on all 65536 inputs at trace time ----------------

def _rn_bf16(q: Fraction) -> float:
    """``q`` correctly rounded to bfloat16 (the reference's exact rational rounding)."""
    return round_fraction(q, FORMATS["bfloat16"])[0]


@pytest.mark.parametrize("slope", [0.33, -0.01])
def test_bfloat16_proof_rejects_double_rounding_slopes(slope):
    from impl._activations import _bf16_product_on_cpu
    assert not _bf16_product_on_cpu(slope), f"_bf16_product_on_cpu({slope}) accepted a slope it names as rejected"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the accepted slopes are measured on x86-64")
@pytest.mark.parametrize("slope", [0.01, 0.1, 0.3, 0.5])
def test_bfloat16_proof_accepts_the_slopes_it_names(slope):
    from impl._activations import _bf16_product_on_cpu
    assert _bf16_product_on_cpu(slope), f"_bf16_product_on_cpu({slope}) rejected a slope its docstring names"


@pytest.mark.parametrize("slope", [0.01, 0.5, 0.33])
def test_leaky_relu_bfloat16_is_correctly_rounded_on_every_input(slope):
    # every bfloat16 pattern against exact rational products; where the exact value is below
    # 2**-126 the result may be the correctly rounded one or a flushed +-0 (XLA's CPU backend
    # flushes the float32 intermediate, even where bfloat16 would round up to 2**-126)
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = (every.astype(np.uint32) << 16).view(np.float32)
    got = np.asarray(F.leaky_relu(jnp.asarray(x).astype(jnp.bfloat16), slope)).astype(np.float32)
    wrong, flushed = [], 0
    for xi, gi in zip(x.tolist(), got.tolist()):
        if np.isnan(xi):
            if not np.isnan(gi):
                wrong.append((xi, gi, "nan"))
            continue
        if xi >= 0 or np.isinf(xi):
            want = xi if xi >= 0 else -np.inf * slope
        else:
            want = _rn_bf16(Fraction(xi) * Fraction(slope))
        if gi == want and np.signbit(gi) == np.signbit(want):
            continue
        tiny = abs(xi) < 2.0**-126 or abs(Fraction(xi) * Fraction(slope)) < Fraction(2.0**-126)
        if tiny and gi == 0 and np.signbit(gi) == np.signbit(want):
            flushed += 1  # a subnormal input read as 0, or an exact value below 2**-126 flushed
            continue
        wrong.append((xi, gi, want))
    assert not wrong, f"leaky_relu(x, {slope}) in bfloat16: {len(wrong)} inputs wrong, e.g. (x, got, expected) {wrong[:3]}"
