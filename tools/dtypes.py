"""The one dtype table of the suite: names, numpy scalar types, parameter dtypes.

The numpy types (``ml_dtypes.bfloat16`` for bfloat16) serve JAX too:
``jnp.asarray(x, dtype=NP_DTYPES["bfloat16"])`` is a bfloat16 array.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = ["DTYPES", "NP_DTYPES", "PARAM_DTYPE"]

DTYPES = ("float32", "bfloat16", "float16", "float64")
NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float64": np.float64}
# parameters (weight, bias) and running statistics: float32, float64 for float64 cases
PARAM_DTYPE = {"float32": "float32", "bfloat16": "float32", "float16": "float32", "float64": "float64"}
