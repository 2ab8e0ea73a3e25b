"""Devices under test: selection, ids, and measured floating-point behaviour."""

from __future__ import annotations

import functools
import os

__all__ = ["device_id", "select_devices", "subnormal_behaviour", "DEVICES_ENV"]

DEVICES_ENV = "CONFORMANCE_DEVICES"


def device_id(d) -> str:
    """``cpu0``, ``cpu1``, ``gpu0``: platform and id, as used in test ids and reports."""
    return f"{d.platform}{d.id}"


def select_devices(spec: str | None = None):
    """Devices named by ``spec`` (comma list of ids like ``cpu0,gpu0`` or platforms like
    ``cpu``; ``all`` or empty: every device JAX offers)."""
    import jax

    spec = spec if spec is not None else os.environ.get(DEVICES_ENV, "all")
    devs = jax.devices()
    if spec.strip() in ("", "all"):
        return list(devs)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:  # "," or " , ": a list with no name in it would select no device and skip every case
        raise ValueError(f"--devices {spec!r} names no device; pass ids such as cpu0,cpu1, a platform such as "
                         f"cpu, or 'all' (devices here: {', '.join(device_id(d) for d in devs)})")
    out = []
    for w in wanted:
        hits = [d for d in devs if device_id(d) == w or d.platform == w]
        if not hits:
            known = ", ".join(device_id(d) for d in devs)
            raise ValueError(f"--devices names {w!r}, which is not a device here (devices: {known}); "
                             f"pass some of those ids, a platform name, or 'all'")
        out += [d for d in hits if d not in out]
    return out


@functools.lru_cache(maxsize=None)
def subnormal_behaviour(dev) -> dict:
    """Measured on the device: does float32/float64 arithmetic flush subnormal results
    to zero (FTZ), and does it treat subnormal inputs as zero (DAZ)?"""
    import jax
    import jax.numpy as jnp
    import numpy as np

    out = {}
    for name, dt, tiny in (("float32", np.float32, 2.0**-126), ("float64", np.float64, 2.0**-1022)):
        if dt == np.float64 and not jax.config.jax_enable_x64:
            with jax.enable_x64(True):
                out[name] = _probe(jax, jnp, np, dev, dt, tiny)
        else:
            out[name] = _probe(jax, jnp, np, dev, dt, tiny)
    return out


def _probe(jax, jnp, np, dev, dt, tiny):
    x = jax.device_put(np.array([tiny, tiny / 4], dtype=dt), dev)
    y = np.asarray(jax.jit(lambda v: (v[0] * 0.5, v[1] * 2.0))(x))
    return {"flushes_results": bool(y[0] == 0), "inputs_as_zero": bool(y[1] == 0)}
