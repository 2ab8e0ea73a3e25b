"""The double-double kernels behind the float64 activations (impl/_dd.py), compiled by XLA.

* The error-free transformations stay error-free after XLA's simplifier and LLVM: TwoSum with a
  constant operand (XLA folds ``(x + c) - c`` into ``x``) and with a product operand (LLVM
  contracts ``a * b + c`` into an FMA), and TwoProduct, give ``s + e`` equal to the exact sum
  or product (checked with Fractions), with nonzero error terms.
* The kernels meet the relative error bounds of the module docstring against mpmath (the
  bounds are the measured figures with a margin; the float64 budgets of the activations,
  <= 1 ulp and >= 99 % correctly rounded, need about 2**-60).
"""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from impl import _dd

_RNG = np.random.default_rng(20261130)


def _jit(f, *xs):
    with jax.enable_x64(True):
        out = jax.jit(f)(*(jnp.asarray(x, jnp.float64) for x in xs))
        return [np.asarray(o) for o in out]


def _exact(values):
    return [Fraction(float(v)) for v in values]


@pytest.mark.parametrize("form", ["constant right", "constant left", "product operand", "two arrays"])
def test_two_sum_is_error_free_compiled(form):
    a = _RNG.uniform(-1, 1, 2000) * 0.37  # (uniform's values are multiples of 2**-52: 1 + a would be exact)
    b = _RNG.uniform(-1, 1, 2000) * 1e-3
    f = {"constant right": lambda a, b: _dd.two_sum(a, 1.0),
         "constant left": lambda a, b: _dd.two_sum(3.0, a),
         "product operand": lambda a, b: _dd.two_sum(a, _dd.two_prod(a, b)[0]),
         "two arrays": lambda a, b: _dd.two_sum(a, b)}[form]
    s, e = _jit(f, a, b)
    lhs = {"constant right": lambda x, y: x + 1, "constant left": lambda x, y: x + 3,
           "product operand": None, "two arrays": lambda x, y: x + y}[form]
    if lhs is None:  # the rounded product is the operand; TwoProduct itself is checked below
        p = [Fraction(float(v)) for v in _jit(lambda a, b: (_dd.two_prod(a, b)[0],), a, b)[0]]
        want = [x + y for x, y in zip(_exact(a), p)]
    else:
        want = [lhs(x, y) for x, y in zip(_exact(a), _exact(b))]
    bad = [i for i, (w, x, y) in enumerate(zip(want, _exact(s), _exact(e))) if x + y != w]
    assert not bad, f"two_sum ({form}) not error-free at {len(bad)} inputs, e.g. a={a[bad[0]]!r}"
    assert np.count_nonzero(e) > 0.5 * e.size, f"two_sum ({form}): error terms are zero (simplified away?)"


@pytest.mark.parametrize("form", ["two arrays", "constant", "square"])
def test_two_prod_is_error_free_compiled(form):
    a = _RNG.uniform(-1e3, 1e3, 2000)
    b = _RNG.uniform(-1, 1, 2000)
    f = {"two arrays": lambda a, b: _dd.two_prod(a, b), "constant": lambda a, b: _dd.two_prod(a, 0.1),
         "square": lambda a, b: _dd.two_prod(a, a)}[form]
    p, e = _jit(f, a, b)
    other = {"two arrays": _exact(b), "constant": [Fraction(0.1)] * a.size, "square": _exact(a)}[form]
    bad = [i for i, (x, y, q, r) in enumerate(zip(_exact(a), other, _exact(p), _exact(e))) if x * y != q + r]
    assert not bad, f"two_prod ({form}) not error-free at {len(bad)} inputs, e.g. a={a[bad[0]]!r}"
    assert np.count_nonzero(e) > 0.9 * e.size, f"two_prod ({form}): error terms are zero"


def _exp_value(t):
    v, m = _dd.exp_parts(t)
    return v.hi, v.lo, m


def _dd_out(f):
    def g(t):
        r = f(t)
        return r.hi, r.lo
    return g


# name -> (kernel (float64 in, (hi, lo[, m]) out), mpmath reference, inputs, bound)
KERNELS = {
    "exp_parts": (_exp_value, mpmath.exp,
                  np.concatenate([_RNG.uniform(-1400, 709, 1500), _RNG.uniform(-1, 1, 500), [0.0, -745.2, 709.7]]),
                  2.0**-64),
    "expm1": (_dd_out(_dd.expm1), mpmath.expm1,
              np.concatenate([_RNG.uniform(-50, 50, 1000), _RNG.uniform(-0.2, 0.2, 1000), [1e-300, -1e-20, 0.0433]]),
              2.0**-62),
    "log1p": (_dd_out(_dd.log1p), mpmath.log1p,
              np.concatenate([_RNG.uniform(0, 1, 1000), np.exp(_RNG.uniform(-690, 0, 1000)), [1.0, 0.5]]),
              2.0**-62),
    "erfcx": (_dd_out(lambda w: _dd.erfcx(_dd.DD.of(w))), lambda w: mpmath.exp(w * w) * mpmath.erfc(w),
              np.concatenate([_RNG.uniform(0, 28, 1500), _RNG.uniform(0, 1, 500), [0.0, 3.0, 28.0]]),
              2.0**-65),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_relative_error_bound(name):
    kernel, ref, xs, bound = KERNELS[name]
    out = _jit(kernel, xs)
    worst, where = 0.0, None
    with mpmath.workprec(200):
        for i, x in enumerate(xs):
            got = mpmath.mpf(float(out[0][i])) + mpmath.mpf(float(out[1][i]))
            if len(out) == 3:
                got = mpmath.ldexp(got, int(out[2][i]))
            exact = ref(mpmath.mpf(float(x)))
            if exact == 0:
                continue
            err = float(abs(got / exact - 1))
            if err > worst:
                worst, where = err, x
    assert worst <= bound, (f"{name}: relative error {worst:.3g} (2**{np.log2(worst):.2f}) at x = {where!r}, "
                            f"bound 2**{np.log2(bound):.1f}")
