"""The one way to call an op of the implementation under test on a case's arrays.

``call(fn, op, arrays, params)`` calls ``fn`` as the contract
(``vetted_layers_suite.contract``) writes ``op``: ``x`` first, the contract's
required parameters positionally (from ``arrays``, else ``params``, else
``None``: batch_norm without running statistics), every other one present in
``arrays`` or ``params`` as a keyword; it returns the
outputs by name (``contract.outputs(op)``: ``{"y": ...}``, and batch_norm's
running statistics).  ``run`` does the same with the arrays committed to a
device (x64 on for float64 cases), waits for the result and returns numpy
arrays.  The golden, live, special-value, parameter, layer, reduction and VJP
tests, the exhaustive sweeps and so the report, the leaderboard and the
mutation runs (which run those tests) all go through here.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from tools.dtypes import NP_DTYPES
from vetted_layers_suite import contract

__all__ = ["call", "run", "x64_for"]


def x64_for(dtype_name):
    """float64 arrays exist only with x64 on: a context that enables it for float64 cases."""
    return jax.enable_x64(True) if dtype_name == "float64" else contextlib.nullcontext()


def call(fn, op: str | None, arrays: dict, params: dict | None = None) -> dict:
    """``fn`` (the op ``op`` of the module under test) on ``arrays["x"]`` and the case's other
    arrays and parameters; ``op=None`` passes every parameter as a keyword."""
    params = dict(params or {})
    args, kwargs = [arrays["x"]], {}
    names = contract.defaults(op) if op is not None else {}
    for name, default in names.items():
        source = arrays if name in arrays else params if name in params else {}
        if default is contract.REQUIRED:
            args.append(source.get(name))
        elif name in source:
            kwargs[name] = source[name]
    kwargs.update({k: v for k, v in params.items() if k not in names})
    out = fn(*args, **kwargs)
    keys = contract.outputs(op) if op is not None else ("y",)
    return dict(zip(keys, out)) if len(keys) > 1 else {keys[0]: out}


def run(fn, op: str | None, arrays: dict, params: dict | None, dtype_name: str, device) -> dict:
    """``call`` with every array of ``arrays`` committed to ``device`` (``x`` in ``dtype_name``);
    the outputs as numpy arrays (``None`` stays ``None``)."""
    with x64_for(dtype_name):
        put = {k: jax.device_put(jnp.asarray(v, dtype=NP_DTYPES[dtype_name] if k == "x" else None), device)
               for k, v in arrays.items() if v is not None}
        out = jax.block_until_ready(call(fn, op, put, params))
        return {k: None if v is None else np.asarray(v) for k, v in out.items()}
