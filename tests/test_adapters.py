"""The peer adapters themselves: exact conversions, the contract's signatures, their stated facts.

Their accuracy is what the suite measures with ``--impl adapters.NAME``
(``python -m tools.report --peers``); here only what the adapters promise.
"""

from __future__ import annotations

import importlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tools.dtypes import NP_DTYPES

from .test_contract import CONTRACT, _keywords, _same

ADAPTERS = {"jax_nn": "jax", "flax_nnx": "flax", "equinox_nn": "equinox", "brainstate_nn": "brainstate",
            "torch_functional": "torch"}


def _adapter(name):
    pytest.importorskip(ADAPTERS[name])
    return importlib.import_module(f"adapters.{name}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_signatures_match_the_contract(name):
    mod = _adapter(name)
    provided = [op for op in CONTRACT if callable(getattr(mod, op, None))]
    assert provided, f"adapters.{name} provides no op of the contract"
    for op in provided:
        want, got = _keywords(CONTRACT[op]), _keywords(inspect.signature(getattr(mod, op)))
        assert set(want) <= set(got) and all(_same(want[k], got[k]) for k in want), (
            f"adapters.{name}.{op}{inspect.signature(getattr(mod, op))} differs from the contract "
            f"{op}{CONTRACT[op]} (vetted_layers_suite.contract)")
    assert getattr(mod, "CONFORMANCE_PEER", ""), f"adapters.{name} does not name its peer (CONFORMANCE_PEER)"


def _all_bits(dtype, nbits):
    return np.arange(1 << nbits, dtype=np.uint64).astype({16: np.uint16, 32: np.uint32}[nbits]).view(dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64"])
def test_torch_conversion_is_exact(dtype):
    """Every bfloat16 and float16 bit pattern (nan payloads, -0, subnormals) and a float32/float64
    sample go to torch and back unchanged, in the input's dtype."""
    T = _adapter("torch_functional")
    if dtype in ("bfloat16", "float16"):
        a = _all_bits(NP_DTYPES[dtype], 16)
    elif dtype == "float32":
        # 65536 patterns spread over all 2**32 (nan payloads, both zeros, subnormals, infinities)
        a = np.concatenate([np.arange(0, 1 << 32, 65537, dtype=np.uint64).astype(np.uint32).view(np.float32),
                            np.array([-0.0, 1e-45, -1e-45, np.inf, -np.inf], np.float32)])
    else:
        a = np.array([-0.0, 5e-324, -5e-324, np.inf, -np.inf, 1 / 3, np.nan, 2.2250738585072014e-308], np.float64)
    ctx = jax.enable_x64(True) if dtype == "float64" else jax.enable_x64(False)
    with ctx:
        x = jnp.asarray(a)
        t, _ = T.to_torch(x)
        back = T.from_torch(t, x)
        assert back.dtype == x.dtype
        assert np.asarray(back).tobytes() == a.tobytes(), f"{dtype}: bits changed on the way to torch and back"


def test_torch_result_keeps_dtype_and_device():
    T = _adapter("torch_functional")
    dev = jax.devices("cpu")[-1]
    x = jax.device_put(jnp.linspace(-3, 3, 7, dtype=jnp.bfloat16), dev)
    y = T.gelu(x)
    assert y.dtype == jnp.bfloat16 and y.devices() == {dev}


def test_torch_refuses_tracing_with_a_reason():
    T = _adapter("torch_functional")
    with pytest.raises(NotImplementedError, match="cannot be traced by jax.jit"):
        jax.jit(T.relu)(jnp.ones(3))


def test_flax_activations_are_jax_nn():
    """adapters.flax_nnx says nnx's activation functions are jax.nn's own objects."""
    pytest.importorskip("flax")
    from flax import nnx

    for name in ["relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "sigmoid", "log_sigmoid",
                 "softplus", "hard_sigmoid", "hard_swish", "soft_sign"]:
        assert getattr(nnx, name) is getattr(jax.nn, name), f"nnx.{name} is no longer jax.nn.{name}"
    assert nnx.tanh is jnp.tanh and not hasattr(nnx, "mish")


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_equinox_prelu_keeps_the_input_dtype(dtype):
    E = _adapter("equinox_nn")
    y = E.leaky_relu(jnp.array([-2.0, 0.0, 3.0], dtype), negative_slope=0.1)
    assert y.dtype == dtype
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray([-2 * float(jnp.asarray(0.1, dtype)), 0, 3],
                                                                        np.float32))
