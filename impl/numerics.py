"""The numerical helpers the ops are built on, for code that builds variants of them.

``round_once(y, dtype)`` is the one "evaluate in float64, round once" step of every op:
float64 ``y`` rounded to ``dtype`` with a single rounding (float32 by the conversion itself;
bfloat16 and float16 through round-to-odd to float32 first, so the second rounding is exact:
Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using
rounding to odd", IEEE Trans. Computers 57 (2008)).  Call it inside
``jax.enable_x64(True)``; its JVP passes the tangent through, converted to ``dtype``.

``as_float_array(x, name="x")`` is the ops' input rule: a JAX array of a real floating dtype
(integers promoted to JAX's default float; complex input refused, naming ``name`` and the fix).

The conformance suite's mutation runs (``tools/mutants.py``) build their broken variants of
``impl.functional`` on these, so that a variant differs from the op in its one planted bug and
not in how it rounds.
"""

from ._core import as_float_array as as_float_array
from ._core import narrow as round_once

__all__ = ["as_float_array", "round_once"]
