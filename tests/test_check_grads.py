"""``jax.test_util.check_grads`` on every elementwise op, float64, orders 1 and 2, fwd and rev.

``check_grads(f, (x,), order=2, modes=("fwd", "rev"))`` compares JVPs and
VJPs (first and second order: jvp of jvp, vjp of jvp, jvp of vjp, vjp of vjp)
with central differences (step 1e-4) at points at least 0.3 away from every
kink (0, ±3, 6), so each op is smooth on the stencil.

The checks run op by op (``jax.disable_jit``): the derivative rules are the
same, and this avoids the ~13 XLA compilations per op that each transformed
function would otherwise cost (4 s per op; 0.5 s this way).  They run on the
first device under test only: the rules do not depend on the device, whose
arithmetic the golden tests (tests/test_gradients_golden.py) measure on every
device, compiled.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

from tools import devices as D
from tools.registry import by_family

CASES = by_family("activations")
POINTS = (-4.7, -2.2, -1.1, -0.37, 0.45, 1.3, 2.6, 4.1, 5.3, 7.9)


@pytest.mark.jax_transforms
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_check_grads_float64(case, impl_op, request, reproduce):
    device = request.config._devices[0]
    f = functools.partial(impl_op(case.op), **case.params)
    with jax.enable_x64(True), jax.default_device(device), jax.disable_jit():
        x = jnp.asarray(POINTS, dtype=jnp.float64)
        try:
            check_grads(f, (x,), order=2, modes=("fwd", "rev"))
        except AssertionError as e:
            raise AssertionError(
                f"{case.id} on {D.device_id(device)}: automatic derivatives (orders 1 and 2, fwd and rev) "
                f"disagree with central differences at x in {POINTS}:\n{e}\n"
                f"reproduce: {reproduce}") from None
