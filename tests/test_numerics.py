"""``impl.numerics``: the public float64-and-round-once step (what ``tools/mutants.py`` builds on).

The inputs sit next to 16-bit midpoints, where rounding twice (float64 -> float32 -> 16 bits)
goes wrong: ``1 + 2**-8 + 2**-30`` lies above the bfloat16 midpoint between 1 and ``1 + 2**-7``,
but float32 rounds it onto the midpoint, and the tie then goes to the even neighbour, 1.  The
expected values are written down from that arithmetic, not computed by the code under test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from impl import numerics

# (dtype, float64 input, correctly rounded result, what rounding twice gives)
CASES = [
    ("bfloat16", 1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-7, 1.0),
    ("bfloat16", 1 + 2.0**-8 - 2.0**-30, 1.0, 1.0),
    ("bfloat16", -(1 + 3 * 2.0**-8 - 2.0**-30), -(1 + 2.0**-7), -(1 + 2 * 2.0**-7)),
    ("float16", 1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-10, 1.0),
    ("float16", 1 + 3 * 2.0**-11 - 2.0**-40, 1 + 2.0**-10, 1 + 2 * 2.0**-10),
    ("float32", 1 + 2.0**-24 + 2.0**-50, 1 + 2.0**-23, 1 + 2.0**-23),
    ("float32", 1 + 2.0**-24, 1.0, 1.0),  # a tie: to even
]


@pytest.mark.parametrize("dtype, y, expected, twice", CASES, ids=lambda v: str(v))
def test_round_once_is_one_rounding(dtype, y, expected, twice):
    with jax.enable_x64(True):
        got = numerics.round_once(jnp.asarray([y], jnp.float64), jnp.dtype(dtype))
        naive = jnp.asarray([y], jnp.float64).astype(jnp.float32).astype(dtype)
    assert got.dtype == jnp.dtype(dtype)
    assert float(got[0]) == expected, f"round_once({y!r}) to {dtype}: expected {expected!r}, got {float(got[0])!r}"
    assert float(naive[0]) == twice  # the case is one where rounding twice differs (or agrees, as written)


def test_as_float_array_names_the_parameter_and_the_fix():
    assert numerics.as_float_array(np.arange(3)).dtype == jnp.result_type(float)
    with pytest.raises(TypeError, match=r"weight must be a real floating array, got dtype complex64; pass the real"):
        numerics.as_float_array(np.ones(2, np.complex64), "weight")
