"""The float64 kernels behind the float32 activation paths (impl/_fast64.py) meet
the relative error bounds their docstring states, checked against mpmath.

Bounds: exp and expm1 below 2**-51 (a fitted polynomial, ``tools.fit_expm1``: the fit's
measured 2**-51.98 on [-ln2/2, ln2/2] with a margin for the reduction and the scaling by
2**k), log1p_unit below 2**-50 (from the module's error analysis); erfcx_unit (a fitted
polynomial: its bound is the fit's measured 2**-50.6 with a margin) below 2**-49.5; these keep a float32 result correctly
rounded except within that distance of a rounding boundary (the activations'
float32 budget is <= 1 ulp and >= 99.9% correctly rounded; the exhaustive
sweeps in docs/exhaustive.md measure the result)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from impl import _fast64

BOUNDS = {"exp": 2.0**-51, "expm1": 2.0**-51, "log1p_unit": 2.0**-50, "erfcx_unit": 2.0**-49.5}
REFS = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log1p_unit": mpmath.log1p,
        "erfcx_unit": lambda w: mpmath.exp(w * w) * mpmath.erfc(w)}


def _inputs(name):
    rng = np.random.default_rng(20261128)
    n = 1500
    if name == "erfcx_unit":  # the domain [0, 11], dense where gelu's float32 inputs put it
        parts = [rng.uniform(0, 11, n), rng.uniform(0, 1, n), np.exp(rng.uniform(-40, 0, n)),
                 [0.0, 1e-300, 0.5, 3.0, 10.25, 11.0]]
    elif name == "log1p_unit":
        parts = [rng.uniform(0, 1, n), np.exp(rng.uniform(-700, 0, n)),
                 [0.0, 1.0, 2.0**-1022, 2.0**-126, 2.0**-127, 2.0**-24, 0.4185974362119147]]
    else:
        ln2h = np.log(2) / 2
        parts = [rng.uniform(-708, 709, n), rng.uniform(-1, 1, n), rng.uniform(-1e-3, 1e-3, n),
                 np.exp(rng.uniform(-700, 0, n)) * rng.choice([-1, 1], n),
                 # both sides of the reduction's switch points k ln2 +- ln2/2
                 [k * np.log(2) + d for k in (-3, -1, 0, 1, 5) for d in (-ln2h, ln2h)],
                 [0.0, 1e-300, -1e-300, -0.3500613955933358, 409.21679932865754, 708.0, -708.0, 709.0]]
    return np.concatenate([np.asarray(p, np.float64) for p in parts])


def _run(name, xs):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(getattr(_fast64, name))(jnp.asarray(xs, jnp.float64)))


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_kernel_relative_error_bound(name):
    xs = _inputs(name)
    got = _run(name, xs)
    worst, where = 0.0, None
    with mpmath.workprec(120):
        for x, g in zip(xs, got):
            exact = REFS[name](mpmath.mpf(float(x)))
            if exact == 0:
                assert g == 0, f"{name}({x!r}) = {g!r}, expected 0"
                continue
            err = float(abs((mpmath.mpf(float(g)) - exact) / exact))
            if err > worst:
                worst, where = err, x
    assert worst <= BOUNDS[name], (
        f"_fast64.{name}: relative error {worst:.3g} (2**{np.log2(worst):.2f}) at x = {where!r} exceeds the "
        f"bound 2**{np.log2(BOUNDS[name]):.0f}; reproduce: pytest tests/test_fast64.py -k {name}")


@pytest.mark.parametrize("name", ["exp", "expm1"])
def test_kernel_special_values(name):
    got = _run(name, np.array([np.nan, -np.inf, np.inf, 0.0, -0.0]))
    assert np.isnan(got[0]), f"{name}(nan) = {got[0]!r}, expected nan"
    # the documented clamp to [-708, 709]: finite at +-inf, the clamp's value
    want = {"exp": (np.exp(-708.0), np.exp(709.0), 1.0, 1.0), "expm1": (np.expm1(-708.0), np.expm1(709.0), 0.0, -0.0)}
    for g, w in zip(got[1:], want[name]):
        assert g == pytest.approx(w, rel=2.0**-50) and np.signbit(g) == np.signbit(w), (name, got, want[name])


def test_log1p_unit_at_ends():
    got = _run("log1p_unit", np.array([0.0, 1.0, np.nan]))
    assert got[0] == 0.0 and not np.signbit(got[0])
    assert got[1] == np.log1p(1.0)
    assert np.isnan(got[2])


@pytest.mark.parametrize("tool", ["fit_expm1", "fit_erfcx"])
def test_fitted_coefficients_are_the_tools(tool):
    """The constants in impl/_fast64.py are what their fitting tool prints (same command, same
    numbers): a refit or a hand edit that diverges fails here."""
    import importlib

    fit = importlib.import_module(f"tools.{tool}")
    if tool == "fit_expm1":
        pairs = [("_EXPM1_P", tuple(fit.coefficients()))]
    else:
        coef, t_max = fit.coefficients()
        pairs = [("_ERFCX", tuple(coef)), ("_ERFCX_T_MAX", t_max), ("_ERFCX_K", fit.K)]
    for constant, printed in pairs:
        assert printed == getattr(_fast64, constant), (
            f"impl._fast64.{constant} differs from python -m tools.{tool}; paste the tool's output")
