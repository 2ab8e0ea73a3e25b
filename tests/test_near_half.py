"""sigmoid and silu' next to 0, where ``1/2 + k t`` (k = 1/4, 1/2) lands on float32 midpoints.

The exhaustive sweeps found the float64 formulas 1 ulp off on 65 float32 inputs of sigmoid (and so
of softplus' and log_sigmoid') and 98 of silu', all with ``2**-25 <= |t| < 2**-16``, where
``1/2 + k t`` is a float32 midpoint and the exact value lies within ``|t|**3/12`` of it on the side
of 1/2.  ``impl._activations._near_half`` decides them (its comment has the proof).  This checks
every tie candidate below ``2**-12`` (odd multiples of ``2**-23``, ``2**-24`` and ``2**-25``, which
hold both signs' midpoints for both slopes) and their float32 neighbours, the zeros, subnormals and
the largest float32 below ``2**-12``, for the value of sigmoid and the derivatives that ``jax.grad``
gives softplus, log_sigmoid and silu, against the correctly rounded mpmath references
(``reference.correctly_rounded``).  ``python -m tools.check_near_half`` checks every float32 input
with ``2**-30 <= |t| < 2**-11`` (minutes).
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from reference import activations as R
from reference import derivatives as RD


def _candidates():
    """Odd multiples of 2**-23 and 2**-24 with |t| < 2**-12, their float32 neighbours, both signs."""
    ties = [np.arange(1, 2 ** 11, 2) * 2.0 ** -23, np.arange(1, 2 ** 12, 2) * 2.0 ** -24,
            np.arange(1, 2 ** 13, 2) * 2.0 ** -25]
    t = np.concatenate(ties).astype(np.float32)
    t = np.concatenate([t, np.nextafter(t, np.float32(0)), np.nextafter(t, np.float32(1))])
    edge = np.array([0.0, 2.0 ** -149, 2.0 ** -130, 2.0 ** -126, np.nextafter(np.float32(2.0 ** -12), np.float32(0))],
                    np.float32)
    t = np.unique(np.concatenate([t, edge, -t, -edge]))
    return t[np.abs(t) < 2.0 ** -12]


CANDIDATES = _candidates()


def _ops():
    import jax
    import impl.functional as F

    grad = lambda f: jax.jit(jax.vmap(jax.grad(f)))
    return {
        "sigmoid": (jax.jit(F.sigmoid), R.sigmoid, 1.0),
        "softplus'": (grad(F.softplus), RD.d_softplus, 1.0),
        "log_sigmoid'(-t)": (grad(F.log_sigmoid), RD.d_log_sigmoid, -1.0),
        "silu'": (grad(F.silu), RD.d_silu, 1.0),
    }


@pytest.mark.parametrize("name", ["sigmoid", "softplus'", "log_sigmoid'(-t)", "silu'"])
def test_ties_next_to_zero_correctly_rounded(name):
    import jax.numpy as jnp

    fn, ref, sign = _ops()[name]
    x = (sign * CANDIDATES).astype(np.float32)
    got = np.asarray(fn(jnp.asarray(x)))
    want = np.array([correctly_rounded(ref, float(v), FORMATS["float32"])[0] for v in x], dtype=np.float32)
    bad = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
    assert bad.size == 0, (
        f"{name}: {bad.size} of {x.size} float32 inputs next to 0 not correctly rounded, e.g. "
        + ", ".join(f"x={float(x[i])!r}: got {float(got[i])!r}, expected {float(want[i])!r}" for i in bad[:5])
        + "; reproduce: pytest tests/test_near_half.py -k " + repr(name))
    # the inputs reach the cases the change is about: the float64 formula without _near_half
    # misses on some of them, for either sign of t (the sweeps found 65 for sigmoid, 98 for silu's
    # derivative, on both sides of 0)
    plain = np.asarray(_plain(name)(jnp.asarray(x)))
    missed = plain.view(np.uint32) != want.view(np.uint32)
    for side, where in (("positive", x > 0), ("negative", x < 0)):
        assert np.count_nonzero(missed & where) > 0, (
            f"{name}: the plain float64 formula is correctly rounded on every {side} candidate; the "
            f"inputs no longer reach the ties this test is for")


def _plain(name):
    import jax
    from impl import _activations as A
    from impl._core import in_float64

    f = {"sigmoid": A._sig32, "softplus'": A._sig32, "log_sigmoid'(-t)": lambda t: A._sig32(-t),
         "silu'": A._silu_d1_32}[name]
    return jax.jit(lambda x: in_float64(f, x))
