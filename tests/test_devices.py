"""Multi-device behaviour: the same bits on every device of a backend, and under sharding."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tools import devices as D
from tools.dtypes import DTYPES
from tools.registry import by_family

from .helpers import NP_DTYPES, x64_for

CASES = by_family("activations")
IDS = [c.id for c in CASES]


def _by_platform():
    groups = {}
    for d in jax.devices():
        groups.setdefault(d.platform, []).append(d)
    return groups


def _x(dtype):
    from tools import inputs
    return inputs.live_sample("float32" if dtype != "float64" else "float64", 512, 3).astype(
        np.float64 if dtype == "float64" else np.float32)


def test_two_cpu_devices_are_forced():
    """The test run forces two CPU devices so multi-device paths always run."""
    assert len(jax.devices("cpu")) >= 2, (
        "expected >= 2 CPU devices (tests/conftest.py sets XLA_FLAGS=--xla_force_host_platform_device_count=2); "
        f"got {jax.devices('cpu')}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_bits_on_every_device_of_a_backend(case, dtype, impl_op):
    fn = impl_op(case.op)
    for platform, devs in _by_platform().items():
        if len(devs) < 2:
            continue
        outs = []
        with x64_for(dtype):
            for d in devs:
                x = jax.device_put(jnp.asarray(_x(dtype), NP_DTYPES[dtype]), d)
                outs.append(np.asarray(fn(x, **case.params)))
        for d, o in zip(devs[1:], outs[1:]):
            assert o.tobytes() == outs[0].tobytes(), (
                f"{case.id} {dtype}: {D.device_id(d)} differs from {D.device_id(devs[0])} at "
                f"{int(np.sum(o.view(np.uint8) != outs[0].view(np.uint8)))} bytes")


@pytest.mark.jax_transforms
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sharded_equals_single_device(case, dtype, impl_op):
    """Inputs sharded across the CPU devices give the single-device bits."""
    fn = impl_op(case.op)
    devs = jax.devices("cpu")[:2]
    mesh = Mesh(np.array(devs), ("d",))
    x_np = _x(dtype)
    x1 = jax.device_put(jnp.asarray(x_np, NP_DTYPES[dtype]), devs[0])
    xs = jax.device_put(jnp.asarray(x_np, NP_DTYPES[dtype]), NamedSharding(mesh, PartitionSpec("d")))
    single = np.asarray(fn(x1, **case.params))
    sharded = fn(xs, **case.params)
    assert len(sharded.sharding.device_set) == 2
    assert np.asarray(sharded).tobytes() == single.tobytes(), f"{case.id} {dtype}: sharded result differs"


def test_accelerators_are_in_the_matrix(request):
    """With no accelerator the accelerator cases are skipped (with this reason), never passed;
    with one, every device-parametrized test runs on it unless --devices deselects it."""
    accel = [d for d in jax.devices() if d.platform != "cpu"]
    if not accel:
        pytest.skip("no accelerator on this machine: GPU/TPU conformance cases were not run")
    if request.config.getoption("--devices") in ("all", ""):
        assert all(d in request.config._devices for d in accel), "an accelerator is missing from the device matrix"


@pytest.mark.parametrize("spec", [",", " , ", ",,"])
def test_device_list_without_a_name_is_a_usage_error(spec):
    """``--devices ,`` used to select no device, so every device case vanished from the run."""
    with pytest.raises(ValueError, match=r"--devices .* names no device; pass ids such as cpu0,cpu1"):
        D.select_devices(spec)


def test_pytest_devices_comma_is_a_usage_error():
    root = pathlib.Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "pytest", "--devices", ",", "-p", "no:cacheprovider", "-q",
                        "tests/test_devices.py::test_two_cpu_devices_are_forced"], cwd=root, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error
    assert "--devices ',' names no device" in r.stderr, r.stderr
