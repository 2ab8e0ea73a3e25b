"""The functional contract and the layer classes: jit, eager, vmap, grad, dtypes, repr, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl
from tools import inputs
from tools.registry import by_family
from tools.registry import op as op_record
from vetted_layers_suite import contract

from .helpers import NP_DTYPES, x64_for

CASES = by_family("activations")
IDS = [c.id for c in CASES]
X = inputs.live_sample("float32", 256, 99)


@pytest.mark.jax_transforms
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager(case, impl_op, device):
    """The jitted op and the same op traced op-by-op (jax.disable_jit) give the same bits."""
    fn = impl_op(case.op)
    x = jax.device_put(jnp.asarray(X), device)
    jitted = np.asarray(fn(x, **case.params))
    with jax.disable_jit():
        eager = np.asarray(fn(x, **case.params))
    np.testing.assert_array_equal(jitted.view(np.uint32), eager.view(np.uint32),
                                  err_msg=f"{case.id}: jit and eager differ")


@pytest.mark.jax_transforms
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtype_preserved_under_jit_vmap_grad(case, dtype, impl_op):
    fn = impl_op(case.op)
    with x64_for(dtype):
        x = jnp.asarray(X[:16], dtype=NP_DTYPES[dtype])
        f = lambda v: fn(v, **case.params)  # noqa: E731
        for how, t in (("", f), ("jit", jax.jit(f)), ("vmap", jax.vmap(f)), ("vmap(grad)", jax.vmap(jax.grad(f)))):
            y, via = t(x), f" via {how}" if how else ""
            assert y.dtype == x.dtype, f"{case.id}{via} returned {y.dtype} for a {dtype} input"
            assert y.shape == x.shape, f"{case.id}{via} returned shape {y.shape} for an input of shape {x.shape}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes_and_scalars(case, impl_op):
    fn = impl_op(case.op)
    for shape in [(), (3,), (2, 3, 4), (0,)]:
        x = jnp.full(shape, 0.5, jnp.float32)
        assert fn(x, **case.params).shape == shape


def test_integer_input_is_promoted():
    """The tutorial calls relu on an integer array; integers promote to the default float."""
    y = impl.functional.relu(jnp.array([-2, -1, 0, 1, 2]))
    assert y.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(y), [0, 0, 0, 1, 2])




@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_global_x64_flag_untouched(case, impl_op, request):
    """An op may evaluate in float64 inside, but must leave the process-wide x64 flag as it was.
    The flag is first put back to its value at the start of the session, so that an op that
    switched it earlier cannot hide this op's verdict (nor pin it on this one)."""
    fn = impl_op(case.op)
    start = request.config._x64_at_start
    if jax.config.jax_enable_x64 != start:
        jax.config.update("jax_enable_x64", start)
    fn(jnp.ones(3), **case.params)
    assert jax.config.jax_enable_x64 == start, (
        f"{case.id} switched jax_enable_x64 from {start} to {jax.config.jax_enable_x64}; use the "
        "jax.enable_x64 context inside the function instead of jax.config.update")


# ---- layer classes ------------------------------------------------------------

def _layer(case):
    """The layer of the case's op (``Op.layer``) built with the case's parameters, and its
    expected repr: every parameter of the contract, the case's value or the default."""
    cls = getattr(impl.nn, op_record(case.op).layer)
    params = {**contract.defaults(case.op), **case.params}
    text = f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    return cls(**case.params), case.op, case.params, text


LAYERS = [_layer(c) for c in CASES]


@pytest.mark.parametrize("layer,op,kw,text", LAYERS, ids=[t for *_, t in LAYERS])
def test_layer_calls_functional_and_prints(layer, op, kw, text):
    x = jnp.linspace(-3, 3, 100)
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(getattr(impl.functional, op)(x, **kw)))
    assert repr(layer) == text
    # layers are pytrees: they go through jit as arguments
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda m, v: m(v))(layer, x)), np.asarray(layer(x)))


def test_tutorial_activation_cells():
    """The tutorial's activation cells, as written, with impl in place of the other library."""
    x = jnp.linspace(-3, 3, 100)
    relu = impl.nn.ReLU()
    test_input = jnp.array([-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(np.asarray(relu(test_input)), [0, 0, 0, 1, 2])
    y_leaky = impl.nn.LeakyReLU(negative_slope=0.1)(x)
    assert float(y_leaky[0]) == pytest.approx(-0.3)
    acts = {"ReLU": impl.nn.ReLU(), "LeakyReLU": impl.nn.LeakyReLU(0.1), "GELU": impl.nn.GELU(),
            "ELU": impl.nn.ELU(), "Sigmoid": impl.nn.Sigmoid(), "Tanh": impl.nn.Tanh()}
    for name, act in acts.items():
        y = act(x)
        assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y))), name


